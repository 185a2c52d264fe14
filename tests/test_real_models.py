"""Real-model presets on a tiny Qwen2-architecture model saved like a Hub checkpoint: the presets
compose, responses stop at any of the model's stop tokens (its end of turn included) with the score
read after it, and `laser.run` trains it on a maths JSONL file end to end (CPU; GPU under `-m gpu`).
"""

from __future__ import annotations

import csv
import json
import string
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast, Qwen2Config

from laser.assembly import check_self_reward
from laser.catalog import INSTRUCTION
from laser.configs import validate
from laser.evaluate import evaluate
from laser.models.loading import load_pretrained, load_tokenizer, stop_token_ids
from laser.rollout.generate import generate
from laser.rollout.logprobs import sequence_logprobs
from laser.run import train
from laser.utils.compose import compose_config

from helpers import add_logit_bias, compose_train

ROOT = Path(__file__).resolve().parents[1]
MODEL_PRESETS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("qwen*.yaml"))
ENDOFTEXT, IM_START, IM_END, VISION_START, UNK = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<unk>",
)
# Qwen2.5's template: a default system turn, turns closed by <|im_end|>, then the generation prompt
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{%- if m['role'] != 'system' %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
PROBLEMS = [
    {"problem": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(1, 5) for b in range(1, 5)
]


def qwen_like_tokenizer(eos_token: str) -> PreTrainedTokenizerFast:
    """A fast character-level tokenizer with Qwen's special tokens and chat template.

    `eos_token` is <|im_end|> for a chat model, <|endoftext|> for a base model; pad is <|endoftext|>.
    """
    specials = [ENDOFTEXT, IM_START, IM_END, VISION_START, UNK]
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(specials + chars)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=eos_token,
        pad_token=ENDOFTEXT,
        unk_token=UNK,
        additional_special_tokens=[IM_START, IM_END, VISION_START],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def qwen_like_model(tok, generation_eos: list[str], seed: int = 0) -> torch.nn.Module:
    """A randomly initialised 2-layer, 32-wide Qwen2 causal LM whose generation config lists
    `generation_eos` (Qwen2.5 chat models list <|im_end|> and <|endoftext|>)."""
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.convert_tokens_to_ids(generation_eos), pad_token_id=tok.pad_token_id
    )
    return model


def save_qwen_like_chat_model(path: Path) -> Path:
    """A chat-model folder as save_pretrained writes it. The LM head is scaled down so that the
    next-token distribution is near uniform: about one response in two ends within 32 tokens."""
    tok = qwen_like_tokenizer(eos_token=IM_END)
    model = qwen_like_model(tok, [IM_END, ENDOFTEXT])
    with torch.no_grad():
        model.lm_head.weight.mul_(0.05)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory) -> Path:
    return save_qwen_like_chat_model(tmp_path_factory.mktemp("qwen_like"))


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", PROBLEMS)


# -- presets ------------------------------------------------------------------------------------


def test_the_qwen_presets_are_there() -> None:
    assert {"qwen2.5_math_1.5b", "qwen2.5_7b", "qwen2.5_0.5b_instruct"} <= set(MODEL_PRESETS)


@pytest.mark.parametrize("preset", MODEL_PRESETS)
@pytest.mark.parametrize("trainer", ["cpu", "gpu"])
def test_model_presets_compose_with_math_data(tmp_path: Path, train_file: Path, preset, trainer) -> None:
    overrides = [f"model={preset}", "data=math", f"data.files.train={train_file}", "data.files.eval=4"]
    cfg = compose_train(tmp_path, [*overrides, "reward=math_verify", f"trainer={trainer}"], debug=None)
    run = validate(cfg)
    assert run.model.name_or_path.startswith("Qwen/") and run.model.base_sft.steps == 0
    assert run.algo.self_reward.token == "<|vision_start|>" and run.algo.self_reward.c_ref == "auto"
    assert run.model.stop_tokens == [IM_END, ENDOFTEXT] and run.model.gradient_checkpointing
    assert run.data.source == "files" and run.data.files.holdout == 4


def test_gpu_preset_sets_precision_devices_and_micro_batches(tmp_path: Path) -> None:
    cfg = compose_train(tmp_path, ["model=qwen2.5_math_1.5b", "trainer=gpu"], debug=None)
    run = validate(cfg)
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.precision) == ("gpu", 1, "bf16-mixed")
    cpu = validate(compose_train(tmp_path, ["model=qwen2.5_math_1.5b"], debug=None))
    assert run.algo.micro_batch_size < cpu.algo.micro_batch_size
    assert run.rollout.micro_batch_size < cpu.rollout.micro_batch_size
    # command-line overrides still win over the global preset
    cfg = compose_train(tmp_path, ["trainer=gpu", "algo.micro_batch_size=2"], debug=None)
    assert validate(cfg).algo.micro_batch_size == 2


def test_model_c_ref_and_token_flow_into_algo_and_algo_overrides_win(tmp_path: Path) -> None:
    base = ["model=qwen2.5_0.5b_instruct"]
    paper = validate(compose_train(tmp_path, [*base, "model.c_ref=-23"], debug=None))
    assert paper.algo.self_reward.c_ref == -23.0 and paper.algo.self_reward.constant_c_ref == -23.0
    ablation = ["algo.self_reward.c_ref=reference", "algo.self_reward.token='<|im_start|>'"]
    run = validate(compose_train(tmp_path, [*base, *ablation], debug=None))
    assert (run.algo.self_reward.c_ref, run.algo.self_reward.token) == ("reference", IM_START)
    assert run.model.self_reward_token == VISION_START


def test_hf_preset_without_a_token_names_the_fix(tmp_path: Path, chat_model_dir: Path) -> None:
    cfg = compose_train(tmp_path, ["model=hf", f"model.name_or_path={chat_model_dir}"], debug=None)
    with pytest.raises(ValueError, match=r"model\.self_reward_token"):
        validate(cfg)


# -- stop tokens --------------------------------------------------------------------------------


def test_stop_ids_join_tokenizer_eos_generation_config_and_stop_tokens() -> None:
    base = qwen_like_tokenizer(eos_token=ENDOFTEXT)
    ids = base.convert_tokens_to_ids
    # a base model: tokenizer and generation config say <|endoftext|>; the chat turn ends with <|im_end|>
    model = qwen_like_model(base, [ENDOFTEXT])
    assert stop_token_ids(base, [], model) == [ids(ENDOFTEXT)]
    assert stop_token_ids(base, [IM_END, ENDOFTEXT], model) == sorted([ids(ENDOFTEXT), ids(IM_END)])
    chat = qwen_like_tokenizer(eos_token=IM_END)
    assert stop_token_ids(chat, [], qwen_like_model(chat, [IM_END, ENDOFTEXT])) == sorted(
        [ids(ENDOFTEXT), ids(IM_END)]
    )
    four_ids = r"encodes to \[\d+, \d+, \d+, \d+\]"
    with pytest.raises(ValueError, match=rf"model\.stop_tokens: '</s>' is not one token .* {four_ids}"):
        stop_token_ids(base, ["</s>"])
    with pytest.raises(ValueError, match=r"model\.stop_tokens: 'é' is not one token"):  # <unk>
        stop_token_ids(base, ["é"])


def test_self_reward_token_may_not_be_a_stop_token(tmp_path: Path, chat_model_dir: Path) -> None:
    overrides = ["model=qwen2.5_0.5b_instruct", f"model.name_or_path={chat_model_dir}"]
    run = validate(compose_train(tmp_path, overrides, debug=None))
    tok = load_tokenizer(str(chat_model_dir))
    assert check_self_reward(run, tok) == tok.convert_tokens_to_ids(VISION_START)
    run.algo.self_reward.token = IM_END  # the tokenizer's pad/EOS checks pass for a base model's
    run.model.stop_tokens = [IM_END]
    base_tok = qwen_like_tokenizer(eos_token=ENDOFTEXT)
    with pytest.raises(ValueError, match="ends responses"):
        check_self_reward(run, base_tok)


def test_rollout_stops_at_every_stop_id_and_scores_after_it_like_a_full_forward() -> None:
    """A base-model tokenizer (EOS <|endoftext|>) with the chat turn's <|im_end|> as a second stop:
    rows end at whichever comes first, the mask stops there, and the in-rollout score read one step
    later equals the training forward's score at that position."""
    tok = qwen_like_tokenizer(eos_token=ENDOFTEXT)
    model = qwen_like_model(tok, [ENDOFTEXT]).eval()
    end_text, end_turn, z = tok.convert_tokens_to_ids([ENDOFTEXT, IM_END, VISION_START])
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)  # sharper logits, so that scores differ between rows
    add_logit_bias(model, {end_text: 2.0, end_turn: 2.0})
    stops = stop_token_ids(tok, [IM_END], model)
    prompts = [tok.apply_chat_template([{"role": "user", "content": p["problem"]}], tokenize=False,
                                       add_generation_prompt=True) for p in PROBLEMS]  # fmt: skip
    encoded = [tok.encode(p, add_special_tokens=False) for p in prompts]
    width = max(map(len, encoded))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(e)) + e for e in encoded])
    mask = (torch.arange(width) >= width - torch.tensor([len(e) for e in encoded])[:, None]).long()
    rollout = generate(
        model, ids, mask, eos_id=stops, pad_id=tok.pad_token_id, max_new_tokens=12,
        temperature=1.0, self_reward_id=z, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    fin = rollout.finished
    last = rollout.response_ids[torch.arange(len(rollout)), rollout.lengths - 1]
    assert {end_text, end_turn} <= set(last[fin].tolist())  # both stop ids ended some rows
    assert not fin.all() and fin.sum() >= 4
    for row in range(len(rollout)):  # the mask ends at the first stop id; nothing before it stops
        kept = rollout.response_ids[row, : rollout.lengths[row]].tolist()
        assert not set(kept[:-1]) & set(stops)
        assert (kept[-1] in stops) == bool(fin[row])
    full = sequence_logprobs(model, rollout, z)
    torch.testing.assert_close(rollout.z_logp[fin], full.z_logp[fin], atol=1e-4, rtol=0)
    assert rollout.z_logp[fin].max() - rollout.z_logp[fin].min() > 0.1


# -- end to end ---------------------------------------------------------------------------------


def real_model_overrides(model_dir: Path, train_file: Path, trainer: str) -> list[str]:
    """`laser.run` on the tiny Qwen-like model and the maths file, a few short steps."""
    return [
        "model=qwen2.5_0.5b_instruct",
        f"model.name_or_path={model_dir}",
        "data=math",
        f"data.files.train={train_file}",
        "data.files.eval=4",
        "data.batch_size=2",
        "reward=math_verify",
        "reward.num_workers=1",
        f"trainer={trainer}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "algo.group_size=4",
        "algo.self_reward.c_ref_samples=8",
        # near-uniform next tokens put c_ref near -log(vocabulary), too high for E2's check
        "algo.self_reward.max_target_logprob=1e9",
        "rollout.max_new_tokens=32",
        "final_eval.problems=2",
        "final_eval.samples=2",
        "num_threads=1",
    ]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def check_real_model_run(tmp_path: Path, metrics: dict, objects: dict) -> list[dict[str, str]]:
    """What every real-model run must show: steps taken, chat prompts, stop ids, logged metrics, export."""
    run_dir = tmp_path / "run"
    assert objects["trainer"].global_step == 2
    prompt = objects["datamodule"].splits["train"][0]["prompt"]
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert INSTRUCTION in prompt
    tok = objects["datamodule"].collate.tokenizer
    stops = sorted(tok.convert_tokens_to_ids([IM_END, ENDOFTEXT]))
    assert objects["module"].sampler.stop_ids == stops
    assert torch.isfinite(objects["module"].c_ref)
    rows = read_metrics(run_dir)
    for key in ("train/reward/mean", "train/loss/total", "train/memory/peak_rss_gib", "val/accuracy"):
        assert any(r.get(key) for r in rows), key
    rss = [float(r["train/memory/peak_rss_gib"]) for r in rows if r.get("train/memory/peak_rss_gib")]
    assert len(rss) == 2 and 0.1 < rss[0] <= rss[1]  # torch alone holds over 0.1 GiB; a peak never falls
    assert not any(k.startswith("train/memory/") for k in metrics)  # logged, not a run result
    info = json.loads((run_dir / "policy" / "self_reward.json").read_text())
    assert info["token"] == VISION_START and info["c_ref"] == pytest.approx(metrics["summary/c_ref"])
    exported = load_pretrained(str(run_dir / "policy"))
    assert sorted(exported.generation_config.eos_token_id) == stops  # stops where training did
    return rows


@pytest.mark.slow
def test_run_trains_a_saved_qwen_like_model_on_a_jsonl_file_on_cpu(
    tmp_path: Path, chat_model_dir: Path, train_file: Path
) -> None:
    cfg = compose_train(tmp_path, real_model_overrides(chat_model_dir, train_file, "cpu"), debug=None)
    metrics, objects = train(cfg)
    check_real_model_run(tmp_path, metrics, objects)
    assert objects["module"].policy.is_activation_checkpointing  # from the preset
    assert next(objects["module"].policy.parameters()).dtype == torch.float32
    # the export evaluates on the maths file, stopping where training did (its generation config)
    paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'eval'}"]
    options = ["max_problems=3", "num_samples=2", "rollout.max_new_tokens=16", "wandb.mode=disabled"]
    run_eval = [f"ckpt_path={tmp_path / 'run'}", f"benchmark={train_file}", *options, *paths]
    evaluate(compose_config(run_eval, config_name="eval"))
    problems = [json.loads(line) for line in (tmp_path / "eval" / "problems.jsonl").read_text().splitlines()]
    assert len(problems) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with `pytest -m gpu`)")
def test_run_trains_a_saved_qwen_like_model_with_the_gpu_preset(
    tmp_path: Path, chat_model_dir: Path, train_file: Path
) -> None:
    cfg = compose_train(tmp_path, real_model_overrides(chat_model_dir, train_file, "gpu"), debug=None)
    metrics, objects = train(cfg)
    rows = check_real_model_run(tmp_path, metrics, objects)
    assert objects["trainer"].precision == "bf16-mixed"
    assert objects["trainer"].strategy.root_device.type == "cuda"  # the module is back on CPU after fit
    peaks = [float(r["train/memory/peak_gib"]) for r in rows if r.get("train/memory/peak_gib")]
    assert len(peaks) == 2 and all(p > 0 for p in peaks)

"""The stage-time benchmark: the score steps it times are exactly the ones the score adds, and a
short run reports every stage."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from laser.lit import timing
from laser.lit.timing import StageTimer
from laser.profiling.stage_time import STAGES, main
from laser.rollout.generate import generate

from helpers import add_logit_bias, char_tokenizer, count_forwards, encode_prompts, tiny_model

PROMPTS = ["12+7-30=", "3+4=", "40-1+2="]


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_score_steps_are_the_forwards_the_score_adds(monkeypatch) -> None:
    tok = char_tokenizer()
    model = add_logit_bias(tiny_model(tok), {tok.eos_token_id: 3.0})  # EOS likely within 6 tokens
    calls = count_forwards(model)
    clock = itertools.count(start=0.0, step=0.5)  # every stage read-out lasts 0.5 s
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    ids, mask = encode_prompts(tok, PROMPTS)
    options = dict(eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, max_new_tokens=6, self_reward_id=5)
    endings = []
    for seed in range(20):
        forwards, steps = {}, {}
        for score in (True, False):
            calls[0], timer = 0, StageTimer()
            g = torch.Generator().manual_seed(seed)
            rollout = generate(model, ids, mask, score=score, generator=g, timer=timer, **options)
            forwards[score], steps[score] = calls[0], timer.stats()["timing_s/score"] / 0.5
        # the score needs one more step after the last EOS: every row ended before the limit, or
        # a row ended exactly at it
        ended_at_limit = bool((rollout.finished & (rollout.lengths == 6)).any())
        ending = "all ended" if rollout.finished.all() else "ended at limit" if ended_at_limit else "none"
        endings.append(ending)
        assert steps[False] == 0  # never a step that generation without the score takes
        assert steps[True] == forwards[True] - forwards[False] == int(ending != "none"), seed
    assert {"all ended", "ended at limit", "none"} <= set(endings)


def test_short_run_reports_every_stage(tmp_path, capsys, keep_threads) -> None:
    out = tmp_path / "stages.json"
    overrides = [
        "debug=fast",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        # short responses that all end with EOS, so that the score step is taken
        "data.batch_size=1",
        "algo.group_size=2",
        "rollout.max_new_tokens=64",
        "algo.kl_beta=0.01",  # a reference model, so that every stage runs
    ]
    main(["--steps", "2", "--warmup", "1", "--threads", "1", "--json", str(out), *overrides])
    table = capsys.readouterr().out
    result = json.loads(out.read_text())

    assert list(result["stages"]) == list(STAGES)
    for name, stage in result["stages"].items():
        assert stage["median_ms"] > 0 and stage["share"] > 0, name
        assert any(line.split()[:1] == [name] for line in table.splitlines()), name
    assert sum(s["share"] for s in result["stages"].values()) == pytest.approx(1.0)
    assert len(result["per_step"]) == 2
    for step in result["per_step"]:
        assert sum(step[f"{name}_ms"] for name in STAGES) == pytest.approx(step["step_ms"])
    assert result["generated_tokens_per_s"] > 0 and result["training_tokens_per_s"] > 0
    assert result["peak_memory"]["bytes"] > 0
    assert result["hardware"]["torch_threads"] == 1 and result["hardware"]["torch"] == torch.__version__
    assert "hardware:" in table and "tokens/s" in table and "peak memory" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_fails_early(tmp_path, keep_threads) -> None:
    with pytest.raises(RuntimeError, match=r"--device cuda.*no CUDA device.*--device cpu"):
        main(["--device", "cuda", "--threads", "1", "debug=fast", f"paths.cache_dir={tmp_path}"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_short_run_on_cuda(tmp_path, keep_threads) -> None:
    out = tmp_path / "stages.json"
    overrides = [
        "debug=fast",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "rollout.max_new_tokens=64",
        "algo.kl_beta=0.01",
    ]
    main(["--steps", "2", "--warmup", "1", "--device", "cuda", "--json", str(out), *overrides])
    result = json.loads(out.read_text())
    assert result["hardware"]["device"] == "cuda" and result["hardware"]["gpu"]
    assert result["peak_memory"]["kind"] == "torch.cuda.max_memory_allocated"
    assert result["peak_memory"]["bytes"] > 0
    assert all(s["median_ms"] > 0 for s in result["stages"].values())  # every stage ran
    assert sum(s["share"] for s in result["stages"].values()) == pytest.approx(1.0)


def test_a_runs_metrics_give_the_stage_table_without_training(tmp_path) -> None:
    """Two logged steps, each spread over rows as the CSV logger writes them; by hand: step 1 has
    sample 0.6 (score 0.1), verify 0.1, update 0.2 of 1.0 s; step 2 sample 0.5 (score 0), verify
    0.1, update 0.3 of 1.0 s. Summed: timed 1.8 of 2.0 s = 90%; rollout (0.5 + 0.5) / 2.0 = 50%."""
    t = "train/timing_s/"
    header = ["step", f"{t}sample", f"{t}score", f"{t}verify", f"{t}reference", f"{t}update", f"{t}step",
              "train/tokens/response", "train/tokens/prompt", "val/accuracy"]  # fmt: skip
    rows = [
        [9, 0.6, 0.1, 0.1, 0.0, 0.2, 1.0, "", "", ""],
        [9, "", "", "", "", "", "", 100, 20, ""],
        [19, 0.5, 0.0, 0.1, 0.0, 0.3, 1.0, "", "", ""],
        [19, "", "", "", "", "", "", 60, 20, 0.5],
    ]
    csv = tmp_path / "metrics.csv"
    csv.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    out = tmp_path / "stages.json"
    result = main(["--metrics", str(csv), "--json", str(out)])
    assert result["config"]["logged_steps"] == 2
    assert result["timed"] == pytest.approx(0.9)
    assert result["stages"]["rollout"]["share"] == pytest.approx(0.5)
    assert result["stages"]["score"]["share"] == pytest.approx(0.05)
    assert result["generated_tokens_per_s"] == pytest.approx(160 / 1.0)  # response tokens / rollout s
    assert json.loads(out.read_text())["timed"] == pytest.approx(0.9)


def test_metrics_without_stage_times_name_the_column(tmp_path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("step,val/accuracy\n0,0.5\n")
    with pytest.raises(ValueError, match="has no train/timing_s/step column"):
        main(["--metrics", str(csv)])

"""Data parallelism through Lightning's DDP (2 CPU processes, gloo): a step on two ranks equals the
single-process step on the same prompts, metrics are reduced over ranks, and `trainer=ddp` runs."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from ddp_worker import GRAD_CLIP, TRAIN_PROMPTS, WORLD_SIZE, records, run
from hydra.utils import instantiate
from lightning.pytorch.strategies import FSDPStrategy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

from laser.data.collate import PromptCollator
from laser.data.datamodule import PromptDataModule
from laser.lit.callbacks import SameConfigOnEveryRank
from laser.rollout.sampler import Sampler

from helpers import char_tokenizer, compose_train, tiny_model

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_ddp(out: Path, timeout: int = 180) -> list[dict]:
    """Run tests/ddp_worker.py on WORLD_SIZE ranks; the results of every rank, in rank order."""
    cmd = [sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(out), "--devices", str(WORLD_SIZE)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def test_each_rank_samples_with_its_own_seed() -> None:
    tok, model = char_tokenizer(), tiny_model()
    batch = PromptCollator(tok)(records(TRAIN_PROMPTS[:2]).to_list())

    def responses(rank: int) -> torch.Tensor:
        sampler = Sampler(tok, max_new_tokens=16, seed=5)
        sampler.use_rank(rank)
        sampler.use_rank(rank)  # setup runs once per trainer.validate/fit: idempotent
        return sampler.sample(model, batch, group_size=4).response_ids

    rank0 = Sampler(tok, max_new_tokens=16, seed=5).sample(model, batch, group_size=4).response_ids
    assert torch.equal(responses(0), rank0)  # rank 0 (and a single process) keeps its stream
    assert not torch.equal(responses(1), rank0)


def test_c_ref_prompts_are_shared_out_between_ranks() -> None:
    data = {"train": records(TRAIN_PROMPTS), "eval": records(TRAIN_PROMPTS[:1])}
    datamodule = PromptDataModule(lambda: data, char_tokenizer(), batch_size=2, eval_batch_size=2, seed=3)
    whole = datamodule.sample_prompts(5).prompts
    shards = [datamodule.sample_prompts(5, rank, 2).prompts for rank in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(whole) and not set(shards[0]) & set(shards[1])
    with pytest.raises(ValueError, match="c_ref_samples"):
        datamodule.sample_prompts(1, 0, 2)


def test_two_ranks_take_the_single_process_step(tmp_path: Path) -> None:
    (tmp_path / "single").mkdir()
    (tmp_path / "ddp").mkdir()
    run(tmp_path / "single", devices=1)
    single = torch.load(tmp_path / "single" / "rank0.pt")
    ranks = run_ddp(tmp_path / "ddp")

    # each rank trained on its own half of the prompts; the halves differ in the counts that
    # normalise the loss (tokens for the token mean, correct/incorrect for the balanced MSE)
    halves = [set(r["prompts"]) for r in ranks]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == set(TRAIN_PROMPTS)
    assert sorted(single["prompts"]) == sorted(TRAIN_PROMPTS)
    assert ranks[0]["num_tokens"] != ranks[1]["num_tokens"]
    shares = [r["num_correct"] / (r["num_correct"] + r["num_incorrect"]) for r in ranks]
    assert shares[0] != shares[1]
    for key in ("num_tokens", "num_correct", "num_incorrect"):
        assert sum(r[key] for r in ranks) == single[key]
    assert single["metrics"]["train/policy/grad_norm"] > GRAD_CLIP  # clipping acts on the global norm

    for rank in ranks:
        for name, value in single["grads"].items():  # the optimiser's input (Adam's first step hides scale)
            torch.testing.assert_close(rank["grads"][name], value, rtol=1e-4, atol=1e-8, msg=name)
        for name, value in single["params"].items():
            torch.testing.assert_close(rank["params"][name], value, rtol=0, atol=1e-5, msg=name)
        # metrics over the rows of both ranks, and validation over each eval prompt exactly once
        assert rank["metrics"].keys() == single["metrics"].keys()
        for key, value in single["metrics"].items():
            assert rank["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key
        assert rank["val"] == pytest.approx(single["val"], rel=1e-5, nan_ok=True)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def c_ref_logged(log: Path) -> float:
    match = re.search(r"c_ref estimated over \d+ responses: (-?[\d.]+)", log.read_text())
    assert match, f"no c_ref estimate in {log}"
    return float(match.group(1))


@pytest.mark.slow
def test_trainer_ddp_preset_runs_on_two_cpu_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "laser.run", "debug=fast", "trainer=ddp", "trainer.devices=2",
        "trainer.accelerator=cpu", "num_threads=1", f"hydra.run.dir={run_dir}",
        f"paths.output_dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("== laser finished ==") == 1  # rank 0 alone reports and exports
    rows = read_metrics(run_dir)
    assert max(int(r["step"]) for r in rows) >= 3
    assert any(r["val/accuracy"] for r in rows) and any(r["train/loss/total"] for r in rows)
    assert (run_dir / "policy" / "self_reward.json").exists()
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    # rank 1 ran the same job and estimated the same c_ref from both ranks' samples
    assert c_ref_logged(run_dir / "run.log") == c_ref_logged(run_dir / "train_ddp_process_1.log")


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_trainer_ddp_runs_in_a_multirun(tmp_path: Path, launcher: str) -> None:
    # Lightning starts rank 1 by re-running the command line: the job's, not the whole sweep's
    # (the config check on every rank fails the job if rank 1 composed another config)
    sweep, runs = tmp_path / "sweep", tmp_path / "runs"
    cmd = [
        sys.executable, "-m", "laser.run", "debug=fast", "trainer=ddp", "trainer.devices=2",
        "trainer.accelerator=cpu", "num_threads=1", f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep}", f"hydra.run.dir={runs}", f"paths.cache_dir={tmp_path / 'cache'}",
        "algo.self_reward.beta_v=0.2,0.5", "-m",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("== laser finished ==") == 2
    for job, beta_v in (("0", 0.2), ("1", 0.5)):
        run_dir = sweep / job
        info = json.loads((run_dir / "policy" / "self_reward.json").read_text())
        assert info["beta_v"] == beta_v
        assert c_ref_logged(run_dir / "run.log") == c_ref_logged(run_dir / "train_ddp_process_1.log")
    assert not runs.exists()  # rank 1 wrote into its job's directory


def test_ranks_with_different_configs_stop() -> None:
    def setup(digests: list[int]) -> None:
        guard = SameConfigOnEveryRank("algo: {}")
        gather = lambda x: torch.tensor(digests)  # noqa: E731
        trainer = SimpleNamespace(world_size=len(digests), strategy=SimpleNamespace(all_gather=gather))
        guard.setup(trainer, SimpleNamespace(device=torch.device("cpu")), "fit")

    same = SameConfigOnEveryRank("algo: {}").digest
    setup([same, same])
    with pytest.raises(RuntimeError, match="different configs"):
        setup([same, same + 1])


def test_presets_compose(tmp_path: Path) -> None:
    ddp = compose_train(tmp_path, ["trainer=ddp", "trainer.devices=2"]).trainer
    assert ddp.strategy._target_ == "lightning.pytorch.strategies.DDPStrategy" and ddp.devices == 2
    fsdp = compose_train(tmp_path, ["trainer=fsdp"]).trainer
    assert fsdp.max_steps == ddp.max_steps  # both start from the shared trainer settings
    strategy = instantiate(fsdp.strategy)  # the layer classes resolve; each is an FSDP unit
    assert isinstance(strategy, FSDPStrategy) and strategy.kwargs["use_orig_params"]
    wrapped = strategy.kwargs["auto_wrap_policy"]._module_classes
    assert LlamaDecoderLayer in wrapped and Qwen2DecoderLayer in wrapped

"""Exact resume: a run killed with SIGKILL after a checkpoint, then resumed from it, ends with the
final metrics and policy of the uninterrupted run (same seed, one torch thread). A changed training
config or a damaged checkpoint stops the resume before anything is built, with a clear error."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from laser.data.datamodule import PromptDataModule
from laser.rollout.sampler import Sampler
from laser.run import train

from helpers import compose_train
from sync_hooks import wait_for

ROOT = Path(__file__).resolve().parents[1]
# 6 steps; validation and a checkpoint every 2; the kill comes after step 2's
OVERRIDES = ["num_threads=1", "trainer.max_steps=6", "logger=csv"]
KILL_AFTER = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The uninterrupted run (in this process) and the checkpoint a killed subprocess left."""
    root = tmp_path_factory.mktemp("resume")
    threads = torch.get_num_threads()
    try:
        cfg = compose_train(root / "full", [*OVERRIDES, f"paths.cache_dir={root / 'cache'}"])
        metrics, objects = train(cfg)
    finally:
        torch.set_num_threads(threads)
    killed = root / "killed"
    pause = ["+callbacks.pause._target_=sync_hooks.PauseAtStep", f"+callbacks.pause.step={KILL_AFTER}"]
    pause.append(f"+callbacks.pause.announce={root / 'paused'}")
    cmd = [sys.executable, "-m", "laser.run", "debug=fast", *OVERRIDES, *pause]
    cmd += [f"hydra.run.dir={killed}", f"paths.cache_dir={root / 'cache'}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    with (root / "killed.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(root / "paused", alive=lambda: proc.poll() is None)
    except RuntimeError as err:
        raise AssertionError(f"{err}:\n{(root / 'killed.log').read_text()[-4000:]}") from None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    policy = objects["module"].policy
    return {"root": root, "metrics": metrics, "policy": policy, "ckpt": killed / "checkpoints"}


def resume(runs: dict, name: str, *overrides: str) -> tuple[dict, dict]:
    ckpt = runs["ckpt"] / "last.ckpt"
    extra = [f"ckpt_path={ckpt}", f"paths.cache_dir={runs['root'] / 'cache'}", *overrides]
    threads = torch.get_num_threads()
    try:
        return train(compose_train(runs["root"] / name, [*OVERRIDES, *extra]))
    finally:
        torch.set_num_threads(threads)


def same_policy(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.slow
def test_a_killed_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(runs: dict) -> None:
    step = torch.load(runs["ckpt"] / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert step == KILL_AFTER  # killed after that checkpoint, before the next
    metrics, objects = resume(runs, "resumed")
    assert objects["trainer"].global_step == 6
    assert set(metrics) == set(runs["metrics"])
    assert {"val/accuracy", "train/loss/total", "summary/self_verify/f1", "final/majority@4"} <= set(metrics)
    for key, value in runs["metrics"].items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
    assert same_policy(objects["module"].policy, runs["policy"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "left_out",
    [(Sampler, "load_rng_state"), (PromptDataModule, "load_state_dict")],
    ids=["sampler-rng", "data-order"],
)
def test_a_resume_without_part_of_the_state_does_not_end_as_the_uninterrupted_run(
    runs: dict, monkeypatch, left_out
) -> None:
    """What the test above checks depends on that state: restoring everything but it diverges."""
    owner, method = left_out
    monkeypatch.setattr(owner, method, lambda self, state: None)
    metrics, objects = resume(runs, f"without_{method}")
    assert objects["trainer"].global_step == 6
    assert not same_policy(objects["module"].policy, runs["policy"])
    assert metrics["train/loss/total"] != pytest.approx(runs["metrics"]["train/loss/total"], rel=1e-5)


def test_resuming_with_another_training_config_names_the_keys_that_differ(runs: dict) -> None:
    changed = ["algo.self_reward.alpha=0.37", "algo.group_size=3"]
    with pytest.raises(ValueError, match="keys differ") as err:
        resume(runs, "changed", *changed)
    message = str(err.value)
    assert re.search(r"algo\.self_reward\.alpha: [-\d.e]+ -> 0\.37", message), message
    assert re.search(r"algo\.group_size: \d+ -> 3", message), message
    assert "trainer" not in message and "paths" not in message  # only the training config counts
    assert not (runs["root"] / "changed").exists()  # stopped before anything was built


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("truncate", ValueError, r"cannot be read .* truncated or corrupt"),
        ("garbage", ValueError, r"cannot be read .* truncated or corrupt"),
        ("foreign", ValueError, r"is not a training checkpoint"),
        ("missing", FileNotFoundError, r"ckpt_path=.* does not exist"),
    ],
)
def test_a_damaged_checkpoint_stops_the_resume_with_a_clear_error(
    runs: dict, tmp_path: Path, damage: str, error: type, message: str
) -> None:
    ckpt = tmp_path / "last.ckpt"
    if damage == "truncate":  # as when a run is killed while saving
        shutil.copy(runs["ckpt"] / "last.ckpt", ckpt)
        with ckpt.open("r+b") as f:
            f.truncate(ckpt.stat().st_size // 2)
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(error, match=re.escape(f"ckpt_path={str(ckpt)!r}")) as err:
        train(compose_train(tmp_path / "run", [*OVERRIDES, f"ckpt_path={ckpt}"]))
    assert err.match(message)
    exc = err.value  # raised on its own, with no torch traceback under it
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    assert not (tmp_path / "run").exists()

"""Reproducibility: every run directory holds `run_info.json` (command, seed, package versions, git
commit and dirty flag) next to `config.yaml`, and the command it records reproduces the run's metrics."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from laser.utils.provenance import PACKAGES, git_state, write_run_info

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def test_run_info_names_the_commit_versions_seed_and_command(tmp_path: Path) -> None:
    info = write_run_info(tmp_path, seed=3)
    saved = json.loads((tmp_path / "run_info.json").read_text())
    assert saved == json.loads(json.dumps(info))
    assert saved["seed"] == 3 and saved["command"][0] == sys.executable
    assert set(saved["packages"]) == set(PACKAGES)
    for name in ("laser", "torch", "lightning", "transformers", "hydra-core", "optuna", "wandb", "datasets"):
        assert saved["packages"][name], name
    head = git("rev-parse", "HEAD")
    if head is None:
        pytest.skip("the tests do not run from a git checkout")
    assert saved["git"]["commit"] == head.strip()
    dirty = bool(git("status", "--porcelain"))
    assert saved["git"]["dirty"] is dirty
    assert (tmp_path / "git_diff.patch").exists() is bool(git("diff", "HEAD"))


def test_outside_a_git_checkout_the_git_fields_are_null(tmp_path: Path, monkeypatch) -> None:
    empty = {"commit": None, "branch": None, "dirty": None, "changes": None, "diff": None}
    assert git_state(tmp_path) == empty
    out = tmp_path / "run"
    out.mkdir()
    info = write_run_info(out, seed=0, repo=tmp_path)
    assert info["git"]["commit"] is None and not (out / "git_diff.patch").exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_state(ROOT) == empty


@pytest.mark.slow
def test_the_recorded_command_reproduces_the_metrics(tmp_path: Path) -> None:
    """Run once, then run `run_info.json`'s `hydra.rerun` command: the same metrics, on CPU."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    first = tmp_path / "first"
    cmd = [sys.executable, "-m", "laser.run", "+experiment=grpo_baseline", "debug=fast", "logger=csv"]
    cmd += [f"paths.cache_dir={tmp_path / 'cache'}"]
    for command, run_dir in [(cmd, first), (None, tmp_path / "second")]:
        if command is None:
            rerun = json.loads((first / "run_info.json").read_text())["hydra"]["rerun"]
            command = [sys.executable, *shlex.split(rerun)[1:]]
        proc = subprocess.run(
            [*command, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    info = json.loads((first / "run_info.json").read_text())
    assert info["hydra"]["experiment"] == "grpo_baseline" and info["seed"] == 0
    # peak memory and stage times are logged too, and differ between runs (the first one makes the
    # warm-up cache)
    rows = [
        [
            {k: v for k, v in row.items() if not k.startswith(("train/memory/", "train/timing_s/"))}
            for row in csv.DictReader((d / "metrics.csv").read_text().splitlines())
        ]
        for d in (first, tmp_path / "second")
    ]
    assert rows[0] and rows[0] == rows[1]

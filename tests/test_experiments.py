"""Experiments (`conf/experiment/`) and launchers: every experiment composes and validates at every
point of its grid, runs as a multirun job into its own directory, and an ablation's own grid runs
one job per point, in parallel, each job with its share of the cores.

The runs are `python -m laser.run -m ... debug=fast` subprocesses from the repo root (seconds a job).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from laser.assembly import check_self_reward
from laser.configs import register_schemas, validate
from laser.models.char_tokenizer import build_char_tokenizer
from laser.utils.threads import choose_num_threads, joblib_parallel_jobs

from helpers import compose_train

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT_DIR = ROOT / "conf" / "experiment"
EXPERIMENTS = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))
# the planned grids: experiment -> {swept key: number of values}
GRIDS = {
    "grpo_baseline": {},
    "laser_main": {},
    "ablate_beta": {"algo.self_reward.beta_v": 3},
    "ablate_token": {"algo.self_reward.token": 4},
    "ablate_loss_weight": {"algo.self_reward.alpha": 4},
    "ablate_reweighting": {"algo.self_reward.balanced": 2},
    "ablate_c_ref": {"algo.self_reward.c_ref": 3},
    "ablate_integration": {"algo.self_reward.tau": 3, "algo.self_reward.filter_threshold": 2},
    "ablate_verify_loss": {"algo.self_reward.loss": 2},
    "baselines": {"algo": 8},
    "self_reward_only": {},
    "self_check": {},
    "check_difference": {},
    "check_credit": {},
    "check_split": {},
    "showcase": {},
    "answer_choices": {},
}


def grid(experiment: str) -> dict[str, list[str]]:
    """The experiment's `hydra.sweeper.params`, each expanded to its values (override strings)."""
    params = OmegaConf.select(OmegaConf.load(EXPERIMENT_DIR / f"{experiment}.yaml"), "hydra.sweeper.params")
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{k}={v}" for k, v in (params or {}).items()])
    return {o.key_or_group: list(o.sweep_string_iterator()) for o in overrides}


def grid_points(experiment: str) -> list[list[str]]:
    values = grid(experiment)
    points = itertools.product(*values.values())
    return [[f"{k}={v}" for k, v in zip(values, point, strict=True)] for point in points]


def run_multirun(sweep_dir: Path, cache_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m laser.run -m <overrides> debug=fast` from the repo root, W&B off; asserts success."""
    cmd = [sys.executable, "-m", "laser.run", "-m", *overrides, "debug=fast", "logger=csv"]
    cmd += [f"hydra.sweep.dir={sweep_dir}", f"paths.cache_dir={cache_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One base-policy cache for the module's runs (the debug warm-up is made once)."""
    return tmp_path_factory.mktemp("cache")


# -- composition (no training) ------------------------------------------------------------------


def test_the_experiments_are_the_planned_ones() -> None:
    assert sorted(GRIDS) == EXPERIMENTS
    for name, expected in GRIDS.items():
        assert {k: len(v) for k, v in grid(name).items()} == expected, name


def test_experiment_is_appended_not_a_default(tmp_path: Path) -> None:
    """STYLE 1.1: `+experiment=` works only while train.yaml's defaults have no experiment entry."""
    defaults = OmegaConf.load(ROOT / "conf" / "train.yaml").defaults
    assert not any("experiment" in d for d in defaults if not isinstance(d, str))
    with pytest.raises(ConfigCompositionException, match=r"\+experiment=ablate_beta"):
        compose_train(tmp_path, ["experiment=ablate_beta"], debug=None)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_validates_at_every_grid_point(tmp_path: Path, experiment: str) -> None:
    """Every point composes with the full (non-debug) config, validates, resolves its self-reward
    token to one id and passes the constant-c_ref check, before any model loads."""
    tokenizer = build_char_tokenizer()
    for point in grid_points(experiment) or [[]]:
        cfg = compose_train(tmp_path, [f"+experiment={experiment}", *point], debug=None)
        run = validate(cfg)
        check_self_reward(run, tokenizer)
        assert cfg.task_name == experiment and experiment in cfg.tags
        for override in point:  # the grid value reached the typed config
            key, value = override.split("=", 1)
            if (ROOT / "conf" / key).is_dir():  # a config group's preset: it names itself
                key = f"{key}.name"
            assert str(OmegaConf.select(cfg, key)).lower() == value.strip("'").lower(), override


def compose_with_hydra(overrides: list[str]):
    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_ablations_run_in_parallel_and_the_slurm_preset_composes() -> None:
    for name in EXPERIMENTS:
        launcher = compose_with_hydra([f"+experiment={name}"]).hydra.launcher
        if name.startswith("ablate_"):
            assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2, name
    slurm = compose_with_hydra(["hydra/launcher=slurm"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    assert (slurm.gpus_per_node, slurm.cpus_per_task, slurm.timeout_min) == (1, 8, 240)
    assert "partition" in slurm and "account" in slurm


def test_run_directories_are_named_to_the_microsecond() -> None:
    """Two runs started in the same second (two shells, a script's loop) get directories of their own."""
    hydra = compose_with_hydra([]).hydra
    for directory in (hydra.run.dir, hydra.sweep.dir):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", Path(directory).name), directory


@pytest.mark.parametrize(
    ("requested", "parallel", "cpus", "per_task", "expected"),
    [
        (None, None, 16, None, None),  # a lone job keeps torch's default
        (None, 2, 16, None, 8),
        (None, 3, 16, None, 5),
        (None, 4, 2, None, 1),  # never below 1
        (3, 2, 16, None, 3),  # the config wins
        (None, None, 64, 8, 8),  # SLURM's cpus_per_task
    ],
)
def test_threads_split_the_cores_between_parallel_jobs(requested, parallel, cpus, per_task, expected) -> None:
    assert choose_num_threads(requested, parallel, cpus, per_task)[0] == expected


def test_joblib_n_jobs_counts_like_joblib() -> None:
    assert [joblib_parallel_jobs(n, 8) for n in (2, -1, -2, -20)] == [2, 8, 7, 1]


def test_bad_num_threads_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_threads"):
        choose_num_threads(0, None, 8)


# -- runs ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_experiment_runs_as_a_multirun_job(tmp_path: Path, cache_dir: Path) -> None:
    """`-m '+experiment=glob(*)'`: one job per experiment (their own grids are not expanded, STYLE 1.3),
    each in its own run directory with metrics, the resolved config and run_info.json."""
    run_multirun(tmp_path, cache_dir, "+experiment=glob(*)")
    dirs = job_dirs(tmp_path)
    assert len(dirs) == len(EXPERIMENTS)
    seen = set()
    for run_dir in dirs:
        config = OmegaConf.load(run_dir / "config.yaml")
        seen.add(config.task_name)
        rows = read_metrics(run_dir)
        assert any(r.get("val/accuracy") for r in rows) and any(r.get("train/loss/total") for r in rows)
        info = json.loads((run_dir / "run_info.json").read_text())
        assert info["hydra"]["experiment"] == config.task_name and info["seed"] == config.seed
        assert info["packages"]["torch"] and info["packages"]["hydra-core"]
    assert seen == set(EXPERIMENTS)


@pytest.mark.slow
def test_ablation_runs_every_grid_point_in_parallel(tmp_path: Path, cache_dir: Path) -> None:
    """`+experiment=ablate_beta -m`: the experiment's own grid, one directory per beta_v, through the
    joblib launcher, each job setting torch's threads to its share of the CPUs."""
    run_multirun(tmp_path, cache_dir, "+experiment=ablate_beta")
    dirs = job_dirs(tmp_path)
    assert len(dirs) == 3
    betas = {OmegaConf.load(d / "config.yaml").algo.self_reward.beta_v for d in dirs}
    assert betas == {0.2, 0.5, 1.0}
    threads = max(1, (os.cpu_count() or 1) // 2)
    for run_dir in dirs:
        assert any(r.get("val/self_verify/f1") for r in read_metrics(run_dir))
        info = json.loads((run_dir / "run_info.json").read_text())
        assert info["hydra"]["launcher"] == "local" and info["hydra"]["mode"] == "MULTIRUN"
        assert info["torch_threads"] == threads
        assert f"torch threads: {threads} (" in (run_dir / "run.log").read_text()


@pytest.mark.slow
def test_verify_loss_ablation_trains_each_loss(tmp_path: Path, cache_dir: Path) -> None:
    """`+experiment=ablate_verify_loss -m`: an MSE and an SFT run, each logging its own loss, the
    calibration error and the length correlations; the SFT policy's export names its loss."""
    run_multirun(tmp_path, cache_dir, "+experiment=ablate_verify_loss")
    dirs = job_dirs(tmp_path)
    losses = {OmegaConf.load(d / "config.yaml").algo.self_reward.loss: d for d in dirs}
    assert sorted(losses) == ["mse", "sft"]
    for loss, run_dir in losses.items():
        rows = read_metrics(run_dir)
        term = "train/self_reward/ce" if loss == "sft" else "train/self_reward/mse"
        assert any(r.get(term) for r in rows), (loss, term)
        for metric in ("val/self_verify/ece", "val/self_verify/length_spearman"):
            assert any(r.get(metric) for r in rows), (loss, metric)
        saved = json.loads((run_dir / "policy" / "self_reward.json").read_text())
        assert saved["loss"] == loss and saved["incorrect_token"] == "<reserved_1>"
    assert not any(r.get("train/self_reward/ce") for r in read_metrics(losses["mse"]))


@pytest.mark.slow
def test_self_reward_only_switches_after_its_share_of_the_run(tmp_path: Path, cache_dir: Path) -> None:
    """`+experiment=self_reward_only`: 0.3 of debug=fast's 4 steps rounds to a switch after step 1;
    the verifier's reward is logged on every step, the self-reward becomes the reward after it."""
    run_multirun(tmp_path, cache_dir, "+experiment=self_reward_only")
    (run_dir,) = job_dirs(tmp_path)
    train = [r for r in read_metrics(run_dir) if r.get("train/reward_source/self")]
    assert [int(r["step"]) for r in train] == [0, 1, 2, 3]  # Lightning's 0-based step index
    assert [float(r["train/reward_source/self"]) for r in train] == [0.0, 1.0, 1.0, 1.0]
    assert all(r.get("train/reward/mean") and r.get("train/reward_source/reward/mean") for r in train)
    # before the switch the reward optimised is the verifier's
    assert float(train[0]["train/reward_source/reward/mean"]) == float(train[0]["train/reward/mean"])

"""The SLURM launcher's code path on this machine: `hydra/launcher=slurm_local` runs each job of a
multirun through submitit's local executor, in its own process, and returns its result by pickle."""

from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
# a metric that differs between debug=fast runs, so each trial's value identifies its run
METRIC = "val/self_reward/mse"


def last_logged(metrics_csv: Path, name: str) -> float:
    """The last value of `name` in a run's metrics.csv (Lightning's CSVLogger)."""
    with metrics_csv.open() as f:
        values = [row[name] for row in csv.DictReader(f) if row.get(name)]
    assert values, f"{metrics_csv} has no {name}"
    return float(values[-1])


@pytest.mark.slow
def test_optuna_batch_runs_as_submitit_jobs_and_their_results_come_back(tmp_path):
    cmd = [sys.executable, "-m", "laser.run", f"hydra.searchpath=[file://{ROOT}]"]
    cmd += ["+sweeps=optuna_lr_alpha_beta", "debug=fast", "logger=csv"]
    cmd += [f"optimized_metric={METRIC}", "hydra.sweeper.direction=minimize"]
    # one batch of two trials: one submitit job array of two jobs
    cmd += ["hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra/launcher=slurm_local"]
    cmd += [f"hydra.sweep.dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}", "-m"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    # submitit's record of each job: its own folder, logs and the pickled ("success", JobReturn)
    results = sorted((tmp_path / ".submitit").glob("*/*_result.pkl"))
    assert len(results) == 2
    returned = {}
    for path in results:
        status, job = pickle.loads(path.read_bytes())
        assert status == "success", job
        run_dir = Path(job.hydra_cfg.hydra.runtime.output_dir)
        returned[run_dir.name] = job.return_value
        assert "torch threads: 1 (the launcher's cpus_per_task)" in (run_dir / "run.log").read_text()

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trials = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:
        run_dir = Path(trial.user_attrs["output_dir"])
        assert run_dir == tmp_path / str(trial.number)
        assert trial.value == returned[run_dir.name]  # told what the job returned through submitit
        assert trial.value == pytest.approx(last_logged(run_dir / "metrics.csv", METRIC), rel=1e-9)

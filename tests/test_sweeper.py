"""The Optuna sweeper plugin: search spaces from Hydra's override grammar, and real `-m` sweeps.

The sweeps run `python -m laser.run +sweeps=<name> debug=fast ... -m` as a subprocess from the repo
root (a few seconds per trial) and read the study back from the SQLite file it left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.laser_optuna_sweeper._search_space import SearchSpace, to_distribution
from hydra_plugins.laser_optuna_sweeper.sweeper import objective_values
from laser.configs import register_schemas

ROOT = Path(__file__).resolve().parents[1]
# explicit, so the sweeps find `sweeps/` from any working directory; the primary config's own
# searchpath is checked by test_sweeps_compose_from_the_primary_searchpath
SEARCHPATH = f"hydra.searchpath=[file://{ROOT}]"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("x=choice(0.1, 0.2, 0.5)", CategoricalDistribution([0.1, 0.2, 0.5])),
        ("x=a,b", CategoricalDistribution(["a", "b"])),
        ("x=choice('a b', [1,2], true)", CategoricalDistribution(["a\\ b", "[1,2]", True])),
        ("x=shuffle(choice(3, 1, 2))", CategoricalDistribution([3, 1, 2])),  # written order
        ("x=range(1, 9, 2)", IntDistribution(1, 7, step=2)),  # 1, 3, 5, 7: Hydra excludes 9
        ("x=range(5, 0, -2)", IntDistribution(1, 5, step=2)),  # 5, 3, 1
        ("x=range(0, 1, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("x=shuffle(range(3))", CategoricalDistribution([0, 1, 2])),
        ("x=interval(0, 1)", FloatDistribution(0.0, 1.0)),
        ("x=tag(log, interval(1e-5, 1e-2))", FloatDistribution(1e-5, 1e-2, log=True)),
        ("x=int(interval(1, 8))", IntDistribution(1, 8)),
        ("x=tag(int, interval(1, 8))", IntDistribution(1, 8)),
        ("x=tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
    ],
)
def test_override_grammar_to_distribution(override, expected):
    assert to_distribution(OverridesParser.create().parse_override(override)) == expected


@pytest.mark.parametrize(
    "override", ["x=tag(lg, interval(0, 1))", "x=tag(log, choice(1, 2))", "x=range(3, 3)"]
)
def test_bad_search_space_names_the_override(override):
    with pytest.raises(ValueError, match="search space"):
        to_distribution(OverridesParser.create().parse_override(override))


def test_search_space_splits_sweeps_from_fixed_overrides_and_the_last_line_wins():
    lines = ["optim.lr=tag(log, interval(1e-5, 1e-2))", "algo.self_reward.alpha=interval(0, 1)"]
    lines += ["debug=fast", "algo.self_reward.alpha=0.5", "+extra=choice(a, 'b c')"]
    space = SearchSpace.parse(lines, OverridesParser.create())
    assert list(space.distributions) == ["optim.lr", "+extra"]
    assert list(space.fixed.values()) == ["debug=fast", "algo.self_reward.alpha=0.5"]
    params = {"optim.lr": 1e-3, "+extra": "b\\ c"}  # choices are kept as override text
    assert space.overrides(params) == [
        "debug=fast",
        "algo.self_reward.alpha=0.5",
        "optim.lr=0.001",
        "+extra=b\\ c",
    ]


def _job(value, status=JobStatus.COMPLETED) -> JobReturn:
    ret = JobReturn(status=status)
    ret.return_value = value
    return ret


@pytest.mark.parametrize(
    ("value", "n", "expected"), [(0.5, 1, [0.5]), ([0.5], 1, [0.5]), ((1, 0.25), 2, [1.0, 0.25])]
)
def test_objective_values(value, n, expected):
    assert objective_values(_job(value), n) == expected


@pytest.mark.parametrize(
    ("ret", "n", "error"),
    [
        (_job(None), 1, "returned None"),
        (_job(float("nan")), 1, "NaN"),
        (_job([0.1, 0.2]), 1, "2 values"),
        (_job(0.1), 2, "1 values"),
        (_job(KeyError("val/f1"), JobStatus.FAILED), 1, "val/f1"),
    ],
)
def test_objective_values_rejects(ret, n, error):
    with pytest.raises((ValueError, KeyError), match=error):
        objective_values(ret, n)


@pytest.mark.parametrize("name", ["optuna_lr_alpha_beta", "optuna_accuracy_f1"])
def test_sweeps_compose_from_the_primary_searchpath(name, monkeypatch):
    """`+sweeps=<name>` needs `hydra.searchpath` in conf/train.yaml; without it Hydra silently adds
    a `sweeps: <name>` value and runs one job under the basic sweeper."""
    monkeypatch.chdir(ROOT)
    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"+sweeps={name}"], return_hydra_config=True)
    fix = "conf/train.yaml needs `hydra: {searchpath: [file://${oc.env:PROJECT_ROOT,.}]}`"
    assert cfg.hydra.sweeper._target_.endswith("LaserOptunaSweeper"), fix
    assert cfg.hydra.sweeper.params


def run_sweep(sweep_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m laser.run <overrides> debug=fast -m` from the repo root, W&B off."""
    cmd = [sys.executable, "-m", "laser.run", SEARCHPATH, *overrides, "debug=fast", "logger=csv"]
    cmd += [f"hydra.sweep.dir={sweep_dir}", f"paths.cache_dir={sweep_dir / 'cache'}", "-m"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def load_trials(sweep_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the one study in `<sweep_dir>/optuna.db`."""
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_sweep_persists_and_resumes_the_study(tmp_path):
    args = ("+sweeps=optuna_lr_alpha_beta", "hydra.sweeper.n_trials=2")
    run_sweep(tmp_path, *args)
    trials = load_trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert set(trials[0].params) == {"optim.lr", "algo.self_reward.alpha", "algo.self_reward.beta_v"}
    assert f"optim.lr={trials[0].params['optim.lr']}" in trials[0].user_attrs["overrides"]
    assert (tmp_path / "optimization_results.yaml").is_file()

    run_sweep(tmp_path, *args)  # the same command adds 2 trials to the same study
    trials = load_trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [Path(t.user_attrs["output_dir"]).name for t in trials] == ["0", "1", "2", "3"]
    assert trials[2].params != trials[0].params  # the resumed sampler does not replay its start


def test_failed_trial_is_told_fail_and_the_sweep_goes_on(tmp_path):
    # brute force over two values, one of which fails validation: exactly one FAIL in either order
    run_sweep(
        tmp_path,
        "+sweeps=optuna_lr_alpha_beta",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler",
        "optim.lr=1e-3",
        "algo.self_reward.alpha=0.1",
        "algo.self_reward.beta_v=choice(-1.0, 0.2)",
    )
    by_beta = {t.params["algo.self_reward.beta_v"]: t for t in load_trials(tmp_path)}
    assert by_beta[0.2].state == TrialState.COMPLETE
    assert by_beta[-1.0].state == TrialState.FAIL
    assert "beta_v" in by_beta[-1.0].user_attrs["error"]


def test_sweep_where_every_trial_fails_exits_nonzero(tmp_path):
    proc = run_sweep(
        tmp_path,
        "+sweeps=optuna_lr_alpha_beta",
        "hydra.sweeper.n_trials=1",
        "algo.self_reward.beta_v=choice(-1.0, -2.0)",
        check=False,
    )
    assert proc.returncode != 0
    assert [t.state for t in load_trials(tmp_path)] == [TrialState.FAIL]


def test_multi_objective_sweep_records_one_value_per_metric(tmp_path):
    # two trials launched as one batch
    run_sweep(tmp_path, "+sweeps=optuna_accuracy_f1", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.metric_names == ["val/accuracy", "val/self_verify/f1"]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(len(t.values) == 2 for t in study.trials)


def test_opening_the_storage_retries_while_another_process_creates_its_tables(monkeypatch, tmp_path):
    """The losers of the race to create Optuna's tables get these errors until the winner commits."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    import hydra_plugins.laser_optuna_sweeper.sweeper as sweeper

    real = optuna.storages.get_storage
    errors = [IntegrityError("INSERT", {}, Exception("duplicate key")), ProgrammingError("CREATE", {}, None)]
    calls = []

    def racing(storage):
        calls.append(storage)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return real(storage)

    monkeypatch.setattr(sweeper.optuna.storages, "get_storage", racing)
    monkeypatch.setattr(sweeper.time, "sleep", lambda seconds: None)
    url = f"sqlite:///{tmp_path / 'race.db'}"
    storage = sweeper.open_storage(url, attempts=3)
    assert len(calls) == 3 and optuna.create_study(storage=storage, study_name="s").study_name == "s"
    calls.clear()
    with pytest.raises(ProgrammingError):  # attempts exhausted: the last error is raised
        sweeper.open_storage(url, attempts=2)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("settings", "key"),
    [((0, None, 3), "heartbeat_interval"), ((10, 10, 3), "grace_period"), ((10, None, -1), "max_retry")],
)
def test_bad_heartbeat_settings_name_the_key(settings, key):
    from hydra_plugins.laser_optuna_sweeper._heartbeat import Heartbeat

    with pytest.raises(ValueError, match=rf"hydra\.sweeper\.{key}="):
        Heartbeat(*settings)

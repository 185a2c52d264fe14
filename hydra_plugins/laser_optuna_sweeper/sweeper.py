"""LaserOptunaSweeper: each Hydra multirun job is one trial asked from, and told to, an Optuna study.

The loop, `n_trials` at a time in batches of `n_jobs`:

1. `study.ask(search_space)` once per job of the batch; the sampled values become overrides.
2. The configured Hydra launcher runs the batch (basic: one after another; joblib, submitit: in parallel).
3. Each job's return value is told to the study; a job that raised (or returned None, NaN or the wrong
   number of values) is told as FAIL and the sweep goes on.

The study lives in `storage` under `study_name`, so the same command resumes it and adds `n_trials`.
Several sweep processes can add trials to one study in a server database (PostgreSQL) at once.
At the end the best trial (or, multi-objective, the Pareto front) is logged and written to
`<hydra.sweep.dir>/optimization_results.yaml`.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus, configure_log
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from ._heartbeat import Heartbeat, KeepAlive, fail_dead_trials, quiet_optuna, retried_trial
from ._search_space import SearchSpace, param_lines

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")
RESULTS_FILE = "optimization_results.yaml"


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return list(value) if isinstance(value, list | tuple) else [value]


def absolute_sqlite_url(url: str | None) -> str | None:
    """`sqlite:///relative.db` as an absolute URL (its folder created); other URLs unchanged."""
    prefix = "sqlite:///"
    if not url or not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix) :].partition("?")
    if path in ("", ":memory:"):
        return url
    file = Path(path).resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{file}{sep}{query}"


def display_url(url: str | None) -> str:
    """The storage URL with any password masked, for logs and the results file."""
    return "in memory" if url is None else make_url(url).render_as_string(hide_password=True)


def open_storage(
    url: str | None, attempts: int = 5, heartbeat: Heartbeat | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage at `url` (None: in memory), with `heartbeat`'s settings (a database).

    Sweeps that start at the same moment on an empty database race to create its tables; the losers
    get an IntegrityError or ProgrammingError, and find the tables once the winner has committed them.
    """

    def connect() -> optuna.storages.BaseStorage:
        if url is None:
            return optuna.storages.get_storage(None)
        with quiet_optuna():
            options = heartbeat.storage_options() if heartbeat is not None else {}
            return optuna.storages.get_storage(optuna.storages.RDBStorage(url, **options))

    for _ in range(attempts - 1):
        try:
            return connect()
        except (IntegrityError, ProgrammingError) as e:
            log.info(f"Another process was creating the storage's tables ({type(e).__name__}); retrying")
            time.sleep(random.uniform(0.5, 1.5))
    return connect()


def objective_values(ret: JobReturn, n_objectives: int) -> list[float]:
    """A job's return value as one float per objective; raises the job's exception or a ValueError."""
    value = ret.return_value  # re-raises what the job raised
    if value is None:
        raise ValueError("the task returned None: set optimized_metric to the metric(s) to optimise")
    values = _as_list(value)
    if len(values) != n_objectives:
        raise ValueError(f"the task returned {len(values)} values {values} for {n_objectives} directions")
    floats = [float(v) for v in values]
    if any(math.isnan(v) for v in floats):
        raise ValueError(f"the task returned NaN: {floats}")
    return floats


def tell(study: optuna.Study, trial: Trial, values: list[float] | None, state: TrialState) -> bool:
    """Tell the study a trial's result; True when the sampler asks to stop the sweep."""
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as e:
        # GridSampler and BruteForceSampler call study.stop() once their space is exhausted, which
        # works only inside study.optimize(); the trial's result is stored before that call
        if "Study.stop" not in str(e):
            raise
        return True
    return False


def trial_summary(trial: FrozenTrial, metric_names: list[str] | None) -> dict[str, Any]:
    """A finished trial's number, values, params, overrides and output directory."""
    values: Any = list(trial.values)
    if metric_names:
        values = dict(zip(metric_names, trial.values, strict=True))
    return {
        "number": trial.number,
        "values": values,
        "params": dict(trial.params),
        "overrides": trial.user_attrs.get("overrides", []),
        "output_dir": trial.user_attrs.get("output_dir"),
    }


def study_summary(study: optuna.Study, storage: str | None) -> dict[str, Any]:
    """What optimization_results.yaml holds: the study, its trial counts and its best trial(s)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        best = []
    elif len(study.directions) > 1:
        best = study.best_trials  # the Pareto front
    else:
        best = [study.best_trial]
    return {
        "study_name": study.study_name,
        "storage": display_url(storage),
        "directions": [d.name.lower() for d in study.directions],
        "metric_names": study.metric_names,
        "n_trials": {s.name.lower(): n for s, n in Counter(t.state for t in trials).items()},
        "best_trials": [trial_summary(t, study.metric_names) for t in best],
    }


class LaserOptunaSweeper(Sweeper):
    """Hydra sweeper over Optuna's ask/tell API; its fields are documented in `config.py`."""

    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: Any,
        seed: int | None,
        sampler: DictConfig,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        max_retry: int = 3,
    ) -> None:
        self.directions = [str(d).lower() for d in _as_list(direction)]
        bad = [d for d in self.directions if d not in DIRECTIONS]
        if bad or not self.directions:
            raise ValueError(f"hydra.sweeper.direction={direction!r}: use {DIRECTIONS} or a list of them")
        if n_trials < 0 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper: need n_trials >= 0 and n_jobs >= 1, got {n_trials}, {n_jobs}")
        self.study_name = study_name
        self.storage = storage
        self.seed = seed
        self.sampler = sampler
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = params
        self.heartbeat = Heartbeat(heartbeat_interval, grace_period, max_retry)
        self.storage_handle: optuna.storages.BaseStorage | None = None
        self.metric_names: list[str] | None = None
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.metric_names = self._metric_names(config)

    def _metric_names(self, config: DictConfig) -> list[str] | None:
        """The task's `optimized_metric` (one name or a list, one per direction), if it has one."""
        names = config.get("optimized_metric")
        if not names:
            return None
        names = [str(n) for n in _as_list(names)]
        if len(names) != len(self.directions):
            raise ValueError(
                f"optimized_metric={names} has {len(names)} metric(s) but hydra.sweeper.direction="
                f"{self.directions} has {len(self.directions)}: give one direction per metric"
            )
        return names

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        lines = [*param_lines(self.params), *arguments]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = SearchSpace.parse(lines, parser)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's basic sweeper does
        storage = absolute_sqlite_url(self.storage)
        log.info(f"Optuna study {self.study_name!r} in {display_url(storage)}")
        study = self._open_study(storage, lines)
        log.info(f"Sampler {type(study.sampler).__name__}, directions {self.directions}")
        log.info(f"Search space: {space.distributions or 'none (every trial runs the same job)'}")
        if storage and storage.startswith("sqlite:///"):
            log.info(f"Watch it with: optuna-dashboard {storage}")
        returns, states = self._run_trials(study, space)
        self._finish(study, storage, states)
        return returns

    def _open_study(self, storage_url: str | None, lines: list[str]) -> optuna.Study:
        """Create the study, or load it (checking its directions) to add trials to it."""
        storage = self.storage_handle = open_storage(storage_url, heartbeat=self.heartbeat)
        try:
            n_before = len(storage.get_all_trials(storage.get_study_id_from_name(self.study_name)))
        except KeyError:
            n_before = 0
        seed = {} if self.seed is None else {"seed": self.seed + n_before}
        study = optuna.create_study(
            storage=storage,
            sampler=instantiate(self.sampler, **seed),
            study_name=self.study_name,
            directions=self.directions,
            load_if_exists=True,
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != self.directions:
            raise ValueError(
                f"study {self.study_name!r} has directions {stored}, this sweep {self.directions}: "
                "set another hydra.sweeper.study_name (or storage)"
            )
        if n_before == 0:
            study.set_user_attr("sweep_overrides", lines)
            if self.metric_names:  # shown by optuna-dashboard
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(self.metric_names)
        elif study.user_attrs.get("sweep_overrides") != lines:
            log.warning(
                f"Resuming study {self.study_name!r} ({n_before} trials) with other overrides than "
                f"it started with: {study.user_attrs.get('sweep_overrides')} -> {lines}"
            )
        else:
            log.info(f"Resuming study {self.study_name!r}: {n_before} trials so far")
        return study

    def _run_trials(
        self, study: optuna.Study, space: SearchSpace
    ) -> tuple[list[JobReturn], list[TrialState]]:
        """`n_trials` new trials in batches of `n_jobs`, plus the retries of dead trials (of any
        sweep process) that this process takes over on the way."""
        returns: list[JobReturn] = []
        states: list[TrialState] = []
        interval = self.heartbeat.interval if self.storage is not None else None
        new = 0
        while new < self.n_trials:
            fail_dead_trials(study)
            n = min(self.n_jobs, self.n_trials - new)
            trials = [self._ask(study, space) for _ in range(n)]
            new += sum(retried_trial(study, t) is None for t in trials)
            with KeepAlive(self.storage_handle, trials, interval):
                batch = self._launch(study, trials, space)
                told = [self._tell(study, trial, ret) for trial, ret in zip(trials, batch, strict=True)]
            states += [state for state, _ in told]
            returns.extend(batch)
            if any(stopped for _, stopped in told):
                log.info("The sampler has covered its whole search space; stopping")
                break
        return returns, states

    def _ask(self, study: optuna.Study, space: SearchSpace) -> Trial:
        with quiet_optuna():
            trial = study.ask(space.distributions)
        if (dead := retried_trial(study, trial)) is not None:
            log.info(f"Trial {trial.number} retries trial {dead} (its sweep process died)")
        return trial

    def _launch(self, study: optuna.Study, trials: list[Trial], space: SearchSpace) -> Sequence[JobReturn]:
        """Run a batch of trials as Hydra jobs numbered by trial (so resumed sweeps add directories)."""
        assert self.launcher is not None and self.config is not None
        batch = [space.overrides(t.params) for t in trials]
        for trial, overrides in zip(trials, batch, strict=True):
            trial.set_user_attr("overrides", overrides)
        numbers = [t.number for t in trials]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            # another process sharing the study took numbers in between: jobs are numbered from the
            # first trial on, so the directories are named by trial number explicitly
            batch = [[*o, f"hydra.sweep.subdir={n}"] for o, n in zip(batch, numbers, strict=True)]
        try:
            self.validate_batch_is_legal(batch)
            return self.launcher.launch(batch, initial_job_idx=numbers[0])
        except BaseException:  # a composition error or an interrupt: no trial stays RUNNING
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        finally:  # the jobs' logging config replaced the sweeper's
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)

    def _tell(self, study: optuna.Study, trial: Trial, ret: JobReturn) -> tuple[TrialState, bool]:
        """Tell one job's result (FAIL when it raised or returned no usable value)."""
        if ret.hydra_cfg is not None:
            trial.set_user_attr("output_dir", str(ret.hydra_cfg.hydra.runtime.output_dir))
        try:
            values = objective_values(ret, len(self.directions))
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
            exc_info = e if ret.status == JobStatus.FAILED else None
            log.error(f"Trial {trial.number} failed: {type(e).__name__}: {e}", exc_info=exc_info)
            return TrialState.FAIL, tell(study, trial, None, TrialState.FAIL)
        stopped = tell(study, trial, values, TrialState.COMPLETE)
        log.info(f"Trial {trial.number} finished: values {values}, params {trial.params}")
        return TrialState.COMPLETE, stopped

    def _finish(self, study: optuna.Study, storage: str | None, states: list[TrialState]) -> None:
        """Log and save the best trial(s); raise if every trial of this run failed."""
        assert self.config is not None
        summary = study_summary(study, storage)
        path = Path(self.config.hydra.sweep.dir) / RESULTS_FILE
        OmegaConf.save(OmegaConf.create(summary), path)
        n_failed = states.count(TrialState.FAIL)
        log.info(f"This run: {len(states) - n_failed} trials complete, {n_failed} failed")
        log.info(f"Study {study.study_name!r}: {summary['n_trials']}")
        label = "Pareto-optimal trial" if len(self.directions) > 1 else "Best trial"
        for best in summary["best_trials"]:
            log.info(f"{label} {best['number']}: {best['values']} with {best['params']}")
        log.info(f"Results in {path}")
        if states and n_failed == len(states):
            raise RuntimeError(f"all {n_failed} trials of this sweep failed; see the errors above")

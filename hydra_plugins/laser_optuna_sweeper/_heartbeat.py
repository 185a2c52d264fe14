"""Trials of a dead sweep process: heartbeats while a trial runs, and failing and requeueing the
trials whose heartbeats stopped (Optuna's RDB heartbeat, driven here because the sweeper uses
ask/tell rather than `study.optimize`)."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

log = logging.getLogger(__name__)


@dataclass
class Heartbeat:
    """`hydra.sweeper.heartbeat_interval`, `grace_period` and `max_retry` (see config.py)."""

    interval: int | None = 60
    grace_period: int | None = None
    max_retry: int = 3

    def __post_init__(self) -> None:
        key = "hydra.sweeper"
        if self.interval is not None and self.interval < 1:
            raise ValueError(f"{key}.heartbeat_interval={self.interval}: give seconds >= 1, or null (off)")
        if self.grace_period is not None and (self.interval is None or self.grace_period <= self.interval):
            raise ValueError(
                f"{key}.grace_period={self.grace_period} must exceed heartbeat_interval={self.interval}"
            )
        if self.max_retry < 0:
            raise ValueError(f"{key}.max_retry={self.max_retry}: give a count >= 0")

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments of RDBStorage (none when heartbeats are off)."""
        if self.interval is None:
            return {}
        retry = RetryHeartbeatStaleTrialCallback(self.max_retry) if self.max_retry > 0 else None
        return {
            "heartbeat_interval": self.interval,
            "grace_period": self.grace_period,
            "heartbeat_stale_trial_callback": retry,
        }


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Without Optuna's experimental-feature warnings, and without its warning that heartbeats are
    meant for `study.optimize` (this module drives them for ask/tell)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
        yield


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the running trials whose heartbeats stopped (their sweep process died), queueing
    each again with its params (up to max_retry times); returns their numbers."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with quiet_optuna():
        fail_stale_trials(study)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    dead = sorted(t.number for t in failed if t.number in running)
    if dead:
        log.warning(
            f"Trials {dead} stopped sending heartbeats (their sweep process died): marked FAIL and "
            "queued again with the same params"
        )
    return dead


def retried_trial(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of the dead trial that `trial` retries, or None for a new trial."""
    return study._storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")


class KeepAlive:
    """Records a heartbeat of each trial on entry and every `interval` seconds until exit, from a
    daemon thread: it stops with this process, which is what marks the trials dead. `interval`
    None (heartbeats off, or a storage in memory): does nothing."""

    def __init__(self, storage, trials: Sequence[optuna.Trial], interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids = [t._trial_id for t in trials]
        self.enabled = interval is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)

    def _record(self) -> None:
        for trial_id in self.trial_ids:
            self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._record()
            except Exception as e:  # a database hiccup: the next beat may get through
                log.warning(f"Heartbeat of trials {self.trial_ids} failed: {type(e).__name__}: {e}")

    def __enter__(self) -> KeepAlive:
        if self.enabled:
            self._record()  # a trial without any heartbeat never counts as dead
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

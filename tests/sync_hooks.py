"""Hooks that the tests' subprocesses (sweeps, training runs) load, with `tests/` on their
PYTHONPATH, to stop at a known point and hand over to the test: explicit synchronisation through
files, no timing.

Each side announces an event by creating a file (atomically: written elsewhere, then renamed) and
waits for the other side's file with `wait_for`, which fails with a clear message when its deadline
passes (the other side is dead or stuck), never by guessing how long something takes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from lightning import Callback

POLL_S = 0.05


def announce(path: str | os.PathLike, text: str = "") -> None:
    """Create `path` holding `text`, atomically: a reader never sees it half written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def wait_for(
    path: str | os.PathLike, timeout_s: float = 300, alive: Callable[[], bool] = lambda: True
) -> str:
    """The text of `path` once it exists. Raises TimeoutError after `timeout_s`, or RuntimeError as
    soon as `alive()` is false (the process that should create it has exited)."""
    path = Path(path)
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not alive():
            raise RuntimeError(f"the process that was to create {path} has exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(POLL_S)  # polling for the event; its timing decides nothing
    return path.read_text()


class HandshakeSampler(optuna.samplers.RandomSampler):
    """Random sampling that stops once, right after its first trial has been created (and
    numbered): it announces `<dir>/asked` with the trial's number and waits for `<dir>/answered`.
    The process that answers can ask a trial of its own in between."""

    def __init__(self, handshake_dir: str, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.dir = Path(handshake_dir)
        self.done = False

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        super().before_trial(study, trial)
        if not self.done:
            self.done = True
            announce(self.dir / "asked", str(trial.number))
            wait_for(self.dir / "answered")


class BlockTraining(Callback):
    """Announces `started` when training starts, then blocks until the process is killed."""

    def __init__(self, started: str) -> None:
        self.started = started

    def on_train_start(self, trainer, pl_module) -> None:
        announce(self.started)
        wait_for(Path(self.started).with_name("never"), timeout_s=3600)


class PauseAtStep(Callback):
    """Announces `announce` when training reaches `step` (the steps before it done, with their
    checkpoints and validations), then blocks until the process is killed."""

    def __init__(self, step: int, announce: str) -> None:
        self.step, self.file = step, announce

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            announce(self.file, str(trainer.global_step))
            wait_for(Path(self.file).with_name("never"), timeout_s=3600)

"""The RL run's progress bar: steps of the run up to max_steps, no epoch counter, no v_num."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from laser.lit.progress import StepProgressBar


def test_bar_counts_the_runs_steps_and_drops_the_logger_version(monkeypatch):
    bar = StepProgressBar()
    trainer = SimpleNamespace(max_steps=1000, num_training_batches=32)
    monkeypatch.setattr(StepProgressBar, "trainer", property(lambda self: trainer))
    assert bar.total_train_batches == 1000
    assert bar._get_train_description(0).strip() == "RL step"
    parent = StepProgressBar.__mro__[1]
    monkeypatch.setattr(parent, "get_metrics", lambda self, t, m: {"v_num": 3, "loss": torch.tensor(1.0)})
    assert bar.get_metrics(trainer, None) == {"loss": torch.tensor(1.0)}

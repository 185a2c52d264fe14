"""The progress bar of an RL run: steps of the run, not epochs of a dataset."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar counting the run's optimiser steps up to `max_steps`, labelled `RL step`
    instead of `Epoch 0/-2` (prompts are drawn without end, so an epoch means nothing here), and
    without the logger's `v_num` (each run has its own directory, which the run's log names).
    The count goes on across passes over a small prompt set and starts where a resumed run left."""

    @property
    def total_train_batches(self) -> int | float:
        max_steps = self.trainer.max_steps
        return max_steps if max_steps and max_steps > 0 else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'RL step':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.train_progress_bar_id is None:  # one bar for the whole run, not one per epoch
            super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

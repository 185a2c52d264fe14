"""Side outputs on a schedule: peak memory per step, and for W&B a table of sample completions and
self-reward histograms (these two do nothing, and decode nothing, without a WandbLogger).
"""

from __future__ import annotations

import hashlib
import resource
import sys

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from laser import metric_names as names
from laser.algo import self_reward_score
from laser.lit.step_record import StepRecord
from laser.rollout.logprobs import sequence_logprobs

COLUMNS = ["step", "prompt", "response", "answer", "reward", "self_reward", "finished"]


def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


@torch.no_grad()
def training_sample_scores(module: LightningModule, record: StepRecord) -> torch.Tensor | None:
    """(N,) self-reward scores of a training step's rollout (NaN where truncated), or None without a token.

    The rollout's own scores when it was scored (advantage mixing on); otherwise one no-grad forward
    of the policy as it is now, i.e. after that step's update.
    """
    if module.self_reward_id is None:
        return None
    rollout = record.rollout
    z_logp = rollout.z_logp
    if z_logp is None:
        z_logp = torch.cat(
            [
                sequence_logprobs(module.policy, mb, module.self_reward_id).z_logp
                for mb in rollout.split(module.algo.micro_batch_size)
            ]
        )
    scores = self_reward_score(z_logp, module.c_ref_for(record.ref), module.sr.beta_v, module.sr.loss)
    return scores.masked_fill(~rollout.finished, float("nan"))


class WandbCompletionsTable(Callback):
    """Every `every_n_steps` training steps, log `train/samples`: the first `max_rows` completions of
    the step's rollout (prompt, response, answer, verifier reward, self-reward score).

    It reads the step's `StepRecord`, which the module's `training_step` returns in its outputs.
    """

    def __init__(self, every_n_steps: int = 100, max_rows: int = 16) -> None:
        if every_n_steps < 1 or max_rows < 1:
            raise ValueError(f"every_n_steps={every_n_steps}, max_rows={max_rows}: both must be >= 1")
        self.every_n_steps = every_n_steps
        self.max_rows = max_rows

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx):
        loggers = wandb_loggers(trainer)
        record = StepRecord.of(outputs)
        step = trainer.global_step
        if not loggers or record is None or step % self.every_n_steps != 0:
            return
        rows = self.rows(pl_module, record, step)
        for logger in loggers:
            logger.log_table(names.train(names.SAMPLES_TABLE), columns=COLUMNS, data=rows, step=step)

    def rows(self, module: LightningModule, record: StepRecord, step: int) -> list[list]:
        n = min(self.max_rows, len(record.rollout))
        rollout = record.rollout.rows(slice(0, n))
        group_size = len(record.rollout) // len(record.batch)
        scores = training_sample_scores(module, record)
        texts = module.sampler.decode(rollout)
        batch = record.batch
        return [
            [
                step,
                batch.prompts[i // group_size],
                texts[i],
                batch.answers[i // group_size],
                float(record.rewards[i]),
                None if scores is None or scores[i].isnan() else float(scores[i]),
                bool(rollout.finished[i]),
            ]
            for i in range(n)
        ]


class WandbSelfRewardHistograms(Callback):
    """At each validation, log histograms of the self-reward scores of correct and of incorrect
    finished responses (`val/self_reward/hist/correct`, `.../incorrect`).

    It reads the rows the module's `validation_step` appends to `module.val_rows`, one batch at a
    time, gathered over data-parallel ranks (`module.gather_rows`), so that rank 0 logs them all.
    """

    def __init__(self, num_bins: int = 64) -> None:
        self.num_bins = num_bins
        self._scores: list[torch.Tensor] = []
        self._rewards: list[torch.Tensor] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._scores.clear()
        self._rewards.clear()

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        rows = pl_module.val_rows[-1] if getattr(pl_module, "val_rows", None) else None
        if not wandb_loggers(trainer) or rows is None or rows.get("z_logp") is None:
            return
        if pl_module.self_reward_id is None:
            return
        sr = pl_module.sr
        scores = self_reward_score(rows["z_logp"], rows["c_ref"], sr.beta_v, sr.loss)  # (n,)
        gather = getattr(pl_module, "gather_rows", lambda x: x)  # every rank takes part
        finished, scores, rewards = (gather(x) for x in (rows["finished"], scores, rows["rewards"]))
        self._scores.append(scores[finished].detach().float().cpu())
        self._rewards.append(rewards[finished].detach().float().cpu())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._scores:
            return
        import wandb

        scores, rewards = torch.cat(self._scores), torch.cat(self._rewards)
        hists = {}
        for label, mask in (("correct", rewards > 0.5), ("incorrect", rewards <= 0.5)):
            if mask.any():
                values = scores[mask].numpy()
                name = names.val(names.stat(names.SCORE_HISTOGRAM, label))
                hists[name] = wandb.Histogram(values, num_bins=self.num_bins)
        self._scores.clear()
        self._rewards.clear()
        for logger in wandb_loggers(trainer):
            logger.log_metrics(hists, step=trainer.global_step)


def peak_rss_gib() -> float:
    """This process's peak resident memory so far, in GiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20


class PeakMemoryMonitor(Callback):
    """Log the peak accelerator memory, `train/memory/peak_gib` (what torch allocated at most over the
    steps since the last log: rollout, forward and backward), the process's peak resident host
    memory so far, `train/memory/peak_rss_gib` (the only one on CPU), and the logged step's stage
    times, `train/timing_s/<stage>` (the module's `timer`), every `log_every_n_steps` steps like the
    other training metrics.

    They go straight to the loggers, not into the run's returned metrics: they vary between runs of
    the same seed, and a run's results should not.
    """

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda" and trainer.global_step % trainer.log_every_n_steps == 0:
            torch.cuda.reset_peak_memory_stats(pl_module.device)  # a new logging window starts

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx):
        if trainer.global_step % trainer.log_every_n_steps != 0:  # global_step counts this step already
            return
        metrics = {names.train(names.MEMORY_PEAK_RSS_GIB): peak_rss_gib()}
        timer = getattr(pl_module, "timer", None)
        if timer is not None:
            metrics |= {names.train(name): seconds for name, seconds in timer.stats().items()}
        if pl_module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
            metrics[names.train(names.MEMORY_PEAK_GIB)] = peak
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step - 1)  # the step index Lightning logs


class SameConfigOnEveryRank(Callback):
    """Stops a data-parallel run whose ranks were started with different configs (each rank
    composes its own from its command line), before any training: their updates would not be the
    update of any one config.

    Args:
        config_text: what must be equal on every rank (e.g. the resolved training config as YAML).
    """

    def __init__(self, config_text: str) -> None:
        self.digest = int(hashlib.sha256(config_text.encode()).hexdigest()[:15], 16)  # fits int64

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        mine = torch.tensor([self.digest], dtype=torch.long, device=pl_module.device)
        every = trainer.strategy.all_gather(mine).flatten()  # (world,)
        if not bool((every == every[0]).all()):  # every rank sees the same values and stops
            raise RuntimeError(
                f"the {trainer.world_size} data-parallel ranks were started with different configs "
                f"(config digests {every.tolist()}); start every rank with the same overrides"
            )

"""LightningModule: one training step = sample, verify, compute advantages, update (LaSeR / GRPO)."""

from __future__ import annotations

import logging
import math
from functools import partial

import torch
from lightning import LightningModule

from laser import metric_names as names
from laser.algo import (
    OBJECTIVE_STATS,
    MicroBatchStats,
    StepPhase,
    check_c_ref,
    laser_objective,
    lr_factor,
    self_reward_score,
    step_phase,
    switch_step,
    zero_variance_frac,
)
from laser.configs import AlgoConfig, OptimConfig
from laser.data.collate import PromptBatch
from laser.lit.checkpoint import load_module_state, save_module_state
from laser.lit.metrics import rollout_metrics, self_reward_metrics
from laser.lit.parallel import DataParallelMixin
from laser.lit.reward_source import step_advantages
from laser.lit.sampling import StepSamples, overlong_shaped, policy_mask, sample_dynamically
from laser.lit.step_record import StepRecord
from laser.lit.timing import StageTimer
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.sampler import Sampler
from laser.rollout.tokens import resolve_incorrect_token
from laser.rollout.types import Rollout

log = logging.getLogger(__name__)
PROGRESS_BAR = (names.REWARD_MEAN, names.ACCURACY, names.SELF_VERIFY_F1)


class LaserModule(DataParallelMixin, LightningModule):
    """Holds the policy, an optional frozen reference, the samplers and the verifier.

    One optimiser step per rollout batch (on-policy, as in the paper), so the rollout policy is the
    current one and old log-probs are the detached current ones. The step's loss is accumulated
    over micro-batches, each normalised by counts over the whole step.

    Under a data-parallel strategy (DDP, FSDP) each rank samples its own prompts with its own seed;
    the normalising counts are summed over ranks, so one update equals the single-process update on
    all ranks' prompts, and metrics are computed on rows gathered from every rank.
    """

    def __init__(
        self,
        policy: torch.nn.Module,
        sampler: Sampler,
        eval_sampler: Sampler,
        verifier,
        algo: AlgoConfig,
        optim: OptimConfig,
        self_reward_id: int | None,
        reference: torch.nn.Module | None = None,
        greedy_eval: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.policy = policy
        self.reference = reference.requires_grad_(False).eval() if reference is not None else None
        self.sampler, self.eval_sampler, self.verifier = sampler, eval_sampler, verifier
        # validation also decodes greedily: RL papers report accuracy both ways
        self.greedy_sampler = eval_sampler.greedy() if greedy_eval else None
        self.algo, self.sr, self.optim_cfg = algo, algo.self_reward, optim
        self.self_reward_id = self_reward_id
        self.incorrect_id = None  # the SFT loss's second verdict token, never sampled either
        if self.sr.loss == "sft":
            self.incorrect_id = resolve_incorrect_token(
                sampler.tokenizer, self.sr.incorrect_token, self_reward_id, sampler.stop_ids
            )
            sampler.ban(self.incorrect_id)
            eval_sampler.ban(self.incorrect_id)
        c_ref = self.sr.constant_c_ref
        self.register_buffer("c_ref", torch.tensor(math.nan if c_ref is None else c_ref))
        self.loss_options = {  # the objective's fixed settings (E1, E4, E5)
            "beta_v": self.sr.beta_v, "balanced": self.sr.balanced, "kl_beta": algo.kl_beta,
            "kl_estimator": algo.kl_estimator, "clip_low": algo.clip_low,
            "clip_high": algo.clip_high, "dual_clip": algo.dual_clip, "agg": algo.loss_agg,
            "verify_loss": self.sr.loss, "ratio_level": algo.ratio_level,
            "rollout_is_cap": algo.rollout_is_cap, "norm_length": float(sampler.max_new_tokens),
        }  # fmt: skip
        self.timer = StageTimer(sync=self.sync_device)
        sampler.timer = self.timer  # the generation loop times the score's extra step itself
        self.val_rows: list[dict[str, torch.Tensor]] = []
        self.val_history: list[dict[str, float]] = []  # one entry per evaluation, in order

    # -- the algorithm -------------------------------------------------------------------------

    def training_step(self, batch: PromptBatch, batch_idx: int) -> dict[str, StepRecord]:
        """One step of the algorithm; its outputs hand the callbacks the step's `StepRecord`
        (`StepRecord.of(outputs)` in `on_train_batch_end`)."""
        self.timer.reset()
        with self.timer.stage("step"):
            stats, record = self.train_on(batch)
        self.log_stage(names.TRAIN, stats)  # the stage times go to the loggers apart (PeakMemoryMonitor)
        return record.outputs()

    def train_on(self, batch: PromptBatch) -> tuple[dict[str, torch.Tensor], StepRecord]:
        """One step of the algorithm on `batch`: its metrics, and what it trained on."""
        phase = self.phase(self.global_step + 1)
        samples = self.sample_step(batch, score=phase.needs_scores)
        batch, rollout, rewards, paid = samples.batch, samples.rollout, samples.rewards, samples.paid
        with self.timer.stage("reference"):
            ref = self.reference_pass(rollout)
        scores = None if rollout.z_logp is None else self.score(rollout.z_logp, self.c_ref_for(ref))
        n = samples.policy_rows  # (B*G,) rows of the policy gradient, all but MSE-only ones
        adv, stats = step_advantages(paid, scores, rollout.finished, self.algo, phase, n, self.gather_rows)
        stats[names.ZERO_STD_FRAC] = zero_variance_frac(paid[:n], self.algo.group_size)  # no signal
        stats |= self.verifier_stats()
        if paid is not rewards:
            stats[names.TRAINING_REWARD_MEAN] = paid.float().mean()
        stats = self.mean_over_ranks(stats | samples.stats)  # every rank has as many groups
        mask = policy_mask(samples, self.algo)
        with self.timer.stage("update"):
            stats |= self.update(rollout, rewards, adv, ref, alpha=phase.alpha, mask=mask)
        rows = {"finished": self.gather_rows(rollout.finished), "lengths": self.gather_rows(rollout.lengths)}
        tokens = {
            names.TOKENS_RESPONSE: rollout.response_mask.sum(),
            names.TOKENS_PROMPT: rollout.prompt_mask.sum(),
        }
        tokens = self.sum_over_ranks(tokens)  # the step's, over every rank
        stats = {**stats, **rollout_metrics(rows, self.gather_rows(rewards)), **tokens}
        return stats, StepRecord(batch, rollout, rewards, ref, phase)

    def phase(self, step: int) -> StepPhase:
        """The terms of the objective that are on at `step` (1-based): the warm-ups and the switch."""
        sr = self.sr
        return step_phase(
            step, alpha=sr.alpha, tau=sr.tau, reasoning_warmup_steps=sr.reasoning_warmup_steps,
            self_reward_warmup_steps=sr.self_reward_warmup_steps, switch=self.switch,
        )  # fmt: skip

    def sample_step(self, batch: PromptBatch, score: bool) -> StepSamples:
        """The step's responses, verified: one round, or DAPO's dynamic sampling."""
        sample_round = partial(self.sample_round, score=score)
        if not self.algo.dynamic_sampling.active:
            return StepSamples.of_round(batch, sample_round)
        more = partial(self.trainer.datamodule.extra_batch, self.trainer.global_rank)
        pad_id = self.sampler.tokenizer.pad_token_id
        return sample_dynamically(batch, sample_round, more, self.algo, self.sum_over_ranks, pad_id)

    def sample_round(self, batch: PromptBatch, score: bool):
        """`batch`'s rollout, its (N,) verifier rewards and its (N,) training rewards."""
        with self.timer.stage("sample"):
            rollout = self.sampler.sample(self.policy, batch, self.algo.group_size, score=score)
        with self.timer.stage("verify"):
            rewards, paid = self.verify_for_training(rollout, batch, self.algo.group_size)  # (B*G,)
        paid = overlong_shaped(paid, rollout, self.algo.overlong, self.sampler.max_new_tokens)
        return rollout, rewards, paid

    def sync_device(self) -> None:
        """Wait for the accelerator's queued kernels (before a clock read)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def verify(self, rollout: Rollout, batch: PromptBatch, group_size: int) -> torch.Tensor:
        """(N,) 0/1 verifier rewards of the rollout's responses (`group_size` per prompt)."""
        return self._verified(rollout, batch, group_size)[0]

    def verify_for_training(
        self, rollout: Rollout, batch: PromptBatch, group_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) 0/1 verifier rewards of the rollout's responses, and (N,) the rewards the
        advantages use: the verifier's `training_rewards` where it has one, else the same 0/1
        (the self-reward's target stays the 0/1)."""
        rewards, texts, prompts = self._verified(rollout, batch, group_size)
        shape = getattr(self.verifier, "training_rewards", None)
        return rewards, rewards if shape is None else shape(texts, prompts, rewards)

    def _verified(
        self, rollout: Rollout, batch: PromptBatch, group_size: int
    ) -> tuple[torch.Tensor, list[str], list[str]]:
        """(N,) 0/1 verifier rewards, with the decoded responses and their prompts."""
        answers = [a for a in batch.answers for _ in range(group_size)]
        prompts = [p for p in batch.prompts for _ in range(group_size)]
        texts = self.sampler.decode(rollout)
        return self.verifier(texts, answers, prompts).to(self.device), texts, prompts

    def verifier_stats(self) -> dict[str, torch.Tensor]:
        """The verifier's last call, counted where a failure would otherwise pass unseen: answers
        sent to math-verify, those it timed out on (judged wrong) and the workers it killed."""
        last = getattr(self.verifier, "last_stats", None) or {}
        counts = {names.stat(names.VERIFIER, k): last[k] for k in names.VERIFIER_COUNTS if k in last}
        return {k: torch.tensor(float(v), device=self.device) for k, v in counts.items()}

    def update(self, rollout, rewards, adv, ref, alpha: float, mask=None) -> dict[str, torch.Tensor]:
        """Accumulate the step's gradient over micro-batches, then take one optimiser step."""
        opt = self.optimizers()
        opt.zero_grad()
        stats = self.accumulate_gradients(rollout, rewards, adv, ref, alpha, mask)
        if self.optim_cfg.grad_clip > 0:
            stats[names.POLICY_GRAD_NORM] = self.clip_grad_norm(self.optim_cfg.grad_clip).detach()
        stats[names.POLICY_LR] = torch.tensor(opt.param_groups[0]["lr"])  # the rate this step used
        opt.step()
        self.lr_schedulers().step()
        return stats

    def accumulate_gradients(self, rollout, rewards, adv, ref, alpha: float, mask=None) -> dict:
        """Backward the loss of every micro-batch; the gradient is independent of their size and,
        with counts summed over ranks, of how the rows are spread over data-parallel ranks.
        `mask`: (N, T) the policy-gradient and KL terms' tokens (None: every response token)."""
        finished = rollout.finished
        counts = self.sum_over_ranks(
            {
                "num_tokens": rollout.response_mask.sum() if mask is None else mask.sum(),
                "num_seqs": float(len(rollout)) if mask is None else mask.any(-1).sum(),
                "num_correct": (finished & (rewards > 0.5)).sum(),
                "num_incorrect": (finished & (rewards <= 0.5)).sum(),
            }
        )
        if mask is not None:  # every row may be masked out (all truncated): no division by 0
            counts |= {k: torch.as_tensor(counts[k]).clamp(min=1) for k in ("num_tokens", "num_seqs")}
        mask = rollout.response_mask if mask is None else mask
        c_ref = self.c_ref_for(ref)
        sums = MicroBatchStats(OBJECTIVE_STATS)  # each metric combined as the objective declares
        z_logps, entropies, gaps, z_inside = [], [], [], []
        dist = self.sampler.distribution  # the policy that was sampled is the one trained
        starts = range(0, len(rollout), self.algo.micro_batch_size)
        for start in starts:
            rows = slice(start, start + self.algo.micro_batch_size)
            mb = rollout.rows(rows)
            fwd = sequence_logprobs(
                self.policy, mb, self.self_reward_id, dist, with_entropy=True,
                incorrect_id=self.incorrect_id, with_z_in_response=True,
            )  # fmt: skip
            loss, mb_stats = laser_objective(
                logp=fwd.logp, old_logp=fwd.logp.detach(), mask=mask[rows], adv=adv[rows],
                z_logp=fwd.z_logp, incorrect_logp=fwd.incorrect_logp, rewards=rewards[rows],
                finished=mb.finished,
                c_ref=c_ref if c_ref.ndim == 0 else c_ref[rows], alpha=alpha,
                ref_logp=None if ref is None else ref.logp[rows], rollout_logp=mb.logp,
                **self.loss_options, **counts,
            )  # fmt: skip
            # the strategy averages gradients over ranks, while the step's loss is the sum of the
            # ranks' shares: scale by the world size (1 on one process)
            with self.gradient_sync(last=start == starts[-1]):
                self.backward_step(loss * self.world_size)
            sums.add(mb_stats, token_share=mask[rows].sum() / counts["num_tokens"])
            z_logps.append(fwd.z_logp.detach())
            entropies.append(fwd.entropy[mb.response_mask.bool()])
            if mb.logp is not None:
                gaps.append((fwd.logp.detach() - mb.logp).abs() * mb.response_mask)
            if fwd.z_in_response is not None:
                z_inside.append(fwd.z_in_response[mb.response_mask.bool()])
        stats = self.sum_over_ranks(sums.result())  # shares of the step's totals
        stats[names.POLICY_ENTROPY] = self.element_mean_over_ranks(torch.cat(entropies))[0]
        if gaps:
            stats |= self.logp_gap_stats(gaps, rollout.response_mask)
        if z_inside:
            stats |= self.z_in_response_stats(torch.cat(z_inside))
        if self.self_reward_id is not None:
            scores = self.score(torch.cat(z_logps), c_ref)
            gathered = [self.gather_rows(x) for x in (scores, rewards, finished, rollout.lengths)]
            stats |= self_reward_metrics(*gathered, self.sr)  # the metrics reduced over the step
        return stats

    def logp_gap_stats(self, gaps: list[torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """How far the training pass's log-probs are from the ones the sampler drew with (per
        token, over every rank): numerical noise, unless top-p < 1 truncates the sampler's tail."""
        gap = torch.cat(gaps)  # (N, R): micro-batches share the rollout's width
        mean, _ = self.element_mean_over_ranks(gap[mask.bool()])
        top = self.gather_rows(gap.amax(-1)).max()
        return {names.ROLLOUT_LOGP_GAP_MEAN: mean, names.ROLLOUT_LOGP_GAP_MAX: top}

    def z_in_response_stats(self, z_inside: torch.Tensor) -> dict[str, torch.Tensor]:
        """log pi(z) at the response positions, where the sampler never draws z: its largest value
        (over every rank) and its median (this rank's, averaged over ranks)."""
        median = self.mean_over_ranks({"m": z_inside.median()})["m"]
        top = self.gather_rows(z_inside.max()[None]).max()
        return {names.Z_LOGP_IN_RESPONSE_MAX: top, names.Z_LOGP_IN_RESPONSE_MEDIAN: median}

    def backward_step(self, loss: torch.Tensor) -> None:
        # through Lightning when attached to a Trainer (precision, strategies), plain otherwise
        self.manual_backward(loss) if self._trainer is not None else loss.backward()

    @torch.no_grad()
    def reference_pass(self, rollout: Rollout):
        """Reference log-probs (for KL and c_ref='reference'), or None when no reference."""
        if self.reference is None:
            return None
        parts = [
            sequence_logprobs(self.reference, mb, self.self_reward_id, self.sampler.distribution)
            for mb in rollout.split(self.algo.micro_batch_size)
        ]
        width = rollout.response_ids.shape[1]
        return type(parts[0])(
            logp=torch.cat([p.logp[:, :width] for p in parts]),
            z_logp=torch.cat([p.z_logp for p in parts]),
            entropy=None,
        )

    def c_ref_for(self, ref) -> torch.Tensor:
        """c_ref as a scalar, or per row from the reference pass when c_ref='reference'."""
        return ref.z_logp if self.sr.c_ref == "reference" else self.c_ref

    def score(self, z_logp: torch.Tensor, c_ref: torch.Tensor) -> torch.Tensor:
        """(N,) self-reward scores, as the configured verification loss trains them."""
        return self_reward_score(z_logp, c_ref, self.sr.beta_v, self.sr.loss)

    @property
    def switch(self) -> int | None:
        """The step after which the self-reward is the only reward (None: never)."""
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        return switch_step(self.algo.reward_source.self_after_step, max_steps)

    # -- c_ref --------------------------------------------------------------------------------

    def ensure_c_ref(self) -> None:
        """Estimate c_ref='auto' from base-policy samples once (restored on resume), and check it.

        Every rank samples its share of the prompts; the mean is over all ranks' responses, so
        c_ref is the same on every rank."""
        if self.self_reward_id is None or self.sr.c_ref == "reference":
            return
        if torch.isnan(self.c_ref):
            rank, world = self.trainer.global_rank, self.trainer.world_size
            batch = self.trainer.datamodule.sample_prompts(self.sr.c_ref_samples, rank, world)
            rollout = self.in_strategy_forward("base_policy_rollout", batch)
            mean, count = self.element_mean_over_ranks(rollout.z_logp[rollout.finished])
            if count == 0:
                raise RuntimeError(
                    "algo.self_reward.c_ref='auto' needs finished responses, but none of the "
                    "base-policy samples ended with EOS within rollout.max_new_tokens; raise it or "
                    "give c_ref as a number"
                )
            self.c_ref.fill_(mean.item())
            log.info("c_ref estimated over %d responses: %.3f", count, self.c_ref.item())
        if self.sr.checks_c_ref:
            check_c_ref(self.c_ref.item(), self.sr.beta_v, self.sr.max_target_logprob)

    def base_policy_rollout(self, batch: PromptBatch) -> Rollout:
        return self.eval_sampler.sample(self.policy, batch, group_size=1, score=True)

    def setup(self, stage: str) -> None:
        # each data-parallel rank samples with its own seed (rank 0 keeps the configured ones)
        self.sampler.use_rank(self.trainer.global_rank)
        self.eval_sampler.use_rank(self.trainer.global_rank)

    def on_fit_start(self) -> None:
        self.ensure_c_ref()

    def on_validation_start(self) -> None:
        self.ensure_c_ref()
        self.eval_sampler.reset_rng()  # same eval noise each time

    # -- validation ---------------------------------------------------------------------------

    def validation_step(self, batch: PromptBatch, batch_idx: int) -> None:
        rollout = self.eval_sampler.sample(self.policy, batch, group_size=1, score=True)
        rewards = self.verify(rollout, batch, 1)
        z = torch.nan_to_num(rollout.z_logp) if rollout.z_logp is not None else None
        ref = self.reference_pass(rollout) if self.sr.c_ref == "reference" else None
        row = {"rewards": rewards, "finished": rollout.finished, "lengths": rollout.lengths,
               "z_logp": z, "c_ref": self.c_ref_for(ref).expand(len(rollout))}  # fmt: skip
        if self.greedy_sampler is not None:
            greedy = self.greedy_sampler.sample(self.policy, batch, group_size=1, score=False)
            row["greedy_rewards"] = self.verify(greedy, batch, 1)
        self.val_rows.append(row)

    def on_validation_epoch_end(self) -> None:
        rows = {
            k: None if self.val_rows[0][k] is None else torch.cat([r[k] for r in self.val_rows])
            for k in self.val_rows[0]
        }
        self.val_rows.clear()
        rows = {k: v if v is None else self.gather_eval_rows(v) for k, v in rows.items()}
        rollout_like = {"finished": rows["finished"], "lengths": rows["lengths"]}
        stats = rollout_metrics(rollout_like, rows["rewards"])
        if "greedy_rewards" in rows:
            stats[names.ACCURACY_GREEDY] = rows["greedy_rewards"].float().mean()
        if rows["z_logp"] is not None and self.self_reward_id is not None:
            scores = self.score(rows["z_logp"], rows["c_ref"])
            stats |= self_reward_metrics(scores, rows["rewards"], rows["finished"], rows["lengths"], self.sr)
        self.log_stage(names.VAL, stats)
        self.val_history.append({k: float(v) for k, v in stats.items()} | {"step": self.global_step})

    def final_summary(self, last: int = 3) -> dict[str, float]:
        """Self-verification averaged over the last `last` evaluations, and c_ref."""
        recent = self.val_history[-last:]
        summary = {names.logged(names.SUMMARY, names.C_REF): self.c_ref.item()}
        for key in (names.ACCURACY, names.ACCURACY_GREEDY, names.SELF_VERIFY_F1, names.SELF_VERIFY_AUROC):
            values = [h[key] for h in recent if key in h]
            if values:
                summary[names.logged(names.SUMMARY, key)] = sum(values) / len(values)
        return summary

    # -- plumbing -----------------------------------------------------------------------------

    def log_stage(self, stage: str, stats: dict[str, torch.Tensor]) -> None:
        """Log `{stage}/{quantity}/{stat}` metrics; a few go to the progress bar.

        The values are already the same on every rank; validation (epoch-level) logs still ask for
        a sync, which keeps them so and silences Lightning's warning."""
        metrics = {names.logged(stage, k): torch.as_tensor(v, dtype=torch.float32) for k, v in stats.items()}
        bar = {names.logged(stage, k) for k in PROGRESS_BAR} if stage == names.TRAIN else set()
        options = {"batch_size": 1, "sync_dist": stage != names.TRAIN}
        self.log_dict({k: v for k, v in metrics.items() if k not in bar}, **options)
        self.log_dict({k: v for k, v in metrics.items() if k in bar}, prog_bar=True, **options)

    def configure_optimizers(self):
        cfg = self.optim_cfg
        opt = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas
        )
        total = self.trainer.max_steps if self._trainer is not None else -1
        factor = partial(lr_factor, warmup_steps=cfg.warmup_steps, total_steps=total,
                         final_lr_ratio=cfg.final_lr_ratio)  # fmt: skip
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return [opt], [sched]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        save_module_state(self, checkpoint)  # samplers' RNGs and the evaluation history
        # the reference is frozen and rebuilt from the config: keep it out of checkpoints
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("reference.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        load_module_state(self, checkpoint)
        if self.reference is not None:
            ref_state = {f"reference.{k}": v for k, v in self.reference.state_dict().items()}
            checkpoint["state_dict"].update(ref_state)

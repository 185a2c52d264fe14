"""The LightningModule: micro-batching leaves the gradient unchanged; a step updates everything."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from laser.configs import OptimConfig
from laser.data.collate import PromptCollator
from laser.lit.module import LaserModule
from laser.models.char_tokenizer import build_char_tokenizer
from laser.rewards.verifier import Verifier
from laser.rollout.sampler import Sampler

from helpers import LastStep, add_logit_bias, config_block, finishing_policy, tiny_model

PROMPTS = [{"prompt": "12+7-30=", "answer": "-11"}, {"prompt": "3+4=", "answer": "7"}]
# the self-reward scored and mixed from step 1 (no warm-ups), at the paper's score scale
SCORE_FROM_STEP_1 = {"beta_v": 0.1, "reasoning_warmup_steps": 0, "self_reward_warmup_steps": 0}


def make_module(
    micro_batch_size: int,
    kl_beta: float = 0.0,
    c_ref="auto",
    agg: str = "token_mean",
    self_after_step: int | None = None,
    optim: OptimConfig | None = None,
    **self_reward,
) -> LaserModule:
    tok = build_char_tokenizer()
    policy = finishing_policy(tok)
    z = tok.convert_tokens_to_ids("<reserved_0>")
    sampler = Sampler(tok, max_new_tokens=12, self_reward_id=z, seed=0)
    algo = config_block(
        "algo",
        group_size=4,
        micro_batch_size=micro_batch_size,
        kl_beta=kl_beta,
        loss_agg=agg,
        self_reward={
            "alpha": 0.5,
            "c_ref": c_ref,
            "max_target_logprob": 1e9,
            **SCORE_FROM_STEP_1,
            **self_reward,
        },
        reward_source={"self_after_step": self_after_step},
    )
    reference = tiny_model(tok)
    module = LaserModule(
        policy, sampler, sampler, Verifier(), algo, optim or config_block("optim", warmup_steps=0), z,
        reference=reference if algo.needs_reference else None,
    )  # fmt: skip
    module.c_ref.fill_(-4.0) if c_ref == "auto" else None
    return module


def _grads(module: LaserModule) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.policy.parameters()]


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum"])
@pytest.mark.parametrize(("kl_beta", "c_ref"), [(0.0, "auto"), (0.1, "reference")])
def test_micro_batch_size_does_not_change_the_gradient(agg: str, kl_beta: float, c_ref) -> None:
    grads = []
    for micro in (8, 3):
        module = make_module(micro, kl_beta=kl_beta, c_ref=c_ref, agg=agg)
        batch = PromptCollator(module.sampler.tokenizer)(PROMPTS)
        rollout = module.sampler.sample(module.policy, batch, group_size=4, score=False)
        assert rollout.finished.any() and not rollout.finished.all()
        rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1])
        adv = torch.linspace(-1, 1, 8)
        module.policy.zero_grad()
        stats = module.accumulate_gradients(rollout, rewards, adv, module.reference_pass(rollout), 0.5)
        grads.append(_grads(module))
        assert torch.isfinite(stats["loss/total"])
    for full, micro in zip(*grads, strict=True):
        torch.testing.assert_close(full, micro, rtol=1e-5, atol=1e-7)


def fit(module: LaserModule, tmp_path, max_steps: int, callbacks=()) -> L.Trainer:
    """`max_steps` training steps on PROMPTS, two prompts a step, without logger or checkpoints."""
    loader = DataLoader(PROMPTS, batch_size=2, collate_fn=PromptCollator(module.sampler.tokenizer))
    trainer = L.Trainer(
        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        default_root_dir=tmp_path, enable_model_summary=False, callbacks=list(callbacks),
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return trainer


def test_training_step_updates_every_parameter_and_logs_metrics(tmp_path) -> None:
    module = make_module(micro_batch_size=3)
    before = [p.detach().clone() for p in module.policy.parameters()]
    trainer = fit(module, tmp_path, max_steps=1)
    after = list(module.policy.parameters())
    unchanged = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if torch.equal(a, b)]
    assert not unchanged, f"parameters {unchanged} did not change"
    logged = set(trainer.logged_metrics)
    expected = {
        "train/reward/mean", "train/accuracy", "train/response/length/mean",
        "train/policy/clipfrac", "train/policy/entropy", "train/self_reward/mse",
        "train/self_verify/f1", "train/self_verify/acc_correct", "train/self_verify/auroc",
        "train/policy/grad_norm", "train/loss/total", "train/rollout_logp_gap/mean",
        "train/rollout_logp_gap/max", "train/self_reward/z_logp_in_response/max",
        "train/self_reward/z_logp_in_response/median",
    }  # fmt: skip
    assert expected <= logged, expected - logged
    assert trainer.logged_metrics["train/rollout_logp_gap/max"] < 1e-5  # sampled = trained policy


def test_the_step_hands_the_callbacks_what_it_trained_on(tmp_path) -> None:
    """training_step's outputs carry the step's StepRecord; the module keeps no copy of it."""
    module, last = make_module(micro_batch_size=8, reasoning_warmup_steps=1), LastStep()
    fit(module, tmp_path, max_steps=2, callbacks=[last])
    record = last.record
    assert record.batch.prompts == [p["prompt"] for p in PROMPTS] and len(record.rollout) == 8
    assert record.rewards.shape == (8,) and record.ref is None
    assert (record.phase.step, record.phase.alpha) == (2, 0.5)  # step 1 was the reasoning warm-up
    assert module.phase(1).alpha == 0.0
    assert not hasattr(module, "last_samples")


def test_learning_rate_decays_to_its_final_ratio_at_the_last_step(tmp_path) -> None:
    module = make_module(
        micro_batch_size=8, optim=config_block("optim", lr=1e-3, final_lr_ratio=0.1, warmup_steps=0)
    )
    trainer = fit(module, tmp_path, max_steps=3)
    # steps 1, 2, 3 use 1e-3, 5.5e-4, 1e-4: the last step is at the floor
    assert trainer.logged_metrics["train/policy/lr"].item() == pytest.approx(1e-4)


SFT = {"loss": "sft", "incorrect_token": "<reserved_1>"}


def test_sft_gradient_does_not_depend_on_micro_batches_and_logs_its_loss() -> None:
    grads, losses = [], []
    for micro in (8, 3):
        module = make_module(micro, **SFT)
        batch = PromptCollator(module.sampler.tokenizer)(PROMPTS)
        rollout = module.sampler.sample(module.policy, batch, group_size=4, score=False)
        rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1])
        module.policy.zero_grad()
        stats = module.accumulate_gradients(rollout, rewards, torch.linspace(-1, 1, 8), None, 0.5)
        assert stats["self_reward/ce"] > 0 and "self_verify/ece" in stats
        grads.append(_grads(module))
        losses.append(stats["self_reward/ce"].item())
    for full, micro in zip(*grads, strict=True):
        torch.testing.assert_close(full, micro, rtol=1e-5, atol=1e-7)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)  # the step's loss: its shares summed


def test_sft_second_verdict_token_is_never_sampled() -> None:
    module = make_module(8, **SFT)
    z_i = module.sampler.tokenizer.convert_tokens_to_ids("<reserved_1>")
    assert module.incorrect_id == z_i and z_i in module.eval_sampler.banned_ids
    add_logit_bias(module.policy, {z_i: 50.0})  # z_i would be every token's likeliest successor
    batch = PromptCollator(module.sampler.tokenizer)(PROMPTS)
    rollout = module.sampler.sample(module.policy, batch, group_size=4)
    assert not (rollout.response_ids == z_i).any()


def _fit_one_step(module: LaserModule, tmp_path) -> dict:
    trainer = fit(module, tmp_path, max_steps=1)
    return {k: float(v) for k, v in trainer.logged_metrics.items()}


@pytest.mark.parametrize("self_after_step", [None, 1, 0])
def test_after_the_switch_the_verifier_enters_no_loss_term(tmp_path, self_after_step) -> None:
    """Switch after step 0: the first step's loss is the policy loss alone (the verification loss
    is off) and the reward source is marked; switch after step 1 or none: the MSE is added."""
    logged = _fit_one_step(make_module(8, self_after_step=self_after_step), tmp_path)
    total, policy = logged["train/loss/total"], logged["train/policy/loss"]
    if self_after_step == 0:
        assert total == pytest.approx(policy, abs=1e-7)
        assert logged["train/reward_source/self"] == 1.0
    else:
        assert total == pytest.approx(policy + 0.5 * logged["train/self_reward/mse"], rel=1e-5)
        assert total != pytest.approx(policy, abs=1e-7)
        assert ("train/reward_source/self" in logged) == (self_after_step is not None)
    assert "train/reward/mean" in logged  # the verifier's reward is logged either way


class _FlatTrainingRewards(Verifier):
    """The verifier's 0/1 rewards, but the same training reward for every response."""

    def training_rewards(self, responses, prompts, rewards):
        return torch.full_like(rewards, 0.5)


def test_the_advantages_use_the_training_rewards_and_the_mse_the_verifiers(tmp_path) -> None:
    """Equal training rewards give zero advantages (no policy loss); the MSE still trains on the
    verifier's 0/1, which differ across the group."""
    module = make_module(8)
    module.verifier = _FlatTrainingRewards()
    logged = _fit_one_step(module, tmp_path)
    assert logged["train/reward/training/mean"] == pytest.approx(0.5)
    assert logged["train/policy/loss"] == pytest.approx(0.0, abs=1e-7)
    assert logged["train/self_reward/mse"] > 0
    assert logged["train/loss/total"] == pytest.approx(0.5 * logged["train/self_reward/mse"], rel=1e-5)


class _TimingOutVerifier(Verifier):
    """A math-verify verifier whose every call reports one answer timed out (judged wrong)."""

    def __call__(self, responses, answers, prompts=None):
        rewards = super().__call__(responses, answers, prompts)
        self.last_stats = {**self.last_stats, "timeouts": 1}
        return rewards


def test_verifier_time_outs_are_logged_at_every_step(tmp_path) -> None:
    module = make_module(8)
    module.verifier = _TimingOutVerifier()
    logged = _fit_one_step(module, tmp_path)
    assert logged["train/verifier/timeouts"] == 1.0
    assert "train/verifier/math_verify" in logged


def test_stages_time_themselves_inside_the_step(tmp_path) -> None:
    module = make_module(8)
    logged = _fit_one_step(module, tmp_path)
    timed = module.timer.stats()  # the last step's
    parts = [timed[f"timing_s/{s}"] for s in ("sample", "verify", "reference", "update")]
    assert timed["timing_s/sample"] > 0 and timed["timing_s/update"] > 0
    assert sum(parts) <= timed["timing_s/step"]  # disjoint stages, all inside the step
    assert not any(k.startswith("train/timing_s/") for k in logged)  # not a result of the run

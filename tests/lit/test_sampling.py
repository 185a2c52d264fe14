"""DAPO's dynamic sampling in the training step: the datamodule's stream of extra prompts, the
rounds that refill a batch, the keep-for-MSE switch, the policy-gradient mask and the metrics."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from datasets import Dataset, DatasetDict

from laser.configs import AlgoConfig
from laser.data.collate import PromptBatch
from laser.data.datamodule import ExtraPrompts, PromptDataModule
from laser.lit.module import LaserModule
from laser.lit.sampling import StepSamples, overlong_shaped, policy_mask, sample_dynamically
from laser.models.char_tokenizer import build_char_tokenizer
from laser.rollout.sampler import Sampler
from laser.rollout.types import Rollout

from helpers import LastStep, config_block, finishing_policy

G = 2  # responses per prompt in the scripted rounds
# the self-reward scored and mixed from step 1 (no warm-ups), at the paper's score scale
NO_WARM_UPS = {"beta_v": 0.1, "reasoning_warmup_steps": 0, "self_reward_warmup_steps": 0}


def _rollout(first_row: int, rows: int, finished=None) -> Rollout:
    """`rows` responses whose first token is their row number (from `first_row`), to trace them."""
    ids = torch.arange(first_row, first_row + rows).unsqueeze(-1).repeat(1, 3)  # (rows, 3)
    return Rollout(
        prompt_ids=torch.ones(rows, 2, dtype=torch.long),
        prompt_mask=torch.ones(rows, 2, dtype=torch.long),
        response_ids=ids,
        response_mask=torch.ones(rows, 3, dtype=torch.long),
        finished=torch.ones(rows, dtype=torch.bool) if finished is None else finished,
    )


def _prompts(first: int, n: int = 2) -> PromptBatch:
    names = [f"p{i}" for i in range(first, first + n)]
    return PromptBatch(torch.ones(n, 2, dtype=torch.long), torch.ones(n, 2, dtype=torch.long), names, names)


def _scripted(*round_rewards: list[float]):
    """A sample_round that returns the given verifier rewards round after round, and a source of
    more prompts; the rows are numbered across rounds."""
    calls = {"round": 0, "prompts": 2}

    def sample_round(batch: PromptBatch):
        i = calls["round"]
        calls["round"] += 1
        rewards = torch.tensor(round_rewards[i])
        return _rollout(i * len(rewards), len(rewards)), rewards, rewards + 10  # paid: shaped

    def more_prompts() -> PromptBatch:
        calls["prompts"] += 2
        return _prompts(calls["prompts"] - 2)

    return sample_round, more_prompts, calls


def _algo(max_extra_rounds: int, keep_for_mse: bool = False) -> AlgoConfig:
    ds = {"max_extra_rounds": max_extra_rounds, "keep_for_mse": keep_for_mse}
    return config_block("algo", group_size=G, dynamic_sampling=ds, self_reward={"alpha": 0.5, **NO_WARM_UPS})


def one_process(values: dict) -> dict:
    return values


def test_rounds_refill_the_batch_with_varied_groups_in_draw_order() -> None:
    # round 1: groups (1, 1) flat, (1, 0) varied; round 2: (0, 1) varied, (0, 0) flat
    sample_round, more, _ = _scripted([1.0, 1, 1, 0], [0.0, 1, 0, 0])
    got = sample_dynamically(_prompts(0), sample_round, more, _algo(3), one_process, pad_id=0)
    assert got.rollout.response_ids[:, 0].tolist() == [2, 3, 4, 5]  # round 1's group 1, round 2's group 0
    assert got.batch.prompts == ["p1", "p2"]  # the prompts follow their groups
    assert got.rewards.tolist() == [1.0, 0.0, 0.0, 1.0] and got.paid.tolist() == [11.0, 10.0, 10.0, 11.0]
    assert got.policy_rows == 4
    stats = {k: v.item() for k, v in got.stats.items()}
    assert stats == {"rollout/samples_drawn": 8.0, "rollout/dropped_frac": 0.5, "rollout/rounds": 2.0}


def test_no_extra_round_when_the_first_one_varies_enough() -> None:
    sample_round, more, calls = _scripted([1.0, 0, 0, 1])
    got = sample_dynamically(_prompts(0), sample_round, more, _algo(3), one_process, pad_id=0)
    assert calls["round"] == 1 and got.stats["rollout/rounds"].item() == 1.0
    assert got.rollout.response_ids[:, 0].tolist() == [0, 1, 2, 3]


def test_past_the_cap_dropped_groups_top_the_batch_up() -> None:
    sample_round, more, calls = _scripted([1.0, 1, 1, 0], [0.0, 0, 1, 1])
    got = sample_dynamically(_prompts(0), sample_round, more, _algo(1), one_process, pad_id=0)
    assert calls["round"] == 2  # the cap: one extra round
    assert got.rollout.response_ids[:, 0].tolist() == [2, 3, 0, 1]  # the varied group, then a dropped one
    assert got.stats["rollout/dropped_frac"].item() == 0.75


def test_keep_for_mse_keeps_every_drawn_group_after_the_batch() -> None:
    sample_round, more, _ = _scripted([1.0, 1, 1, 0], [0.0, 1, 0, 0])
    got = sample_dynamically(_prompts(0), sample_round, more, _algo(3, keep_for_mse=True), one_process, 0)
    assert got.rollout.response_ids[:, 0].tolist() == [2, 3, 4, 5, 0, 1, 6, 7]
    assert got.policy_rows == 4 and len(got.batch) == 4


def test_a_rank_that_is_short_keeps_every_rank_sampling() -> None:
    # another rank always lacks groups: this one, full after round 1, still takes every round
    sample_round, more, calls = _scripted([1.0, 0, 0, 1], [1.0, 0, 0, 1], [1.0, 0, 0, 1])
    other_rank_short = lambda values: {"short": values["short"] + 1.0}  # noqa: E731
    got = sample_dynamically(_prompts(0), sample_round, more, _algo(2), other_rank_short, pad_id=0)
    assert calls["round"] == 3 and len(got.rollout) == 4
    assert got.rollout.response_ids[:, 0].tolist() == [0, 1, 2, 3]


def test_policy_mask_leaves_out_mse_only_rows_and_truncated_responses() -> None:
    finished = torch.tensor([True, False, True, True])
    samples = StepSamples(
        _prompts(0), _rollout(0, 4, finished), torch.zeros(4), torch.zeros(4), policy_rows=2
    )
    algo = config_block("algo", overlong={"mask_truncated": True})
    assert policy_mask(samples, algo).any(-1).tolist() == [True, False, False, False]
    assert policy_mask(samples, config_block("algo")).any(-1).tolist() == [True, True, False, False]
    samples.policy_rows = 4
    assert policy_mask(samples, config_block("algo")) is None  # every response token: the default path
    assert samples.rollout.response_mask.all()  # the rollout's own mask is untouched


def test_overlong_shaping_adds_the_penalty_to_the_training_rewards_only() -> None:
    rollout = _rollout(0, 2)
    rollout.response_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])  # lengths 2 and 4 of max 4
    paid = torch.tensor([1.0, 1.0])
    assert overlong_shaped(paid, rollout, config_block("algo").overlong, 4) is paid  # off
    # buffer 0.5 * 4 = 2 tokens: length 2 is free, length 4 (the limit) loses the full 1
    shaped = overlong_shaped(paid, rollout, config_block("algo", overlong={"buffer_frac": 0.5}).overlong, 4)
    assert shaped.tolist() == [1.0, 0.0]


# -- the datamodule's extra prompts -------------------------------------------------------------


def test_extra_prompts_cover_every_row_each_epoch_and_differ_by_rank() -> None:
    stream = ExtraPrompts(5, seed=0)
    first, second = stream.take(5), stream.take(5)
    assert sorted(first) == sorted(second) == list(range(5)) and first != second
    assert stream.position == [1, 5]
    assert ExtraPrompts(5, seed=0).take(7) == first + second[:2]  # across the epoch boundary
    assert ExtraPrompts(50, seed=0, rank=1).take(10) != ExtraPrompts(50, seed=0).take(10)


def _datamodule(batch_size: int = 2) -> PromptDataModule:
    rows = [{"prompt": f"{i}+1=", "answer": str(i + 1)} for i in range(12)]
    data = DatasetDict(train=Dataset.from_list(rows), eval=Dataset.from_list(rows[:2]))
    return PromptDataModule(lambda: data, build_char_tokenizer(), batch_size, eval_batch_size=2)


def test_extra_batches_resume_where_the_checkpoint_left_them() -> None:
    dm = _datamodule()
    taken = [dm.extra_batch().prompts for _ in range(3)]
    assert all(len(p) == 2 for p in taken)
    resumed = _datamodule()
    resumed.load_state_dict({"epoch": 0, "rows_done": 0, "extra_prompts": [0, 4]})
    assert resumed.extra_batch().prompts == taken[2]


def test_extra_batches_leave_the_training_order_alone() -> None:
    plain, drawn = _datamodule(), _datamodule()
    plain.setup()
    drawn.extra_batch()
    first = [next(iter(dm.train_dataloader())).prompts for dm in (plain, drawn)]
    assert first[0] == first[1]


# -- a training step -----------------------------------------------------------------------------


class _ScriptedVerifier:
    """Reward 0 for every response of its first call, then alternately 1 and 0 (every group varies)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, responses, answers, prompts=None) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            return torch.zeros(len(responses))
        return (torch.arange(len(responses)) % 2 == 0).float()


def _module(keep_for_mse: bool) -> LaserModule:
    tok = build_char_tokenizer()
    z = tok.convert_tokens_to_ids("<reserved_0>")
    sampler = Sampler(tok, max_new_tokens=8, self_reward_id=z, seed=0)
    algo = config_block(
        "algo",
        group_size=G,
        micro_batch_size=3,
        overlong={"buffer_frac": 0.5, "mask_truncated": True},
        dynamic_sampling={"max_extra_rounds": 2, "keep_for_mse": keep_for_mse},
        self_reward={"alpha": 0.5, "c_ref": -4.0, "max_target_logprob": 1e9, **NO_WARM_UPS},
    )
    return LaserModule(
        finishing_policy(tok),
        sampler,
        sampler,
        _ScriptedVerifier(),
        algo,
        config_block("optim", warmup_steps=0),
        z,
    )


@pytest.mark.parametrize("keep_for_mse", [False, True])
def test_a_dapo_step_samples_again_and_logs_what_it_drew(tmp_path, keep_for_mse: bool) -> None:
    module, last = _module(keep_for_mse), LastStep()
    trainer = L.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[last],
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule())
    logged = {k: float(v) for k, v in trainer.logged_metrics.items()}
    # round 1's two groups are flat and dropped; round 2's two vary and fill the batch
    assert logged["train/rollout/samples_drawn"] == 8.0
    assert logged["train/rollout/dropped_frac"] == 0.5
    assert logged["train/rollout/rounds"] == 2.0
    assert logged["train/reward/training/mean"] <= logged["train/reward/mean"]  # the overlong penalty
    rollout, batch, rewards = last.record.rollout, last.record.batch, last.record.rewards
    assert len(rollout) == (8 if keep_for_mse else 4) and len(batch) * G == len(rollout)
    assert rewards[:4].tolist() == [1.0, 0.0, 1.0, 0.0]  # the policy gradient's groups come first
    assert torch.isfinite(torch.tensor(logged["train/loss/total"]))

"""Typed config schemas: one block per concept, validated before any model loads.

Each dataclass is registered in Hydra's ConfigStore as `<group>/schema`, and the YAML files in
`conf/` list it first in their defaults, so unknown keys and wrong types fail at composition.

One home for every value: the YAML under `conf/` gives the values of a run; a schema gives types,
docstrings and the rules between fields. A field that every composition gives from the YAML has no
default here (`MISSING`); a field keeps a default only where some composition (or a caller that
builds the block in Python) has no YAML value for it, and the group's YAML then does not restate it
(`tests/test_config_defaults.py` checks both). Range checks live in `__post_init__` (pure: no file
is read); `validate` converts a composed config to objects and then checks the files and models it
names (`check_sources`), before any model loads.
"""

from __future__ import annotations

import logging
import math
import typing
import warnings
from collections.abc import Iterator
from dataclasses import Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from laser.catalog import (
    BENCHMARKS,
    USER_TEMPLATE,
    check_data_file,
    check_fields,
    default_benchmark_root,
)

log = logging.getLogger(__name__)
_UNSET = object()


def _require(ok: bool, key: str, value: Any, fix: str) -> None:
    """Raise a ValueError naming the key, its bad value and the fix."""
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: {fix}")


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    _require(value in choices, key, value, f"use one of {list(choices)}")


def keyed(*, neutral: Any = _UNSET, key_name: str | None = None, in_key: bool = True) -> dict[str, Any]:
    """Field metadata: how cache keys see a schema field (`laser.utils.keys.cache_view`).

    Args:
        neutral: the value at which the field is left out of cache keys: a field added after cached
            artefacts were made, at the value that leaves them as they were.
        key_name: the name the field is keyed under (its name when the cached artefacts were made).
        in_key: False for a field that does not shape the cached artefacts (never keyed).
    """
    meta: dict[str, Any] = {"in_key": in_key}
    if neutral is not _UNSET:
        meta["neutral"] = neutral
    if key_name is not None:
        meta["key_name"] = key_name
    return meta


def renamed(new: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Field metadata of a deprecated field, the old name of the field `new` of the same block,
    accepted for one release: a value given under it moves to `new` (through `values`, old value ->
    new value, when given) with a warning naming the new key. Never part of a cache key."""
    return {"renamed_to": new, "values": values, "in_key": False}


def _moved_value(
    old_key: str, new_key: str, value: Any, values: dict[str, Any] | None, stacklevel: int
) -> tuple[Any, str]:
    """The value given under deprecated `old_key` as `new_key` takes it (through `values`, old ->
    new, when given), and the warning naming the new key (issued as a DeprecationWarning)."""
    if values is not None:
        choices = " or ".join(f"{new_key}={_yaml(v)}" for v in dict.fromkeys(values.values()))
        _require(value in values, old_key, value, f"{old_key} is deprecated: use {choices}")
        value = values[value]
    message = f"{old_key} is deprecated and will be removed: use {new_key} (here {new_key}={_yaml(value)})"
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)
    return value, message


def _yaml(value: Any) -> str:
    """`value` as written in YAML or on the command line (true, 0.05, null)."""
    return OmegaConf.to_yaml({"v": value}).strip()[len("v: ") :]


def _take_renamed(block: Any, prefix: str) -> None:
    """Move a value given under a deprecated field of `block` (built in Python) to its new name."""
    for f in fields(block):
        new, value = f.metadata.get("renamed_to"), getattr(block, f.name)
        if new is not None and value is not None:
            moved, _ = _moved_value(f"{prefix}.{f.name}", f"{prefix}.{new}", value, f.metadata["values"], 5)
            setattr(block, new, moved)
            setattr(block, f.name, None)


def _require_given(block: Any, prefix: str) -> None:
    """Every field of `block` has a value: the YAML under conf/ gives those without a default."""
    for f in fields(block):
        value = getattr(block, f.name)
        if isinstance(value, str) and value == MISSING:
            raise ValueError(
                f"{prefix}.{f.name} is required but not set: the YAML under conf/ gives it; a block "
                "built in Python needs it too (laser.configs.validate builds every block from a "
                "composed config: laser.utils.compose.compose_config)"
            )


@dataclass
class SelfRewardConfig:
    """The last-token self-reward (paper E3-E7). `alpha: 0` and `tau: 0` turn its training off."""

    token: str | None = MISSING
    """The self-reward token z as a string; must encode to exactly one id. null: no score at all.
    The presets take the model's own (`${model.self_reward_token}`)."""
    alpha: float = MISSING
    """Weight of the self-reward MSE (E4/E5); 0 gives GRPO's loss exactly."""
    beta_v: float = MISSING
    """Scale of the score r_s = beta_v * (log pi(z|x,y) - c_ref) (E3)."""
    c_ref: Any = MISSING
    """Reference log-prob of z: a number, 'auto' (mean over base-policy samples before training)
    or 'reference' (the reference model's own log-prob at the same position, per sample)."""
    c_ref_samples: int = 256
    """Prompts sampled to estimate c_ref when c_ref='auto'."""
    max_target_logprob: float = -3.0
    """c_ref + 1/beta_v (a correct response's target log-prob) must be at most this (E2)."""
    balanced: bool = True
    """Class-balanced MSE weights (E5); false gives every finished response weight 1."""
    tau: float = MISSING
    """Advantage mixing weight (E6); 0 keeps the verifier advantage only."""
    filter_threshold: float = MISSING
    """Groups whose clipped-score std is at or below this do not mix (E6)."""
    reasoning_warmup_steps: int = MISSING
    """Steps before the MSE is switched on (E7; the MSE starts at step w_r + 1)."""
    self_reward_warmup_steps: int = MISSING
    """Further steps after the reasoning warm-up before advantage mixing starts (E7)."""
    threshold: float = 0.5
    """Score above which a response is judged correct (self-verification, E8)."""
    loss: str = "mse"
    """The verification loss l_SR: 'mse', the class-balanced MSE of the score (E5); 'sft', the
    cross-entropy the paper compares it with (section 5): pi(z|x,y) pushed to 1 after correct and
    pi(incorrect_token|x,y) to 1 after incorrect responses. With 'sft' the score is pi(z|x,y)."""
    incorrect_token: str | None = None
    """The second verdict token z_i of loss='sft', as a string; must encode to exactly one id other
    than `token`'s (the official code takes the id after z's; the tiny model: `<reserved_1>`).
    Never sampled, like `token`."""
    calibration_bins: int = 10
    """Equal-width bins of the expected calibration error (`self_verify/ece`) of the clipped score."""

    def __post_init__(self) -> None:
        p = "algo.self_reward"
        _require_given(self, p)
        self._check_loss()
        _require(self.alpha >= 0, f"{p}.alpha", self.alpha, "must be >= 0 (0 = GRPO)")
        _require(self.beta_v > 0, f"{p}.beta_v", self.beta_v, "must be > 0 (paper: 0.1)")
        _require(0 <= self.tau <= 1, f"{p}.tau", self.tau, "must be in [0, 1]")
        _require(self.filter_threshold >= 0, f"{p}.filter_threshold", self.filter_threshold, ">= 0")
        _require(self.c_ref_samples >= 1, f"{p}.c_ref_samples", self.c_ref_samples, "must be >= 1")
        for key in ("reasoning_warmup_steps", "self_reward_warmup_steps"):
            _require(getattr(self, key) >= 0, f"{p}.{key}", getattr(self, key), "must be >= 0")
        if isinstance(self.c_ref, str) and self.c_ref not in ("auto", "reference"):
            try:
                self.c_ref = float(self.c_ref)
            except ValueError:
                _require(False, f"{p}.c_ref", self.c_ref, "use a number, 'auto' or 'reference'")
        if isinstance(self.c_ref, int | float):
            self.c_ref = float(self.c_ref)
            _require(math.isfinite(self.c_ref), f"{p}.c_ref", self.c_ref, "must be finite")
        needs_token = self.alpha > 0 or self.tau > 0
        _require(
            self.token is not None or not needs_token,
            f"{p}.token",
            self.token,
            "alpha > 0 or tau > 0 need a self-reward token; set model.self_reward_token (or "
            "algo.self_reward.token) to a single unused token of the model's vocabulary, or use algo=grpo",
        )

    def _check_loss(self) -> None:
        p = "algo.self_reward"
        _one_of(f"{p}.loss", self.loss, ("mse", "sft"))
        ok = self.calibration_bins >= 1
        _require(ok, f"{p}.calibration_bins", self.calibration_bins, "must be >= 1")
        if self.loss != "sft":
            return
        _require(self.incorrect_token is not None and self.incorrect_token != self.token,
                 f"{p}.incorrect_token", self.incorrect_token,
                 f"loss=sft needs a second verdict token other than {p}.token={self.token!r}, "
                 "e.g. '<reserved_1>' for the tiny model")  # fmt: skip
        _require(self.c_ref != "reference", f"{p}.c_ref", self.c_ref,
                 "loss=sft scores pi(z|x,y) and uses no reference log-prob; use 'auto' or a "
                 "number")  # fmt: skip

    @property
    def constant_c_ref(self) -> float | None:
        """c_ref when given as a number, else None."""
        return self.c_ref if isinstance(self.c_ref, float) else None

    @property
    def checks_c_ref(self) -> bool:
        """Whether c_ref and beta_v must pass the E2 check: the MSE's score is trained or mixed."""
        return self.loss == "mse" and (self.alpha > 0 or self.tau > 0)


@dataclass
class RewardSourceConfig:
    """Where the advantages come from: the verifier's reward (E1/E6), or after a switch step the
    self-reward alone, the paper's section 5 experiment (training collapsed about 60 steps later)."""

    self_after_step: Any = None
    """null: the verifier's reward throughout. A whole number N: from step N + 1 on, the advantages
    come from the clipped self-reward alone (GRPO-normalised per group) and the verification loss
    is off (its target is the verifier's reward); the verifier's reward is still computed and
    logged. A fraction in (0, 1): N is that share of trainer.max_steps, rounded."""

    def __post_init__(self) -> None:
        key, value = "algo.reward_source.self_after_step", self.self_after_step
        if value is None:
            return
        number = _as_number(value)
        fix = "use null, a whole number of steps >= 0 or a fraction in (0, 1)"
        _require(number is not None, key, value, fix)
        _switch_step(number, max_steps=1)  # the value's own rule; `validate` holds it to the run's length
        self.self_after_step = number if number < 1 else int(number)


def _switch_step(self_after_step: float | None, max_steps: int) -> int | None:
    """`laser.algo.schedule.switch_step` (the one statement of the rule), its errors naming the key."""
    from laser.algo.schedule import switch_step  # imports torch: only when a switch is configured

    try:
        return switch_step(self_after_step, max_steps)
    except ValueError as err:
        raise ValueError(f"algo.reward_source.{err}") from None


@dataclass
class OverlongConfig:
    """Responses that reach rollout.max_new_tokens (DAPO, Yu et al. 2025, section 3.4)."""

    buffer_frac: float = MISSING
    """Soft overlong punishment: over the last `buffer_frac` of rollout.max_new_tokens the training
    reward falls linearly from 0 to -penalty_factor, reached at the limit (a truncated response gets
    all of it); the self-reward's target stays the verifier's 0/1. 0 turns it off. DAPO: a buffer of
    4096 of 20480 tokens, 0.2."""
    penalty_factor: float = MISSING
    """The penalty at the limit (DAPO, verl's overlong_buffer.penalty_factor: 1.0)."""
    mask_truncated: bool = MISSING
    """Leave truncated responses (no EOS) out of the policy-gradient and KL terms: DAPO's overlong
    filtering, TRL's mask_truncated_completions. The self-reward MSE excludes them anyway (E5)."""

    def __post_init__(self) -> None:
        p = "algo.overlong"
        _require_given(self, p)
        ok = 0 <= self.buffer_frac < 1
        _require(ok, f"{p}.buffer_frac", self.buffer_frac, "must be in [0, 1) (0 = off; DAPO: 0.2)")
        ok = self.penalty_factor > 0
        _require(ok, f"{p}.penalty_factor", self.penalty_factor, "must be > 0 (DAPO: 1.0)")


@dataclass
class DynamicSamplingConfig:
    """DAPO's dynamic sampling (Yu et al. 2025, section 3.2): groups whose verifier rewards are all
    equal are dropped, and more prompts are sampled until data.batch_size groups vary."""

    max_extra_rounds: int = MISSING
    """Rounds of data.batch_size more prompts a step may sample after its first; 0 turns dynamic
    sampling off. Past the cap the batch is topped up with dropped groups (zero advantage, as
    without dynamic sampling). DAPO's verl recipe: max_num_gen_batches=10, i.e. 9 extra rounds."""
    keep_for_mse: bool = MISSING
    """Also train the self-reward's verification loss on the dropped groups (and on varied groups
    drawn beyond the batch); the policy gradient still sees only the batch's groups."""

    def __post_init__(self) -> None:
        p = "algo.dynamic_sampling"
        _require_given(self, p)
        ok = self.max_extra_rounds >= 0
        _require(ok, f"{p}.max_extra_rounds", self.max_extra_rounds, "must be >= 0 (0 = off; DAPO: 9)")
        ok = not self.keep_for_mse or self.max_extra_rounds > 0
        fix = f"keeping dropped groups needs dynamic sampling: set {p}.max_extra_rounds > 0, or false"
        _require(ok, f"{p}.keep_for_mse", self.keep_for_mse, fix)

    @property
    def active(self) -> bool:
        """Whether steps sample more prompts to replace dropped groups."""
        return self.max_extra_rounds > 0


@dataclass
class AlgoConfig:
    """The policy-gradient baseline (GRPO, Dr. GRPO, DAPO, GSPO) plus the self-reward block; the
    policy-gradient knobs follow verl's names."""

    name: str = MISSING
    """Label of the algorithm, used in run names."""
    group_size: int = MISSING
    """Completions sampled per prompt (G); advantages are normalised within each group."""
    adv_scale: str = MISSING
    """'group_std' (GRPO), 'batch_std' (the group-centred reward over the whole batch's std, TRL's
    scale_rewards='batch') or 'none' (centre only, Dr. GRPO)."""
    clip_low: float = MISSING
    """PPO clip range below 1."""
    clip_high: float = MISSING
    """PPO clip range above 1."""
    dual_clip: float | None = MISSING
    """Dual-clip constant for negative advantages (> 1), or null."""
    loss_agg: str = MISSING
    """'token_mean' (every token of the step alike: DAPO's token-level loss, verl's default),
    'seq_mean_token_mean' (each response alike: GRPO's paper form, GSPO), 'seq_mean_token_sum', or
    'seq_mean_token_sum_norm' (token sums over rollout.max_new_tokens, a constant: Dr. GRPO)."""
    ratio_level: str = MISSING
    """The importance ratio PPO clips: 'token' (PPO, GRPO) or 'sequence' (GSPO: the length-normalised
    sequence ratio; TRL's importance_sampling_level, verl's loss_mode=gspo)."""
    rollout_is_cap: float | None = MISSING
    """Truncated importance sampling against the rollout's recorded log-probs: each token's policy
    loss times min(pi_old / pi_rollout, cap) (verl's rollout_is_threshold: 2; TRL: 3). null: off
    (sampler and training pass share one distribution here, so they differ only by numerical noise,
    or where rollout.top_p < 1 truncates the sampler's tail)."""
    kl_beta: float = MISSING
    """Weight of the KL loss to the reference model (0, as in the paper, loads no reference)."""
    kl_estimator: str = "k3"
    """'k1' or 'k3'."""
    micro_batch_size: int = 64
    """Rows per training forward/backward; the step's loss is normalised over all rows."""
    overlong: OverlongConfig = MISSING
    dynamic_sampling: DynamicSamplingConfig = MISSING
    self_reward: SelfRewardConfig = MISSING
    reward_source: RewardSourceConfig = field(default_factory=RewardSourceConfig)

    def __post_init__(self) -> None:
        _require_given(self, "algo")
        _require(self.group_size >= 2, "algo.group_size", self.group_size, "must be >= 2")
        _one_of("algo.adv_scale", self.adv_scale, ("group_std", "batch_std", "none"))
        aggs = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm")
        _one_of("algo.loss_agg", self.loss_agg, aggs)
        self._check_baseline_options()
        _one_of("algo.kl_estimator", self.kl_estimator, ("k1", "k3"))
        _require(0 <= self.clip_low < 1, "algo.clip_low", self.clip_low, "must be in [0, 1)")
        _require(self.clip_high >= 0, "algo.clip_high", self.clip_high, "must be >= 0")
        ok = self.dual_clip is None or self.dual_clip > 1
        _require(ok, "algo.dual_clip", self.dual_clip, "must be > 1 or null")
        _require(self.kl_beta >= 0, "algo.kl_beta", self.kl_beta, "must be >= 0 (0 = no KL)")
        _require(self.micro_batch_size >= 1, "algo.micro_batch_size", self.micro_batch_size, ">= 1")
        switch = self.reward_source.self_after_step
        _require(switch is None or self.self_reward.token is not None,
                 "algo.reward_source.self_after_step", switch,
                 "the self-reward as the reward needs algo.self_reward.token")  # fmt: skip

    def _check_baseline_options(self) -> None:
        _one_of("algo.ratio_level", self.ratio_level, ("token", "sequence"))
        cap = self.rollout_is_cap
        _require(cap is None or cap >= 1, "algo.rollout_is_cap", cap, "must be >= 1 or null (verl: 2)")
        keep = self.dynamic_sampling.keep_for_mse
        _require(not keep or self.self_reward.alpha > 0, "algo.dynamic_sampling.keep_for_mse", keep,
                 "the dropped groups would train only the self-reward loss, which alpha=0 turns off: "
                 "set algo.self_reward.alpha > 0 (e.g. algo=dapo_laser) or false")  # fmt: skip

    @property
    def needs_reference(self) -> bool:
        """A reference model is loaded only for the KL loss or a per-sample reference c_ref."""
        return self.kl_beta > 0 or self.self_reward.c_ref == "reference"


@dataclass
class TinyModelConfig:
    """A small random transformer built from a transformers config (used when no model is named).
    Every model block carries one, so its fields keep their defaults here: the tiny model's
    (conf/model/tiny.yaml does not restate them)."""

    arch: str = "llama"
    """A transformers model type with a causal LM head (llama, qwen2, ...)."""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 256

    def __post_init__(self) -> None:
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
            _require(getattr(self, key) >= 1, f"model.tiny.{key}", getattr(self, key), ">= 1")
        _require(
            self.hidden_size % self.num_heads == 0,
            "model.tiny.hidden_size",
            self.hidden_size,
            f"must be divisible by model.tiny.num_heads={self.num_heads}",
        )


@dataclass
class BaseSFTConfig:
    """Supervised warm-up on worked solutions that makes the base policy (cached by config)."""

    steps: int = MISSING
    """Optimiser steps; 0 uses the model as loaded (each model preset gives it)."""
    lr: float = 1e-3
    """Peak learning rate (linear warm-up over 5% of the steps, then cosine decay); the tiny
    model's (a pretrained model's warm-up needs far less)."""
    final_lr_ratio: float = field(default=1.0, metadata=keyed(key_name="final_lr_frac"))
    """Learning rate at the last step, as a share of `lr` (1: constant after the warm-up), as
    `optim.final_lr_ratio` is RL's. A warm-up annealed to a tiny learning rate ends where the loss
    is sharp along its gradients, and RL steps at a larger learning rate then overshoot; a constant
    one leaves RL room to learn (docs/journal.md#why-rl-gained-little-and-what-changed)."""
    final_lr_frac: float | None = field(default=None, metadata=renamed("final_lr_ratio"))
    """Deprecated: the old name of `final_lr_ratio` (a value given here moves there, with a warning)."""
    batch_size: int = 64
    verdict_weight: float = field(default=1.0, metadata=keyed(neutral=1.0))
    """Weight of a verdict token after EOS (`data.task.check_verdicts`) in the loss, relative to a
    solution token; 1: a token like any other (one in a solution's ~50)."""
    seed: int | None = field(default=None, metadata=keyed(in_key=False))
    """Seed of the tiny model's initialisation and of the warm-up; null: the run's `seed`. Fixing it
    while `seed` changes gives RL runs of several seeds from one cached base policy. (The warm-up's
    cache key holds the seed used, however it was given.)"""

    def __post_init__(self) -> None:
        _take_renamed(self, "model.base_sft")
        _require_given(self, "model.base_sft")
        _require(self.steps >= 0, "model.base_sft.steps", self.steps, "must be >= 0 (0 = off)")
        ok = self.verdict_weight > 0
        _require(ok, "model.base_sft.verdict_weight", self.verdict_weight, "must be > 0 (1 = unweighted)")
        _require(self.lr > 0, "model.base_sft.lr", self.lr, "must be > 0")
        ok = 0 < self.final_lr_ratio <= 1
        _require(ok, "model.base_sft.final_lr_ratio", self.final_lr_ratio, "must be in (0, 1] (1 = constant)")
        _require(self.batch_size >= 1, "model.base_sft.batch_size", self.batch_size, ">= 1")
        ok = self.seed is None or (isinstance(self.seed, int) and self.seed >= 0)
        _require(ok, "model.base_sft.seed", self.seed, "must be a whole number >= 0 or null (the run's seed)")

    def seed_for(self, run_seed: int) -> int:
        """The warm-up's seed in a run seeded `run_seed`."""
        return run_seed if self.seed is None else self.seed


@dataclass
class ModelConfig:
    """The policy: a Hugging Face causal LM by name or path, or the tiny model when null."""

    name_or_path: str | None = MISSING
    """Hub id or local folder of a causal LM; null builds the tiny model with the char tokenizer.
    Required: a model preset gives it (conf/model/tiny.yaml: null)."""
    dtype: str = MISSING
    """'float32', 'bfloat16' or 'float16' (weights as loaded). Train with float32 weights and
    trainer=gpu's bf16-mixed precision: bfloat16 weights keep about 3 significant digits, so
    updates at the paper's lr 1e-6 are mostly rounded away."""
    gradient_checkpointing: bool = field(default=MISSING, metadata=keyed(in_key=False))
    """Recompute activations in the backward pass (less memory, about one more forward)."""
    self_reward_token: str | None = field(default=MISSING, metadata=keyed(in_key=False))
    """This model's self-reward token z: a string its tokenizer encodes to one id that it never
    emits (the tiny model's char tokenizer: `<reserved_0>`; Qwen2.5: `<|vision_start|>`).
    algo.self_reward.token defaults to it."""
    c_ref: Any = field(default=MISSING, metadata=keyed(in_key=False))
    """This model's default for algo.self_reward.c_ref: 'auto' (estimated before training) or a
    constant (the paper's: -23 for Qwen2.5 with `<|vision_start|>`)."""
    stop_tokens: list[str] = field(default=MISSING, metadata=keyed(in_key=False))
    """Tokens that end a response besides the tokenizer's EOS and the model's
    generation_config.eos_token_id (e.g. the chat template's end of turn `<|im_end|>`)."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    base_sft: BaseSFTConfig = MISSING

    def __post_init__(self) -> None:
        _require_given(self, "model")
        _one_of("model.dtype", self.dtype, ("float32", "bfloat16", "float16"))

    def check_sources(self) -> None:
        """A local model folder exists (cheap: no model loads)."""
        if self.name_or_path is not None:
            from laser.models.loading import check_model_source  # imports transformers: only when named

            check_model_source(self.name_or_path)


@dataclass
class RolloutConfig:
    """Sampling of training and evaluation completions."""

    max_new_tokens: int = MISSING
    """Responses with no EOS by then are truncated (no score, excluded from the MSE)."""
    temperature: float = MISSING
    """Sampling temperature (the self-reward is read at temperature 1 regardless)."""
    top_p: float = MISSING
    eval_temperature: float = MISSING
    """Temperature of validation samples (accuracy and self-verification are measured on them)."""
    eval_greedy: bool = True
    """Validation also decodes each prompt greedily and logs `val/accuracy_greedy` (no scores)."""
    micro_batch_size: int = MISSING
    """Rows generated at once (bounds KV-cache memory)."""

    def __post_init__(self) -> None:
        _require_given(self, "rollout")
        _require(self.max_new_tokens >= 1, "rollout.max_new_tokens", self.max_new_tokens, ">= 1")
        _require(self.temperature > 0, "rollout.temperature", self.temperature, "must be > 0")
        ok = self.eval_temperature >= 0
        _require(ok, "rollout.eval_temperature", self.eval_temperature, ">= 0 (0 = greedy)")
        _require(0 < self.top_p <= 1, "rollout.top_p", self.top_p, "must be in (0, 1]")
        ok = self.micro_batch_size >= 1
        _require(ok, "rollout.micro_batch_size", self.micro_batch_size, "must be >= 1")


@dataclass
class ArithmeticTaskConfig:
    """The synthetic task: chains of `num_operands` numbers in [1, max_operand] joined by `ops`.
    Every data block carries one, so its fields keep their defaults here: the default task's
    (conf/data/arithmetic.yaml does not restate them; `laser.evaluate` takes them for a policy
    without its run). Fields added since base policies were cached are left out of their cache key
    at their neutral value."""

    num_operands: int = 3
    max_operand: int = 40
    ops: str = "+-"
    train_size: int = 20000
    eval_size: int = 1024
    seed: int = 0
    choices: int = field(default=0, metadata=keyed(neutral=0))
    """Candidate answers listed before each expression (the right one among random distractors);
    0: none."""
    check: str = field(default="none", metadata=keyed(neutral="none"))
    """'reverse': solutions end by adding the terms again in reverse order (ops '+', '-' only);
    'difference': the same, then subtract the check's result from the steps' result (0 when they
    agree); 'split': add the terms after the first one, then subtract the first operand and the
    check's result from the steps' result (a check that never ends at the answer, so it cannot copy
    the steps'; num_operands >= 3); 'none': they do not."""
    check_errors: float = field(default=0.0, metadata=keyed(neutral=0.0))
    """Share of the warm-up's rows whose forward steps hold one error (context without loss) and
    whose target is the check; needs a check ('reverse', 'difference' or 'split')."""
    check_verdicts: str = field(default="", metadata=keyed(neutral=""))
    """Two characters written after EOS in the warm-up: the first on right rows, the second on
    practice rows (teaches judging at the score's position); "": none."""

    def __post_init__(self) -> None:
        p = "data.task"
        _require(self.choices >= 0, f"{p}.choices", self.choices, "must be >= 0 (0 = no list)")
        ok = self.check in ("none", "reverse", "difference", "split")
        _require(ok, f"{p}.check", self.check, "use 'none', 'reverse', 'difference' or 'split'")
        ok = self.check != "split" or self.num_operands >= 3
        _require(ok, f"{p}.check", self.check, f"'split' needs num_operands >= 3 (got {self.num_operands})")
        ok = self.check == "none" or set(self.ops) <= set("+-")
        _require(ok, f"{p}.check", self.check, f"a check needs ops of '+' and '-' only (ops={self.ops!r})")
        ok = 0 <= self.check_errors < 1 and (self.check_errors == 0 or self.check != "none")
        _require(ok, f"{p}.check_errors", self.check_errors, "must be in [0, 1), > 0 only with a check")
        ok = not self.check_verdicts or (len(self.check_verdicts) == 2 and self.check_errors > 0)
        _require(ok, f"{p}.check_verdicts", self.check_verdicts, "two characters, with check_errors > 0")
        _require(self.num_operands >= 2, f"{p}.num_operands", self.num_operands, "must be >= 2")
        _require(self.max_operand >= 1, f"{p}.max_operand", self.max_operand, "must be >= 1")
        ok = bool(self.ops) and set(self.ops) <= set("+-*")
        _require(ok, f"{p}.ops", self.ops, "use a non-empty string of '+', '-', '*'")
        _require(self.train_size >= 1, f"{p}.train_size", self.train_size, "must be >= 1")
        _require(self.eval_size >= 1, f"{p}.eval_size", self.eval_size, "must be >= 1")


@dataclass
class FilesConfig:
    """Problems with final answers from local files, in the paper's training format: one record per
    row of a JSONL or Parquet file, rendered with the prompt below (the paper's by default). Every
    data block carries one, so its fields keep their defaults here (conf/data/math.yaml gives only
    `train`)."""

    train: str | None = None
    """The training file (.jsonl, .json lines or .parquet)."""
    eval: Any = "math500"
    """Held-out prompts: a shipped benchmark (math500, aime24, aime25, amc23), a file with the
    training file's fields, a fraction in (0, 1) of the training file, or a number of its rows."""
    problem_field: str = "problem"
    """Column of the problem text (``a.b`` reads key b of struct column a)."""
    answer_field: str = "answer"
    """Column of the final answer (e.g. ``reward_model.ground_truth`` in verl's files)."""
    max_train: int | None = None
    """Read only the first rows of the training file (null: all)."""
    max_eval: int | None = None
    """Keep only the first held-out problems (null: all); every validation samples each once."""
    benchmark_root: str | None = None
    """Folder holding the shipped benchmarks; null: $LASER_BENCHMARK_ROOT or ../shared/benchmarks."""
    user_template: str = USER_TEMPLATE
    """The user turn; ``{problem}`` is replaced by the problem (the paper's training prompt)."""
    system_prompt: str | None = None
    """A system turn (chat template only); null keeps the template's own default."""
    prompt_format: str = "auto"
    """'auto': the tokenizer's chat template when it has one, else the plain `Question: ... Answer:`;
    'chat': require the chat template; 'plain': never use it."""
    split_seed: int = 0
    """Seeds the draw of held-out rows when `eval` is a fraction or a count."""

    @property
    def holdout(self) -> float | int | None:
        """The share (float < 1) or count (int) of training rows held out, or None for another source."""
        value = _as_number(self.eval)
        return None if value is None else (value if value < 1 else int(value))

    def __post_init__(self) -> None:
        p = "data.files"
        _one_of(f"{p}.prompt_format", self.prompt_format, ("auto", "chat", "plain"))
        _require("{problem}" in self.user_template, f"{p}.user_template", self.user_template,
                 "must contain {problem}")  # fmt: skip
        for key in ("max_train", "max_eval"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"{p}.{key}", value, "must be >= 1 or null")
        number = _as_number(self.eval)
        if number is not None:
            ok = 0 < number < 1 or (number >= 1 and float(number).is_integer())
            fix = "use a fraction in (0, 1), a whole number of rows, a benchmark name or a file"
            _require(ok, f"{p}.eval", self.eval, fix)

    def check_sources(self) -> None:
        """The training and eval files exist with the configured fields (cheap: no full read)."""
        p = "data.files"
        _require(self.train is not None, f"{p}.train", self.train, "give the training file's path")
        columns = {f"{p}.problem_field": self.problem_field, f"{p}.answer_field": self.answer_field}
        check_fields(check_data_file(self.train, f"{p}.train"), columns)
        if self.holdout is not None:
            return
        name = str(self.eval).lower()
        if name in BENCHMARKS:
            root = Path(self.benchmark_root) if self.benchmark_root else default_benchmark_root()
            path = root / BENCHMARKS[name].file
            if not path.is_file():
                raise FileNotFoundError(
                    f"{p}.eval={self.eval!r}: {path} not found; set {p}.benchmark_root (or "
                    f"$LASER_BENCHMARK_ROOT) to the folder holding {name}/, or hold out part of the "
                    f"training file ({p}.eval=0.05)"
                )
            return
        if not Path(str(self.eval)).suffix and not Path(str(self.eval)).exists():
            raise ValueError(
                f"{p}.eval={self.eval!r} is neither a benchmark ({', '.join(BENCHMARKS)}), a file, "
                "a fraction nor a number of training rows"
            )
        check_fields(check_data_file(self.eval, f"{p}.eval"), columns)


def _as_number(value: Any) -> float | None:
    """`value` as a number when it is one (or a string spelling one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class DataConfig:
    """Prompts: where they come from and how they are batched."""

    source: str = MISSING
    """'arithmetic': the embedded task (data.task); 'files': problems from local files (data.files)."""
    batch_size: int = MISSING
    """Prompts per training step (B); each gets algo.group_size completions."""
    eval_batch_size: int = MISSING
    task: ArithmeticTaskConfig = field(default_factory=ArithmeticTaskConfig)
    files: FilesConfig = field(default_factory=FilesConfig)

    def __post_init__(self) -> None:
        _require_given(self, "data")
        _one_of("data.source", self.source, ("arithmetic", "files"))
        _require(self.batch_size >= 1, "data.batch_size", self.batch_size, "must be >= 1")
        _require(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, ">= 1")

    def check_sources(self) -> None:
        """The files of `data.source=files` exist with the configured fields (cheap: no full read)."""
        if self.source == "files":
            self.files.check_sources()


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up, then a constant or linearly decaying learning rate, and
    gradient clipping."""

    lr: float = MISSING
    weight_decay: float = MISSING
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = MISSING
    final_lr_ratio: float = MISSING
    """The learning rate at the last step (trainer.max_steps) as a share of `lr`, reached linearly
    after the warm-up; 1 keeps it constant."""
    grad_clip: float = MISSING
    """Max global grad norm; 0 turns clipping off."""

    def __post_init__(self) -> None:
        _require_given(self, "optim")
        _require(self.lr > 0, "optim.lr", self.lr, "must be > 0")
        _require(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "must be >= 0")
        _require(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "must be >= 0")
        _require(0 < self.final_lr_ratio <= 1, "optim.final_lr_ratio", self.final_lr_ratio,
                 "must be in (0, 1] (1 = constant)")  # fmt: skip
        _require(self.grad_clip >= 0, "optim.grad_clip", self.grad_clip, ">= 0 (0 = off)")


@dataclass
class RewardConfig:
    """The rule-based verifier giving 0/1 rewards. The math-verify settings keep their defaults
    here (conf/reward/ does not restate them): `laser.rewards.verifier.Verifier` takes them too."""

    kind: str = MISSING
    """'math_verify': the final answer (last \\boxed or '#### x') equals the reference, via math-verify
    with a time limit; 'arithmetic_steps': the arithmetic task's worked solution is right step by step."""
    timeout_s: float = 5.0
    """Hard wall-clock limit of one math-verify comparison; past it the answer counts as incorrect."""
    max_answer_chars: int = 500
    """Longer extracted answers are incorrect without parsing."""
    num_workers: int | None = None
    """math-verify worker processes (null: min(4, CPUs)); plain integers never need one."""
    single_box: bool = False
    """Reward 0 when a response has more than one \\boxed (the paper's training format check)."""
    score_check: bool = False
    """With a self-checking arithmetic task (`data.task.check`): true rewards a response only when
    its written check (and difference) is right too; false scores the steps and the answer."""
    check: str | None = field(
        default=None, metadata=renamed("score_check", {"scored": True, "unscored": False})
    )
    """Deprecated: the old name of `score_check` ('scored': true, 'unscored': false)."""
    check_credit: float = 0.0
    """With a self-checking arithmetic task: the training reward of a response the verifier rejects
    whose check (and difference) is right for its own forward steps, so that an honest check of a
    wrong response pays more than one bent to agree with it. Only the advantages see it; the
    self-reward's target stays the verifier's 0/1. 0 is off."""
    credit_for: str = "honest"
    """What earns `check_credit`: 'honest', a check right for the response's own steps; 'flagged',
    wrong forward steps followed by a written difference that is not 0 (the response flags its own
    error, its check right or not; needs a task check that writes a difference: split or
    difference)."""

    def __post_init__(self) -> None:
        _take_renamed(self, "reward")
        _require_given(self, "reward")
        _one_of("reward.kind", self.kind, ("math_verify", "arithmetic_steps"))
        _one_of("reward.credit_for", self.credit_for, ("honest", "flagged"))
        ok = 0 <= self.check_credit < 1
        fix = "must be in [0, 1): below a right response's 1"
        _require(ok, "reward.check_credit", self.check_credit, fix)
        _require(self.timeout_s > 0, "reward.timeout_s", self.timeout_s, "must be > 0")
        _require(self.max_answer_chars >= 1, "reward.max_answer_chars", self.max_answer_chars, ">= 1")
        ok = self.num_workers is None or self.num_workers >= 1
        _require(ok, "reward.num_workers", self.num_workers, "must be >= 1 or null")


SCHEMAS = {  # validated in this order: the model's path before the token it provides
    "model": ModelConfig,
    "algo": AlgoConfig,
    "rollout": RolloutConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "reward": RewardConfig,
}


def register_schemas() -> None:
    """Store each schema as `<group>/schema` so a group's YAML can list it in its defaults."""
    cs = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        cs.store(group=group, name="schema", node=schema)


@dataclass
class RunConfig:
    """The validated typed blocks of a run, with the checks that span several of them."""

    algo: AlgoConfig
    model: ModelConfig
    rollout: RolloutConfig
    data: DataConfig
    optim: OptimConfig
    reward: RewardConfig

    def __post_init__(self) -> None:
        if self.data.source != "files":
            return
        steps = self.model.base_sft.steps
        _require(steps == 0, "model.base_sft.steps", steps,
                 "the supervised warm-up needs the arithmetic task's worked solutions; set it to 0 "
                 "with data.source=files")  # fmt: skip
        _require(self.reward.kind == "math_verify", "reward.kind", self.reward.kind,
                 "data.source=files has final answers only: use reward=math_verify")  # fmt: skip


def validate(cfg: DictConfig, check_sources: bool = True) -> RunConfig:
    """Convert the typed blocks to objects, running every range check, and check the model folder
    and data files they name (before any model loads).

    Deprecated keys are first rewritten to their new names in `cfg` (with a warning naming them).
    Interpolations are resolved in the whole config, so a block may take values from another
    (algo.self_reward.token is ${model.self_reward_token} in the presets). `check_sources=False`
    reads no file: the blocks alone (cache keys, configs built in tests).
    """
    upgrade_renamed_keys(cfg)
    blocks = {}
    for group, schema in SCHEMAS.items():
        if group not in cfg:
            raise ValueError(f"config has no '{group}' block; add it to the defaults list")
        try:
            values = OmegaConf.to_container(cfg[group], resolve=True, throw_on_missing=True)
        except MissingMandatoryValue as err:
            raise ValueError(_unset_message(err.full_key or group)) from None  # the key from the root
        blocks[group] = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
        if check_sources and hasattr(blocks[group], "check_sources"):
            blocks[group].check_sources()  # the files a block names, before the next block's checks
    run = RunConfig(**blocks)
    _check_switch_fits_the_run(run.algo.reward_source, cfg)
    _check_decay_fits_the_run(run.optim, cfg)
    _check_scored_check_has_a_check(run)
    return run


def _unset_message(key: str) -> str:
    """The error for a key without a value: a leaf to give, or a block whose keys a preset gives."""
    needed = [k for k, f in schema_fields() if k.startswith(f"{key}.") and f.default == MISSING]
    if not needed:
        return f"{key} is required but not set: give it on the command line ({key}=...)"
    group = key.split(".")[0]
    return (
        f"{key} is required but not set: its keys come from an option of conf/{group}/ (list it in "
        f"the defaults), or give them ({', '.join(f'{k}=...' for k in needed)})"
    )


def upgrade_renamed_keys(cfg: DictConfig, quiet: bool = False) -> None:
    """Rewrite each deprecated key (a `renamed` schema field) that holds a value in `cfg` to its new
    name, in place, logging a warning that names the new key (`quiet`: no warning, e.g. for the
    config a checkpoint was written under)."""
    for key, f in schema_fields():
        value = _given(cfg, key) if "renamed_to" in f.metadata else None
        if value is None:
            continue
        new_key = f"{key.rsplit('.', 1)[0]}.{f.metadata['renamed_to']}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if quiet else "default")
            moved, message = _moved_value(key, new_key, value, f.metadata["values"], 4)
        if not quiet:
            log.warning(message)
        OmegaConf.update(cfg, new_key, moved, force_add=True)
        OmegaConf.update(cfg, key, None, force_add=True)


def _given(cfg: DictConfig, key: str) -> Any:
    """The value at dotted `key` of `cfg`, or None where it or a block above it is absent or unset."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node or OmegaConf.is_missing(node, part):
            return None
        node = node[part]
    return node


def schema_fields(schemas: dict[str, type] | None = None) -> Iterator[tuple[str, Field]]:
    """(dotted key, dataclass field) of every leaf of the schemas (SCHEMAS: each under its group),
    nested blocks expanded."""
    for prefix, schema in (schemas or SCHEMAS).items():
        hints = typing.get_type_hints(schema)
        for f in fields(schema):
            if is_dataclass(hints[f.name]):
                yield from schema_fields({f"{prefix}.{f.name}": hints[f.name]})
            else:
                yield f"{prefix}.{f.name}", f


def _check_scored_check_has_a_check(run: RunConfig) -> None:
    """reward.score_check and reward.check_credit read a check only the step verifier on a
    self-checking task has."""
    steps = run.reward.kind == "arithmetic_steps" and run.data.source == "arithmetic"
    has_check = steps and run.data.task.check != "none"
    fix = "scoring the check needs reward=arithmetic and a data.task.check other than none; else false"
    _require(not run.reward.score_check or has_check, "reward.score_check", run.reward.score_check, fix)
    fix = "a credit needs reward=arithmetic and a data.task.check other than none; else 0"
    _require(run.reward.check_credit == 0 or has_check, "reward.check_credit", run.reward.check_credit, fix)
    differs = has_check and run.data.task.check in ("split", "difference")
    fix = "'flagged' reads a written difference: give data.task.check=split or difference, or 'honest'"
    _require(run.reward.credit_for == "honest" or differs, "reward.credit_for", run.reward.credit_for, fix)


def _check_decay_fits_the_run(optim: OptimConfig, cfg: DictConfig) -> None:
    """A decaying learning rate reaches its final value at trainer.max_steps, which must be set."""
    if optim.final_lr_ratio == 1.0:
        return
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    _require(isinstance(max_steps, int) and max_steps >= 1, "optim.final_lr_ratio", optim.final_lr_ratio,
             f"a decay needs trainer.max_steps >= 1 (got {max_steps}); else 1 (constant)")  # fmt: skip


def _check_switch_fits_the_run(source: RewardSourceConfig, cfg: DictConfig) -> None:
    """A switch given as a fraction of the run needs the run's length, trainer.max_steps."""
    if source.self_after_step is None:
        return
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    _switch_step(source.self_after_step, max_steps if isinstance(max_steps, int) else -1)

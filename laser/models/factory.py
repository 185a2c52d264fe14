"""Build the tokenizer, the base policy and the reference model from the typed model config."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from laser.configs import ModelConfig
from laser.models.base_policy import cached_model, config_key, supervised_warmup
from laser.models.loading import build_tiny_model, load_pretrained
from laser.utils.keys import cache_view


def make_base_policy(
    cfg: ModelConfig, tokenizer, train_split, task_key: dict, cache_dir: str | Path, seed: int
) -> torch.nn.Module:
    """The policy to start RL from: the model as configured, after the (cached) supervised warm-up.

    Args:
        cfg: the model block.
        tokenizer: the policy's tokenizer.
        train_split: records with `prompt` and `solution`, and `given` context for some tasks (used
            only when base_sft.steps > 0).
        task_key: a description of the task, part of the warm-up cache key.
        cache_dir: where warmed-up base policies are cached.
        seed: the run's seed; the initialisation and warm-up use `cfg.base_sft.seed` if it is set.
    """
    seed = cfg.base_sft.seed_for(seed)

    def make() -> torch.nn.Module:
        if cfg.name_or_path is None:
            return build_tiny_model(tokenizer, cfg.tiny, seed=seed)
        return load_pretrained(cfg.name_or_path, cfg.dtype)

    if cfg.base_sft.steps == 0:
        return make().train()

    def warmed_up() -> torch.nn.Module:
        model = make()
        supervised_warmup(
            model,
            tokenizer,
            list(train_split["prompt"]),
            list(train_split["solution"]),
            cfg.base_sft,
            seed=seed,
            given=column(train_split, "given"),
            after_eos=column(train_split, "verdict"),
        )
        return model

    key = warmup_key(cfg, tokenizer, task_key, seed)
    return cached_model(Path(cache_dir) / "base_policy", key, warmed_up).train()


def warmup_key(cfg: ModelConfig, tokenizer, task_key: dict, seed: int) -> str:
    """The warm-up cache key: the model block as `cache_view` sees it (what shapes the warm-up: the
    self-reward token, stop tokens or checkpointing do not), the task, the vocabulary and the seed
    used (however it was given)."""
    return config_key(
        {"model": cache_view(cfg), "task": task_key, "vocab": tokenizer.get_vocab(), "seed": seed}
    )


def make_reference(policy: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of the base policy (pi_ref)."""
    return copy.deepcopy(policy).requires_grad_(False).eval()


def column(split, name: str) -> list[str] | None:
    """A dataset column as a list, or None when the split has no such column."""
    return list(split[name]) if name in split.column_names else None

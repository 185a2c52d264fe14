"""Group-relative advantages: GRPO's verifier advantage (E1) with the Dr. GRPO and batch-std scalings,
DAPO's group filter, LaSeR's mixed advantage (E6), and the self-reward as the only reward (the paper's
section 5 collapse experiment)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from laser import metric_names as names


def _check_groups(n: int, group_size: int) -> None:
    """Raise ValueError unless ``n`` responses split into whole groups of ``group_size >= 2``."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for group statistics, got {group_size}")
    if n % group_size != 0:
        raise ValueError(f"batch of {n} responses is not a multiple of group_size={group_size}")


AdvScale = Literal["group_std", "batch_std", "none"]


def group_advantages(
    rewards: Tensor,
    group_size: int,
    scale: AdvScale = "group_std",
    eps: float = 1e-6,
    batch_std: Tensor | None = None,
) -> Tensor:
    """GRPO advantage (E1): A_v = (r - mean(group)) / (std(group) + eps).

    Args:
        rewards: (N,) verifier rewards, N = B * group_size; each consecutive block of
            ``group_size`` rows holds one prompt's responses.
        group_size: Responses per prompt (K in the paper), at least 2.
        scale: ``"group_std"`` divides by the unbiased group std + ``eps``; ``"batch_std"`` by
            the unbiased std of the whole batch's rewards + ``eps`` (TRL's
            ``scale_rewards="batch"``: group mean, batch std, as in Liu et al. 2025 "Part I:
            Tricks or Traps? A Deep Dive into RL for LLM Reasoning"); ``"none"`` only centres
            (Dr. GRPO, Liu et al. 2025 "Understanding R1-Zero-Like Training", section 3.1).
        eps: Added to the std so zero-variance groups give advantage 0.
        batch_std: Scalar std of the whole step's rewards for ``"batch_std"`` when ``rewards``
            is one data-parallel rank's share; default the std of ``rewards``.

    Returns:
        (N,) float advantages, detached from any graph.

    Raises:
        ValueError: If N is not a multiple of ``group_size``, ``group_size < 2``, or ``scale``
            is unknown.
    """
    _check_groups(rewards.shape[0], group_size)
    grouped = rewards.detach().float().view(-1, group_size)  # (B, K)
    centred = grouped - grouped.mean(dim=-1, keepdim=True)  # (B, K)
    match scale:
        case "group_std":
            adv = centred / (grouped.std(dim=-1, keepdim=True) + eps)  # (B, K)
        case "batch_std":
            std = grouped.std() if batch_std is None else batch_std.detach().float()  # ()
            adv = centred / (std + eps)  # (B, K)
        case "none":
            adv = centred
        case _:
            raise ValueError(f"unknown advantage scale {scale!r}")
    return adv.reshape(-1)  # (N,)


def self_reward_as_reward(scores: Tensor, finished: Tensor) -> Tensor:
    """The self-reward read as a reward in [0, 1]: clip(r_s, 0, 1), 0 for truncated responses.

    The s~ of E6 (official code); given to :func:`group_advantages` in place of the verifier's
    reward, it makes the self-reward the only RL reward (paper section 5: training collapses).

    Args:
        scores: (N,) raw self-reward scores r_s (E3).
        finished: (N,) bool, true where the response ended with EOS.

    Returns:
        (N,) detached float rewards in [0, 1].
    """
    clipped = scores.detach().float().clamp(0.0, 1.0)  # (N,)
    return torch.where(finished.bool(), clipped, torch.zeros_like(clipped))


def zero_variance_frac(rewards: Tensor, group_size: int) -> Tensor:
    """Share of groups whose rewards are all equal (E1): their GRPO advantages are 0, so they give
    the policy gradient no signal.

    Args:
        rewards: (N,) rewards, N = B * group_size, one prompt's responses per consecutive block.
        group_size: Responses per prompt, at least 2.

    Returns:
        Scalar float tensor in [0, 1].
    """
    return (~varied_groups(rewards, group_size)).float().mean()


def varied_groups(rewards: Tensor, group_size: int) -> Tensor:
    """Which groups' rewards vary: the group filter of DAPO's dynamic sampling (Yu et al. 2025
    "DAPO", section 3.2; verl's ``filter_groups``). A group whose rewards are all equal has GRPO
    advantage 0 everywhere and gives the policy gradient no signal.

    Args:
        rewards: (N,) rewards, N = B * group_size, one prompt's responses per consecutive block.
        group_size: Responses per prompt, at least 2.

    Returns:
        (B,) bool, true where a group's rewards are not all equal.

    Raises:
        ValueError: If N is not a multiple of ``group_size`` or ``group_size < 2``.
    """
    _check_groups(rewards.shape[0], group_size)
    grouped = rewards.detach().float().view(-1, group_size)  # (B, K)
    return grouped.amax(-1) != grouped.amin(-1)  # (B,)


def self_reward_advantages(
    scores: Tensor,
    verifier_adv: Tensor,
    finished: Tensor,
    group_size: int,
    tau: float,
    filter_threshold: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """LaSeR's mixed advantage with std filtering (E6): (1 - tau) * A_v + tau * A_s.

    The scores are clipped to [0, 1] without gradient and truncated responses count as 0
    (official code). A_s = (s - mean) / std with the unbiased group std and no eps, used only in
    groups whose std exceeds ``filter_threshold``; other groups use A_s = A_v (equivalent to
    tau = 0 there).

    Args:
        scores: (N,) raw self-reward scores r_s (E3), N = B * group_size, grouped in consecutive
            blocks like ``verifier_adv``.
        verifier_adv: (N,) verifier advantages A_v from :func:`group_advantages`.
        finished: (N,) bool, true where the response ended with EOS.
        group_size: Responses per prompt, at least 2.
        tau: Mixing weight in [0, 1]; 0 returns exactly ``verifier_adv``.
        filter_threshold: T_f; groups with score std <= T_f are filtered (no mixing).

    Returns:
        ``(adv, stats)``: (N,) mixed advantages (detached) and
        ``{"self_reward/filtered_frac": share of groups filtered}``.

    Raises:
        ValueError: If N is not a multiple of ``group_size`` or ``group_size < 2``.
    """
    _check_groups(scores.shape[0], group_size)
    v_adv = verifier_adv.detach()  # (N,)
    s = self_reward_as_reward(scores, finished).view(-1, group_size)  # (B, K)
    std = s.std(dim=-1, keepdim=True)  # (B, 1) unbiased, no eps
    keep = std > filter_threshold  # (B, 1) groups that mix
    safe_std = torch.where(keep, std, torch.ones_like(std))  # (B, 1) avoids 0/0 in dropped groups
    a_s = (s - s.mean(dim=-1, keepdim=True)) / safe_std  # (B, K)
    a_s = torch.where(keep, a_s.to(v_adv.dtype), v_adv.view(-1, group_size)).reshape(-1)  # (N,)
    adv = (1.0 - tau) * v_adv + tau * a_s  # (N,)
    stats = {names.FILTERED_FRAC: (~keep).float().mean()}
    return adv, stats

"""Metric reduction: the one helper every logged distribution goes through."""

from __future__ import annotations

import torch
from torch import Tensor


def summarize(name: str, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Reduce a tensor of per-element values to mean/std/min/max log metrics.

    Metric names follow ``{quantity}/{stat}``; the caller adds the stage prefix (``train/``).

    Args:
        name: Quantity name, e.g. ``"self_reward/score_correct"``.
        x: Values of any shape, e.g. (N,) per-response scores or (N, T) per-token values.
        mask: Optional bool tensor of ``x``'s shape; only elements where it is true are reduced.
            ``None`` selects every element.

    Returns:
        ``{name}/mean``, ``{name}/std`` (population std, 0 for one element), ``{name}/min`` and
        ``{name}/max`` as detached float scalars, or ``{}`` when no element is selected.
    """
    values = x.detach().float().reshape(-1)  # (M,)
    if mask is not None:
        values = values[mask.detach().bool().reshape(-1)]  # (K,) selected elements
    if values.numel() == 0:
        return {}
    return {
        f"{name}/mean": values.mean(),
        f"{name}/std": values.std(correction=0),
        f"{name}/min": values.min(),
        f"{name}/max": values.max(),
    }


def average_ranks(x: Tensor) -> Tensor:
    """1-based ranks of the values of ``x``, ties sharing their average rank (float64).

    Args:
        x: (M,) real values.

    Returns:
        (M,) float64 ranks; e.g. ``[0.3, 0.1, 0.3]`` gives ``[2.5, 1.0, 2.5]``.
    """
    values = x.detach().double().reshape(-1)  # (M,)
    _, inverse, counts = torch.unique(values, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # (U,) rank of each distinct value's last occurrence
    return (ends - (counts.double() - 1.0) / 2.0)[inverse]  # (M,)

"""Metric reduction: the one helper every logged distribution goes through, and how a metric of
one micro-batch combines with the others of its step (each metric declares it where it is made)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import torch
from torch import Tensor

from laser.metric_names import summary_names


class Reduction(str, Enum):
    """How the values a metric takes on a step's micro-batches give the step's value.

    A module that makes micro-batch metrics lists them next to where it makes them, in a mapping
    name -> Reduction (e.g. :data:`laser.algo.policy_loss.POLICY_LOSS_STATS`), and
    :class:`MicroBatchStats` reduces them as declared.
    """

    SHARE = "share"
    """Each micro-batch's value is its share of the step's (a loss normalised by the step's
    counts): the shares are summed."""
    TOKEN_MEAN = "token_mean"
    """A mean over the micro-batch's tokens: weighted by its share of the step's tokens."""
    STEP = "step"
    """A function of the whole step that the micro-batches' values do not give (a summary per
    class, which a micro-batch may lack): dropped here and computed over the step's rows after."""


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
    stats = (values.mean(), values.std(correction=0), values.min(), values.max())
    return dict(zip(summary_names(name), stats, strict=True))


class MicroBatchStats:
    """Adds up the metrics of a step's micro-batches, each as its declared :class:`Reduction` says.

    Args:
        reductions: Every metric the micro-batches may give, name -> Reduction.
    """

    def __init__(self, reductions: Mapping[str, Reduction]) -> None:
        self.reductions = reductions
        self.sums: dict[str, Tensor] = {}

    def add(self, stats: Mapping[str, Tensor], token_share: float | Tensor) -> None:
        """Add one micro-batch's metrics.

        Args:
            stats: The micro-batch's metrics, name -> scalar.
            token_share: The micro-batch's share of the step's tokens (its weight of a token mean).

        Raises:
            ValueError: If a metric has no declared reduction.
        """
        for name, value in stats.items():
            how = self.reductions.get(name)
            if how is None:
                raise ValueError(
                    f"metric {name!r} declares no reduction over micro-batches: list it, with a "
                    f"laser.algo.stats.Reduction, in the mapping of the module that makes it "
                    f"(declared: {sorted(self.reductions)})"
                )
            if how is Reduction.STEP:
                continue
            part = value if how is Reduction.SHARE else value * token_share
            self.sums[name] = self.sums.get(name, 0.0) + part

    def result(self) -> dict[str, Tensor]:
        """The step's metrics so far: shares summed, token means weighted; those declared
        ``Reduction.STEP`` are left to the caller, who computes them over the step's rows."""
        return dict(self.sums)


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

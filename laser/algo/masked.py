"""Masked reductions and the micro-batch-safe loss aggregation used by every loss term."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

AggMode = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over the elements where ``mask`` is true.

    Masked-out elements are replaced by 0 with ``torch.where`` (not multiplied by 0), so NaN or
    inf in padding never leaks into the result.

    Args:
        x: Values, e.g. (N, T) per-token losses.
        mask: Bool or 0/1 tensor broadcastable to ``x``; true marks valid elements.
        dim: Dimension to reduce; ``None`` reduces everything to a scalar.

    Returns:
        The masked sum, with ``dim`` reduced.
    """
    return torch.where(mask.bool(), x, torch.zeros_like(x)).sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the elements where ``mask`` is true; 0 (never NaN) when none is.

    Args:
        x: Values, e.g. (N, T) per-token losses.
        mask: Bool or 0/1 tensor of ``x``'s shape; true marks valid elements.
        dim: Dimension to reduce; ``None`` reduces everything to a scalar.

    Returns:
        The masked mean, with ``dim`` reduced.
    """
    count = mask.bool().sum(dim=dim).to(x.dtype)  # valid elements per slice
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def _normaliser(value: float | Tensor | None, local: Tensor) -> Tensor:
    """Step-level normaliser if given, else the local count clamped to at least 1."""
    if value is None:
        return local.clamp(min=1)
    return torch.as_tensor(value, dtype=local.dtype, device=local.device)


def aggregate_loss(
    loss_mat: Tensor,
    mask: Tensor,
    mode: AggMode,
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
    norm_length: float | None = None,
) -> Tensor:
    """Reduce a per-token loss matrix to a scalar (the token-mean of E1, or a per-sequence mean).

    Passing step-level totals as ``num_tokens`` / ``num_seqs`` makes the reduction additive over
    micro-batches: the sum of the micro-batch losses equals the full-batch loss, so the gradient
    does not depend on the micro-batch size. Rows with no valid token contribute 0.

    Args:
        loss_mat: (N, T) per-token loss.
        mask: (N, T) bool or 0/1, true on valid (response) tokens.
        mode: ``"token_mean"``: sum(loss * mask) / num_tokens (E1's 1/sum_i |y_i|).
            ``"seq_mean_token_mean"``: sum over sequences of the per-sequence masked token mean,
            / num_seqs. ``"seq_mean_token_sum"``: sum over sequences of the per-sequence masked
            token sum, / num_seqs. ``"seq_mean_token_sum_norm"``: that, divided by the constant
            ``norm_length`` (Dr. GRPO, Liu et al. 2025 "Understanding R1-Zero-Like Training", which
            drops GRPO's 1/|y_i| for the generation budget; TRL's ``loss_type="dr_grpo"``; verl's
            mode of this name leaves out the 1/num_seqs, a constant factor).
        num_tokens: Total valid tokens of the step (positive); default ``mask.sum()`` of this call.
        num_seqs: Total sequences with at least one valid token in the step (positive); default
            the local count.
        norm_length: The constant of ``"seq_mean_token_sum_norm"`` (e.g. the maximum response
            length), > 0; unused by the other modes.

    Returns:
        Scalar loss.

    Raises:
        ValueError: If ``mode`` is unknown, or ``"seq_mean_token_sum_norm"`` has no positive
            ``norm_length``.
    """
    valid = mask.bool()  # (N, T)
    dtype = loss_mat.dtype
    local_seqs = valid.any(dim=-1).sum().to(dtype)  # sequences with >= 1 valid token
    match mode:
        case "token_mean":
            denom = _normaliser(num_tokens, valid.sum().to(dtype))
            return masked_sum(loss_mat, valid) / denom
        case "seq_mean_token_mean":
            per_seq = masked_mean(loss_mat, valid, dim=-1)  # (N,)
            return per_seq.sum() / _normaliser(num_seqs, local_seqs)
        case "seq_mean_token_sum":
            per_seq = masked_sum(loss_mat, valid, dim=-1)  # (N,)
            return per_seq.sum() / _normaliser(num_seqs, local_seqs)
        case "seq_mean_token_sum_norm":
            if norm_length is None or not norm_length > 0:
                raise ValueError(f"mode {mode!r} needs a constant norm_length > 0, got {norm_length}")
            per_seq = masked_sum(loss_mat, valid, dim=-1)  # (N,)
            return per_seq.sum() / (_normaliser(num_seqs, local_seqs) * norm_length)
        case _:
            raise ValueError(f"unknown loss aggregation mode {mode!r}")

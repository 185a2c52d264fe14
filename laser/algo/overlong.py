"""Responses that reach the length limit: DAPO's soft overlong punishment of the reward, and
masking truncated responses out of the policy loss (Yu et al. 2025 "DAPO", section 3.4)."""

from __future__ import annotations

from torch import Tensor


def overlong_penalty(
    lengths: Tensor, max_length: int, buffer_length: float, penalty_factor: float = 1.0
) -> Tensor:
    """DAPO's soft overlong punishment, added to the reward (section 3.4).

    0 up to ``max_length - buffer_length`` tokens, then falling linearly to ``-penalty_factor``
    at ``max_length``: -penalty_factor * (|y| - (L_max - L_cache)) / L_cache. A truncated response
    (no EOS within ``max_length``) gets the full ``-penalty_factor`` (verl's ``overlong_buffer``,
    TRL's ``get_soft_overlong_punishment``).

    Args:
        lengths: (N,) response lengths in tokens, EOS included, at most ``max_length``.
        max_length: L_max, the generation limit (rollout.max_new_tokens).
        buffer_length: L_cache, the buffer before the limit where the penalty grows, in
            (0, max_length].
        penalty_factor: The penalty at the limit, > 0.

    Returns:
        (N,) float penalties in [-penalty_factor, 0].

    Raises:
        ValueError: If ``buffer_length`` is not in (0, max_length] or ``penalty_factor <= 0``.
    """
    if not 0 < buffer_length <= max_length:
        raise ValueError(f"buffer_length must be in (0, max_length={max_length}], got {buffer_length}")
    if not penalty_factor > 0:
        raise ValueError(f"penalty_factor must be > 0, got {penalty_factor}")
    excess = lengths.detach().float() - (max_length - buffer_length)  # (N,) tokens into the buffer
    return (-excess / buffer_length * penalty_factor).clamp(-penalty_factor, 0.0)  # (N,)


def mask_truncated(mask: Tensor, finished: Tensor) -> Tensor:
    """The policy-loss mask without truncated responses: DAPO's overlong filtering (section 3.4),
    TRL's ``mask_truncated_completions``. A response cut at the limit is not wrong for being long,
    so its (often negative) advantage would be noise.

    Args:
        mask: (N, T) bool or 0/1, true on response tokens.
        finished: (N,) bool, true where the response ended with EOS.

    Returns:
        (N, T) bool mask, all false on the rows of truncated responses.
    """
    return mask.bool() & finished.bool().unsqueeze(-1)  # (N, T)

"""DAPO's dynamic sampling (Yu et al. 2025 "DAPO", section 3.2): which drawn groups fill the batch.

The group filter itself is :func:`laser.algo.advantages.varied_groups`; a step samples more prompts
while fewer than the batch's groups vary, then fills the batch in the order given here.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fill_order(varied: Tensor, num_groups: int) -> Tensor:
    """The order in which drawn groups fill a batch of ``num_groups``: the groups whose rewards
    vary, in the order drawn, then the others (kept only when too few vary, e.g. after the cap on
    extra sampling rounds, where they stand in with zero advantage as without dynamic sampling).

    Args:
        varied: (D,) bool over the drawn groups, from :func:`~laser.algo.advantages.varied_groups`.
        num_groups: The batch's groups B, at most D.

    Returns:
        (D,) long permutation of the group indices; the first ``num_groups`` form the batch, the
        rest were dropped (or drawn beyond it).

    Raises:
        ValueError: If ``num_groups`` is not in [1, D].
    """
    if not 1 <= num_groups <= varied.shape[0]:
        raise ValueError(f"num_groups must be in [1, {varied.shape[0]}] (the groups drawn), got {num_groups}")
    return torch.argsort((~varied.bool()).to(torch.uint8), stable=True)  # varied first, in draw order


def group_rows(groups: Tensor, group_size: int) -> Tensor:
    """Row indices of whole groups (a prompt's ``group_size`` responses are consecutive rows).

    Args:
        groups: (M,) long group indices.
        group_size: Responses per prompt.

    Returns:
        (M * group_size,) long row indices, group by group.
    """
    offsets = torch.arange(group_size, device=groups.device)  # (G,)
    return (groups.long().unsqueeze(-1) * group_size + offsets).reshape(-1)  # (M * G,)

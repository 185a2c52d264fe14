"""The measured cost of each confidence: what recording its statistic adds to generation time."""

from __future__ import annotations

import math
import time

import torch

from laser.data.collate import PromptBatch
from laser.rollout.sampler import Sampler

# `Sampler.sample` arguments of a plain generation and of each statistic a method records
VARIANTS: dict[str, dict] = {
    "": {"score": False},
    "score": {"score": True},  # LaSeR's one extra token
    "self_certainty": {"score": False, "self_certainty": True},
    "top_k": {"score": False},  # confidence_top_k is added from the settings
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generation_costs(
    policy: torch.nn.Module,
    sampler: Sampler,
    batch: PromptBatch,
    group_size: int,
    records: set[str],
    top_k: int,
    repeats: int = 3,
) -> dict[str, float]:
    """Seconds per sample that recording each statistic of `records` adds to a plain generation of
    the same samples: every variant restarts the sampler's RNG from the same state (recording
    draws nothing, so all draw the same tokens), the fastest of `repeats` runs counts, and the
    sampler's RNG is left as it was, so the evaluation after this draws what it would have.

    Returns:
        {statistic: extra seconds per sample} ('' stands for none and is not returned); noise can
        make a tiny cost negative.
    """
    device = next(policy.parameters()).device
    state = sampler.rng_state()
    names = ["", *sorted(records - {""})]
    best = dict.fromkeys(names, math.inf)
    for _ in range(repeats):
        for name in names:  # interleaved, so that a drift in speed hits every variant alike
            kwargs = VARIANTS[name] | ({"confidence_top_k": top_k} if name == "top_k" else {})
            sampler.load_rng_state(state)
            _sync(device)
            start = time.perf_counter()
            sampler.sample(policy, batch, group_size, **kwargs)
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    sampler.load_rng_state(state)
    samples = len(batch) * group_size
    return {name: (best[name] - best[""]) / samples for name in names if name}

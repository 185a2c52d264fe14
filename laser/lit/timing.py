"""Stages that time themselves: wall-clock seconds of each part of a training step, read where
the work happens (no hooks), logged at every step as `timing_s/<stage>`."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from laser import metric_names as names

STAGES = ("sample", "score", "verify", "reference", "update")  # and `step`, the whole step


class StageTimer:
    """Adds up the seconds spent in each named stage until `reset` clears them.

    `sync` runs before every clock read (torch.cuda.synchronize on a GPU, whose kernels are
    asynchronous). Stages may nest: `score`, the decoding step only the self-reward needs, is timed
    inside `sample`, and every stage inside `step`.
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.sync = sync
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        """Forget what was timed outside a step (validation samples with the same sampler)."""
        self.seconds.clear()

    def stats(self) -> dict[str, float]:
        """`timing_s/<stage>` of everything timed since the last `reset` (stages not run: 0)."""
        return {names.timing(name): self.seconds.get(name, 0.0) for name in (*STAGES, "step")}

"""Deprecated name of `laser.profiling` (the timing tools), kept for one release. The math test
sets are `laser.data.benchmarks`."""

import warnings

warnings.warn(
    "laser.benchmarks is now laser.profiling (python -m laser.profiling.stage_time / step_time)",
    DeprecationWarning,
    stacklevel=2,
)

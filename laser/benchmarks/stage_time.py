"""Deprecated: `python -m laser.benchmarks.stage_time` is `python -m laser.profiling.stage_time`."""

from laser.profiling.stage_time import *  # noqa: F403
from laser.profiling.stage_time import main

if __name__ == "__main__":
    main()

"""Deprecated: `python -m laser.benchmarks.step_time` is `python -m laser.profiling.step_time`."""

from laser.profiling.step_time import *  # noqa: F403
from laser.profiling.step_time import main

if __name__ == "__main__":
    main()

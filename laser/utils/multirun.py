"""Data-parallel ranks inside a Hydra multirun (`python -m laser.run -m ... trainer=ddp`)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from omegaconf import read_write

# what Lightning's launcher sets in the launching process's environment
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def other_ranks_run_this_job() -> Iterator[None]:
    """Lightning starts the other ranks of a multi-process strategy (trainer=ddp) by re-running this
    process's command line with `hydra.run.dir` set to Hydra's run.dir. In a multirun that command
    line is the whole sweep: point it at this job alone, its overrides and its output directory,
    and at `python -m laser.run` also in a launcher's worker process (joblib, submitit), whose own
    main module is the launcher's.
    Afterwards, undo what the job's ranks leave in this process (the next job of a sequential
    multirun starts its own): the process group, and the environment variables that would make
    Lightning think its ranks had been started by a cluster."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    hc = HydraConfig.get()
    argv, run_dir, environ = sys.argv, hc.run.dir, dict(os.environ)
    main_module = sys.modules["__main__"]
    main_spec = main_module.__spec__
    sys.argv = [argv[0], *hc.overrides.task]
    main_module.__spec__ = importlib.util.find_spec("laser.run")  # Lightning runs `-m <its name>`
    with read_write(hc):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv, main_module.__spec__ = argv, main_spec
        with read_write(hc):
            hc.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in LAUNCH_ENV:
            if key in environ:
                os.environ[key] = environ[key]
            else:
                os.environ.pop(key, None)

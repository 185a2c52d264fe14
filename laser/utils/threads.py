"""Torch threads per process, so that parallel jobs on one machine split its cores instead of
oversubscribing them (two jobs with torch's default threads each made step times swing 3-80x)."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def joblib_parallel_jobs(n_jobs: int, cpu_count: int) -> int:
    """Jobs joblib runs at once for `n_jobs` (-1: all CPUs, -2: all but one, ...)."""
    return max(1, n_jobs if n_jobs > 0 else cpu_count + 1 + n_jobs)


def jobs_from_hydra() -> tuple[int | None, int | None]:
    """(parallel jobs on this machine under a joblib multirun, CPUs per task under a submitit
    launcher), each None when it does not apply (or outside `@hydra.main`)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", ""))
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    if "JoblibLauncher" in target:
        return joblib_parallel_jobs(int(hc.launcher.n_jobs), os.cpu_count() or 1), None
    if "submitit" in target:
        return None, hc.launcher.get("cpus_per_task")
    return None, None


def choose_num_threads(
    requested: int | None, parallel_jobs: int | None, cpu_count: int, cpus_per_task: int | None = None
) -> tuple[int | None, str]:
    """The torch thread count to set (None: leave torch's default) and why.

    Args:
        requested: the config's `num_threads` (null: decide here).
        parallel_jobs: jobs running at once on this machine, or None when this is the only one.
        cpu_count: CPUs of this machine.
        cpus_per_task: CPUs a cluster scheduler gave this job (submitit's `cpus_per_task`), or None.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"num_threads={requested!r} is invalid: must be >= 1 or null")
        return requested, "num_threads in the config"
    if parallel_jobs is not None:
        n = max(1, cpu_count // parallel_jobs)
        return n, f"{cpu_count} CPUs shared by {parallel_jobs} parallel joblib jobs"
    if cpus_per_task:
        return cpus_per_task, "the launcher's cpus_per_task"
    return None, "torch's default"


def configure_threads(requested: int | None) -> int:
    """Set torch's intra-op threads for this process (call it inside the job, before any model
    work: joblib's loky backend runs jobs in worker processes) and log the choice."""
    parallel_jobs, cpus_per_task = jobs_from_hydra()
    n, why = choose_num_threads(requested, parallel_jobs, os.cpu_count() or 1, cpus_per_task)
    if n is not None:
        torch.set_num_threads(n)
    log.info("torch threads: %d (%s)", torch.get_num_threads(), why)
    return torch.get_num_threads()

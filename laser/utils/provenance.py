"""What reproduces a run: `run_info.json` next to `config.yaml` in every run directory.

It records the command line, the seed, the versions of the packages that change results, the git
commit with a dirty flag (and `git_diff.patch` holding the uncommitted changes to tracked files),
and the Hydra job (overrides, experiment, job number) when run through `python -m laser.run`.
Outside a git checkout, or without git, the git fields are null; nothing here raises.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

PACKAGES = (
    "laser",
    "torch",
    "lightning",
    "transformers",
    "datasets",
    "hydra-core",
    "omegaconf",
    "optuna",
    "wandb",
    "math-verify",
)
MAX_PATCH_BYTES = 1_000_000


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(repo: Path, *args: str) -> str | None:
    """stdout of `git -C repo <args>`, or None when git is missing, fails or hangs."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """Commit, branch, dirty flag, changed paths and uncommitted diff of the checkout holding `repo`
    (default: this package's source); every field None outside a git checkout."""
    repo = repo if repo is not None else Path(__file__).resolve().parents[2]
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None, "changes": None, "diff": None}
    status = (_git(repo, "status", "--porcelain") or "").splitlines()
    return {
        "commit": commit.strip(),
        "branch": (_git(repo, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
        "dirty": bool(status),
        "changes": status[:100],
        "diff": _git(repo, "diff", "HEAD") if status else None,
    }


def command_line() -> list[str]:
    """The command as typed: `python -m laser.run ...` rather than the path Python turned it into
    (in a joblib worker, the multirun's command, which the worker inherits)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "run.py" and Path(argv[0]).parent.name == "laser":
        argv[:1] = ["-m", "laser.run"]
    return [sys.executable, *argv]


def hydra_job() -> dict[str, Any] | None:
    """The Hydra job's overrides, experiment, launcher and numbering, and the command that reruns
    this one job (None outside `@hydra.main`)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return {
        "rerun": shlex.join(["python", "-m", "laser.run", *hc.overrides.task]),
        "mode": str(hc.mode.name) if hc.mode is not None else None,
        "overrides": list(hc.overrides.task),
        "experiment": hc.runtime.choices.get("experiment"),
        "launcher": hc.runtime.choices.get("hydra/launcher"),
        "sweeper": hc.runtime.choices.get("hydra/sweeper"),
        "job_num": hc.job.get("num"),
        "override_dirname": hc.job.override_dirname,
    }


def run_info(seed: int, repo: Path | None = None) -> dict[str, Any]:
    """Everything `run_info.json` records (the git diff is returned under `git.diff`)."""
    return {
        "command": command_line(),
        "cwd": os.getcwd(),
        "seed": seed,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
        "git": git_state(repo),
        "hydra": hydra_job(),
    }


def write_run_info(out: Path, seed: int, repo: Path | None = None) -> dict[str, Any]:
    """Write `out/run_info.json` (and `out/git_diff.patch` when the checkout is dirty); return the info."""
    info = run_info(seed, repo)
    diff = info["git"].pop("diff")
    if diff:
        patch = diff.encode()[:MAX_PATCH_BYTES]
        (out / "git_diff.patch").write_bytes(patch)
        info["git"]["diff_file"] = "git_diff.patch"
        info["git"]["diff_truncated"] = len(diff.encode()) > MAX_PATCH_BYTES
    (out / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")
    commit = info["git"]["commit"]
    log.info("run info: commit %s%s", commit, " (dirty)" if info["git"]["dirty"] else "")
    return info

"""Weights & Biases: offline by default, online when the user is logged in and the server answers.

The run's identity comes from Hydra when run through `python -m laser.run`: its group is the
experiment (`+experiment=<name>`), or the Optuna study under the `laser_optuna` sweeper, and its name
the job's overrides (`hydra.job.override_dirname`), unless the logger config sets them. Outside
`@hydra.main` (tests, notebooks) the group falls back to `task_name`.
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)
STEP_METRIC = "trainer/global_step"  # Lightning's WandbLogger logs it with every metric


def wandb_logged_in() -> bool:
    """Whether W&B credentials exist (WANDB_API_KEY or an entry written by `wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.exists() and netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (netrc.NetrcParseError, OSError):
        return False


def wandb_reachable(timeout_s: float = 2.0) -> bool:
    """Whether the W&B server ($WANDB_BASE_URL or api.wandb.ai) accepts a TCP connection in time."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_wandb_mode(mode: str) -> str:
    """'auto' becomes 'online' when logged in and the server is reachable, else 'offline' (a run
    never waits on the network); WANDB_MODE wins if set."""
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"logger.wandb.mode={mode!r}: use auto, online, offline or disabled")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        if not wandb_logged_in():
            return "offline"
        if not wandb_reachable():
            log.warning("W&B: logged in but the server is unreachable; logging offline (`wandb sync` later)")
            return "offline"
        return "online"
    return mode


class LaserWandbLogger(WandbLogger):
    """Lightning's WandbLogger (every metric against `trainer/global_step`) that also defines
    best-value summaries, e.g. {"val/accuracy": "max"}, when its run starts."""

    def __init__(self, *args: Any, summaries: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._summaries = dict(summaries or {})
        self._summaries_defined = False

    @property
    def experiment(self):
        run = super().experiment
        if not self._summaries_defined and hasattr(run, "define_metric"):
            for name, summary in self._summaries.items():
                run.define_metric(name, step_metric=STEP_METRIC, step_sync=True, summary=summary)
            self._summaries_defined = True
        return run


def make_wandb_logger(
    mode: str = "auto",
    project: str = "laser",
    save_dir: str = ".",
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    summaries: Mapping[str, str] | None = None,
    init_timeout_s: float = 60.0,
) -> WandbLogger | None:
    """A WandbLogger, or None when mode is 'disabled'. Offline runs can be uploaded with `wandb sync`."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    import wandb

    return LaserWandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        name=name,
        tags=list(tags or []),
        offline=mode == "offline",
        summaries=summaries,
        settings=wandb.Settings(init_timeout=init_timeout_s),
    )


def hydra_run_identity() -> tuple[str | None, str | None]:
    """(group, name) for W&B from Hydra's runtime: group = the Optuna study under the laser_optuna
    sweeper, else the experiment; name = the job's overrides. (None, None) outside `@hydra.main`."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    choices = hc.runtime.choices
    if choices.get("hydra/sweeper") == "laser_optuna":
        group = hc.sweeper.get("study_name")
    else:
        group = choices.get("experiment")
    return group or None, hc.job.override_dirname or None


def fill_wandb_identity(cfg: DictConfig) -> None:
    """Fill `logger.wandb.group` and `.name` where null: from Hydra (see `hydra_run_identity`), the
    group falling back to `task_name`; values given in the config or on the command line stay."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if not wandb_cfg:
        return
    group, name = hydra_run_identity()
    with open_dict(wandb_cfg):
        if wandb_cfg.get("group") is None:
            wandb_cfg.group = group or cfg.get("task_name")
        if wandb_cfg.get("name") is None:
            wandb_cfg.name = name


def log_run_config(loggers: list[Logger], cfg: DictConfig, run_info: dict[str, Any]) -> None:
    """Log the resolved config (and the run's provenance under `run_info`) to every W&B logger."""
    params = OmegaConf.to_container(cfg, resolve=True) | {"run_info": run_info}
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_hyperparams(params)

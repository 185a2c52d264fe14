"""Weights & Biases: offline by default, online when the user is logged in."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_logged_in() -> bool:
    """Whether W&B credentials exist (WANDB_API_KEY or an entry written by `wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.exists() and netrc.netrc(path).authenticators("api.wandb.ai") is not None
    except (netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """'auto' becomes 'online' when logged in and 'offline' otherwise; WANDB_MODE wins if set."""
    if mode not in ("auto", "online", "offline", "disabled"):
        raise ValueError(f"logger.wandb.mode={mode!r}: use auto, online, offline or disabled")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if wandb_logged_in() else "offline"
    return mode


def make_wandb_logger(
    mode: str = "auto",
    project: str = "laser",
    save_dir: str = ".",
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
) -> WandbLogger | None:
    """A WandbLogger, or None when mode is 'disabled'. Offline runs can be uploaded with `wandb sync`."""
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        group=group,
        name=name,
        tags=list(tags or []),
        offline=mode == "offline",
    )

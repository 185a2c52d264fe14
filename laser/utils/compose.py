"""Compose the project's Hydra config outside `@hydra.main` (tests, benchmarks, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: list[str] = (), config_name: str = "train") -> DictConfig:
    """The config `python -m laser.run <overrides>` would use (without Hydra's runtime keys, so
    give `paths.root_dir` and `paths.output_dir`)."""
    from laser.configs import register_schemas

    register_schemas()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))

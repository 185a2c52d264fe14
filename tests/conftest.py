"""Shared fixtures: configs composed from conf/ with the fast debug preset and temporary paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import laser.run  # noqa: F401  (registers the config schemas)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_train(tmp_path: Path, overrides: list[str] = (), debug: str = "fast") -> DictConfig:
    """The training config as `python -m laser.run debug=<debug> <overrides>` would compose it."""
    base = [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    if debug:
        base.append(f"debug={debug}")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[*base, *overrides])


@pytest.fixture
def cfg_train(tmp_path: Path) -> DictConfig:
    return compose_train(tmp_path)

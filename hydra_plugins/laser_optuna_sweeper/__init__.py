"""A Hydra sweeper over Optuna's ask/tell API (`defaults: - override /hydra/sweeper: laser_optuna`).

Hydra finds it by importing every module under the `hydra_plugins` namespace package: `config.py`
registers the config and `sweeper.py` defines the plugin class; modules named `_*` are skipped by
that scan and imported normally. See `sweeps/README.md` for usage.
"""

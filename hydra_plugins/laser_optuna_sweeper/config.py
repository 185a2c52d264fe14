"""The sweeper's config, registered as `hydra/sweeper: laser_optuna`.

No `from __future__ import annotations` here: Hydra's plugin scan executes this module before it is
in `sys.modules`, where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class LaserOptunaSweeperConf:
    """`hydra.sweeper.*` of an Optuna sweep; a sweep YAML sets the fields it needs."""

    _target_: str = "hydra_plugins.laser_optuna_sweeper.sweeper.LaserOptunaSweeper"
    # the sampler config reaches the sweeper uninstantiated: it is seeded once the study is loaded
    _recursive_: bool = False

    study_name: str = "${oc.select:task_name,laser}"
    """Name of the study in the storage; the same name and storage resume it."""
    storage: str | None = "sqlite:///${hydra.sweep.dir}/optuna.db"
    """Any SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://user:pass@host/db), or null (in
    memory). Sweep processes on several machines share a study through a server database."""
    direction: Any = "minimize"
    """'minimize' or 'maximize', or a list of them for a multi-objective study (then the task
    returns one value per direction, in order)."""
    seed: int | None = None
    """Seed of the sampler: it gets `seed + number of trials already in the study`, so a resumed
    study continues the sequence instead of replaying its first suggestions. null: unseeded."""
    sampler: dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    """`_target_` config of an Optuna sampler, without `seed` (see `seed`)."""
    n_trials: int = 20
    """Trials this invocation adds to the study."""
    n_jobs: int = 1
    """Trials asked and launched together as one batch through the configured Hydra launcher."""
    heartbeat_interval: int | None = 60
    """Seconds between the heartbeats this process records for its running trials (database
    storage). A trial whose heartbeats stop for `grace_period` (its sweep process was killed) is
    marked FAIL by the next sweep process that asks for a trial, and queued again with the same
    params; that process runs it on top of its own `n_trials`. null: off (such trials stay RUNNING)."""
    grace_period: int | None = None
    """Seconds without a heartbeat after which a running trial counts as dead (null: twice
    heartbeat_interval); longer than any pause of a live sweep process."""
    max_retry: int = 3
    """How many times a dead trial is queued again, its retries' deaths included (0: never)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Search space in Hydra's override grammar: `key: tag(log, interval(1e-5, 1e-2))`,
    `key: choice(a, b)`, `key: range(1, 9, 2)`, `key: int(interval(1, 8))`; a plain value is
    passed to every trial. Sweeps given on the command line (`key=interval(0, 1)`) join these."""


ConfigStore.instance().store(
    group="hydra/sweeper", name="laser_optuna", node=LaserOptunaSweeperConf, provider="laser"
)

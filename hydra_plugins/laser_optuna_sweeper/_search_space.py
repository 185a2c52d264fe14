"""Hydra's override grammar as an Optuna search space.

| override                         | Optuna distribution                                     |
|----------------------------------|---------------------------------------------------------|
| `choice(a, b, c)`, `a,b,c`       | CategoricalDistribution([a, b, c])                      |
| `range(1, 9, 2)`                 | IntDistribution(1, 7, step=2): Hydra's stop is excluded |
| `range(0, 1, 0.25)`              | FloatDistribution(0.0, 0.75, step=0.25)                 |
| `shuffle(range(...))`, `glob(*)` | CategoricalDistribution of the values                   |
| `interval(0, 1)`                 | FloatDistribution(0.0, 1.0)                             |
| `tag(log, interval(1e-5, 1e-2))` | FloatDistribution(1e-05, 0.01, log=True)                |
| `int(interval(1, 8))`            | IntDistribution(1, 8): both ends included               |
| `tag(int, interval(1, 8))`       | the same                                                |
| `tag(log, int(interval(1, 64)))` | IntDistribution(1, 64, log=True)                        |

Choice values that are not numbers or booleans are kept as their override text (`'a b'` becomes
`a\\ b`), so a sampled value always rebuilds a valid override.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

INTERVAL_TAGS = frozenset({"log", "int"})


def _range_values(sweep: RangeSweep) -> list[int | float]:
    """The values of Hydra's `range(start, stop, step)`: start + i*step, stop excluded."""
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None
    n = max(0, math.ceil((stop - start) / step))
    return [start + i * step for i in range(n)]


def _choice_value(x: Any) -> Any:
    """Numbers and booleans as they are; anything else as its override text."""
    return x if isinstance(x, (bool, int, float)) else Transformer.str(x)


def _override_text(value: Any) -> str:
    """A sampled value as override text; strings are choices already kept as override text."""
    return value if isinstance(value, str) else Transformer.str(value)


def _categorical(override: Override) -> CategoricalDistribution:
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):  # the written order, also under shuffle(): resuming needs it
        items = list(sweep.list)
    elif isinstance(sweep, RangeSweep):
        items = _range_values(sweep)
    else:  # glob() over a config group's options
        items = list(override.sweep_iterator())
    return CategoricalDistribution([_choice_value(x) for x in items])


def _numeric_range(sweep: RangeSweep) -> BaseDistribution:
    values = _range_values(sweep)
    if not values:
        raise ValueError(f"{sweep} is empty")
    low, high, step = min(values), max(values), abs(sweep.step)
    if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(int(low), int(high), step=int(step))
    return FloatDistribution(float(low), float(high), step=float(step))


def _interval(sweep: IntervalSweep) -> BaseDistribution:
    unknown = set(sweep.tags) - INTERVAL_TAGS
    if unknown:
        raise ValueError(f"unknown tags {sorted(unknown)}; interval() takes {sorted(INTERVAL_TAGS)}")
    log = "log" in sweep.tags
    assert sweep.start is not None and sweep.end is not None
    if "int" in sweep.tags or (isinstance(sweep.start, int) and isinstance(sweep.end, int)):
        return IntDistribution(int(sweep.start), int(sweep.end), log=log)
    return FloatDistribution(float(sweep.start), float(sweep.end), log=log)


def to_distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of a sweep override (see the module docstring for the mapping)."""
    sweep = override.value()
    try:
        if sweep.tags and not isinstance(sweep, IntervalSweep):
            raise ValueError(f"tags {sorted(sweep.tags)} apply to interval() only")
        if isinstance(sweep, IntervalSweep):
            return _interval(sweep)
        if isinstance(sweep, RangeSweep) and not sweep.shuffle:
            return _numeric_range(sweep)
        return _categorical(override)
    except ValueError as e:
        raise ValueError(f"search space {override.input_line!r}: {e}") from e


@dataclass
class SearchSpace:
    """What every trial gets: fixed overrides, plus one sampled value per distribution."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    """Override key (`optim.lr`, `+new.key`) -> distribution; the key is the Optuna param name."""
    fixed: dict[str, str] = field(default_factory=dict)
    """Override key -> the override passed unchanged to every trial (`debug=fast`, `~key`)."""

    @classmethod
    def parse(cls, lines: Iterable[str], parser: OverridesParser) -> SearchSpace:
        """Split overrides into distributions and fixed ones; a later line wins for the same key."""
        space = cls()
        for override in parser.parse_overrides(list(lines)):
            key = override.get_key_element()
            space.distributions.pop(key, None)
            space.fixed.pop(key, None)
            if override.is_sweep_override():
                space.distributions[key] = to_distribution(override)
            else:
                space.fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
        return space

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then `key=value` for each sampled param."""
        sampled = [f"{key}={_override_text(params[key])}" for key in self.distributions]
        return [*self.fixed.values(), *sampled]


def param_lines(params: Mapping[str, Any] | None) -> list[str]:
    """`hydra.sweeper.params` as override lines (`{a.b: interval(0, 1)}` -> `a.b=interval(0, 1)`)."""
    return [f"{key}={value}" for key, value in (params or {}).items()]

"""The `confidence` block of `laser.evaluate` and `laser.infer` (conf/confidence/default.yaml),
typed and checked before any model loads: every error names the key, the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from laser.eval.confidence import METHODS

CALIBRATORS = ("isotonic", "platt")
STOP_RULES = ("margin", "lead", "best")


def _require(ok: bool, key: str, value, fix: str) -> None:
    if not ok:
        raise ValueError(f"confidence.{key}={value!r} is invalid: {fix}")


def _whole(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _share(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


@dataclass
class CalibrationConfig:
    """Calibrators that turn a confidence into a probability of being right."""

    method: str
    """'isotonic' or 'platt' (scikit-learn's IsotonicRegression or a logistic fit)."""
    source: str | None
    """Another policy's `laser.evaluate` output folder (its problems.jsonl) whose labelled samples
    fit the calibrators, e.g. an earlier checkpoint of the same run; None: no transfer."""
    problems: int | None
    """Use only the source's first N problems (a small labelled split); None: all of them."""
    folds: int
    """Folds of the cross-fitted calibration within an evaluation (fit on the others, by problem)."""
    bootstrap: int
    """Bootstrap resamples of the accuracy estimates' intervals."""

    def __post_init__(self) -> None:
        _require(self.method in CALIBRATORS, "calibration.method", self.method, f"use one of {CALIBRATORS}")
        ok = self.problems is None or _whole(self.problems, 1)
        _require(ok, "calibration.problems", self.problems, "give a whole number >= 1, or null for all")
        _require(_whole(self.folds, 2), "calibration.folds", self.folds, "give a whole number >= 2")
        ok = _whole(self.bootstrap, 1)
        _require(ok, "calibration.bootstrap", self.bootstrap, "give a whole number >= 1")


@dataclass
class AdaptiveConfig:
    """Adaptive sampling: draw `batch` samples at a time, stop once the rule passes a threshold."""

    batch: int
    """Samples drawn per prompt and round."""
    rule: str
    """'margin': the weighted vote's normalised margin; 'lead': the leading answer's weight minus
    the runner-up's; 'best': the best sample's vote weight."""
    thresholds: list[float]
    """The curve's stopping thresholds (`laser.evaluate`); for 'lead', multiples of the method's
    median vote weight, for 'best', quantile levels of its vote weights, so that one grid fits
    every method."""
    threshold: float
    """The stopping threshold of `laser.infer`, in vote weight for 'lead' and 'best'."""
    orders: int
    """Random orders of each problem's K samples over which `laser.evaluate` averages the curve."""

    def __post_init__(self) -> None:
        _require(_whole(self.batch, 1), "adaptive.batch", self.batch, "give a whole number >= 1")
        _require(self.rule in STOP_RULES, "adaptive.rule", self.rule, f"use one of {STOP_RULES}")
        ok = bool(self.thresholds) and all(isinstance(t, (int, float)) for t in self.thresholds)
        _require(ok, "adaptive.thresholds", self.thresholds, "give a non-empty list of numbers")
        ok = self.rule != "margin" or all(0 <= t <= 1 for t in self.thresholds)
        _require(ok, "adaptive.thresholds", self.thresholds, "margins lie in [0, 1]: give values there")
        ok = self.rule != "lead" or all(t >= 0 for t in self.thresholds)
        _require(ok, "adaptive.thresholds", self.thresholds, "leads are >= 0: give values there")
        ok = isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
        _require(ok, "adaptive.threshold", self.threshold, "give a number")
        _require(_whole(self.orders, 1), "adaptive.orders", self.orders, "give a whole number >= 1")


@dataclass
class TimingConfig:
    """The measured cost of each method: its statistic's extra generation time, on a few problems."""

    problems: int
    """Problems of the timing batch (each with the evaluation's K samples); 0: not measured."""
    repeats: int
    """Runs of each variant; the fastest counts."""

    def __post_init__(self) -> None:
        _require(_whole(self.problems, 0), "timing.problems", self.problems, "give a whole number >= 0")
        _require(_whole(self.repeats, 1), "timing.repeats", self.repeats, "give a whole number >= 1")


@dataclass
class ConfidenceConfig:
    """Which confidences to compare, their windows, and how they are calibrated and used."""

    methods: list[str]
    """Names from `laser.eval.confidence.METHODS`; [] turns the comparison off."""
    top_k: int
    """DeepConf's k: a token's confidence is minus the mean of its k largest log-probs."""
    group_window: float
    """DeepConf's group (sliding window) as a share of `rollout.max_new_tokens`."""
    tail: float
    """DeepConf's tail as a share of `rollout.max_new_tokens`."""
    filter_keep: list[float]
    """DeepConf's filtered voting keeps this share of a prompt's most confident samples."""
    calibration: CalibrationConfig
    adaptive: AdaptiveConfig
    timing: TimingConfig

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        _require(not unknown, "methods", self.methods, f"unknown {unknown}; known: {list(METHODS)}")
        _require(_whole(self.top_k, 1), "top_k", self.top_k, "give a whole number >= 1")
        _require(_share(self.group_window), "group_window", self.group_window, "give a share in (0, 1]")
        _require(_share(self.tail), "tail", self.tail, "give a share in (0, 1]")
        ok = bool(self.filter_keep) and all(_share(k) for k in self.filter_keep)
        _require(ok, "filter_keep", self.filter_keep, "give a non-empty list of shares in (0, 1]")

    def tokens(self, share: float, max_new_tokens: int) -> int:
        """A window given as a share of the response budget, in tokens (at least 1)."""
        return max(1, round(share * max_new_tokens))


def confidence_config(node: DictConfig) -> ConfidenceConfig:
    """The checked `confidence` block (the schema rejects an unknown key or a wrong type)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ConfidenceConfig), node))

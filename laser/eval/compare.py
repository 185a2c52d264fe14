"""The confidence comparison of one evaluation: every table `laser.evaluate` writes about it, and
the labelled samples of another policy that calibrate the transfer estimate.

Tables (one DataFrame each): `confidence` (ranking, calibration and cost per method),
`confidence_scaling` (voting rules against k), `adaptive` (accuracy against mean samples drawn)
and `accuracy_estimate` (predicted against true accuracy, per method and calibration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from laser.eval.calibration import calibrated, cross_fit, estimate_rows, estimate_table, fit_on
from laser.eval.confidence import METHODS
from laser.eval.confidence_report import (
    adaptive_table,
    curve_ks,
    ranking_table,
    vote_weights,
    voting_answers,
    voting_table,
)
from laser.eval.samples import ScoredSamples
from laser.eval.settings import ConfidenceConfig


@dataclass
class LabelledSamples:
    """Another policy's labelled samples (its `laser.evaluate` problems.jsonl).

    Attributes:
        confidence: {method: (C, K) confidences}.
        correct: (C, K) bool verdicts.
        finished: (C, K) bool.
    """

    confidence: dict[str, Tensor]
    correct: Tensor
    finished: Tensor


def read_labelled(source: str, limit: int | None = None) -> LabelledSamples:
    """The first `limit` problems of an evaluation folder's problems.jsonl (or that file itself),
    with the confidences it recorded; an error naming `confidence.calibration.source` otherwise."""
    key = f"confidence.calibration.source={source!r}"
    path = Path(source).expanduser()
    path = path / "problems.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{key}: {path} does not exist; give a laser.evaluate output folder")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:limit]
    if not rows or not all(row.get("confidence") for row in rows):
        raise ValueError(
            f"{key}: {path} holds no confidences; evaluate that policy with confidence.methods set"
        )
    methods = [m for m in rows[0]["confidence"] if m in METHODS]
    return LabelledSamples(
        confidence={m: torch.tensor([row["confidence"][m] for row in rows]) for m in methods},
        correct=torch.tensor([row["correct"] for row in rows], dtype=torch.bool),
        finished=torch.tensor([row["finished"] for row in rows], dtype=torch.bool),
    )


def cross_fitted(samples: ScoredSamples, names: list[str], cfg: ConfidenceConfig, seed: int) -> dict:
    """{method: (P, K) probabilities from calibrators fitted on the other folds' problems}."""
    cal = cfg.calibration
    return {
        n: cross_fit(samples.confidence[n], samples.correct, samples.finished, cal.method, cal.folds, seed)
        for n in names
    }


def transfer_probs(source: LabelledSamples, name: str, samples: ScoredSamples, method: str):
    """(calibration-problem resample or None) -> (P, K) probabilities of this evaluation's samples
    from a calibrator fitted on the source's labelled samples."""
    conf, correct, done = source.confidence[name], source.correct, source.finished

    def probs_for(rows: Tensor | None) -> Tensor:
        pick = slice(None) if rows is None else rows
        calibrator = fit_on(conf[pick], correct[pick], done[pick], method)
        return calibrated(calibrator, samples.confidence[name], samples.finished)

    return probs_for


def accuracy_estimates(
    samples: ScoredSamples,
    names: list[str],
    cfg: ConfidenceConfig,
    crossed: dict[str, Tensor],
    source: LabelledSamples | None,
    seed: int,
) -> pd.DataFrame:
    """Predicted against true accuracy (pass@1 and the weighted vote's), per method and
    calibration: 'none' (a method whose scale is a probability: no labels at all), 'cross_fit'
    (the same policy's other problems) and 'transfer' (the source policy's labelled samples)."""
    answers, weights = voting_answers(samples), vote_weights(samples, names)
    common = (samples.correct, answers)
    boot = cfg.calibration.bootstrap
    rows = {}
    for n in names:
        if METHODS[n].probability:
            raw = samples.confidence[n].clamp(0, 1) * samples.finished
            rows[(n, "none")] = estimate_rows(lambda _, p=raw: p, *common, weights[n], boot, seed)
        rows[(n, "cross_fit")] = estimate_rows(lambda _, p=crossed[n]: p, *common, weights[n], boot, seed)
        if source is not None and n in source.confidence:
            probs_for = transfer_probs(source, n, samples, cfg.calibration.method)
            size = source.correct.shape[0]
            rows[(n, "transfer")] = estimate_rows(probs_for, *common, weights[n], boot, seed, size)
    return estimate_table(rows)


def confidence_tables(
    samples: ScoredSamples,
    names: list[str],
    cfg: ConfidenceConfig,
    source: LabelledSamples | None = None,
    generation: dict[str, float] | None = None,
    num_resamples: int = 100,
    num_bins: int = 10,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Every table of the comparison of the methods `names` on `samples` (see the module doc);
    `generation`: measured seconds per sample per recorded statistic (`generation_costs`)."""
    crossed = cross_fitted(samples, names, cfg, seed)
    k_max = samples.correct.shape[1]
    return {
        "confidence": ranking_table(samples, names, crossed, num_bins, generation),
        "confidence_scaling": voting_table(
            samples, names, curve_ks(k_max), cfg.filter_keep, num_resamples, seed
        ),
        "adaptive": adaptive_table(samples, names, cfg.adaptive, cfg.adaptive.orders, seed),
        "accuracy_estimate": accuracy_estimates(samples, names, cfg, crossed, source, seed),
    }

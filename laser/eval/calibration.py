"""Calibration of a confidence into a probability of being right, and the accuracy it predicts.

A calibrator (scikit-learn's isotonic regression, or Platt's logistic fit) is fitted on finished,
labelled samples: of another policy (transfer: e.g. an earlier checkpoint of the same run), or of
the other folds of the same evaluation's problems (cross-fitting). A truncated response has no
answer and gets probability 0. LaSeR's score needs none: trained toward the 0/1 reward, its own
scale clipped to [0, 1] is a probability, and the estimate it gives uses no labels at all.

The predicted accuracy is, per problem, the mean probability of its samples (pass@1) and the
probability of the answer its weighted vote picks (`answer_confidence`), averaged over problems.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from laser.algo.confidence import answer_confidence
from laser.algo.scaling import picked_correct, vote

Calibrator = Callable[[Tensor], Tensor]


def fit_calibrator(scores: Tensor, correct: Tensor, method: str = "isotonic") -> Calibrator:
    """A monotone map from (M,) scores to probabilities of being right, fitted on (M,) labels.

    Args:
        scores: (M,) confidences of labelled samples.
        correct: (M,) bool or 0/1 verdicts.
        method: 'isotonic' (IsotonicRegression, clipped outside the fitted range) or 'platt'
            (a logistic regression on the standardised score, practically unregularised).

    Returns:
        A function of a tensor of scores (any shape) giving float probabilities of that shape;
        the labelled share for every score when the labels hold one class or the scores one value.
    """
    x = scores.detach().double().cpu().numpy().reshape(-1)
    y = correct.detach().cpu().numpy().reshape(-1).astype(float)
    rate = float(y.mean()) if y.size else 0.0
    if y.size == 0 or y.min() == y.max() or x.min() == x.max():
        return lambda s: torch.full(s.shape, rate)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y)
        return lambda s: _apply(iso.predict, s)
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(), x.std()
    logistic = LogisticRegression(C=1e6).fit(((x - mean) / std)[:, None], y)
    return lambda s: _apply(lambda v: logistic.predict_proba(((v - mean) / std)[:, None])[:, 1], s)


def _apply(predict: Callable[[np.ndarray], np.ndarray], scores: Tensor) -> Tensor:
    values = predict(scores.detach().double().cpu().numpy().reshape(-1))
    return torch.as_tensor(values, dtype=torch.float32).reshape(scores.shape)


def calibrated(calibrator: Calibrator, scores: Tensor, finished: Tensor) -> Tensor:
    """(P, K) probabilities of (P, K) scores, 0 for truncated responses (`finished` False)."""
    return calibrator(scores) * finished


def fit_on(scores: Tensor, correct: Tensor, finished: Tensor, method: str) -> Calibrator:
    """A calibrator fitted on the finished samples of (P, K) scores and verdicts."""
    return fit_calibrator(scores[finished], correct[finished], method)


def cross_fit(
    scores: Tensor, correct: Tensor, finished: Tensor, method: str, folds: int, seed: int = 0
) -> Tensor:
    """(P, K) probabilities, each problem's from a calibrator fitted on the other folds' problems.

    Args:
        scores, correct, finished: (P, K) confidences, verdicts and finished flags.
        method: 'isotonic' or 'platt'.
        folds: the problems are split at random into this many folds (at most P).
        seed: the split's seed.
    """
    p = scores.shape[0]
    fold = torch.randperm(p, generator=torch.Generator().manual_seed(seed)) % min(folds, p)  # (P,)
    probs = torch.zeros(scores.shape)
    for f in fold.unique():
        rest = fold != f
        calibrator = fit_on(scores[rest], correct[rest], finished[rest], method)
        probs[~rest] = calibrated(calibrator, scores[~rest], finished[~rest])
    return probs


def per_problem_accuracies(
    probs: Tensor, correct: Tensor, answer_ids: Tensor, picked: Tensor
) -> dict[str, tuple[Tensor, Tensor]]:
    """{target: ((P,) predicted, (P,) true)} for 'pass@1' (a sample is right) and 'voted' (the
    answer at `picked` (P,), e.g. the weighted vote's, is right)."""
    return {
        "pass@1": (probs.double().mean(-1), correct.double().mean(-1)),
        "voted": (answer_confidence(answer_ids, picked, probs).double(), picked_correct(picked, correct)),
    }


def _interval(draws: Tensor) -> tuple[float, float]:
    low, high = torch.quantile(draws.double(), torch.tensor([0.025, 0.975], dtype=torch.float64))
    return float(low), float(high)


def estimate_rows(
    probs_for: Callable[[Tensor | None], Tensor],
    correct: Tensor,
    answer_ids: Tensor,
    weights: Tensor,
    num_bootstrap: int,
    seed: int = 0,
    calibration_problems: int = 0,
) -> list[dict]:
    """Predicted against true accuracy with 95% bootstrap intervals, per target.

    Args:
        probs_for: (a (C,) resample of the calibration problems, or None for all of them) ->
            (P, K) probabilities of the evaluated samples; refitted in every bootstrap draw when
            `calibration_problems` > 0, so that the interval covers the calibration split too.
        correct, answer_ids, weights: (P, K) verdicts (only for the true side), answer classes and
            vote weights of the evaluated samples.
        num_bootstrap: resamples of the evaluated problems (and of the calibration problems).
        seed: the bootstrap's seed.
        calibration_problems: C, the labelled problems the calibrator was fitted on; 0 for none.

    Returns:
        One dict per target: target, predicted, predicted_low, predicted_high, true, true_low,
        true_high, error (predicted - true).
    """
    picked = vote(answer_ids, weights)  # (P,) the weighted vote's answer at K
    point = per_problem_accuracies(probs_for(None), correct, answer_ids, picked)
    # two streams: the evaluated problems' resamples are the same with or without a calibrator to refit
    held_gen, refit_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    p = correct.shape[0]
    draws: dict[str, list[tuple[float, float]]] = {t: [] for t in point}
    for _ in range(num_bootstrap):
        held = torch.randint(p, (p,), generator=held_gen)
        values = point
        if calibration_problems:
            refit = torch.randint(calibration_problems, (calibration_problems,), generator=refit_gen)
            values = per_problem_accuracies(probs_for(refit), correct, answer_ids, picked)
        for target, (pred, true) in values.items():
            draws[target].append((float(pred[held].mean()), float(true[held].mean())))
    rows = []
    for target, (pred, true) in point.items():
        sample = torch.tensor(draws[target], dtype=torch.float64)  # (B, 2)
        (p_low, p_high), (t_low, t_high) = _interval(sample[:, 0]), _interval(sample[:, 1])
        rows.append({
            "target": target, "predicted": float(pred.mean()), "predicted_low": p_low,
            "predicted_high": p_high, "true": float(true.mean()), "true_low": t_low,
            "true_high": t_high, "error": float(pred.mean() - true.mean()),
        })  # fmt: skip
    return rows


def estimate_table(rows: dict[tuple[str, str], list[dict]]) -> pd.DataFrame:
    """One row per method x calibration x target, from {(method, calibration): estimate_rows}."""
    flat = [{"method": m, "calibration": c, **row} for (m, c), rs in rows.items() for row in rs]
    return pd.DataFrame(flat)

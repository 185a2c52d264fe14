"""Tables of the confidence comparison, every method on the same samples: how well each ranks and
is calibrated, what it costs, how voting with it scales with k, and what adaptive sampling saves.

A truncated response (no EOS) has no answer to trust: it is left out of the rankings and does not
vote, for every method alike.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor

from laser.algo import auroc, best_of_k, expected_calibration_error, grouped_auroc
from laser.algo.confidence import adaptive_vote, filtered_vote
from laser.algo.scaling import picked_correct, vote
from laser.eval.confidence import METHODS
from laser.eval.report import powers_of_two
from laser.eval.samples import ScoredSamples
from laser.eval.settings import AdaptiveConfig


def curve_ks(k_max: int) -> list[int]:
    """Every k up to 8, then powers of two up to `k_max` (and `k_max`)."""
    return sorted(set(range(1, min(k_max, 8) + 1)) | set(powers_of_two(k_max)))


def voting_answers(samples: ScoredSamples) -> Tensor:
    """(P, K) answer classes with truncated responses out of the vote (-1)."""
    return torch.where(samples.finished, samples.answer_ids(), -1)


def vote_weights(samples: ScoredSamples, names: list[str]) -> dict[str, Tensor]:
    """{method: (P, K) non-negative vote weights of its confidences}."""
    return {n: METHODS[n].weight(samples.confidence[n]) for n in names}


def _nan_if_none(value) -> float:
    return math.nan if value is None else float(value)


def ranking_row(name: str, samples: ScoredSamples, probs: Tensor, num_bins: int) -> dict[str, float]:
    """AUROC pooled and within each problem, and calibration error, over finished samples.

    `probs` (P, K): the method's cross-fitted calibrated probabilities. `ece/raw` is the error of
    the confidence read as a probability as it is (clipped to [0, 1]), for a method with that scale.
    """
    conf, correct, done = samples.confidence[name], samples.correct, samples.finished
    within, groups = grouped_auroc(conf, correct, done)
    raw = math.nan
    if METHODS[name].probability and done.any():
        raw = float(expected_calibration_error(conf[done].clamp(0, 1), correct[done], num_bins))
    calibrated = expected_calibration_error(probs[done], correct[done], num_bins) if done.any() else None
    return {
        "auroc/pooled": float(auroc(conf[done], correct[done])),
        "auroc/within": float(within),
        "auroc/within_problems": int(groups),
        "ece/calibrated": _nan_if_none(calibrated),
        "ece/raw": raw,
    }


def cost_row(name: str, samples: ScoredSamples, generation: dict[str, float] | None) -> dict[str, float]:
    """Milliseconds per sample: the generation overhead of the statistic the method records
    (measured; NaN when not measured, 0 when it records nothing) and its own reduction."""
    n = samples.correct.numel()
    records = METHODS[name].records
    gen = 0.0 if not records else (generation or {}).get(records, math.nan)
    score = samples.confidence_seconds.get(name, 0.0) / n
    return {
        "cost/generation_ms_per_sample": 1e3 * gen,
        "cost/score_ms_per_sample": 1e3 * score,
        "cost/extra_ms_per_sample": 1e3 * (gen + score),
    }


def ranking_table(
    samples: ScoredSamples,
    names: list[str],
    probs: dict[str, Tensor],
    num_bins: int = 10,
    generation: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per method: AUROCs, calibration errors and costs (`generation`: seconds per sample
    per recorded statistic, from `generation_costs`)."""
    rows = [
        {"method": n} | ranking_row(n, samples, probs[n], num_bins) | cost_row(n, samples, generation)
        for n in names
    ]
    return pd.DataFrame(rows).set_index("method")


def _accuracies(a: Tensor, c: Tensor, conf: Tensor, w: Tensor, keeps: list[float]) -> dict[str, float]:
    """Mean accuracy of each voting rule on (P, k) answers, verdicts, confidences and weights."""
    picks = {"weighted_majority": vote(a, w), "best_of_k": best_of_k(conf, a >= 0)}
    picks |= {f"filtered_top{round(100 * keep)}": filtered_vote(a, conf, w, keep) for keep in keeps}
    return {rule: float(picked_correct(p, c).mean()) for rule, p in picks.items()}


def voting_table(
    samples: ScoredSamples,
    names: list[str],
    ks: list[int],
    keeps: list[float],
    num_resamples: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """Tidy accuracies: method, rule, k, accuracy; rules weighted_majority, best_of_k and DeepConf's
    filtered_top{pct} per method, and plain majority voting (method 'majority'), each averaged over
    the same random size-k subsets of the K samples."""
    answers, correct = voting_answers(samples), samples.correct
    weights = vote_weights(samples, names)
    p, big_k = answers.shape
    gen = torch.Generator().manual_seed(seed)
    totals: dict[tuple[str, str, int], float] = {}
    for k in ks:
        reps = 1 if k == big_k else num_resamples
        for _ in range(reps):
            idx = torch.rand(p, big_k, generator=gen).argsort(-1)[:, :k]  # (P, k)
            a, c = answers.gather(-1, idx), correct.gather(-1, idx)
            found = {("majority", "majority"): float(picked_correct(vote(a), c).mean())}
            for n in names:
                conf, w = samples.confidence[n].gather(-1, idx), weights[n].gather(-1, idx)
                found |= {(n, rule): v for rule, v in _accuracies(a, c, conf, w, keeps).items()}
            for (method, rule), value in found.items():
                totals[(method, rule, k)] = totals.get((method, rule, k), 0.0) + value / reps
    rows = [{"method": m, "rule": r, "k": k, "accuracy": v} for (m, r, k), v in totals.items()]
    return pd.DataFrame(rows)


def stop_value(level: float, weights: Tensor, finished: Tensor, rule: str) -> float:
    """The stopping threshold of a grid value, so that one grid fits every method's scale: a
    margin as it is; for rule 'lead', `level` times the median vote weight of the method's finished
    samples (a lead worth `level` typical samples); for 'best', the quantile `level` of those
    weights."""
    if rule == "margin" or not finished.any():
        return level
    done = weights[finished].double()
    if rule == "lead":
        return level * float(done.median())
    return float(torch.quantile(done, min(max(level, 0.0), 1.0)))


def adaptive_table(
    samples: ScoredSamples, names: list[str], cfg: AdaptiveConfig, orders: int = 20, seed: int = 0
) -> pd.DataFrame:
    """Adaptive sampling replayed on the K samples (drawn independently, so any order is a fair
    draw order): method, threshold, mean_samples, accuracy, each averaged over `orders` random
    orders of every problem's samples."""
    answers, correct, done = voting_answers(samples), samples.correct, samples.finished
    weights = vote_weights(samples, names)
    gen = torch.Generator().manual_seed(seed)
    accuracy: dict[tuple[str, float], float] = {}
    drawn: dict[tuple[str, float], float] = {}
    for _ in range(orders):
        order = torch.rand(answers.shape, generator=gen).argsort(-1)  # (P, K)
        a, c = answers.gather(-1, order), correct.gather(-1, order)
        for n in names:
            w = weights[n].gather(-1, order)
            for level in cfg.thresholds:
                value = stop_value(level, weights[n], done, cfg.rule)
                picked, used = adaptive_vote(a, w, cfg.batch, value, cfg.rule)
                key = (n, level)
                accuracy[key] = accuracy.get(key, 0.0) + float(picked_correct(picked, c).mean()) / orders
                drawn[key] = drawn.get(key, 0.0) + float(used.double().mean()) / orders
    rows = [
        {"method": n, "threshold": t, "mean_samples": drawn[(n, t)], "accuracy": acc}
        for (n, t), acc in accuracy.items()
    ]
    return pd.DataFrame(rows)

"""Tables of an evaluation: scaling curves (one row per problem x k x method) and self-verification."""

from __future__ import annotations

import math

import pandas as pd
import torch

from laser.algo import (
    best_threshold_f1,
    difficulty_auroc,
    grouped_auroc,
    length_correlations,
    scaling_curves,
    self_verify_metrics,
)
from laser.eval.samples import ScoredSamples


def powers_of_two(k_max: int) -> list[int]:
    """1, 2, 4, ... up to k_max (k_max included even when it is not a power of two)."""
    ks = [2**i for i in range(k_max.bit_length()) if 2**i <= k_max]
    return ks if ks[-1] == k_max else [*ks, k_max]


def scaling_table(
    samples: ScoredSamples, ks: list[int], num_resamples: int = 100, seed: int = 0
) -> pd.DataFrame:
    """Tidy accuracies: columns problem, k, method, accuracy."""
    curves = scaling_curves(
        samples.answer_ids(),
        samples.correct,
        samples.scores,
        ks,
        num_resamples,
        torch.Generator().manual_seed(seed),
    )
    rows = [
        {"problem": p, "k": k, "method": method, "accuracy": float(acc[p])}
        for method, by_k in curves.items()
        for k, acc in by_k.items()
        for p in range(len(samples.problems))
    ]
    return pd.DataFrame(rows)


def summarise_scaling(table: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per method (rows) and k (columns)."""
    return table.groupby(["method", "k"])["accuracy"].mean().unstack("k")


def self_verification(
    samples: ScoredSamples, threshold: float = 0.5, num_bins: int = 10
) -> dict[str, float | None]:
    """The paper's self-verification metrics over every finished sample (with the calibration error
    over `num_bins` bins and the score's correlation with length), plus the AUROC within each
    problem's samples (the ranking that best-of-k and weighted voting use), the pooled AUROC
    that knowing each problem's difficulty alone gives (a lower bound; see `difficulty_auroc`),
    and F1 at its best threshold (what calibration alone could reach; `best_threshold_f1`).

    A metric the samples cannot define is None (not applicable): the accuracy on correct (on
    incorrect) responses without any finished correct (incorrect) one, F1 (at 0.5 and at its
    best), AUROC and precision/recall F1 without both classes, the within-problem AUROC without
    a problem holding both, the difficulty reference with fewer than 2 samples per problem, and
    a correlation without variation."""
    done = samples.finished
    scores, correct = samples.scores.flatten(), samples.correct.flatten().float()
    stats = self_verify_metrics(scores, correct, done.flatten(), threshold, num_bins)
    stats |= length_correlations(scores, samples.lengths.flatten(), correct, done.flatten())
    within, groups = grouped_auroc(samples.scores, samples.correct, done)
    stats |= {"self_verify/auroc_within": within, "self_verify/auroc_within_problems": groups}
    best_f1, best_threshold = best_threshold_f1(scores, correct, done.flatten())
    stats |= {"self_verify/f1_best": best_f1, "self_verify/f1_best_threshold": best_threshold}
    if samples.correct.shape[1] >= 2:
        stats["self_verify/auroc_difficulty"] = difficulty_auroc(samples.correct, done)
    out: dict[str, float | None] = {k: float(v) for k, v in stats.items()}
    has_correct, has_incorrect = bool((done & samples.correct).any()), bool((done & ~samples.correct).any())
    needs = {"acc_correct": has_correct, "acc_incorrect": has_incorrect, "pr_f1": has_correct}
    needs |= dict.fromkeys(("f1", "auroc"), has_correct and has_incorrect)
    for name, ok in needs.items():
        if not ok:
            out[f"self_verify/{name}"] = None
    out.setdefault("self_verify/auroc_difficulty", None)
    return {k: None if v is not None and math.isnan(v) else v for k, v in out.items()}


def by_written_check(samples: ScoredSamples, agrees, threshold: float = 0.5) -> dict[str, float | None]:
    """Where a self-checking task's score errs: the share of wrong finished responses whose written
    check agrees with their steps (a difference of 0 for the split check), and the share of
    those, and of the rest, that the score rejects (`agrees`: text -> bool, e.g.
    `check_agrees`). A score that reads only the written check rejects all of the rest and none
    of the first; None where a group is empty."""
    flags = torch.tensor([[agrees(t) for t in row] for row in samples.responses])  # (P, K)
    wrong = samples.finished & ~samples.correct
    rejected = samples.scores <= threshold

    def share(hits, rows) -> float | None:
        return (hits & rows).sum().item() / rows.sum().item() if rows.any() else None

    return {
        "check/agrees_wrong": share(flags, wrong),
        "self_verify/acc_incorrect_check_agrees": share(rejected, wrong & flags),
        "self_verify/acc_incorrect_check_disagrees": share(rejected, wrong & ~flags),
    }


def per_problem(samples: ScoredSamples) -> pd.DataFrame:
    """One row per problem: reference, answers, votes, scores, finished flags, lengths and texts of
    its K samples, and {method: K confidences} where confidences were computed."""
    ids = samples.answer_ids()
    frame = pd.DataFrame(
        {
            "problem": samples.problems,
            "gold": samples.gold,
            "answers": samples.answers,
            "answer_class": ids.tolist(),
            "correct": samples.correct.tolist(),
            "score": samples.scores.tolist(),
            "finished": samples.finished.tolist(),
            "length": samples.lengths.tolist(),
            "responses": samples.responses,
        }
    )
    if samples.confidence:
        frame["confidence"] = [
            {name: values[p].tolist() for name, values in samples.confidence.items()}
            for p in range(len(samples.problems))
        ]
    return frame

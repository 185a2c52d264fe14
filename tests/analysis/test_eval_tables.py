"""The confidence comparison's tables are made from evaluation files: reach, losses and checks by hand."""

from __future__ import annotations

import pandas as pd

from analysis.eval_tables import Evaluation, adaptive_reach, checks_table, losses, methods_table, portable


def evaluation(label: str = "laser", split: str = "eval") -> Evaluation:
    methods = ["laser", "mean_logprob"]
    confidence = pd.DataFrame(
        {"auroc/pooled": [0.90, 0.80], "auroc/within": [0.70, 0.75], "ece/calibrated": [0.02, 0.03],
         "cost/extra_ms_per_sample": [0.1, 0.0]},
        index=pd.Index(methods, name="method"),
    )  # fmt: skip
    rules = {"weighted_majority": (0.80, 0.78), "best_of_k": (0.70, 0.72),
             "filtered_top10": (0.6, 0.6), "filtered_top90": (0.79, 0.77)}  # fmt: skip
    scaling = [("majority", "majority", 8, 0.75)]
    scaling += [(m, rule, 8, acc[i]) for rule, acc in rules.items() for i, m in enumerate(methods)]
    adaptive = [("laser", t, s, a) for t, s, a in ((0.5, 3.0, 0.780), (0.7, 4.5, 0.796), (1.0, 8.0, 0.80))]
    adaptive += [("mean_logprob", t, s, a) for t, s, a in ((0.5, 3.0, 0.70), (1.0, 8.0, 0.77))]
    estimate = [("laser", "none", "pass@1", 0.62, 0.60, 0.64, 0.60, 0.58, 0.62, 0.02),
                ("laser", "transfer", "pass@1", 0.55, 0.50, 0.60, 0.60, 0.58, 0.62, -0.05)]  # fmt: skip
    columns = ["method", "calibration", "target", "predicted", "predicted_low", "predicted_high",
               "true", "true_low", "true_high", "error"]  # fmt: skip
    return Evaluation(
        label=label, overrides=["ckpt_path=run", f"split={split}"], commit="abc1234", threads=1,
        confidence=confidence,
        scaling=pd.DataFrame(scaling, columns=["method", "rule", "k", "accuracy"]),
        adaptive=pd.DataFrame(adaptive, columns=["method", "threshold", "mean_samples", "accuracy"]),
        estimate=pd.DataFrame(estimate, columns=columns),
    )  # fmt: skip


def test_adaptive_reach_is_the_fewest_samples_within_half_a_point_of_weighted_voting() -> None:
    ev = evaluation()
    assert adaptive_reach(ev, "laser") == (0.80, 4.5, 0.80)  # 0.780 is 2 points short, 0.796 within 0.5
    target, fewest, best = adaptive_reach(ev, "mean_logprob")
    assert (target, best) == (0.78, 0.77) and fewest != fewest  # never within 0.5 pt of 0.78


def test_losses_name_the_method_the_metric_and_the_gap() -> None:
    lines = losses(evaluation())
    assert lines == [
        "laser: `mean_logprob` beats `laser` on AUROC within by 0.0500",
        "laser: `mean_logprob` beats `laser` on best-of-8 by 0.0200",
    ]


def test_checks_judge_the_final_laser_policy_and_skip_calibration_splits() -> None:
    text = checks_table([evaluation(), evaluation("laser_early", split="train")])
    assert "estimate (none) − true pass@1, |pts| | 2.0 | ≤ 3 | met" in text
    assert "estimate (transfer) − true pass@1, |pts| | 5.0 | ≤ 3 | **missed**" in text
    assert "| 56% (4.50) | ≤ 60% | met |" in text
    assert "laser_early" not in text and "laser_early" not in methods_table(
        [evaluation("laser_early", "train")]
    )


def test_footer_commands_carry_no_machine_paths() -> None:
    assert portable("ckpt_path=/home/me/laser/outputs/showcase/multiruns/d/1") == (
        "ckpt_path=outputs/showcase/multiruns/d/1"
    )
    assert portable("confidence.calibration.source=/tmp/evals/laser_early") == (
        "confidence.calibration.source=laser_early"
    )
    assert portable("split=train") == "split=train"

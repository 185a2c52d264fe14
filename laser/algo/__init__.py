"""Pure-math core of LaSeR: advantages, losses, self-reward score and metrics (torch only)."""

from laser.algo.advantages import (
    group_advantages,
    self_reward_advantages,
    self_reward_as_reward,
    varied_groups,
    zero_variance_frac,
)
from laser.algo.dynamic_sampling import fill_order, group_rows
from laser.algo.importance import importance_log_ratio, truncated_is_weights
from laser.algo.kl import kl_estimate, kl_penalty
from laser.algo.masked import aggregate_loss, masked_mean, masked_sum
from laser.algo.objective import OBJECTIVE_STATS, laser_objective
from laser.algo.overlong import mask_truncated, overlong_penalty
from laser.algo.policy_loss import clipped_policy_loss
from laser.algo.scaling import best_of_k, pass_at_k, scaling_curves, vote
from laser.algo.schedule import StepPhase, lr_factor, step_phase, switch_step
from laser.algo.self_reward import check_c_ref, self_reward_ce, self_reward_mse, self_reward_score
from laser.algo.stats import MicroBatchStats, Reduction, average_ranks, summarize
from laser.algo.verification import (
    auroc,
    best_threshold_f1,
    difficulty_auroc,
    expected_calibration_error,
    grouped_auroc,
    length_correlations,
    self_verify_metrics,
    spearman,
)

__all__ = [
    "OBJECTIVE_STATS",
    "MicroBatchStats",
    "Reduction",
    "StepPhase",
    "aggregate_loss",
    "auroc",
    "average_ranks",
    "best_of_k",
    "best_threshold_f1",
    "check_c_ref",
    "clipped_policy_loss",
    "difficulty_auroc",
    "expected_calibration_error",
    "fill_order",
    "group_advantages",
    "group_rows",
    "grouped_auroc",
    "importance_log_ratio",
    "kl_estimate",
    "kl_penalty",
    "laser_objective",
    "length_correlations",
    "lr_factor",
    "mask_truncated",
    "masked_mean",
    "masked_sum",
    "overlong_penalty",
    "pass_at_k",
    "scaling_curves",
    "self_reward_advantages",
    "self_reward_as_reward",
    "self_reward_ce",
    "self_reward_mse",
    "self_reward_score",
    "self_verify_metrics",
    "spearman",
    "step_phase",
    "summarize",
    "switch_step",
    "truncated_is_weights",
    "varied_groups",
    "vote",
    "zero_variance_frac",
]

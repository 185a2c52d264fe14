"""The names of the metrics a run logs, in one place: `{stage}/{quantity}/{stat}`.

The code that makes a metric takes its name from here, and so does the analysis that reads it
(`analysis/`): a renamed metric is renamed for both, and a plot or table that asks a run for a
metric its `metrics.csv` does not have fails with the metric's name and the file
(`analysis.runs.MissingMetricError`) instead of drawing an empty panel.

The names below are without their stage (`accuracy`); `train(name)` and `val(name)` give the
logged one (`val/accuracy`). Keep the names themselves: committed runs (`docs/results/runs/`) are
read by them. This module imports nothing, so that anything can import it (no torch, Lightning or
transformers).
"""

from __future__ import annotations

# -- stages: the first part of a logged name ---------------------------------------------------
TRAIN = "train"
VAL = "val"
SUMMARY = "summary"  # the run's summary.json: the last evaluations, averaged, and c_ref
C_REF = "c_ref"  # `summary/c_ref`


def logged(stage: str, name: str) -> str:
    """`{stage}/{name}`, the name a metric is logged under."""
    return f"{stage}/{name}"


def train(name: str) -> str:
    """`train/{name}`."""
    return logged(TRAIN, name)


def val(name: str) -> str:
    """`val/{name}`."""
    return logged(VAL, name)


# -- the stats of a distribution (`laser.algo.stats.summarize`) ----------------------------------
MEAN, STD, MIN, MAX, MEDIAN = "mean", "std", "min", "max", "median"
SUMMARY_STATS = (MEAN, STD, MIN, MAX)


def stat(quantity: str, name: str) -> str:
    """`{quantity}/{name}`, one stat of a quantity (`reward/mean`)."""
    return f"{quantity}/{name}"


def summary_names(quantity: str) -> tuple[str, ...]:
    """The names `summarize(quantity, ...)` gives: `{quantity}/mean`, `/std`, `/min`, `/max`."""
    return tuple(stat(quantity, s) for s in SUMMARY_STATS)


# -- responses and rewards (`laser.lit.metrics.rollout_metrics`, `laser.lit.module`) -------------
REWARD = "reward"  # the verifier's 0/1 reward, summarized
REWARD_MEAN = stat(REWARD, MEAN)
ACCURACY = "accuracy"
ACCURACY_GREEDY = "accuracy_greedy"  # validation, greedy decoding
RESPONSE_LENGTH = "response/length"  # summarized
TRUNCATED_FRAC = "response/truncated_frac"
ZERO_STD_FRAC = "reward/zero_std_frac"  # groups whose training rewards are all equal
TRAINING_REWARD_MEAN = "reward/training/mean"  # the shaped rewards the advantages use
TOKENS_RESPONSE = "tokens/response"
TOKENS_PROMPT = "tokens/prompt"
VERIFIER = "verifier"  # `verifier/{count}`: the verifier's own counts of its last call
VERIFIER_COUNTS = ("math_verify", "timeouts", "killed_workers")

# -- dynamic sampling (`laser.lit.sampling`) ----------------------------------------------------
SAMPLES_DRAWN = "rollout/samples_drawn"
DROPPED_FRAC = "rollout/dropped_frac"
ROUNDS = "rollout/rounds"

# -- the reward source after the switch (`laser.lit.reward_source`) ------------------------------
REWARD_SOURCE_SELF = "reward_source/self"  # 1 once the self-reward is the only reward
REWARD_SOURCE_REWARD_MEAN = "reward_source/reward/mean"  # the reward the advantages came from

# -- the objective's terms (`laser.algo`) -------------------------------------------------------
LOSS_TOTAL = "loss/total"
POLICY_LOSS = "policy/loss"
POLICY_CLIPFRAC = "policy/clipfrac"
POLICY_DUAL_CLIPFRAC = "policy/dual_clipfrac"
POLICY_APPROX_KL = "policy/approx_kl"
POLICY_ENTROPY = "policy/entropy"
POLICY_GRAD_NORM = "policy/grad_norm"
POLICY_LR = "policy/lr"
KL_MEAN = "kl/mean"
ROLLOUT_IS_MEAN = "rollout_is/mean"
ROLLOUT_IS_TRUNCATED_FRAC = "rollout_is/truncated_frac"
ROLLOUT_LOGP_GAP = "rollout_logp_gap"  # the sampler's against the training pass's log-probs
ROLLOUT_LOGP_GAP_MEAN = stat(ROLLOUT_LOGP_GAP, MEAN)
ROLLOUT_LOGP_GAP_MAX = stat(ROLLOUT_LOGP_GAP, MAX)

# -- the self-reward (`laser.algo.self_reward`, `laser.lit.metrics`) -----------------------------
SELF_REWARD_MSE = "self_reward/mse"
SELF_REWARD_CE = "self_reward/ce"
FILTERED_FRAC = "self_reward/filtered_frac"  # groups whose scores' std is too low to mix (E6)
SCORE = "self_reward/score"  # finished responses' scores, summarized
SCORE_CORRECT = "self_reward/score_correct"  # summarized; absent while no response is correct
SCORE_INCORRECT = "self_reward/score_incorrect"  # summarized; absent while none is incorrect
Z_LOGP_IN_RESPONSE = "self_reward/z_logp_in_response"  # log pi(z) at the response's positions
Z_LOGP_IN_RESPONSE_MAX = stat(Z_LOGP_IN_RESPONSE, MAX)
Z_LOGP_IN_RESPONSE_MEDIAN = stat(Z_LOGP_IN_RESPONSE, MEDIAN)

# -- self-verification (`laser.algo.verification`) ----------------------------------------------
SELF_VERIFY_ACC_CORRECT = "self_verify/acc_correct"
SELF_VERIFY_ACC_INCORRECT = "self_verify/acc_incorrect"
SELF_VERIFY_F1 = "self_verify/f1"
SELF_VERIFY_PR_F1 = "self_verify/pr_f1"
SELF_VERIFY_AUROC = "self_verify/auroc"
SELF_VERIFY_ECE = "self_verify/ece"
SELF_VERIFY_LENGTH_SPEARMAN = "self_verify/length_spearman"  # pooled
SELF_VERIFY_LENGTH_SPEARMAN_CORRECT = "self_verify/length_spearman_correct"
SELF_VERIFY_LENGTH_SPEARMAN_INCORRECT = "self_verify/length_spearman_incorrect"

# the quantities logged as summaries (`{quantity}/mean`, `/std`, `/min`, `/max`)
SUMMARIZED = (REWARD, RESPONSE_LENGTH, SCORE, SCORE_CORRECT, SCORE_INCORRECT)

# -- side outputs, straight to the loggers and not a result of the run (`laser.lit.callbacks`) ---
TIMING = "timing_s"  # `timing_s/{stage}` (`laser.lit.timing`)
MEMORY_PEAK_GIB = "memory/peak_gib"
MEMORY_PEAK_RSS_GIB = "memory/peak_rss_gib"
SCORE_HISTOGRAM = "self_reward/hist"  # `self_reward/hist/{correct,incorrect}` (W&B)
SAMPLES_TABLE = "samples"  # the completions table (W&B)


def timing(stage: str) -> str:
    """`timing_s/{stage}`, the seconds a stage of the training step took."""
    return f"{TIMING}/{stage}"


# the end-of-run voting evaluation's numbers in summary.json (`laser.eval.final`)
FINAL = "final"
AUROC_WITHIN = "self_verify/auroc_within"  # within each prompt's samples


def final(name: str) -> str:
    """`final/{name}`: a number of the end-of-run evaluation."""
    return f"{FINAL}/{name}"


def final_vote(method: str, k: int) -> str:
    """`final/{method}@{k}`: a voting rule's accuracy at k samples in the end-of-run evaluation."""
    return f"{FINAL}/{method}@{k}"


def summary(name: str) -> str:
    """`summary/{name}`: the mean over the run's last evaluations (summary.json)."""
    return f"{SUMMARY}/{name}"

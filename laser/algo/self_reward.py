"""Last-token self-reward: the score (E3) and the verification losses that train it, the
class-balanced MSE (E5) or the SFT cross-entropy the paper compares it with (section 5)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from laser import metric_names as names
from laser.algo.stats import Reduction, summarize

VerifyLoss = Literal["mse", "sft"]

# the stats of `self_reward_mse` and of `self_reward_ce`, and how a step's micro-batches combine
# them. The MSE and the per-class summaries are computed again over the whole step (the module's
# self-reward metrics, with the same counts): a micro-batch may lack a class.
MSE_STATS = {
    names.SELF_REWARD_MSE: Reduction.STEP,
    **dict.fromkeys(names.summary_names(names.SCORE_CORRECT), Reduction.STEP),
    **dict.fromkeys(names.summary_names(names.SCORE_INCORRECT), Reduction.STEP),
}
CE_STATS = {names.SELF_REWARD_CE: Reduction.SHARE}  # normalised by the step's counts


def self_reward_score(
    z_logp: Tensor, c_ref: float | Tensor, beta_v: float, loss: VerifyLoss = "mse"
) -> Tensor:
    """The self-reward score that a verification loss trains.

    ``"mse"``: the last-token self-rewarding score (E3), r_s = beta_v * (log pi(z_c | x, y) - c_ref),
    regressed onto the 0/1 reward. ``"sft"``: pi(z_c | x, y) itself, the probability that the
    cross-entropy of :func:`self_reward_ce` pushes to 1 on correct responses (``c_ref`` and
    ``beta_v`` unused). Either way a score above 0.5 reads as "correct" and [0, 1] is its range
    as a probability. (The official code's SFT metrics threshold the probability of the token
    written for the row's label, z_i on incorrect rows, which reads that label back.)

    Args:
        z_logp: (N,) log pi_theta(z_c | x, y) at temperature 1, read from the next-token
            distribution at the EOS position.
        c_ref: Constant E[log pi_ref(z_c | x, y)] (float), or (N,) reference log-probs.
        beta_v: KL weight of the verification objective (E2), > 0.
        loss: The verification loss, ``"mse"`` or ``"sft"``.

    Returns:
        (N,) scores (differentiable in ``z_logp``).
    """
    match loss:
        case "mse":
            return beta_v * (z_logp - c_ref)
        case "sft":
            return z_logp.exp()
        case _:
            raise ValueError(f"unknown verification loss {loss!r}; use 'mse' or 'sft'")


def _beta_v_advice(c_ref: float, max_target_logprob: float) -> str:
    """How to bring c_ref + 1/beta_v down to ``max_target_logprob``."""
    gap = max_target_logprob - c_ref
    if gap > 0:
        return f"raise beta_v to at least 1/({max_target_logprob} - c_ref) = {1.0 / gap:.4g}, or"
    return "no beta_v can fix this since c_ref >= max_target_logprob;"


def _prob_text(logprob: float) -> str:
    """exp(logprob) as text, or a note that it is not a probability (log-prob > 0)."""
    return f"{math.exp(logprob):.3g}" if logprob <= 0 else f"exp({logprob:.3g}) > 1, unreachable"


def check_c_ref(c_ref: float, beta_v: float, max_target_logprob: float = -3.0) -> None:
    """Check that E2/E3's log Z ~ 0 approximation holds for this c_ref and beta_v.

    A correct response is pushed to log pi(z_c) = c_ref + 1/beta_v (E3 targets); the
    approximation needs this to be a small probability, i.e. at most ``max_target_logprob``.

    Args:
        c_ref: Constant reference log-prob of the self-reward token, finite and negative.
        beta_v: Verification KL weight, > 0.
        max_target_logprob: Largest allowed target log-prob (default -3, probability ~0.05).

    Raises:
        ValueError: If ``beta_v <= 0``, ``c_ref`` is not finite, or the target log-prob
            c_ref + 1/beta_v exceeds ``max_target_logprob``.
    """
    if not (math.isfinite(beta_v) and beta_v > 0):
        raise ValueError(f"beta_v must be a finite positive number, got beta_v={beta_v}")
    if not math.isfinite(c_ref):
        raise ValueError(f"c_ref must be finite, got c_ref={c_ref}")
    target = c_ref + 1.0 / beta_v
    if target > max_target_logprob:
        raise ValueError(
            f"c_ref={c_ref} and beta_v={beta_v} put the target log-prob of a correct response "
            f"at c_ref + 1/beta_v = {target:.4g} (probability {_prob_text(target)}), above "
            f"max_target_logprob="
            f"{max_target_logprob}; the log Z ~ 0 approximation (E2/E3) needs a small "
            f"probability. To fix: {_beta_v_advice(c_ref, max_target_logprob)} pick a rarer "
            "self-reward token so that c_ref is lower."
        )


def _class_weights(n_c: Tensor, n_i: Tensor, balanced: bool) -> tuple[Tensor, Tensor]:
    """E5 class weights w_c = (N_c+N_i)/(2 N_c), w_i = (N_c+N_i)/(2 N_i); empty class -> 0."""
    if not balanced:
        return torch.ones_like(n_c), torch.ones_like(n_i)
    total = n_c + n_i
    w_c = torch.where(n_c > 0, total / (2.0 * torch.where(n_c > 0, n_c, 1.0)), 0.0)
    w_i = torch.where(n_i > 0, total / (2.0 * torch.where(n_i > 0, n_i, 1.0)), 0.0)
    return w_c, w_i


def _count(value: float | Tensor | None, local: Tensor) -> Tensor:
    """Step-level count if given, else the local count, as a float tensor like ``local``."""
    return local if value is None else torch.as_tensor(value, dtype=local.dtype)


def _row_weights(
    like: Tensor,
    rewards: Tensor,
    finished: Tensor,
    balanced: bool,
    num_correct: float | Tensor | None,
    num_incorrect: float | Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """E5 weight of each row (0 where truncated), the normaliser N_c + N_i (1 when 0), and the
    finished-correct and finished-incorrect masks; in ``like``'s dtype and device."""
    done = finished.bool()  # (N,)
    correct = done & (rewards > 0.5)  # (N,)
    incorrect = done & ~(rewards > 0.5)  # (N,)
    n_c = _count(num_correct, correct.sum().to(like.dtype)).to(like.device)
    n_i = _count(num_incorrect, incorrect.sum().to(like.dtype)).to(like.device)
    w_c, w_i = _class_weights(n_c, n_i, balanced)
    weight = torch.where(correct, w_c, torch.where(incorrect, w_i, 0.0)).to(like.dtype)  # (N,)
    total = n_c + n_i
    return weight, torch.where(total > 0, total, 1.0), correct, incorrect


def self_reward_mse(
    scores: Tensor,
    rewards: Tensor,
    finished: Tensor,
    balanced: bool = True,
    num_correct: float | Tensor | None = None,
    num_incorrect: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Class-balanced self-reward MSE (E5): sum(w * (r_s - r_v)^2) / (N_c + N_i).

    Truncated responses (no EOS) are excluded from the loss and from the counts. Passing the
    step-level ``num_correct`` / ``num_incorrect`` makes the loss additive over micro-batches.

    Args:
        scores: (N,) self-reward scores r_s (E3, raw, not clipped; with grad).
        rewards: (N,) verifier rewards r_v in {0, 1}.
        finished: (N,) bool, true where the response ended with EOS.
        balanced: Use the E5 weights (each class gets half the total weight); else all 1.
        num_correct: N_c, finished correct responses of the whole step (default: local).
        num_incorrect: N_i, finished incorrect responses of the whole step (default: local).

    Returns:
        ``(loss, stats)``: scalar loss (0 with the graph intact when no row is finished) and
        ``self_reward/mse`` plus summaries ``self_reward/score_correct/*`` and
        ``self_reward/score_incorrect/*`` over finished rows.
    """
    target = rewards.to(scores.dtype)  # (N,)
    weight, total, correct, incorrect = _row_weights(
        scores, target, finished, balanced, num_correct, num_incorrect
    )
    done = finished.bool()  # (N,)
    sq_err = torch.where(done, weight * (scores - target) ** 2, 0.0)  # (N,)
    loss = sq_err.sum() / total
    stats = {
        names.SELF_REWARD_MSE: loss.detach(),
        **summarize(names.SCORE_CORRECT, scores, correct),
        **summarize(names.SCORE_INCORRECT, scores, incorrect),
    }
    return loss, stats


def self_reward_ce(
    z_logp: Tensor,
    incorrect_logp: Tensor,
    rewards: Tensor,
    finished: Tensor,
    balanced: bool = True,
    num_correct: float | Tensor | None = None,
    num_incorrect: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SFT verification loss (paper section 5, the official ``use_sft_loss``): the class-weighted
    cross-entropy of a verdict token after EOS, sum(w * nll) / (N_c + N_i), where nll is
    -log pi(z_c | x, y) on correct and -log pi(z_i | x, y) on incorrect responses.

    It pushes pi(z_c) to 1 on correct responses, where the MSE's target is a probability near
    exp(c_ref + 1/beta_v). Rows, weights and normaliser are those of :func:`self_reward_mse`
    (the official code averages over all rows of a micro-batch, truncated ones included).

    Args:
        z_logp: (N,) log pi_theta(z_c | x, y) at the EOS position, temperature 1 (with grad).
        incorrect_logp: (N,) log pi_theta(z_i | x, y) at the same position (with grad).
        rewards: (N,) verifier rewards in {0, 1}.
        finished: (N,) bool, true where the response ended with EOS.
        balanced: Class-balanced weights (E5); else all 1.
        num_correct: N_c of the whole step (default: local).
        num_incorrect: N_i of the whole step (default: local).

    Returns:
        ``(loss, stats)``: scalar loss (0 with the graph intact when no row is finished) and
        ``self_reward/ce``.
    """
    weight, total, correct, _ = _row_weights(z_logp, rewards, finished, balanced, num_correct, num_incorrect)
    nll = -torch.where(correct, z_logp, incorrect_logp)  # (N,)
    loss = torch.where(finished.bool(), weight * nll, 0.0).sum() / total
    return loss, {names.SELF_REWARD_CE: loss.detach()}

"""The training forward: per-token log-probs of the response and the self-reward log-prob.

One forward over prompt + response. The response's log-probs and entropy are taken over the
sampler's distribution (`SamplingDistribution`: banned ids removed, tempered), the policy that was
sampled. The self-reward log-prob log pi(z | x, y) is read from the full-vocabulary, temperature-1
next-token distribution at the EOS position, which this forward computes anyway: no token is
inserted, and every pass (policy, reference) reads the same position as the rollout's extra step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from laser.rollout.distribution import SamplingDistribution, token_entropy
from laser.rollout.generate import position_ids_from_mask
from laser.rollout.types import Rollout


@dataclass
class SequenceLogprobs:
    """Outputs of `sequence_logprobs` for N rows.

    Attributes:
        logp: (N, R) log pi(y_t | x, y_<t) under the sampler's distribution (0 where masked).
        z_logp: (N,) log pi(z | x, y) at temperature 1 at the EOS position (0 for truncated rows).
        entropy: (N, R) entropy of the sampler's next-token distribution (no grad), or None.
        incorrect_logp: (N,) log pi(z_i | x, y) at the same position, the SFT loss's second
            verdict token (0 for truncated rows), or None when not asked for.
        z_in_response: (N, R) log pi(z | x, y_<t) over the full vocabulary at temperature 1 at each
            response position (no grad): the mass the policy puts on the token it never samples,
            which a sampled policy that drifted from the trained one lets grow; None unless asked
            for (`with_z_in_response`, a full-vocabulary reduction the other passes skip).
    """

    logp: torch.Tensor
    z_logp: torch.Tensor
    entropy: torch.Tensor | None
    incorrect_logp: torch.Tensor | None = None
    z_in_response: torch.Tensor | None = None


def eos_index(rollout: Rollout) -> torch.Tensor:
    """(N,) index of the EOS token within the response (the last one kept by the mask)."""
    return (rollout.lengths - 1).clamp(min=0)


def sequence_logprobs(
    model: torch.nn.Module,
    rollout: Rollout,
    self_reward_id: int | None,
    distribution: SamplingDistribution | None = None,
    with_entropy: bool = False,
    incorrect_id: int | None = None,
    with_z_in_response: bool = False,
) -> SequenceLogprobs:
    """Forward prompt + response once and gather the response's log-probs under `distribution`
    (None: the full vocabulary at temperature 1, as supervised fine-tuning trains it) and the z
    log-prob (and z_i's, from the same distribution, when `incorrect_id` is given)."""
    distribution = distribution or SamplingDistribution()
    ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=-1)  # (N, P + R)
    mask = torch.cat([rollout.prompt_mask, rollout.response_mask], dim=-1)
    r = rollout.response_ids.shape[1]
    # logits at positions P-1 .. P+R-1: predictions for each response token and, at index e + 1,
    # the distribution after the EOS at response index e
    logits = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids_from_mask(mask),
        use_cache=False,
        logits_to_keep=r + 1,
    ).logits.float()  # (N, R + 1, V)
    scaled = distribution.log_probs(logits[:, :r])  # (N, R, V)
    logp = scaled.gather(-1, rollout.response_ids.unsqueeze(-1)).squeeze(-1)  # (N, R)
    logp = logp * rollout.response_mask
    z_logp = torch.zeros(len(rollout), device=ids.device)
    incorrect_logp = z_in_response = None
    if self_reward_id is not None:
        if with_z_in_response:
            with torch.no_grad():
                z_in_response = logits[:, :r, self_reward_id] - logits[:, :r].logsumexp(-1)  # (N, R)
        after_eos = logits[torch.arange(len(rollout)), eos_index(rollout) + 1]  # (N, V)
        verdicts = torch.log_softmax(after_eos, dim=-1)  # (N, V)
        z_logp = verdicts[:, self_reward_id] * rollout.finished
        if incorrect_id is not None:
            incorrect_logp = verdicts[:, incorrect_id] * rollout.finished
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = token_entropy(scaled)  # (N, R)
    return SequenceLogprobs(logp, z_logp, entropy, incorrect_logp, z_in_response)

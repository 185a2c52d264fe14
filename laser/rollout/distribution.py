"""What the sampler may draw: one definition shared by the rollout and every log-prob pass.

The policy that RL trains is the distribution the sampler draws from: the model's logits with the
banned ids (the self-reward token z, and the SFT loss's second verdict token) removed, divided by
the temperature. The rollout, old-policy, current-policy and reference passes all take their
response log-probs, entropy and KL over it, so a banned token gets no gradient from the policy
loss (over the full vocabulary its logit would move only through the softmax normaliser, a push
that no sampled token ever pulls back).

Top-p < 1 truncates the tail at sampling time only: the training passes keep the untruncated
distribution (as peers do), so the two differ by design there and `train/rollout_logp_gap` shows
by how much. The self-reward log pi(z | x, y) is not read from this distribution: it stays the
paper's full-vocabulary, temperature-1 next-token log-prob after EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingDistribution:
    """Temperature, nucleus and banned ids of the sampler; temperature 0 is greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    banned_ids: tuple[int, ...] = ()

    @classmethod
    def of(
        cls, temperature: float, top_p: float, self_reward_id: int | None, banned_ids=()
    ) -> SamplingDistribution:
        """The sampler's distribution: the self-reward token z is never drawn, nor `banned_ids`."""
        banned = ([] if self_reward_id is None else [self_reward_id]) + list(banned_ids)
        return cls(temperature, top_p, tuple(dict.fromkeys(banned)))

    def allowed_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., V) float logits with the banned ids at -inf (a copy)."""
        logits = logits.float()
        if not self.banned_ids:
            return logits
        banned = torch.tensor(self.banned_ids, device=logits.device)
        return logits.index_fill(-1, banned, -torch.inf)

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., V) log-probs of the trained policy: banned ids removed (-inf), tempered, no top-p.
        Greedy decoding (temperature 0) is scored at temperature 1."""
        return torch.log_softmax(self.allowed_logits(logits) / (self.temperature or 1.0), dim=-1)


def token_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """(...,) entropy of (..., V) log-probs; a banned id (-inf) adds 0, not NaN."""
    probs = log_probs.exp()
    return -(probs * log_probs.masked_fill(probs == 0, 0.0)).sum(-1)

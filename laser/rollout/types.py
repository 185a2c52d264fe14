"""The rollout batch passed from sampling to verification and the training forward."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Rollout:
    """N = B * G sampled completions (a prompt's G completions are consecutive rows).

    Attributes:
        prompt_ids: (N, P) prompt tokens, left-padded.
        prompt_mask: (N, P) 1 on prompt tokens, 0 on padding.
        response_ids: (N, R) sampled tokens, right-padded with the pad id after EOS.
        response_mask: (N, R) 1 on response tokens up to and including EOS.
        finished: (N,) True where the response ended with EOS (False: truncated).
        z_logp: (N,) log pi(z | x, y) read one step after EOS at temperature 1 (the in-rollout
            self-reward log-prob), NaN where not finished; None when the rollout did not score.
        logp: (N, R) each sampled token's log-prob under the distribution the sampler drew it from
            (0 after the response); None for rollouts not made by the sampler.
        token_self_certainty: (N, R) KL(U || p_t) of each step's next-token distribution p_t (full
            vocabulary, temperature 1; 0 after the response); None unless the sampler was asked.
        token_confidence: (N, R) DeepConf's token confidence of each step, -mean of p_t's top-k
            log-probs (0 after the response); None unless the sampler was asked.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    finished: torch.Tensor
    z_logp: torch.Tensor | None = None
    logp: torch.Tensor | None = None
    token_self_certainty: torch.Tensor | None = None
    token_confidence: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        """(N,) response lengths in tokens, EOS included."""
        return self.response_mask.sum(-1)

    def rows(self, index: slice | torch.Tensor) -> Rollout:
        """The rollout restricted to some rows (a micro-batch)."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name)[index]
                for f in fields(self)
                if getattr(self, f.name) is not None
            },
        )

    def split(self, size: int) -> list[Rollout]:
        """Consecutive micro-batches of at most `size` rows."""
        return [self.rows(slice(i, i + size)) for i in range(0, len(self), size)]

    @staticmethod
    def cat(parts: list[Rollout], pad_id: int) -> Rollout:
        """Concatenate rollouts whose prompt/response widths may differ (re-padding as needed)."""
        p_width = max(r.prompt_ids.shape[1] for r in parts)
        r_width = max(r.response_ids.shape[1] for r in parts)

        def pad(x: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
            extra = width - x.shape[1]
            return torch.nn.functional.pad(x, (extra, 0) if left else (0, extra), value=value)

        def per_token(name: str) -> torch.Tensor | None:  # (N, R) right-padded with 0, if all have it
            values = [getattr(r, name) for r in parts]
            if any(v is None for v in values):
                return None
            return torch.cat([pad(v, r_width, 0, False) for v in values])

        z = [r.z_logp for r in parts]
        return Rollout(
            prompt_ids=torch.cat([pad(r.prompt_ids, p_width, pad_id, True) for r in parts]),
            prompt_mask=torch.cat([pad(r.prompt_mask, p_width, 0, True) for r in parts]),
            response_ids=torch.cat([pad(r.response_ids, r_width, pad_id, False) for r in parts]),
            response_mask=torch.cat([pad(r.response_mask, r_width, 0, False) for r in parts]),
            finished=torch.cat([r.finished for r in parts]),
            z_logp=None if any(v is None for v in z) else torch.cat(z),
            logp=per_token("logp"),
            token_self_certainty=per_token("token_self_certainty"),
            token_confidence=per_token("token_confidence"),
        )

"""Batched sampling with a KV cache, scoring the self-reward token one step after EOS.

The self-reward log-prob log pi(z | x, y) is the next-token distribution after the EOS token: the
paper's "one additional token". A row that emits EOS at step t is fed that EOS at step t + 1 like
any other sampled token, and the logits of step t + 1 give log p(z). The unfinished rows take that
step anyway, so scoring costs at most one extra decoding step per batch (after the last EOS), and
that step feeds only the rows that emitted EOS last (the KV cache narrowed to them).

"EOS" is any of the stop ids: chat models end a turn with their own token (Qwen's <|im_end|>) while
the tokenizer's EOS may be another (<|endoftext|>); a response ends at the first stop id it emits,
and its score is read after that token.

Asked for, the loop also records per-token statistics of each step's next-token distribution (full
vocabulary, temperature 1) for the training-free confidences of `laser.algo.confidence`: they read
the logits the step computes anyway and draw nothing, so the sampled tokens stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from laser.algo.confidence import token_confidence, token_self_certainty
from laser.rollout.distribution import SamplingDistribution
from laser.rollout.types import Rollout


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """(N, L) positions that skip left padding: 0 on the first real token of each row."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def sample_next(
    logits: torch.Tensor, dist: SamplingDistribution, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) next tokens from (N, V) logits, and (N,) the log-prob of each under the distribution it
    was drawn from (banned ids removed, tempered, top-p truncated; 0 for greedy's point mass)."""
    logits = dist.allowed_logits(logits)  # (N, V)
    if dist.temperature == 0:
        tok = logits.argmax(-1)
        return tok, torch.zeros(tok.shape, device=logits.device)
    scaled = logits / dist.temperature
    probs = torch.softmax(scaled, dim=-1)  # (N, V)
    if dist.top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= dist.top_p  # keep the smallest set with mass >= top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    logp = scaled.gather(-1, tok[:, None]).squeeze(-1) - scaled.logsumexp(-1)  # (N,)
    if dist.top_p < 1.0:  # renormalised over the nucleus
        logp = logp - probs.sum(-1).log()
    return tok, logp


def score_step(model, cache, tok, mask, next_pos, pending, z_logp, self_reward_id: int) -> None:
    """The decoding step only the score needs, after the last EOS: feed the rows that emitted EOS
    just now (the cache narrowed to them where it can be) and read log p(z) after it into `z_logp`."""
    rows = narrow_cache(cache, pending)
    fed = slice(None) if rows is None else rows
    out = model(
        input_ids=tok[fed, None], attention_mask=mask[fed], position_ids=next_pos[fed, None],
        cache=cache, use_cache=True,
    )  # fmt: skip
    z = torch.log_softmax(out.logits[:, -1].float(), -1)[:, self_reward_id]  # (rows fed,)
    z_logp[fed] = z if rows is not None else z_logp[fed].where(~pending, z)


def narrow_cache(cache, keep: torch.Tensor) -> torch.Tensor | None:
    """Keep only the rows `keep` (N,) bool of a KV cache, in place, and return their indices (K,);
    None, leaving the cache whole, for a cache that cannot (a layer without `batch_select_indices`,
    e.g. a static cache)."""
    parts = [cache, *getattr(cache, "layers", [])]
    if not all(callable(getattr(part, "batch_select_indices", None)) for part in parts):
        return None
    rows = keep.nonzero().squeeze(-1)  # (K,)
    cache.batch_select_indices(rows)
    return rows


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    eos_id: int | Sequence[int],
    pad_id: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    self_reward_id: int | None = None,
    score: bool = True,
    generator: torch.Generator | None = None,
    banned_ids: Sequence[int] = (),
    self_certainty: bool = False,
    confidence_top_k: int = 0,
    timer=None,
) -> Rollout:
    """Sample one completion per row of a left-padded prompt batch.

    Args:
        model: a causal LM (transformers API) in eval mode.
        prompt_ids: (N, P) left-padded prompt tokens.
        prompt_mask: (N, P) 1 on real tokens.
        eos_id: the EOS id, or several stop ids (the first one emitted ends the response).
        pad_id: the pad id (filled in after the end).
        max_new_tokens: responses without EOS by then are truncated (finished = False).
        temperature, top_p: sampling parameters (temperature 0 = greedy).
        self_reward_id: the self-reward token z; never sampled.
        score: read log p(z) one step after each EOS (at temperature 1) into `Rollout.z_logp`.
        generator: RNG for reproducible sampling.
        banned_ids: further ids never sampled (the SFT loss's second verdict token).
        self_certainty: record each step's KL(U || p) into `Rollout.token_self_certainty`.
        confidence_top_k: k > 0 records each step's DeepConf token confidence (-mean of the top-k
            log-probs) into `Rollout.token_confidence`; 0 records none.
        timer: a `StageTimer` (laser.lit.timing) that times the score's extra step as `score`.
    """
    n = prompt_ids.shape[0]
    device = prompt_ids.device
    stop_ids = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=device)
    dist = SamplingDistribution.of(temperature, top_p, self_reward_id, banned_ids)
    score = score and self_reward_id is not None
    mask = prompt_mask.long()
    pos = position_ids_from_mask(mask)
    out = model(
        input_ids=prompt_ids,
        attention_mask=mask,
        position_ids=pos,
        use_cache=True,
        logits_to_keep=1,
    )
    cache, logits, next_pos = out.cache, out.logits[:, -1], pos[:, -1] + 1
    done = torch.zeros(n, dtype=torch.bool, device=device)
    pending = torch.zeros_like(done)  # emitted EOS at the previous step, score not read yet
    z_logp = torch.full((n,), float("nan"), device=device)
    tokens: list[torch.Tensor] = []
    logps: list[torch.Tensor] = []  # each sampled token's log-prob under the distribution drawn from
    stats: dict[str, list[torch.Tensor]] = {}  # per-token confidence statistics, when asked for
    for step in range(max_new_tokens):
        if pending.any():
            z_logp[pending] = torch.log_softmax(logits[pending].float(), -1)[:, self_reward_id]
        if self_certainty or confidence_top_k:
            record_token_stats(stats, logits, done, self_certainty, confidence_top_k)
        tok, logp = sample_next(logits, dist, generator)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        tokens.append(tok)
        logps.append(logp.masked_fill(done, 0.0))
        stops = torch.isin(tok, stop_ids)
        pending = ~done & stops if score else pending
        done = done | stops
        last = step == max_new_tokens - 1 or bool(done.all())
        if last and not pending.any():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        if last:  # the score's step alone, timed as the score's cost
            with timer.stage("score") if timer is not None else nullcontext():
                score_step(model, cache, tok, mask, next_pos, pending, z_logp, self_reward_id)
            break
        out = model(
            input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos[:, None], cache=cache,
            use_cache=True,
        )  # fmt: skip
        cache, logits, next_pos = out.cache, out.logits[:, -1], next_pos + 1
    response = torch.stack(tokens, dim=1)  # (N, R)
    is_eos = torch.isin(response, stop_ids)
    # mask: tokens up to and including the first EOS
    response_mask = (is_eos.long().cumsum(-1) - is_eos.long()) == 0
    per_token = {name: torch.stack(values, dim=1) * response_mask for name, values in stats.items()}
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask.long(),
        response_ids=response,
        response_mask=response_mask.long(),
        finished=is_eos.any(-1),
        z_logp=z_logp if score else None,
        logp=torch.stack(logps, dim=1) * response_mask,
        **per_token,
    )


def record_token_stats(
    stats: dict[str, list[torch.Tensor]], logits: torch.Tensor, done: torch.Tensor,
    self_certainty: bool, top_k: int,
) -> None:  # fmt: skip
    """Append this step's (N,) statistics of (N, V) `logits` to `stats` (0 on finished rows)."""
    log_probs = torch.log_softmax(logits.float(), -1)  # (N, V) full vocabulary, temperature 1
    current = {}
    if self_certainty:
        current["token_self_certainty"] = token_self_certainty(log_probs)
    if top_k:
        current["token_confidence"] = token_confidence(log_probs, top_k)
    for name, value in current.items():
        stats.setdefault(name, []).append(value.masked_fill(done, 0.0))

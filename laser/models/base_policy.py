"""Make a base policy by a short supervised warm-up on worked solutions, cached by its config.

Nothing can be downloaded on the default path, so the default experiment first teaches a freshly
initialised tiny model the task's format and some of its arithmetic. The warm-up is deliberately
short: the base policy stays imperfect, leaving room for RL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from laser.configs import BaseSFTConfig
from laser.data.collate import PromptCollator, pad_batch
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.types import Rollout

log = logging.getLogger(__name__)


def config_key(parts: dict) -> str:
    """A short stable hash of a JSON-serialisable description of what a cached artefact depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def warmup_cosine(step: int, total: int, *, floor: float, warmup_frac: float = 0.05) -> float:
    """LR multiplier: linear warm-up over `warmup_frac` of the steps, then cosine decay to `floor`
    (a share of the peak) at `total` steps."""
    warmup = max(1, int(warmup_frac * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def sft_batch(
    tokenizer, prompts: list[str], solutions: list[str], after_eos: list[str] | None = None
) -> Rollout:
    """Prompts (left-padded, with BOS) and solutions + EOS (right-padded) as a Rollout; `after_eos`
    texts (a verdict) follow the EOS when given."""
    encode = PromptCollator(tokenizer).encode  # the same prompt encoding as generation
    p_ids, p_mask = pad_batch([encode(p) for p in prompts], tokenizer.pad_token_id, left=True)
    eos = [tokenizer.eos_token_id]
    tails = after_eos or [""] * len(solutions)
    r_ids, r_mask = pad_batch(
        [
            tokenizer.encode(s, add_special_tokens=False)
            + eos
            + tokenizer.encode(t, add_special_tokens=False)
            for s, t in zip(solutions, tails, strict=True)
        ],
        tokenizer.pad_token_id,
        left=False,
    )
    return Rollout(p_ids, p_mask, r_ids, r_mask, finished=torch.ones(len(prompts), dtype=torch.bool))


def solution_nll(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    solutions: list[str],
    given: list[str] | None = None,
    after_eos: list[str] | None = None,
    after_eos_weight: float = 1.0,
) -> torch.Tensor:
    """Mean token NLL of the solutions + EOS given their prompts (the warm-up's loss); `given`
    are response prefixes placed before the solutions as context, outside the loss; `after_eos`
    texts follow the EOS, inside it, each of their tokens weighted `after_eos_weight` times a
    solution token (a weighted mean)."""
    weighted = after_eos is not None and after_eos_weight != 1.0
    if given is None and not weighted:
        batch = sft_batch(tokenizer, prompts, solutions, after_eos)
        logp = sequence_logprobs(model, batch, self_reward_id=None).logp
        return -(logp.sum() / batch.response_mask.sum())
    given = given if given is not None else [""] * len(prompts)
    texts = [g + s for g, s in zip(given, solutions, strict=True)]
    batch = sft_batch(tokenizer, prompts, texts, after_eos)
    logp = sequence_logprobs(model, batch, self_reward_id=None).logp  # (N, R)
    pos = torch.arange(logp.shape[1])
    skip = torch.tensor([len(tokenizer.encode(g, add_special_tokens=False)) for g in given])
    scored = batch.response_mask.bool() & (pos >= skip[:, None])
    if not weighted:
        return -(logp[scored].sum() / scored.sum())
    ends = (batch.response_ids == tokenizer.eos_token_id).int().argmax(-1) + 1  # past the first EOS
    weight = torch.where(pos >= ends[:, None], after_eos_weight, 1.0)[scored]
    return -((logp[scored] * weight).sum() / weight.sum())


def supervised_warmup(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    solutions: list[str],
    sft: BaseSFTConfig,
    *,
    seed: int,
    given: list[str] | None = None,
    after_eos: list[str] | None = None,
) -> float:
    """Train `model` in place on prompt -> solution + EOS (loss on the completion only; a row's
    `given` text, when given, sits between its prompt and solution as context without loss, and
    its `after_eos` text, a verdict, follows the EOS, its tokens weighted `sft.verdict_weight`),
    for `sft.steps` steps of `sft.batch_size` rows at learning rate `sft.lr` (warm-up, then
    cosine decay to `sft.final_lr_ratio` of it), seeded `seed`.

    Logs progress (step, loss, time left) about ten times. Returns the mean token NLL of the last
    10% of steps.
    """
    steps, batch_size = sft.steps, sft.batch_size
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=sft.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, steps, floor=sft.final_lr_ratio)
    )
    model.train()
    tail: list[float] = []
    report_every, start = max(1, steps // 10), time.monotonic()
    for step in range(steps):
        idx = torch.randint(len(prompts), (batch_size,), generator=gen).tolist()
        context = None if given is None else [given[i] for i in idx]
        verdicts = None if after_eos is None else [after_eos[i] for i in idx]
        rows = [prompts[i] for i in idx], [solutions[i] for i in idx]
        loss = solution_nll(model, tokenizer, *rows, context, verdicts, sft.verdict_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= int(0.9 * steps):
            tail.append(loss.item())
        if (step + 1) % report_every == 0 or step + 1 == steps:
            log_progress(step + 1, steps, loss.item(), time.monotonic() - start)
    model.eval()
    return sum(tail) / max(len(tail), 1)


def log_progress(done: int, total: int, loss: float, elapsed: float) -> None:
    left = elapsed / done * (total - done)
    log.info(
        "base-policy warm-up: step %d/%d, loss %.3f, %.0f s elapsed, about %.0f s left",
        done, total, loss, elapsed, left,
    )  # fmt: skip


def cached_model(cache_dir: str | Path, key: str, make: Callable[[], torch.nn.Module]):
    """Load the model cached under `cache_dir/key`, or make it with `make()` and save it there."""
    path = Path(cache_dir) / key
    if (path / "config.json").exists():
        log.info("base policy: loading cached warm-up from %s", path)
        return AutoModelForCausalLM.from_pretrained(path)
    log.info("base policy: no cached warm-up at %s; making it (cached for later runs)", path)
    model = make()
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    model.save_pretrained(tmp)
    try:
        tmp.replace(path)  # atomic: readers see no folder or a complete one
    except OSError:  # another process made it meanwhile (a non-empty folder is not replaced): keep theirs
        if not (path / "config.json").exists():
            raise
        shutil.rmtree(tmp)
    log.info("base policy: saved warm-up to %s", path)
    return model

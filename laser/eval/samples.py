"""Draw K completions per problem with their in-rollout self-reward scores, and verify them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from laser.algo import self_reward_score
from laser.data.collate import PromptCollator
from laser.eval.confidence import GeneratedBatch, ScoringContext, recording, score_batch
from laser.rewards.verifier import extract_answer
from laser.rollout.sampler import Sampler


@dataclass
class ScoredSamples:
    """K samples for each of P problems.

    Attributes:
        problems: (P,) problem prompts.
        gold: (P,) reference answers.
        responses: P lists of K response texts.
        answers: P lists of K extracted answers (None = no answer).
        correct: (P, K) bool verifier verdicts.
        finished: (P, K) bool, the response ended with EOS.
        scores: (P, K) self-reward scores (raw r_s, or pi(z|x,y) for an SFT-trained policy; 0
            where not finished).
        lengths: (P, K) response lengths in tokens (EOS included).
        confidence: {method: (P, K) confidences} of the methods asked for (`laser.eval.confidence`).
        confidence_seconds: {method: seconds its reductions took over all samples}.
    """

    problems: list[str]
    gold: list[str]
    responses: list[list[str]]
    answers: list[list[str | None]]
    correct: torch.Tensor
    finished: torch.Tensor
    scores: torch.Tensor
    lengths: torch.Tensor
    confidence: dict[str, torch.Tensor] = field(default_factory=dict)
    confidence_seconds: dict[str, float] = field(default_factory=dict)

    def answer_ids(self) -> torch.Tensor:
        """(P, K) answer classes: 0 for every correct answer (all equal the reference), then one
        class per distinct normalised wrong answer, -1 for no answer."""
        ids = torch.full(self.correct.shape, -1, dtype=torch.long)
        for p, row in enumerate(self.answers):
            classes: dict[str, int] = {}
            for k, answer in enumerate(row):
                if self.correct[p, k]:
                    ids[p, k] = 0
                elif answer is not None:
                    ids[p, k] = classes.setdefault(normalise(answer), len(classes) + 1)
        return ids


def normalise(answer: str) -> str:
    """A light canonical form for grouping answers: no spaces, no \\left/\\right, no trailing '.'."""
    text = re.sub(r"\\left|\\right|\s+", "", answer)
    return text.rstrip(".")


@torch.no_grad()
def sample_scored(
    policy: torch.nn.Module,
    sampler: Sampler,
    verifier,
    records: list[dict],
    num_samples: int,
    beta_v: float,
    c_ref: float,
    batch_size: int = 32,
    loss: str = "mse",
    methods: list[str] = (),
    context: ScoringContext | None = None,
) -> ScoredSamples:
    """K = `num_samples` scored completions for every record ({prompt, answer}); `loss` is the
    verification loss the policy was trained with, which defines its score. `methods`: confidence
    methods to compute on the same samples, with their `context`."""
    collate = PromptCollator(sampler.tokenizer)
    texts, correct, finished, z_logp, lengths = [], [], [], [], []
    confidence: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    record = recording(list(methods), context.top_k) if methods else {}
    for start in range(0, len(records), batch_size):
        batch = collate(records[start : start + batch_size])
        rollout = sampler.sample(policy, batch, group_size=num_samples, score=True, **record)
        responses = sampler.decode(rollout)
        scored = score_batch(list(methods), GeneratedBatch(rollout, responses), context)
        for name, (values, took) in scored.items():
            confidence[name].append(values)
            seconds[name] += took
        gold = [a for a in batch.answers for _ in range(num_samples)]
        prompts = [p for p in batch.prompts for _ in range(num_samples)]
        texts += responses
        correct.append(verifier(responses, gold, prompts) > 0.5)
        finished.append(rollout.finished.cpu())
        lengths.append(rollout.lengths.cpu())
        z_logp.append(torch.nan_to_num(rollout.z_logp.cpu(), nan=c_ref))
    shape = (len(records), num_samples)
    finished_t = torch.cat(finished).view(shape)
    scores = self_reward_score(torch.cat(z_logp), c_ref, beta_v, loss).view(shape) * finished_t
    responses = [texts[i : i + num_samples] for i in range(0, len(texts), num_samples)]
    return ScoredSamples(
        problems=[r["prompt"] for r in records],
        gold=[str(r["answer"]) for r in records],
        responses=responses,
        answers=[[extract_answer(t) for t in row] for row in responses],
        correct=torch.cat(correct).view(shape),
        finished=finished_t,
        scores=scores,
        lengths=torch.cat(lengths).view(shape),
        confidence={name: torch.cat(parts).view(shape) for name, parts in confidence.items()},
        confidence_seconds=seconds,
    )

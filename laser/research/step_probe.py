"""Can RL move this policy? A probe of one clean policy-gradient step, before a training run.

    python -m laser.research.step_probe [--policy DIR] [--batches 32] [--eval-prompts 512]
                                    [--threads T] [overrides ...] [--norms 0.05 0.1 0.2]

Estimates the GRPO gradient (E1, on-policy) of the base policy from `--batches` rollout batches of
`data.batch_size` prompts x `algo.group_size` samples, then moves the weights a step of each
`--norms` length along four directions and prints the held-out accuracy (T = eval_temperature,
the same sampling noise for every row) after each:

    policy gradient   the direction RL steps in (ascent on the verifier's reward)
    reverse           the opposite direction
    random            a random direction of the same length (how sharp the loss is in general)
    supervised        descent on the worked solutions' NLL (the warm-up's own direction)

On a policy RL can improve, a short step along the policy gradient raises the accuracy and its
reverse lowers it. When both lower it alike while a random step does not, the loss is sharp along
its gradients: any optimiser step large enough to learn from overshoots. A warm-up annealed to a
tiny learning rate ends in such a place (`model.base_sft.final_lr_ratio`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from laser.algo import clipped_policy_loss, group_advantages
from laser.assembly import load_inputs, make_samplers
from laser.data.collate import PromptCollator
from laser.models.base_policy import solution_nll
from laser.models.loading import stop_token_ids
from laser.research.score_probe import first, load_policy, probe_config, probe_parser, write_json
from laser.rewards import make_verifier
from laser.rollout.logprobs import sequence_logprobs

Direction = list[torch.Tensor]


def unit(direction: Direction) -> Direction | None:
    """`direction` scaled to norm 1; None for a zero direction (no signal to follow)."""
    norm = torch.sqrt(sum((d**2).sum() for d in direction))
    return None if norm == 0 else [d / norm for d in direction]


def accumulated_gradient(policy, loss_fn, batches: int) -> Direction:
    """The mean gradient of `loss_fn(i)` over `batches` calls, one parameter tensor each."""
    params = list(policy.parameters())
    total = [torch.zeros_like(p) for p in params]
    policy.train()
    for i in range(batches):
        policy.zero_grad()
        loss_fn(i).backward()
        for t, p in zip(total, params, strict=True):
            t += p.grad / batches
    policy.zero_grad()
    return total


def policy_gradient_loss(policy, sampler, verifier, records, batch_size: int, group_size: int):
    """`loss(i)`: the GRPO loss of batch i of `records` (fresh samples of the current policy)."""
    collate = PromptCollator(sampler.tokenizer)

    def loss(i: int) -> torch.Tensor:
        batch = collate(records[i * batch_size : (i + 1) * batch_size])
        rollout = sampler.sample(policy, batch, group_size, score=False)
        gold = [a for a in batch.answers for _ in range(group_size)]
        prompts = [p for p in batch.prompts for _ in range(group_size)]
        adv = group_advantages(verifier(sampler.decode(rollout), gold, prompts), group_size)
        fwd = sequence_logprobs(policy, rollout, None, sampler.distribution)
        return clipped_policy_loss(fwd.logp, fwd.logp.detach(), adv, rollout.response_mask)[0]

    return loss


def supervised_loss(policy, tokenizer, records, batch_size: int):
    """`loss(i)`: the token NLL of the worked solutions of batch i of `records`."""

    def loss(i: int) -> torch.Tensor:
        rows = records[i * batch_size : (i + 1) * batch_size]
        return solution_nll(policy, tokenizer, [r["prompt"] for r in rows], [r["solution"] for r in rows])

    return loss


@torch.no_grad()
def accuracy(policy, sampler, verifier, records) -> float:
    """Held-out accuracy, one sample per prompt, with the sampler's noise restarted."""
    sampler.reset_rng()
    collate, correct = PromptCollator(sampler.tokenizer), []
    for start in range(0, len(records), 128):
        batch = collate(records[start : start + 128])
        rollout = sampler.sample(policy, batch, 1, score=False)
        correct.append(verifier(sampler.decode(rollout), batch.answers, batch.prompts))
    return torch.cat(correct).float().mean().item()


def probe(policy, directions: dict[str, Direction | None], norms: Sequence[float], measure) -> dict:
    """`measure()` after a step of each norm along each unit direction (None: skipped), each from
    the same weights, which are restored at the end."""
    params = list(policy.parameters())
    start = [p.detach().clone() for p in params]
    results = {"start": measure()}
    for name, direction in directions.items():
        if direction is None:
            continue
        for norm in norms:
            with torch.no_grad():
                for p, p0, d in zip(params, start, direction, strict=True):
                    p.copy_(p0 + norm * d)
            results[f"{name}@{norm}"] = measure()
    with torch.no_grad():
        for p, p0 in zip(params, start, strict=True):
            p.copy_(p0)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = probe_parser(__doc__)
    parser.add_argument("--batches", type=int, default=32, help="rollout batches in the gradient estimate")
    parser.add_argument("--eval-prompts", type=int, default=512, help="held-out prompts")
    parser.add_argument("--norms", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("overrides", nargs="*", help="config overrides, as for laser.run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg, run = probe_config(args)
    if run.data.source != "arithmetic":
        raise ValueError("step_probe: the supervised direction needs the arithmetic task's worked solutions")
    tokenizer, token_id, data = load_inputs(run)
    policy = load_policy(cfg, run, tokenizer, data, args.policy)
    stops = stop_token_ids(tokenizer, run.model.stop_tokens, policy)
    sampler, eval_sampler = make_samplers(run, tokenizer, token_id, cfg.seed, stops)
    verifier = make_verifier(run.reward, run.data.task)
    b, g = run.data.batch_size, run.algo.group_size
    train = first(data["train"], args.batches * b)
    pg_loss = policy_gradient_loss(policy, sampler, verifier, train, b, g)
    pg = accumulated_gradient(policy, pg_loss, args.batches)
    solutions = first(data["train"], args.batches * b * g)  # as many rows as the rollouts have
    sft = accumulated_gradient(policy, supervised_loss(policy, tokenizer, solutions, b * g), args.batches)
    gen = torch.Generator().manual_seed(cfg.seed)
    directions = {
        "policy gradient": unit([-x for x in pg]),
        "reverse": unit(pg),
        "random": unit([torch.randn(x.shape, generator=gen) for x in pg]),
        "supervised": unit([-x for x in sft]),
    }
    held_out = first(data["eval"], args.eval_prompts)
    measure = lambda: accuracy(policy, eval_sampler, verifier, held_out)  # noqa: E731
    results = probe(policy, directions, args.norms, measure)
    print(f"held-out accuracy ({len(held_out)} prompts) before any step: {results['start']:.4f}")
    print(f"{'direction':<16}" + "".join(f"  step {n:<6g}" for n in args.norms))
    for name, direction in directions.items():
        if direction is None:
            print(f"{name:<16}  no signal: zero gradient (every group's rewards were equal)")
            continue
        print(f"{name:<16}" + "".join(f"  {results[f'{name}@{n}']:<11.4f}" for n in args.norms))
    return write_json(args.json, results, args)


if __name__ == "__main__":
    main()

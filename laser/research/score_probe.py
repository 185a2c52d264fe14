"""Can the policy learn to tell its own right responses from its wrong ones? A self-reward probe.

    python -m laser.research.score_probe [--policy DIR] [--prompts 2048] [--eval-prompts 512]
                                     [--steps 1500] [--lr 1e-3] [--threads T] [overrides ...]

Samples K = algo.group_size completions per prompt from the policy (training and held-out
prompts), verifies them, then trains a copy of the policy on the self-reward MSE alone (E5, class
balanced; no policy gradient, so the samples stay those of the frozen original) and prints the
held-out AUROCs of the copy's score as it learns: pooled, and within each prompt's K samples.

Two references are computed on the same held-out samples:

    difficulty   a score that knows each prompt's accuracy and nothing about the response
                 (`difficulty_auroc`, split-half: a lower bound)
    seq_logprob  the frozen policy's log-prob of each response: it ranks responses by how likely
                 the policy found them, information the last-token score can only use if the
                 network recomputes it at the EOS position

and, where the arithmetic task's options make them exist (`task_references`): with a self-check,
how often the check ends where the steps did on right and on wrong responses (for 'split', how
often the written difference is 0), how often the check is the one the task writes for the
response's own steps (`check_honest_*`), and an oracle score that reads that agreement
(`check_oracle_*`); with candidate answers, the share of wrong final
answers that are listed ones. With --verdicts, the warm-up's own verdict after EOS is ranked too,
on the held-out samples and on the warm-up's own training rows (`verdict_warm_up_rows`).

A pooled AUROC that rises while the within-prompt AUROC stays at 0.5 means the score has learned
how hard a prompt is, not whether a response is right. The policy is the configured base policy
(the cached warm-up, e.g. with model.tiny.num_layers=4) or, with --policy, an exported one (a
run's policy/ folder). Overrides are those of `laser.run`.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from laser.algo import (
    auroc,
    difficulty_auroc,
    grouped_auroc,
    self_reward_mse,
    self_reward_score,
    self_verify_metrics,
)
from laser.assembly import load_inputs, make_samplers
from laser.configs import validate
from laser.data.collate import PromptCollator
from laser.data.sources import dataset_key
from laser.models.base_policy import sft_batch
from laser.models.factory import make_base_policy
from laser.models.loading import load_pretrained, stop_token_ids
from laser.rewards import make_verifier
from laser.rewards.arithmetic import response_features
from laser.rewards.verifier import extract_answer
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.tokens import resolve_single_token
from laser.rollout.types import Rollout
from laser.utils.compose import compose_config
from laser.utils.threads import configure_threads

BATCH = 64  # rows per MSE step and per generation batch of prompts


@dataclass
class Samples:
    """K verified samples for each of P prompts (rows prompt-major, like a training rollout)."""

    rollout: Rollout
    correct: torch.Tensor  # (P * K,) bool
    group_size: int
    texts: list[str] = field(default_factory=list)  # (P * K,) decoded responses
    prompts: list[str] = field(default_factory=list)  # (P * K,) their prompts
    answers: list[str] = field(default_factory=list)  # (P * K,) the reference answers

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """(P * K,) -> (P, K)."""
        return x.view(-1, self.group_size)


def draw(policy, sampler, verifier, records: list[dict], group_size: int) -> Samples:
    """`group_size` completions of `policy` for every record, with their verifier verdicts."""
    collate = PromptCollator(sampler.tokenizer)
    parts, correct, texts, prompts, answers = [], [], [], [], []
    per_batch = max(1, BATCH // group_size)
    with torch.no_grad():
        for start in range(0, len(records), per_batch):
            batch = collate(records[start : start + per_batch])
            rollout = sampler.sample(policy, batch, group_size=group_size, score=False)
            prompted = [p for p in batch.prompts for _ in range(group_size)]
            gold = [a for a in batch.answers for _ in range(group_size)]
            decoded = sampler.decode(rollout)
            correct.append(verifier(decoded, gold, prompted) > 0.5)
            parts.append(rollout)
            texts += decoded
            prompts += prompted
            answers += gold
    rollout = Rollout.cat(parts, sampler.tokenizer.pad_token_id)
    return Samples(rollout, torch.cat(correct), group_size, texts, prompts, answers)


def z_logprobs(model, rollout: Rollout, token_id: int) -> torch.Tensor:
    """(N,) log p(z) after each response's EOS, in forward batches of BATCH rows."""
    with torch.no_grad():
        return torch.cat([sequence_logprobs(model, r, token_id).z_logp for r in rollout.split(BATCH)])


def rankings(scores: torch.Tensor, samples: Samples) -> dict[str, float]:
    """Pooled and within-prompt AUROC of `scores` (N,) over the finished samples."""
    done = samples.rollout.finished
    within, _ = grouped_auroc(samples.grid(scores), samples.grid(samples.correct), samples.grid(done))
    return {"pooled": auroc(scores[done], samples.correct[done]).item(), "within": within.item()}


def references(policy, samples: Samples) -> dict[str, float]:
    """The difficulty-only AUROC and the AUROCs of the frozen policy's sequence log-prob."""
    with torch.no_grad():
        seq = torch.cat(
            [sequence_logprobs(policy, r, None).logp.sum(-1) for r in samples.rollout.split(BATCH)]
        )
    grid = samples.grid
    difficulty = difficulty_auroc(grid(samples.correct), grid(samples.rollout.finished)).item()
    seq_rank = rankings(seq, samples)
    return {
        "difficulty_pooled": difficulty,
        "seq_logprob_pooled": seq_rank["pooled"],
        "seq_logprob_within": seq_rank["within"],
    }


def task_references(samples: Samples, task) -> dict[str, float]:
    """What the arithmetic task's options make visible in the responses (`task`: its config;
    `laser.rewards.arithmetic.response_features`): with a `check`, how often the check ends where
    the forward steps did, on right and on wrong responses, how often it is right for the
    response's own steps (honest), and the AUROCs of an oracle score that reads that agreement, and
    its F1 as a verdict; with `choices`, the share of wrong final answers that are listed candidates
    (guessed from the list)."""
    done = samples.rollout.finished
    visible = response_features(samples.prompts, samples.texts, task.check, task.choices)
    features = {k: torch.tensor(v) for k, v in visible.items()}
    out: dict[str, float] = {}
    right, wrong = samples.correct & done, ~samples.correct & done
    for name in ("check_agrees", "check_honest"):
        if name in features:
            out[f"{name}_right"] = features[name][right].float().mean().item()
            out[f"{name}_wrong"] = features[name][wrong].float().mean().item()
    if "check_agrees" in features:
        agree = features["check_agrees"].float()
        out |= {f"check_oracle_{k}": v for k, v in rankings(agree, samples).items()}
        verdict = self_verify_metrics(agree, samples.correct.float(), done)
        out["check_oracle_f1"] = verdict["self_verify/f1"].item()  # the check read as a verdict
    if "answer_listed" in features:
        given = [extract_answer(t) for t in samples.texts]
        wrong_answer = torch.tensor([g != a for g, a in zip(given, samples.answers, strict=True)]) & done
        listed = features["answer_listed"][wrong_answer]
        out["wrong_answers_listed"] = listed.float().mean().item() if len(listed) else 0.0
    return out


def verdict_rankings(policy, samples: Samples, tokenizer, verdicts: str) -> dict[str, float]:
    """AUROCs of the warm-up's verdict after EOS, log p(first) - log p(second) (the policy's own
    judge, `data.task.check_verdicts`): the prompted-verification baseline of such a policy."""
    right, wrong = (resolve_single_token(tokenizer, v, "--verdicts") for v in verdicts)
    with torch.no_grad():
        parts = [
            sequence_logprobs(policy, r, right, incorrect_id=wrong) for r in samples.rollout.split(BATCH)
        ]
    odds = torch.cat([p.z_logp - p.incorrect_logp for p in parts])
    return {f"verdict_{name}": value for name, value in rankings(odds, samples).items()}


def verdict_on_warm_up_rows(policy, split, tokenizer, verdicts: str, n: int = 2048) -> dict[str, float]:
    """AUROC of the warm-up's verdict log-odds on its own first `n` training rows, teacher-forced:
    right rows against check-practice rows (does the judge learn the task it was taught at all?)."""
    right, wrong = (resolve_single_token(tokenizer, v, "--verdicts") for v in verdicts)
    rows = first(split, n)
    odds = []
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            part = rows[start : start + BATCH]
            texts = [r.get("given", "") + r["solution"] for r in part]
            batch = sft_batch(tokenizer, [r["prompt"] for r in part], texts)
            out = sequence_logprobs(policy, batch, right, incorrect_id=wrong)
            odds.append(out.z_logp - out.incorrect_logp)
    clean = torch.tensor([not r.get("given") for r in rows])
    return {"verdict_warm_up_rows": auroc(torch.cat(odds), clean).item()}


def train_score(
    policy, train: Samples, held_out: Samples, token_id: int, c_ref: float, beta_v: float,
    steps: int, lr: float, evals: int = 6, seed: int = 0,
) -> list[dict[str, float]]:  # fmt: skip
    """Fit a copy of `policy` to the MSE on `train`; the held-out rankings and the training MSE
    (on a fixed batch of BATCH training rows) at step 0 and `evals` more times."""
    model = copy.deepcopy(policy).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    fixed = torch.arange(min(BATCH, len(train.correct)))

    def mse(rows: torch.Tensor, grad: bool) -> torch.Tensor:
        rollout = train.rollout.rows(rows)
        with torch.set_grad_enabled(grad):
            z = sequence_logprobs(model, rollout, token_id).z_logp
            loss, _ = self_reward_mse(
                self_reward_score(z, c_ref, beta_v), train.correct[rows], rollout.finished
            )
        return loss

    def record(step: int) -> dict[str, float]:
        model.eval()
        scores = self_reward_score(z_logprobs(model, held_out.rollout, token_id), c_ref, beta_v)
        row = {"step": step, "train_mse": mse(fixed, grad=False).item()} | rankings(scores, held_out)
        model.train()
        return row

    history = [record(0)]
    every = max(1, steps // evals)
    for step in range(1, steps + 1):
        rows = torch.randint(0, len(train.correct), (BATCH,), generator=generator)
        optimiser.zero_grad()
        mse(rows, grad=True).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % every == 0 or step == steps:
            history.append(record(step))
    return history


def load_policy(cfg: DictConfig, run, tokenizer, data, path: str | None):
    if path:
        return load_pretrained(path).eval()
    key = dataset_key(run.data)
    return make_base_policy(run.model, tokenizer, data["train"], key, cfg.paths.cache_dir, cfg.seed).eval()


def first(split, n: int) -> list[dict]:
    """The first `n` records of a dataset split."""
    return split.select(range(min(n, len(split)))).to_list()


def probe_parser(description: str) -> argparse.ArgumentParser:
    """The options every probe shares: the policy and torch's threads (overrides go last)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default=None, help="an exported policy folder (default: the base policy)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write what the probe prints here")
    return parser


def write_json(path: Path | None, results: dict, args: argparse.Namespace) -> dict:
    """The probe's results (and the arguments that made them) as JSON at `path`, when given."""
    if path is not None:
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        path.write_text(json.dumps({"args": options, "results": results}, indent=1) + "\n")
    return results


def probe_config(args: argparse.Namespace):
    """Threads set, then the composed config and its validated blocks, as `laser.run` would."""
    configure_threads(args.threads)
    cfg = compose_config(["paths.root_dir=.", *args.overrides])
    return cfg, validate(cfg)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = probe_parser(__doc__)
    parser.add_argument("--prompts", type=int, default=2048, help="training prompts to sample")
    parser.add_argument("--eval-prompts", type=int, default=512, help="held-out prompts to sample")
    parser.add_argument("--steps", type=int, default=1500, help="MSE steps of 64 samples")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--verdicts",
        default="",
        help="two verdict characters after EOS (data.task.check_verdicts) to rank by too",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, as for laser.run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.verdicts and len(args.verdicts) != 2:
        raise ValueError(
            f"--verdicts={args.verdicts!r}: give two characters, the right and the wrong verdict"
        )
    cfg, run = probe_config(args)
    tokenizer, token_id, data = load_inputs(run)
    if token_id is None:
        raise ValueError("score_probe: the config has no self-reward token (algo.self_reward.token)")
    policy = load_policy(cfg, run, tokenizer, data, args.policy)
    sampler, _ = make_samplers(
        run, tokenizer, token_id, cfg.seed, stop_token_ids(tokenizer, run.model.stop_tokens, policy)
    )
    verifier = make_verifier(run.reward, run.data.task)
    k = run.algo.group_size
    train = draw(policy, sampler, verifier, first(data["train"], args.prompts), k)
    held_out = draw(policy, sampler, verifier, first(data["eval"], args.eval_prompts), k)
    done = train.rollout.finished
    # c_ref as the automatic estimate: the policy's mean log p(z) over its own finished samples
    c_ref = z_logprobs(policy, train.rollout, token_id)[done].mean().item()
    refs = references(policy, held_out) | task_references(held_out, run.data.task)
    if args.verdicts:
        refs |= verdict_rankings(policy, held_out, tokenizer, args.verdicts)
        refs |= verdict_on_warm_up_rows(policy, data["train"], tokenizer, args.verdicts)
    print(
        f"{len(held_out.correct)} held-out samples, accuracy {held_out.correct.float().mean():.4f}; "
        f"training on {len(train.correct)} (accuracy {train.correct.float().mean():.4f}), c_ref {c_ref:.3f}"
    )
    print("references: " + ", ".join(f"{name} {value:.4f}" for name, value in refs.items()))
    history = train_score(
        policy, train, held_out, token_id, c_ref, run.algo.self_reward.beta_v, args.steps, args.lr
    )
    for row in history:
        print(
            f"step {row['step']:5d}  train MSE {row['train_mse']:.4f}  "
            f"score AUROC pooled {row['pooled']:.4f}  within {row['within']:.4f}"
        )
    return write_json(args.json, {"references": refs, "history": history}, args)


if __name__ == "__main__":
    main()

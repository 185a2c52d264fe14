"""`python -m laser.infer ckpt_path=<run> problems=<file.jsonl>`: answers for problems without answers.

Each problem's samples are drawn `confidence.adaptive.batch` at a time until the weighted vote is
sure enough (`confidence.adaptive.threshold`) or `num_samples` are drawn; the answer is the vote's,
weighted by the confidence `method`, and its confidence is calibrated: LaSeR's own scale needs no
labels, any method can be calibrated on another policy's labelled evaluation
(`confidence.calibration.source`). Writes one JSON row per problem to `output` (rows already there
for the same prompt are kept), and `<output stem>.summary.json` with the estimated accuracy of the
file.
Bad rows are named by file and line and skipped; `strict=true` stops on them before any model loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from laser.algo.confidence import answer_confidence, stop_statistic
from laser.algo.scaling import vote
from laser.configs import register_schemas
from laser.data.collate import PromptBatch, PromptCollator
from laser.eval.calibration import Calibrator, calibrated, fit_on
from laser.eval.compare import read_labelled
from laser.eval.confidence import METHODS, GeneratedBatch, ScoringContext, clip_unit, recording
from laser.eval.samples import normalise
from laser.eval.settings import ConfidenceConfig, confidence_config
from laser.eval.unlabelled import Problem, ProblemsFile, answered_rows, append_rows, read_problems, write_rows
from laser.evaluate import (
    load_policy_and_sampler,
    resolve_policy,
    run_task,
    run_value,
    scoring_context,
    self_reward_settings,
    task_check,
)
from laser.models.loading import load_tokenizer
from laser.rewards.verifier import extract_answer
from laser.rollout.sampler import Sampler

register_schemas()
PROMPT_FORMATS = ("auto", "raw", "rendered")


def check_infer_settings(cfg: DictConfig) -> ConfidenceConfig:
    """The command's settings, checked before anything is read or loaded."""
    for key in ("num_samples", "batch_size"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key}={value!r} is invalid: give a whole number >= 1")
    if cfg.method not in METHODS:
        raise ValueError(f"method={cfg.method!r} is invalid: use one of {list(METHODS)}")
    if cfg.prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format={cfg.prompt_format!r} is invalid: use one of {list(PROMPT_FORMATS)}")
    if not isinstance(cfg.strict, bool):
        raise ValueError(f"strict={cfg.strict!r} is invalid: give true or false")
    return confidence_config(cfg.confidence)


def probability_scale(method: str, conf: ConfidenceConfig) -> tuple[Calibrator, str]:
    """(scores -> probabilities of being right, the calibration's name): fitted on
    `confidence.calibration.source` when given, else the method's own scale when it has one."""
    cal = conf.calibration
    if cal.source:
        source = read_labelled(cal.source, cal.problems)
        if method not in source.confidence:
            raise ValueError(
                f"confidence.calibration.source={cal.source!r} holds no {method!r} confidences "
                f"(it has {list(source.confidence)}): evaluate that policy with method {method!r} too"
            )
        return fit_on(source.confidence[method], source.correct, source.finished, cal.method), "transfer"
    if METHODS[method].probability:
        return clip_unit, "none"
    raise ValueError(
        f"method={method!r} has no probability scale of its own: give confidence.calibration.source="
        "<a laser.evaluate output folder of a labelled policy> to calibrate it, or use method=laser"
    )


def output_path(cfg: DictConfig) -> Path:
    """`output`, or `<problems stem>.answers.jsonl` beside the problems file."""
    if cfg.output:
        return Path(cfg.output).expanduser()
    problems = Path(cfg.problems).expanduser()
    return problems.with_name(problems.stem + ".answers.jsonl")


@dataclass
class Drawn:
    """One problem's samples so far: texts, extracted answers, confidences and finished flags."""

    texts: list[str] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)

    def add(self, texts: list[str], confidence: torch.Tensor, finished: torch.Tensor) -> None:
        self.texts += texts
        self.answers += [extract_answer(t) for t in texts]
        self.confidence += confidence.tolist()
        self.finished += finished.tolist()

    def answer_ids(self) -> torch.Tensor:
        """(n,) answer classes by normalised text; -1 for no answer or a truncated response."""
        classes: dict[str, int] = {}
        ids = [
            classes.setdefault(normalise(a), len(classes)) if a is not None and done else -1
            for a, done in zip(self.answers, self.finished, strict=True)
        ]
        return torch.tensor(ids, dtype=torch.long)


def stacked(drawn: list[Drawn], method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, n) answer classes and vote weights of problems that drew n samples each."""
    ids = torch.stack([d.answer_ids() for d in drawn])
    weights = METHODS[method].weight(torch.tensor([d.confidence for d in drawn]))
    return ids, weights


def draw_adaptively(
    policy: torch.nn.Module, sampler: Sampler, batch: PromptBatch, method: str, ctx: ScoringContext,
    conf: ConfidenceConfig, num_samples: int,
) -> list[Drawn]:  # fmt: skip
    """Samples for each prompt of `batch`, `adaptive.batch` per round, until its stopping
    statistic passes `adaptive.threshold` or `num_samples` are drawn."""
    adaptive = conf.adaptive
    drawn = [Drawn() for _ in range(len(batch))]
    active = torch.arange(len(batch))
    record = recording([method], ctx.top_k)
    count = 0
    while len(active) and count < num_samples:
        size = min(adaptive.batch, num_samples - count)
        rollout = sampler.sample(policy, batch.rows(active), group_size=size, score=True, **record)
        texts = sampler.decode(rollout)
        scores = METHODS[method].score(GeneratedBatch(rollout, texts), ctx).view(len(active), size)
        finished = rollout.finished.cpu().view(len(active), size)
        for row, p in enumerate(active.tolist()):
            drawn[p].add(texts[row * size : (row + 1) * size], scores[row], finished[row])
        count += size
        ids, weights = stacked([drawn[p] for p in active.tolist()], method)
        active = active[stop_statistic(ids, weights, adaptive.rule) <= adaptive.threshold]
    return drawn


def answer_row(problem: Problem, drawn: Drawn, method: str, probability: Calibrator) -> dict:
    """The output row of one problem: its voted answer with the answer's calibrated confidence."""
    (ids,), (weights,) = stacked([drawn], method)
    picked = vote(ids[None], weights[None])  # (1,)
    probs = calibrated(probability, torch.tensor(drawn.confidence), torch.tensor(drawn.finished))
    confidence = float(answer_confidence(ids[None], picked, probs[None]))
    votes: dict[str, float] = {}
    first = {}  # answer class -> the first text given for it (answers equal once normalised)
    for k in (ids >= 0).nonzero().squeeze(-1).tolist():
        text = first.setdefault(int(ids[k]), drawn.answers[k])
        votes[text] = votes.get(text, 0.0) + float(weights[k])
    index = int(picked)
    row = {"line": problem.line, "prompt": problem.prompt}
    row |= {"id": problem.id} if problem.id is not None else {}
    return row | {
        "answer": first[int(ids[index])] if index >= 0 else None,
        "confidence": confidence,
        "votes": votes,
        "samples": len(drawn.texts),
        "method": method,
        "answers": drawn.answers,
        "scores": drawn.confidence,
    }


def model_prompts(problems: list[Problem], tokenizer, rendered: bool) -> list[dict]:
    """Collator records: the prompt as given, or rendered as the benchmarks are."""
    if not rendered:
        return [{"prompt": p.prompt, "answer": ""} for p in problems]
    from laser.data.benchmarks import render_prompt

    return [{"prompt": render_prompt(p.prompt, tokenizer), "answer": ""} for p in problems]


def accuracy_estimate(confidences: list[float], num_bootstrap: int, seed: int) -> dict:
    """The file's estimated accuracy (the mean answer confidence) with a 95% bootstrap interval."""
    values = torch.tensor(confidences, dtype=torch.float64)
    if not len(values):
        return {"estimated_accuracy": None, "interval": [None, None]}
    gen = torch.Generator().manual_seed(seed)
    means = values[torch.randint(len(values), (num_bootstrap, len(values)), generator=gen)].mean(-1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {"estimated_accuracy": float(values.mean()), "interval": [low, high]}


def report(file: ProblemsFile, rows: list[dict], output: Path, summary: dict) -> None:
    """Print the bad lines and the estimate; write `<output>.summary.json`."""
    for bad in file.bad[:20]:
        print(f"skipped {bad}")
    if len(file.bad) > 20:
        print(f"... and {len(file.bad) - 20} more bad lines (all in the summary)")
    summary_path = output.with_name(output.stem + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    estimate, (low, high) = summary["estimated_accuracy"], summary["interval"]
    text = "n/a" if estimate is None else f"{estimate:.4f} [95% bootstrap {low:.4f}, {high:.4f}]"
    print(
        f"{len(rows)} answers in {output} ({summary['answered_now']} new); {len(file.bad)} bad lines skipped"
    )
    print(f"estimated accuracy of {file.path}: {text} (method {summary['method']}, calibration "
          f"{summary['calibration']}; summary in {summary_path})")  # fmt: skip


@dataclass
class Answerer:
    """The loaded policy with what answering needs: its sampler, the methods' context, and
    whether prompts are rendered as the benchmarks are."""

    policy: torch.nn.Module
    sampler: Sampler
    ctx: ScoringContext
    rendered: bool


def load_answerer(cfg: DictConfig, conf: ConfidenceConfig) -> Answerer:
    """Resolve the policy and its settings (a written-verdict method on a task without a written
    check fails before the policy loads), then load it."""
    model_dir, run_dir = resolve_policy(str(cfg.ckpt_path))
    settings = self_reward_settings(cfg, model_dir)
    tokenizer = load_tokenizer(model_dir)
    on_task = run_value(run_dir, "data.source", None) == "arithmetic"
    rendered = cfg.prompt_format == "rendered" or (cfg.prompt_format == "auto" and not on_task)
    check = task_check(run_task(run_dir), on_task and not rendered)
    if METHODS[cfg.method].needs_written_check and check is None:
        raise ValueError(
            f"method={cfg.method!r} needs a task with a written check (a self-checking arithmetic "
            "run, prompts given raw); use method=laser or another method"
        )
    # a budget below the one the policy trained with would cut its solutions off
    budget = max(cfg.rollout.max_new_tokens, run_value(run_dir, "rollout.max_new_tokens", 0))
    policy, sampler = load_policy_and_sampler(cfg, model_dir, tokenizer, settings, budget)
    return Answerer(policy, sampler, scoring_context(conf, settings, budget, check), rendered)


def answer_all(
    answerer: Answerer, pending: list[Problem], output: Path, probability: Calibrator, cfg: DictConfig,
    conf: ConfidenceConfig,
) -> None:  # fmt: skip
    """Answer `pending` in batches of `batch_size` problems, appending each batch's rows."""
    tokenizer = answerer.sampler.tokenizer
    collate = PromptCollator(tokenizer)
    for start in range(0, len(pending), cfg.batch_size):
        chunk = pending[start : start + cfg.batch_size]
        batch = collate(model_prompts(chunk, tokenizer, answerer.rendered))
        drawn = draw_adaptively(
            answerer.policy, answerer.sampler, batch, cfg.method, answerer.ctx, conf, cfg.num_samples
        )
        rows = [answer_row(p, d, cfg.method, probability) for p, d in zip(chunk, drawn, strict=True)]
        append_rows(output, rows)


def infer(cfg: DictConfig) -> dict:
    """Answer every usable problem of `cfg.problems`; returns the summary."""
    conf = check_infer_settings(cfg)
    file = read_problems(cfg.problems, cfg.prompt_field)
    if cfg.strict and file.bad:
        raise ValueError(f"strict=true and {len(file.bad)} bad lines:\n" + "\n".join(file.bad))
    probability, calibration = probability_scale(cfg.method, conf)
    output = output_path(cfg)
    kept = answered_rows(output, file.problems)
    pending = [p for p in file.problems if p.line not in kept]
    answerer = load_answerer(cfg, conf)
    write_rows(output, [kept[line] for line in sorted(kept)])  # stale rows out, before appending
    answer_all(answerer, pending, output, probability, cfg, conf)
    rows = sorted((json.loads(t) for t in output.read_text().splitlines()), key=lambda r: r["line"])
    write_rows(output, rows)
    summary = {
        "problems_file": str(file.path), "answers": len(rows), "answered_now": len(pending),
        "method": cfg.method, "calibration": calibration,
        "mean_samples": sum(r["samples"] for r in rows) / max(len(rows), 1),
        **accuracy_estimate([r["confidence"] for r in rows], conf.calibration.bootstrap, cfg.seed),
        "bad_lines": file.bad,
    }  # fmt: skip
    report(file, rows, output, summary)
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    infer(cfg)


if __name__ == "__main__":
    main()

"""The end of a training run: held-out voting with the final policy, and the printed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import DictConfig

from laser import metric_names as names
from laser.configs import RunConfig
from laser.eval.report import powers_of_two, scaling_table, self_verification, summarise_scaling
from laser.eval.samples import sample_scored
from laser.lit.module import LaserModule

# how well the final samples' scores rank responses: over all of them, within each prompt, and the
# pooled AUROC that a score knowing only each prompt's difficulty reaches
RANKING_METRICS = ("auroc", "auroc_within", "auroc_difficulty")


def check_final_eval(cfg: DictConfig) -> None:
    """`final_eval`'s numbers, checked before training (the evaluation runs after it)."""
    fe = cfg.final_eval
    if not isinstance(fe.problems, int) or fe.problems < 0:
        raise ValueError(f"final_eval.problems={fe.problems!r} is invalid: give a whole number >= 0")
    if not isinstance(fe.samples, int) or fe.samples < 1:
        raise ValueError(f"final_eval.samples={fe.samples!r} is invalid: give a whole number >= 1")


def final_voting_eval(cfg: DictConfig, module: LaserModule, datamodule, out: Path) -> dict[str, float]:
    """K scored samples on held-out prompts: majority vs self-reward-weighted voting at k = K."""
    records = datamodule.splits["eval"][: cfg.final_eval.problems]
    k = cfg.final_eval.samples
    samples = sample_scored(
        module.policy, module.eval_sampler, module.verifier, records, k,
        module.sr.beta_v, module.c_ref.item(), loss=module.sr.loss,
    )  # fmt: skip
    summary = summarise_scaling(scaling_table(samples, powers_of_two(k), seed=cfg.seed))
    summary.to_csv(out / "voting.csv")
    verify = self_verification(samples, module.sr.threshold)
    # a run's metrics are floats: NaN where not applicable
    values = {m: verify[f"self_verify/{m}"] for m in RANKING_METRICS}
    ranking = {names.final(f"self_verify/{m}"): math.nan if v is None else v for m, v in values.items()}
    return {names.final_vote(method, k): float(summary.loc[method, k]) for method in summary.index} | ranking


def write_summary(out: Path, metrics: dict[str, float]) -> None:
    """`summary.json`: the run's last logged metrics, its last-3 summaries and the final
    evaluation's, the numbers that results tables are made from."""
    text = json.dumps({k: metrics[k] for k in sorted(metrics)}, indent=1, allow_nan=True)
    (out / "summary.json").write_text(text + "\n")


def print_summary(run: RunConfig, metrics: dict[str, float], out: Path, export: Path) -> None:
    lines = [
        f"== {run.algo.name} finished ==",
        f"eval accuracy            {metrics.get('val/accuracy', float('nan')):.4f}"
        f" (greedy {metrics.get('val/accuracy_greedy', float('nan')):.4f})",
        f"self-reward F1 (last 3)  {metrics.get('summary/self_verify/f1', float('nan')):.4f}",
        f"self-reward AUROC (last 3) {metrics.get('summary/self_verify/auroc', float('nan')):.4f}",
        f"c_ref                    {metrics.get('summary/c_ref', float('nan')):.3f}",
        *voting_lines(metrics),
        f"run directory            {out}",
        f"metrics                  {out / 'metrics.csv'}",
        f"exported policy          {export}",
    ]
    print("\n".join(lines), flush=True)


def voting_lines(metrics: dict[str, float]) -> list[str]:
    prefix = names.final("")
    found = {k.split("/")[1]: v for k, v in metrics.items() if k.startswith(prefix) and "@" in k}
    if not found:
        return []
    order = ["pass@1", "majority", "weighted_majority", "best_of_k", "pass@k"]
    methods = [m for m in order if any(k.startswith(m + "@") for k in found)]
    k = next(iter(found)).split("@")[-1]
    pooled, within, difficulty = (
        metrics.get(names.final(f"self_verify/{m}"), float("nan")) for m in RANKING_METRICS
    )
    return [
        f"held-out voting at k={k}: " + ", ".join(f"{m} {found[f'{m}@{k}']:.4f}" for m in methods),
        f"self-reward AUROC on those samples: pooled {pooled:.4f}, within each prompt {within:.4f} "
        f"(knowing only each prompt's difficulty gives >= {difficulty:.4f} pooled, 0.5 within)",
    ]

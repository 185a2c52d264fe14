"""Results tables made from run files, never by hand: `python -m analysis.tables`.

A table is a `Table` spec below: a folder of runs under `docs/results/runs/` and the kind of table.
Each run folder holds the small files a run leaves (`summary.json`, `run_info.json`, `config.yaml`,
`metrics.csv`, `voting.csv`), copied from a sweep by

    python -m analysis.tables collect <sweep dir> <name>      # e.g. outputs/showcase/multiruns/<date>

Then `python -m analysis.tables` writes every table to `docs/results/<table>.md` (and README's
marked table, and its showcase figure), each with the command and the run ids that made it, and
`python -m analysis.tables check` fails when a committed table is not what its runs give. The same
runs give the same text.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from analysis.baseline_tables import baselines_checks, baselines_table, dynamic_sampling_table
from analysis.eval_tables import EVAL_TABLES, EVALS, collect_eval, read_evals, render_eval
from analysis.formatting import fmt, markdown
from laser import metric_names as names

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs" / "results" / "runs"
OUT = ROOT / "docs" / "results"
README = ROOT / "README.md"
RUN_FILES = ("summary.json", "run_info.json", "config.yaml", "metrics.csv", "voting.csv")
Z_INSIDE = names.train(names.Z_LOGP_IN_RESPONSE)
GAP = names.train(names.ROLLOUT_LOGP_GAP_MAX)  # sampler's against the training pass's log-probs, per token
STEP_TIME = names.train(names.timing("step"))  # seconds per training step, logged every log_every_n_steps
SAMPLES_DRAWN = names.train(names.SAMPLES_DRAWN)  # responses generated per step (dynamic sampling)
DROPPED = names.train(names.DROPPED_FRAC)  # share of drawn groups dynamic sampling dropped
GRAD_NORM = names.train(names.POLICY_GRAD_NORM)  # the policy's gradient norm before clipping
ACCURACY, GREEDY = names.val(names.ACCURACY), names.val(names.ACCURACY_GREEDY)
ARM_NAMES = {"grpo": "GRPO", "laser": "LaSeR"}
nan = float("nan")


# --------------------------------------------------------------------------- one run


def _first(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.iloc[0]) if len(values) else float("nan")


def _last(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.iloc[-1]) if len(values) else float("nan")


def read_run(run_dir: Path) -> dict:
    """The numbers of one run that tables show: its summary, step-0 and last evaluations, and the
    self-reward token's log-prob inside responses (first and last logged training steps)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    info = json.loads((run_dir / "run_info.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    metrics = pd.read_csv(run_dir / "metrics.csv")
    k = cfg["final_eval"]["samples"]
    fixed_samples = cfg["data"]["batch_size"] * cfg["algo"]["group_size"]  # without dynamic sampling
    z_max = metrics.get(names.stat(Z_INSIDE, names.MAX), pd.Series(dtype=float)).dropna()
    z_median = metrics.get(names.stat(Z_INSIDE, names.MEDIAN), pd.Series(dtype=float)).dropna()
    return {
        "id": run_dir.name,
        "algo": cfg["algo"]["name"],
        "seed": cfg["seed"],
        "overrides": info["hydra"]["overrides"],
        "launcher": info["hydra"].get("launcher"),
        "threads": info.get("torch_threads"),
        "commit": info.get("git", {}).get("commit", "")[:7],
        "k": k,
        "base": _first(metrics[ACCURACY]),
        "final": _last(metrics[ACCURACY]),
        "last3": summary.get(names.summary(names.ACCURACY), nan),
        "greedy": _last(metrics.get(GREEDY, pd.Series(dtype=float))),
        "f1": summary.get(names.summary(names.SELF_VERIFY_F1), nan),
        "auroc": summary.get(names.summary(names.SELF_VERIFY_AUROC), nan),
        "within": summary.get(names.final(names.AUROC_WITHIN), nan),
        **{m: summary.get(names.final_vote(m, k), nan) for m in VOTES},
        "gap_max": float(metrics.get(GAP, pd.Series([nan])).max()),
        "step_s": float(metrics.get(STEP_TIME, pd.Series([nan])).mean()),
        "samples_per_step": float(metrics.get(SAMPLES_DRAWN, pd.Series([fixed_samples])).mean()),
        "dropped_frac": float(metrics.get(DROPPED, pd.Series([0.0])).mean()),
        "grad_norm": float(metrics.get(GRAD_NORM, pd.Series([nan])).median()),
        "keep_for_mse": bool(cfg["algo"].get("dynamic_sampling", {}).get("keep_for_mse", False)),
        # the largest log pi(z) of a step's batch, averaged over its first and last 10 logged steps
        # (a max over more samples would be larger by itself)
        "z_max_first": float(z_max.iloc[:10].mean()) if len(z_max) else nan,
        "z_max_last": float(z_max.iloc[-10:].mean()) if len(z_max) else nan,
        "z_median_last": float(z_median.iloc[-10:].mean()) if len(z_median) else nan,
    }


VOTES = ("pass@1", "majority", "weighted_majority", "best_of_k")


def read_runs(name: str) -> list[dict]:
    """Every run under docs/results/runs/<name>, in run-id order."""
    folder = RUNS / name
    dirs = sorted(d for d in folder.iterdir() if (d / "summary.json").exists()) if folder.is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"no runs under {folder}: copy a sweep there with `collect`")
    return [read_run(d) for d in dirs]


def multirun_command(runs: list[dict]) -> str:
    """The one multirun command that launched these runs, from their own overrides."""
    values: dict[str, list[str]] = {}
    for run in runs:
        for override in run["overrides"]:
            key, _, value = override.partition("=")
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    launcher = runs[0]["launcher"]
    parts = ["python -m laser.run -m", *([f"hydra/launcher={launcher}"] if launcher != "basic" else [])]
    return " ".join(parts + [f"{k}={','.join(v)}" for k, v in values.items()])


# --------------------------------------------------------------------------- formatting


def mean_sd(values: list[float]) -> str:
    """`mean ± sd` (sample standard deviation) of the finite values."""
    finite = [v for v in values if v == v]
    if not finite:
        return "–"
    sd = statistics.stdev(finite) if len(finite) > 1 else float("nan")
    return f"{statistics.mean(finite):.4f} ± {sd:.4f}"


def points(a: float, b: float) -> float:
    """a − b in points (percent)."""
    return 100 * (a - b)


def arms(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs by algorithm, GRPO first."""
    out: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: (r["algo"] != "grpo", r["algo"], r["seed"])):
        out.setdefault(run["algo"], []).append(run)
    return out


def commands(runs: list[dict]) -> str:
    """The multirun command of each sweep the runs come from (a run id is `<sweep>_<job>`)."""
    sweeps: dict[str, list[dict]] = {}
    for run in runs:
        sweeps.setdefault(run["id"].rsplit("_", 1)[0], []).append(run)
    return " and ".join(f"`{multirun_command(group)}`" for group in sweeps.values())


def footer(runs: list[dict]) -> str:
    commits = sorted({r["commit"] for r in runs})
    threads = sorted({str(r["threads"]) for r in runs})
    return (
        f"Made by `python -m analysis.tables` from the runs of {commands(runs)} "
        f"(commit {', '.join(commits)}, {'/'.join(threads)} torch thread(s) per run); run ids: "
        + ", ".join(f"`{r['id']}`" for r in runs)
        + "."
    )


# --------------------------------------------------------------------------- the tables


def seeds_table(runs: list[dict]) -> str:
    """Mean ± sd over seeds, one row per algorithm."""
    k = runs[0]["k"]
    header = [
        "arm (seeds)", "accuracy, step 0", "accuracy, last 3", "greedy, final", "F1, last 3",
        "AUROC, last 3", "within-prompt AUROC", f"majority@{k}", f"weighted@{k}", "weighted − majority (pts)",
        f"best-of-{k} − pass@1 (pts)",
    ]  # fmt: skip
    rows = []
    for algo, group in arms(runs).items():
        col = {key: [r[key] for r in group] for key in group[0]}
        rows.append(
            [
                f"{ARM_NAMES.get(algo, algo)} ({', '.join(str(s) for s in col['seed'])})",
                *(mean_sd(col[key]) for key in ("base", "last3", "greedy", "f1", "auroc", "within")),
                mean_sd(col["majority"]),
                mean_sd(col["weighted_majority"]),
                _points_mean_sd(group, "weighted_majority", "majority"),
                _points_mean_sd(group, "best_of_k", "pass@1"),
            ]
        )
    return markdown(header, rows)


def _points_mean_sd(group: list[dict], a: str, b: str) -> str:
    values = [points(r[a], r[b]) for r in group]
    finite = [v for v in values if v == v]
    if not finite:
        return "–"
    sd = f"{statistics.stdev(finite):.1f}" if len(finite) > 1 else "–"
    return f"{statistics.mean(finite):+.1f} ± {sd}"


def runs_table(runs: list[dict]) -> str:
    """One row per run, with the self-reward token's log-prob inside responses."""
    k = runs[0]["k"]
    header = [
        "arm", "seed", "accuracy: step 0 → final (last 3)", "greedy", "F1 / AUROC", "within",
        f"pass@1 / majority@{k} / weighted@{k} / best-of-{k}",
        "largest log π(z) in a step's responses: first 10 → last 10 logged steps", "median, last 10",
    ]  # fmt: skip
    rows = [
        [
            ARM_NAMES.get(r["algo"], r["algo"]),
            str(r["seed"]),
            f"{fmt(r['base'])} → {fmt(r['final'])} ({fmt(r['last3'])})",
            fmt(r["greedy"]),
            f"{fmt(r['f1'])} / {fmt(r['auroc'])}",
            fmt(r["within"]),
            " / ".join(fmt(r[m]) for m in VOTES),
            f"{r['z_max_first']:.2f} → {r['z_max_last']:.2f}",
            f"{r['z_median_last']:.2f}",
        ]
        for group in arms(runs).values()
        for r in group
    ]
    return markdown(header, rows)


def _mean(group: list[dict], key: Callable[[dict], float]) -> float:
    return statistics.mean(key(r) for r in group) if group else float("nan")


def _check(name: str, value: float, bar: float, unit: str = "", at_most: bool = False) -> list[str]:
    """A row of a checks table: the value, its bar (>= bar, or <= bar with `at_most`), met or not."""
    shown, limit = (f"{value:+.1f}{unit}", f"{bar:+.0f}{unit}") if unit else (f"{value:.4f}", f"{bar:.2f}")
    met = value <= bar if at_most else value >= bar
    verdict = "no runs" if value != value else "met" if met else "**missed**"
    return [name, "–" if value != value else shown, ("≤ " if at_most else "≥ ") + limit, verdict]


def _pts(a: str, b: str) -> Callable[[dict], float]:
    return lambda r: points(r[a], r[b])


def _gap_check(runs: list[dict]) -> list[str]:
    """The sampled policy is the trained one: the largest per-token log-prob gap of any logged step."""
    value = max([r["gap_max"] for r in runs], default=nan)
    shown = "–" if value != value else f"{value:.1e}"
    verdict = "no runs" if value != value else "met" if value <= 1e-4 else "**missed**"
    return ["every run: largest rollout − training log-prob gap of a logged step", shown, "≤ 1e-4", verdict]


def showcase_bars(runs: list[dict]) -> str:
    """The showcase's bars on the mean of the LaSeR seeds, and GRPO's seeds against collapse."""
    by = arms(runs)
    laser, grpo = by.get("laser", []), by.get("grpo", [])
    rows = [
        _check("LaSeR: within-prompt AUROC", _mean(laser, lambda r: r["within"]), 0.75),
        _check("LaSeR: F1, last 3", _mean(laser, lambda r: r["f1"]), 0.80),
        _check("LaSeR: pooled AUROC, last 3", _mean(laser, lambda r: r["auroc"]), 0.85),
        _check("LaSeR: weighted − majority", _mean(laser, _pts("weighted_majority", "majority")), 2, " pts"),
        _check("LaSeR: best-of-k − pass@1", _mean(laser, _pts("best_of_k", "pass@1")), 5, " pts"),
        _check("GRPO: lowest final accuracy of its seeds", min([r["final"] for r in grpo], default=nan), 0.6),
        _check(
            "every seed: rise of the largest log π(z) in responses, first → last 10 logged steps",
            max((r["z_max_last"] - r["z_max_first"] for r in runs), default=nan), 2, " nats", at_most=True,
        ),
        _gap_check(runs),
    ]  # fmt: skip
    return markdown(["check (mean over seeds)", "value", "bar", ""], rows)


def default_checks(runs: list[dict]) -> str:
    """RL's gain on the default task and what LaSeR costs it, on the means over seeds."""
    by = arms(runs)
    laser, grpo = by.get("laser", []), by.get("grpo", [])
    gap = _mean(laser, lambda r: r["last3"]) - _mean(grpo, lambda r: r["last3"])
    rows = [
        _check("GRPO: accuracy gain over the base, last 3", _mean(grpo, _pts("last3", "base")), 15, " pts"),
        _check("LaSeR − GRPO: accuracy, last 3", 100 * gap, -2, " pts"),
        _gap_check(runs),
    ]
    return markdown(["check (mean over seeds)", "value", "bar", ""], rows)


@dataclass(frozen=True)
class Table:
    name: str  # docs/results/<name>.md
    runs: str | tuple[str, ...]  # docs/results/runs/<runs>: one folder, or several read together
    make: Callable[[list[dict]], str]
    readme: bool = False  # also README's table between its markers


TABLES = (
    Table("default", "default", seeds_table, readme=True),
    Table("default_runs", "default", runs_table),
    Table("showcase", "showcase", seeds_table),
    Table("showcase_runs", "showcase", runs_table),
    Table("default_checks", "default", default_checks),
    Table("showcase_bars", "showcase", showcase_bars),
    Table("baselines", "baselines", baselines_table, readme=True),
    Table("baselines_checks", "baselines", baselines_checks),
    Table("showcase_dynamic_sampling", "showcase_dynamic_sampling", dynamic_sampling_table),
)


def folders(table: Table) -> tuple[str, ...]:
    return (table.runs,) if isinstance(table.runs, str) else table.runs


def render(table: Table) -> str:
    runs = [run for name in folders(table) for run in read_runs(name)]
    return f"{table.make(runs)}\n\n{footer(runs)}\n"


def readme_with(text: str, table: str, name: str) -> str:
    """README's text with the table between `<!-- table:name -->` and `<!-- /table:name -->`."""
    start, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{table}{end}{rest.split(end, 1)[1]}"


def outputs() -> dict[Path, str]:
    """Every file the tables make, with its text."""
    files: dict[Path, str] = {}
    readme = README.read_text()
    for table in TABLES:
        if not all((RUNS / name).is_dir() for name in folders(table)):
            continue  # its runs are not committed yet
        text = render(table)
        files[OUT / f"{table.name}.md"] = text
        if table.readme:
            readme = readme_with(readme, text, table.name)
    for table in EVAL_TABLES:  # the evaluations' tables, once their files are committed
        if (EVALS / table.evals).is_dir():
            text = render_eval(table)
            files[OUT / f"{table.name}.md"] = text
            if table.readme:
                readme = readme_with(readme, text, table.name)
    files[README] = readme
    return files


def showcase_figure(path: Path = ROOT / "docs" / "figures" / "showcase_scaling.png") -> None:
    """README's figure: the showcase's inference-time scaling, seed 0 of each algorithm."""
    from analysis.figures import plot_scaling
    from analysis.runs import load_voting

    dirs = [RUNS / "showcase" / r["id"] for r in read_runs("showcase") if r["seed"] == 0]
    plot_scaling(load_voting(dirs), path)


def confidence_figure(path: Path = ROOT / "docs" / "figures" / "confidence_scaling.png") -> None:
    """README's confidence figure: accuracy against samples per prompt, one line per method, on
    each held-out evaluation under docs/results/evals/confidence (calibration splits left out)."""
    from analysis.figures import plot_confidence_scaling
    from analysis.runs import load_adaptive, load_confidence_scaling

    evals = [e for e in read_evals("confidence") if e.held_out]
    dirs = [EVALS / "confidence" / e.label for e in evals]
    # panels titled by the evaluation's label alone (its folder), not by its machine's paths
    scaling = load_confidence_scaling(dirs)[["run", "method", "rule", "k", "accuracy"]]
    adaptive = load_adaptive(dirs)[["run", "method", "threshold", "mean_samples", "accuracy"]]
    plot_confidence_scaling(scaling, adaptive, path=path)


def collect(sweep: Path, name: str) -> None:
    """Copy the small files of a sweep's runs into docs/results/runs/<name>/<sweep>_<job>."""
    jobs = sorted(d for d in sweep.iterdir() if (d / "summary.json").exists())
    if not jobs:
        raise FileNotFoundError(f"no finished run (summary.json) under {sweep}")
    for job in jobs:
        dest = RUNS / name / f"{sweep.name}_{job.name}"
        dest.mkdir(parents=True, exist_ok=True)
        for file in RUN_FILES:
            if (job / file).exists():
                shutil.copy(job / file, dest / file)
    print(f"copied {len(jobs)} runs to {RUNS / name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("write", help="write every table (the default)")
    sub.add_parser("check", help="fail when a committed table differs from what its runs give")
    grab = sub.add_parser("collect", help="copy a sweep's run files under docs/results/runs/<name>")
    grab.add_argument("sweep", type=Path)
    grab.add_argument("name")
    grab_eval = sub.add_parser(
        "collect-eval", help="copy an evaluation's files under docs/results/evals/<dest>"
    )
    grab_eval.add_argument("evaluation", type=Path)
    grab_eval.add_argument("dest", help="<name>/<label>, e.g. confidence/laser")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.sweep, args.name)
        return 0
    if args.command == "collect-eval":
        collect_eval(args.evaluation, args.dest)
        return 0
    stale = []
    for path, text in outputs().items():
        if args.command == "check":
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    if args.command != "check":
        showcase_figure()
        if (EVALS / "confidence").is_dir():
            confidence_figure()
    for path in stale:
        print(f"{path.relative_to(ROOT)} is not what its runs give: run `python -m analysis.tables`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

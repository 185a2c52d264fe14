"""Tables of `laser.evaluate`'s confidence comparison, made from the files evaluations leave.

An evaluation's small files are copied under `docs/results/evals/<name>/<label>` by

    python -m analysis.tables collect-eval <evaluation dir> <name>/<label>    # e.g. confidence/laser

and `python -m analysis.tables` writes the tables below with the others. The label names the
policy (`laser`, `grpo`); an evaluation made with `split=train` is a labelled calibration split of
another policy, listed in the footer and not tabulated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from analysis.formatting import fmt, markdown

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "docs" / "results" / "evals"
EVAL_FILES = (
    "confidence.csv",
    "confidence_scaling.csv",
    "adaptive.csv",
    "accuracy_estimate.csv",
    "self_verify.json",
    "scaling_summary.csv",
    "run_info.json",
)
TRAINED = "laser"  # the method whose score training made
FILTERS = ("filtered_top10", "filtered_top90")
ESTIMATE_BAR = 3.0  # points: the label-free estimate of the final LaSeR policy's accuracy
ADAPTIVE_SHARE = 0.6  # adaptive sampling's samples against fixed K, at weighted@K's accuracy
ADAPTIVE_SLACK = 0.5  # points below weighted@K that still count as reaching it
nan = float("nan")


@dataclass(frozen=True)
class Evaluation:
    label: str
    overrides: list[str]
    commit: str
    threads: int | None
    confidence: pd.DataFrame  # by method
    scaling: pd.DataFrame  # method, rule, k, accuracy
    adaptive: pd.DataFrame  # method, threshold, mean_samples, accuracy
    estimate: pd.DataFrame  # method, calibration, target, predicted, ..., true, error

    @property
    def held_out(self) -> bool:
        return "split=train" not in self.overrides

    @property
    def k(self) -> int:
        return int(self.scaling["k"].max())

    def accuracy(self, method: str, rule: str, k: int | None = None) -> float:
        rows = self.scaling
        rows = rows[(rows["method"] == method) & (rows["rule"] == rule) & (rows["k"] == (k or self.k))]
        if rows.empty:
            raise KeyError(f"{self.label}: confidence_scaling.csv has no {method}/{rule} at k={k or self.k}")
        return float(rows["accuracy"].iloc[0])


def read_eval(folder: Path) -> Evaluation:
    info = json.loads((folder / "run_info.json").read_text())
    return Evaluation(
        label=folder.name,
        overrides=yaml.safe_load((folder / "overrides.yaml").read_text()) or [],
        commit=info.get("git", {}).get("commit", "")[:7],
        threads=info.get("torch_threads"),
        confidence=pd.read_csv(folder / "confidence.csv", index_col="method"),
        scaling=pd.read_csv(folder / "confidence_scaling.csv"),
        adaptive=pd.read_csv(folder / "adaptive.csv"),
        estimate=pd.read_csv(folder / "accuracy_estimate.csv"),
    )


def read_evals(name: str) -> list[Evaluation]:
    """Every evaluation under docs/results/evals/<name>, in label order."""
    folder = EVALS / name
    dirs = sorted(d for d in folder.iterdir() if (d / "confidence.csv").exists()) if folder.is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"no evaluations under {folder}: copy them there with `collect-eval`")
    return [read_eval(d) for d in dirs]


def collect_eval(source: Path, dest: str) -> None:
    """Copy an evaluation's small files (and its overrides) to docs/results/evals/<dest>."""
    missing = [f for f in EVAL_FILES if not (source / f).exists()]
    if missing:
        raise FileNotFoundError(f"{source} lacks {missing}: give a finished laser.evaluate output folder")
    target = EVALS / dest
    target.mkdir(parents=True, exist_ok=True)
    for file in EVAL_FILES:
        shutil.copy(source / file, target / file)
    shutil.copy(source / ".hydra" / "overrides.yaml", target / "overrides.yaml")
    print(f"copied {source} to {target}")


# --------------------------------------------------------------------------- formatting


def _held_out(evals: list[Evaluation]) -> list[Evaluation]:
    return [e for e in evals if e.held_out]


# --------------------------------------------------------------------------- the tables


def methods_table(evals: list[Evaluation]) -> str:
    """Each method on each held-out evaluation: ranking, calibration, voting and cost."""
    rows, k = [], max((ev.k for ev in evals), default=0)
    for ev in _held_out(evals):
        rows.append(
            [ev.label, "majority (no confidence)", "–", "–", "–", fmt(ev.accuracy("majority", "majority"))]
            + ["–"] * 4
        )
        for method, row in ev.confidence.iterrows():
            votes = [ev.accuracy(method, rule) for rule in ("weighted_majority", "best_of_k", *FILTERS)]
            rows.append(
                [ev.label, f"`{method}`", fmt(row["auroc/pooled"]), fmt(row["auroc/within"]),
                 fmt(row["ece/calibrated"]), *map(fmt, votes),
                 fmt(row["cost/extra_ms_per_sample"], 3)]
            )  # fmt: skip
    header = ["policy", "method", "AUROC pooled", "AUROC within", "ECE (calibrated)", f"weighted@{k}",
              f"best-of-{k}", "filtered top 10%", "filtered top 90%", "extra ms/sample"]  # fmt: skip
    return markdown(header, rows)


def estimates_table(evals: list[Evaluation]) -> str:
    """Predicted pass@1 against the true one, per method and calibration."""
    rows = []
    for ev in _held_out(evals):
        est = ev.estimate[ev.estimate["target"] == "pass@1"]
        for r in est.itertuples():
            rows.append(
                [ev.label, f"`{r.method}`", r.calibration,
                 f"{fmt(r.predicted)} [{fmt(r.predicted_low)}, {fmt(r.predicted_high)}]",
                 f"{fmt(r.true)} [{fmt(r.true_low)}, {fmt(r.true_high)}]", f"{100 * r.error:+.1f}"]
            )  # fmt: skip
    header = ["policy", "method", "calibration", "predicted pass@1 [95%]", "true [95%]", "error (pts)"]
    return markdown(header, rows)


def adaptive_reach(ev: Evaluation, method: str) -> tuple[float, float, float]:
    """(weighted@K accuracy, the fewest mean samples of an adaptive threshold within the slack of
    it (nan: none), the adaptive curve's best accuracy)."""
    target = ev.accuracy(method, "weighted_majority")
    curve = ev.adaptive[ev.adaptive["method"] == method]
    reached = curve[curve["accuracy"] >= target - ADAPTIVE_SLACK / 100]
    fewest = float(reached["mean_samples"].min()) if len(reached) else nan
    return target, fewest, float(curve["accuracy"].max())


def adaptive_table(evals: list[Evaluation]) -> str:
    """Samples adaptive sampling needs to reach fixed-K weighted voting's accuracy."""
    rows = []
    for ev in _held_out(evals):
        for method in ev.confidence.index:
            target, fewest, best = adaptive_reach(ev, method)
            share = "not reached" if fewest != fewest else f"{fewest:.2f} ({100 * fewest / ev.k:.0f}%)"
            rows.append([ev.label, f"`{method}`", fmt(target), share, fmt(best)])
    header = [
        "policy",
        "method",
        "weighted@K",
        f"mean samples within {ADAPTIVE_SLACK} pt of it",
        "best adaptive",
    ]
    return markdown(header, rows)


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def losses(ev: Evaluation) -> list[str]:
    """Where LaSeR's score loses to a training-free one on `ev`, and by how much."""
    out = []
    conf = ev.confidence
    metrics = {"AUROC pooled": lambda m: conf.loc[m, "auroc/pooled"],
               "AUROC within": lambda m: conf.loc[m, "auroc/within"],
               f"weighted@{ev.k}": lambda m: ev.accuracy(m, "weighted_majority"),
               f"best-of-{ev.k}": lambda m: ev.accuracy(m, "best_of_k")}  # fmt: skip
    for name, value in metrics.items():
        others = {m: value(m) for m in conf.index if m != TRAINED}
        best = max(others, key=others.get)
        gap = others[best] - value(TRAINED)
        if gap > 0:
            out.append(f"{ev.label}: `{best}` beats `{TRAINED}` on {name} by {fmt(gap)}")
    return out


def checks_table(evals: list[Evaluation]) -> str:
    """The confidence comparison's bars, and where LaSeR's score loses."""
    rows = []
    final = next((e for e in evals if e.label == TRAINED and e.held_out), None)
    if final is not None:
        est = final.estimate[(final.estimate["target"] == "pass@1") & (final.estimate["method"] == TRAINED)]
        for r in est[est["calibration"] != "cross_fit"].itertuples():
            error = 100 * abs(r.error)
            name = f"final LaSeR policy: `{TRAINED}` estimate ({r.calibration}) − true pass@1, |pts|"
            rows.append([name, f"{error:.1f}", f"≤ {ESTIMATE_BAR:.0f}", _verdict(error <= ESTIMATE_BAR)])
        _, fewest, _ = adaptive_reach(final, TRAINED)
        share = fewest / final.k
        rows.append([f"final LaSeR policy: adaptive `{TRAINED}` samples to reach weighted@{final.k} − 0.5 pt",
                     "not reached" if fewest != fewest else f"{100 * share:.0f}% ({fewest:.2f})",
                     f"≤ {100 * ADAPTIVE_SHARE:.0f}%", _verdict(share <= ADAPTIVE_SHARE)])  # fmt: skip
    lost = [line for ev in _held_out(evals) for line in losses(ev)]
    rows += [[line, "", "", "LaSeR loses"] for line in lost] or [["LaSeR's score loses nowhere", "", "", ""]]
    return markdown(["check", "value", "bar", ""], rows)


def portable(override: str) -> str:
    """An override without the machine's paths: a run's path from its `outputs/` on, another
    evaluation's folder by its name (its label in the same footer)."""
    key, _, value = override.partition("=")
    if not value.startswith("/"):
        return override
    if "/outputs/" in value:
        return f"{key}={value[value.index('/outputs/') + 1 :]}"
    return f"{key}={Path(value).name}"


def eval_footer(evals: list[Evaluation]) -> str:
    commits = sorted({e.commit for e in evals})
    threads = sorted({str(e.threads) for e in evals})
    commands = "; ".join(
        f"{e.label}: `python -m laser.evaluate {' '.join(map(portable, e.overrides))}`" for e in evals
    )
    return (
        f"Made by `python -m analysis.tables` from the evaluations under `docs/results/evals/` "
        f"(commit {', '.join(commits)}, {'/'.join(threads)} torch thread(s)). {commands}."
    )


@dataclass(frozen=True)
class EvalTable:
    name: str  # docs/results/<name>.md
    evals: str  # docs/results/evals/<evals>
    make: Callable[[list[Evaluation]], str]
    readme: bool = False


EVAL_TABLES = (
    EvalTable("confidence", "confidence", methods_table),
    EvalTable("confidence_estimates", "confidence", estimates_table),
    EvalTable("confidence_adaptive", "confidence", adaptive_table),
    EvalTable("confidence_checks", "confidence", checks_table, readme=True),
)


def render_eval(table: EvalTable) -> str:
    evals = read_evals(table.evals)
    return f"{table.make(evals)}\n\n{eval_footer(evals)}\n"

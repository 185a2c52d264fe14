"""Figures for LaSeR runs, one consistent matplotlib style.

Every ``plot_*`` function takes the tidy frames of :mod:`analysis.runs`, returns the
:class:`~matplotlib.figure.Figure`, and writes a PNG when ``path`` is given.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless by default; notebooks still display returned figures inline

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.runs import final_metrics

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "axes.prop_cycle": matplotlib.cycler(
        color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
    ),
}
METHOD_STYLE = {
    "pass@1": {"color": "#7f7f7f", "linestyle": ":", "marker": "."},
    "majority": {"color": "#1f77b4", "linestyle": "-", "marker": "o"},
    "weighted_majority": {"color": "#d62728", "linestyle": "-", "marker": "s"},
    "best_of_k": {"color": "#2ca02c", "linestyle": "-", "marker": "^"},
    "pass@k": {"color": "black", "linestyle": "--", "marker": None},
}
SELF_VERIFY_METRICS = ("self_verify/f1", "self_verify/acc_correct", "self_verify/acc_incorrect")


def use_style() -> None:
    plt.rcParams.update(STYLE)


def _finish(fig, path: str | Path | None):
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


ALGO_NAMES = {"grpo": "GRPO", "laser": "LaSeR"}


def _label(row: pd.Series, params: list[str]) -> str:
    """`GRPO`, `LaSeR`, or the swept values (`beta_v=0.5`); config-group choices such as `algo=grpo`
    are already in the algorithm's name."""
    algo = row.get("algo")
    parts = [ALGO_NAMES.get(algo, algo)] if isinstance(algo, str) else []
    parts += [
        f"{p.split('.')[-1]}={row[p]}"
        for p in params
        if p in row and not p.endswith("_group") and not pd.isna(row[p])
    ]
    return " ".join(parts) or str(row["run"])


def run_labels(runs: pd.DataFrame) -> dict[str, str]:
    """A legend label per run; the run's id is added only where two runs would read the same."""
    params = _params(runs)
    rows = runs.drop_duplicates("run")
    labels = {r["run"]: _label(r, params) for _, r in rows.iterrows()}
    counts = pd.Series(list(labels.values())).value_counts()
    return {run: (f"{lab} ({run})" if counts[lab] > 1 else lab) for run, lab in labels.items()}


def _params(df: pd.DataFrame) -> list[str]:
    from analysis.runs import override_columns

    return override_columns(df)


def _empty(ax, text="no data"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


# --------------------------------------------------------------------------- 1. self-verification
def plot_self_verify(
    runs: pd.DataFrame, split: str = "val", metrics=SELF_VERIFY_METRICS, path: str | Path | None = None
):
    """Self-verification F1 and accuracy on correct / incorrect responses over training steps."""
    use_style()
    metrics = list(metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    labels = run_labels(runs)
    for ax, m in zip(axes[0], metrics, strict=True):
        name = f"{split}/{m}"
        sub = runs[runs["metric"] == name]
        for run, g in sub.groupby("run", sort=True):
            g = g.sort_values("step")
            ax.plot(g["step"], g["value"], marker="o", label=labels[run])
        if sub.empty:
            _empty(ax)
        ax.set(title=name, xlabel="step", ylim=(-0.05, 1.05))
    axes[0][0].set_ylabel("value")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][-1].legend(loc="best")
    return _finish(fig, path)


# --------------------------------------------------------------------------- 2. scaling
def plot_scaling(summary: pd.DataFrame, path: str | Path | None = None, max_cols: int = 3):
    """Accuracy vs k per run: majority / weighted majority / best-of-k, pass@k as the dashed ceiling.

    ``summary``: ``run, method, k, accuracy`` (``load_voting`` or ``scaling_summary(load_scaling(...))``).
    """
    use_style()
    run_ids = sorted(summary["run"].unique()) if not summary.empty else []
    n = max(len(run_ids), 1)
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    flat = axes.ravel()
    titles = run_labels(summary) if run_ids else {}
    for ax, run in zip(flat, run_ids, strict=False):
        g = summary[summary["run"] == run]
        for method, st in METHOD_STYLE.items():
            m = g[g["method"] == method].sort_values("k")
            if not m.empty:
                ax.plot(m["k"], m["accuracy"], label=method, **st)
        ax.set_xscale("log", base=2)
        ax.set(title=titles[run], xlabel="k (samples)", ylabel="accuracy", ylim=(-0.05, 1.05))
    if not run_ids:
        _empty(flat[0])
    for ax in flat[len(run_ids) :]:
        ax.set_visible(False)
    if run_ids:
        flat[0].legend(loc="best")
    return _finish(fig, path)


# --------------------------------------------------------------------------- 3. ablation
def ablation_table(
    runs: pd.DataFrame, param: str | None = None, metrics=("val/accuracy", "val/self_verify/f1")
) -> pd.DataFrame:
    """Final value of ``metrics`` per run against the swept ``param`` (default: the first override column)."""
    final = final_metrics(runs, metrics)
    if param is None:
        params = _params(runs)
        param = params[0] if params else "run"
    cols = [param] + [c for c in ("run", "algo") if c != param] + [m for m in metrics if m in final.columns]
    return final[cols].sort_values(param, kind="stable").reset_index(drop=True)


def plot_ablation(
    runs: pd.DataFrame,
    param: str | None = None,
    metrics=("val/accuracy", "val/self_verify/f1"),
    path: str | Path | None = None,
):
    """Final accuracy and final self-verification F1 against the swept value."""
    use_style()
    table = ablation_table(runs, param, metrics)
    param = table.columns[0]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    x = pd.to_numeric(table[param], errors="coerce")
    categorical = x.isna().any()
    xs = np.arange(len(table)) if categorical else x
    for ax, m in zip(axes[0], metrics, strict=True):
        if m in table.columns:
            ax.plot(xs, table[m], marker="o")
        else:
            _empty(ax)
        if categorical:
            ax.set_xticks(xs, table[param].astype(str))
        ax.set(title=f"final {m}", xlabel=param, ylim=(-0.05, 1.05))
    return _finish(fig, path)


# --------------------------------------------------------------------------- 4. score distributions
def plot_score_distributions(
    problems: pd.DataFrame | None = None,
    runs: pd.DataFrame | None = None,
    path: str | Path | None = None,
    bins: int = 20,
):
    """Self-reward scores of correct vs incorrect responses.

    From ``problems`` (``load_problems``): histograms per run. Otherwise from the metrics of ``runs``:
    the final ``val/self_reward/score_{correct,incorrect}/mean`` +- std (``score`` = all responses when a
    class was not logged).
    """
    use_style()
    if problems is not None and not problems.empty:
        run_ids = sorted(problems["run"].unique())
        fig, axes = plt.subplots(1, len(run_ids), figsize=(4 * len(run_ids), 3.2), squeeze=False)
        titles = run_labels(problems)
        for ax, run in zip(axes[0], run_ids, strict=True):
            g = problems[problems["run"] == run]
            edges = np.histogram_bin_edges(g["score"].astype(float), bins=bins)
            for correct, color, name in ((True, "#2ca02c", "correct"), (False, "#d62728", "incorrect")):
                s = g.loc[g["correct"] == correct, "score"].astype(float)
                ax.hist(s, bins=edges, alpha=0.55, color=color, label=f"{name} (n={len(s)})")
            ax.set(title=titles[run], xlabel="self-reward score", ylabel="responses")
            ax.legend(loc="best")
        return _finish(fig, path)
    return _score_bars(runs, path)


def _score_bars(runs: pd.DataFrame | None, path):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    kinds = ("score_correct", "score_incorrect", "score")
    if runs is None or runs.empty:
        _empty(ax)
        return _finish(fig, path)
    want = [f"val/self_reward/{k}/{s}" for k in kinds for s in ("mean", "std")]
    final = final_metrics(runs, want)
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        mean = final.get(f"val/self_reward/{kind}/mean")
        if mean is None:
            continue
        std = final.get(f"val/self_reward/{kind}/std", pd.Series(0.0, index=final.index))
        ax.bar(
            np.arange(len(final)) + i * width, mean, width, yerr=std, capsize=3, label=kind.replace("_", " ")
        )
    names = run_labels(runs)
    ax.set_xticks(np.arange(len(final)) + width, [names.get(r, str(r)) for r in final["run"]])
    ax.set(ylabel="final val self-reward score", title="scores: correct vs incorrect")
    ax.legend(loc="best")
    return _finish(fig, path)

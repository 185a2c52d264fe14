"""Figures for LaSeR runs, one consistent matplotlib style.

Every ``plot_*`` function takes the tidy frames of :mod:`analysis.runs`, returns the
:class:`~matplotlib.figure.Figure`, and writes a PNG when ``path`` is given. Metric names come from
:mod:`laser.metric_names`; a plot or table that asks a run for a metric its ``metrics.csv`` lacks
raises :class:`analysis.runs.MissingMetricError` (a metric logged without values draws "no data").
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless by default; notebooks still display returned figures inline

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.runs import final_metrics, require_metrics
from laser import metric_names as mn

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
SELF_VERIFY_METRICS = (mn.SELF_VERIFY_F1, mn.SELF_VERIFY_ACC_CORRECT, mn.SELF_VERIFY_ACC_INCORRECT)
FINAL_METRICS = (mn.val(mn.ACCURACY), mn.val(mn.SELF_VERIFY_F1))  # of an ablation


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
# overrides that name where a run came from, not what it varied
UNLABELLED = {"ckpt_path", "hydra.run.dir", "hydra.sweep.dir"}


def _label(row: pd.Series, params: list[str]) -> str:
    """`GRPO`, `LaSeR`, or the swept values (`beta_v=0.5`); config-group choices such as `algo=grpo`
    are already in the algorithm's name."""
    algo = row.get("algo")
    parts = [ALGO_NAMES.get(algo, algo)] if isinstance(algo, str) else []
    parts += [
        f"{p.split('.')[-1]}={row[p]}"
        for p in params
        if p in row and not p.endswith("_group") and p not in UNLABELLED and not pd.isna(row[p])
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
    require_metrics(runs, [mn.logged(split, m) for m in metrics])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    labels = run_labels(runs)
    for ax, m in zip(axes[0], metrics, strict=True):
        name = mn.logged(split, m)
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
def ablation_table(runs: pd.DataFrame, param: str | None = None, metrics=FINAL_METRICS) -> pd.DataFrame:
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
    metrics=FINAL_METRICS,
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
    kinds = (mn.SCORE_CORRECT, mn.SCORE_INCORRECT, mn.SCORE)
    if runs is None or runs.empty:
        _empty(ax)
        return _finish(fig, path)
    means = {k: mn.val(mn.stat(k, mn.MEAN)) for k in kinds}
    stds = {k: mn.val(mn.stat(k, mn.STD)) for k in kinds}
    require_metrics(runs, means.values(), any_of=True)  # a class goes unlogged while it is empty
    final = final_metrics(runs, [*means.values(), *stds.values()], required=False)
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        mean = final.get(means[kind])
        if mean is None:
            continue
        std = final.get(stds[kind], pd.Series(0.0, index=final.index))
        label = kind.split("/")[-1].replace("_", " ")
        ax.bar(np.arange(len(final)) + i * width, mean, width, yerr=std, capsize=3, label=label)
    names = run_labels(runs)
    ax.set_xticks(np.arange(len(final)) + width, [names.get(r, str(r)) for r in final["run"]])
    ax.set(ylabel="final val self-reward score", title="scores: correct vs incorrect")
    ax.legend(loc="best")
    return _finish(fig, path)


# --------------------------------------------------------------------------- 5. paper comparisons
VERIFY_LOSS = "algo.self_reward.loss"
SWITCH_METRIC = mn.train(mn.REWARD_SOURCE_SELF)
TRAIN_REWARD = mn.train(mn.REWARD_MEAN)  # the verifier's reward on training samples
VAL_ACCURACY = mn.val(mn.ACCURACY)


def _runs_of(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The runs of ``experiment`` when there are any, else all of them."""
    sub = runs[runs["experiment"] == experiment]
    return sub if not sub.empty else runs


def _curve(g: pd.DataFrame, smooth: int) -> pd.Series:
    """One run's metric against step, as a rolling mean over ``smooth`` logged points."""
    series = g.sort_values("step").set_index("step")["value"]
    return series.rolling(smooth, min_periods=1).mean() if smooth > 1 else series


def plot_curves(
    runs: pd.DataFrame,
    metrics,
    by: str | None = None,
    smooth: int = 1,
    switch: bool = False,
    path: str | Path | None = None,
):
    """``metrics`` against step, one panel each and one line per run (labelled by the column ``by``,
    e.g. ``algo.self_reward.loss``), training metrics smoothed over ``smooth`` logged steps; with
    ``switch``, a dotted line at each run's switch to the self-reward as the only reward."""
    use_style()
    metrics = list(metrics)
    require_metrics(runs, metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    params = _params(runs)
    first = runs.drop_duplicates("run")
    labels = {
        r["run"]: f"{by.split('.')[-1]}={r[by]} ({r['run']})" if by in first.columns else _label(r, params)
        for _, r in first.iterrows()
    }
    switches = switch_steps(runs) if switch else {}
    for ax, m in zip(axes[0], metrics, strict=True):
        sub = runs[runs["metric"] == m]
        for i, (run, g) in enumerate(sub.groupby("run", sort=True)):
            curve = _curve(g, smooth if m.startswith(mn.train("")) else 1)
            color = STYLE["axes.prop_cycle"].by_key()["color"][i % 8]
            ax.plot(curve.index, curve.values, label=labels[run], color=color)
            if run in switches:
                ax.axvline(switches[run], color=color, linestyle=":", linewidth=1)
        if sub.empty:
            _empty(ax)
        ax.set(title=m, xlabel="step")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][-1].legend(loc="best")
    return _finish(fig, path)


def plot_verify_loss_curves(runs: pd.DataFrame, smooth: int = 25, path: str | Path | None = None):
    """The reasoning reward under the MSE and the SFT verification loss (``ablate_verify_loss``):
    the verifier's reward on training samples, held-out accuracy and the self-verification F1."""
    metrics = (TRAIN_REWARD, VAL_ACCURACY, mn.val(mn.SELF_VERIFY_F1))
    return plot_curves(_runs_of(runs, "ablate_verify_loss"), metrics, VERIFY_LOSS, smooth, path=path)


def verify_loss_table(runs: pd.DataFrame, last: int = 100) -> pd.DataFrame:
    """One row per run of ``ablate_verify_loss`` (or of ``runs``): its loss, the mean training
    reward over its last ``last`` logged steps and the final validation metrics."""
    runs = _runs_of(runs, "ablate_verify_loss")
    verify = (mn.SELF_VERIFY_F1, mn.SELF_VERIFY_AUROC, mn.SELF_VERIFY_ECE)
    metrics = [VAL_ACCURACY, *(mn.val(m) for m in verify)]
    final = final_metrics(runs, metrics)
    require_metrics(runs, [TRAIN_REWARD])
    train = runs[runs["metric"] == TRAIN_REWARD].sort_values("step")
    tail = train.groupby("run")["value"].apply(lambda v: v.tail(last).mean())
    final[f"{TRAIN_REWARD} (last {last})"] = final["run"].map(tail)
    front = [c for c in ("run", VERIFY_LOSS) if c in final.columns]
    return final[front + [c for c in final.columns if "/" in c]]


def switch_steps(runs: pd.DataFrame) -> dict[str, float]:
    """Each run's first logged step with the self-reward as the only reward (runs with a switch;
    those of the ``self_reward_only`` experiment must log it)."""
    require_metrics(runs[runs["experiment"] == "self_reward_only"], [SWITCH_METRIC])
    on = runs[(runs["metric"] == SWITCH_METRIC) & (runs["value"] > 0.5)]
    return on.groupby("run")["step"].min().to_dict()


def switch_table(runs: pd.DataFrame, window: int = 50, smooth: int = 25, drop: float = 0.5) -> pd.DataFrame:
    """Per run with a switch: the switch step; the verifier's mean training reward over the
    ``window`` steps before it, after it and at the end; held-out accuracy at the last evaluation
    before the switch and at the end; and the collapse step, the first step after the switch where
    the verifier's reward (smoothed over ``smooth`` steps) falls below ``drop`` times its mean
    before the switch (NaN if it never does), with its distance from the switch. Steps are as
    logged (Lightning's 0-based index: the step the self-reward first drives is ``switch_step``)."""
    rows = []
    switches = switch_steps(runs)
    require_metrics(runs[runs["run"].isin(switches)], [TRAIN_REWARD, VAL_ACCURACY])
    for run, step in sorted(switches.items()):
        g = runs[runs["run"] == run]
        reward = g[g["metric"] == TRAIN_REWARD].sort_values("step").set_index("step")["value"]
        acc = g[g["metric"] == VAL_ACCURACY].sort_values("step").set_index("step")["value"]
        before, after = reward[reward.index < step], reward[reward.index >= step]
        level = before.tail(window).mean()
        smoothed = after.rolling(smooth, min_periods=1).mean()
        fallen = smoothed[smoothed < drop * level]
        collapse = fallen.index[0] if len(fallen) and level > 0 else np.nan
        rows.append(
            {
                "run": run,
                "switch_step": step,
                f"reward before (last {window})": level,
                f"reward after (first {window})": after.head(window).mean(),
                "reward final": after.tail(window).mean(),
                "accuracy before": acc[acc.index < step].iloc[-1] if (acc.index < step).any() else np.nan,
                "accuracy final": acc.iloc[-1] if len(acc) else np.nan,
                "collapse_step": collapse,
                "steps_to_collapse": collapse - step,
            }
        )
    return pd.DataFrame(rows)


def plot_self_reward_only(runs: pd.DataFrame, smooth: int = 25, path: str | Path | None = None):
    """Before and after the switch to the self-reward as the only reward (``self_reward_only``):
    the verifier's reward on training samples, the reward the advantages came from (the clipped
    self-reward after the switch) and held-out accuracy; the dotted line marks the switch."""
    with_switch = runs[runs["run"].isin(switch_steps(runs))]
    metrics = (TRAIN_REWARD, mn.train(mn.REWARD_SOURCE_REWARD_MEAN), VAL_ACCURACY)
    return plot_curves(with_switch, metrics, smooth=smooth, switch=True, path=path)


def _finished(problems: pd.DataFrame) -> pd.DataFrame:
    """The responses that ended with EOS (all of them for evaluations without the flag)."""
    done = problems["finished"]
    return problems[done.isna() | done.astype(bool)] if "finished" in problems else problems


def reliability_table(problems: pd.DataFrame, num_bins: int = 10) -> pd.DataFrame:
    """Per run and equal-width bin of the clipped score (finished responses, as
    ``self_verify/ece``): ``run, bin, low, high, count, confidence, accuracy``."""
    rows = []
    for run, g in _finished(problems).groupby("run", sort=True):
        p = g["score"].astype(float).clip(0, 1).to_numpy()
        bins = np.minimum((p * num_bins).astype(int), num_bins - 1)
        for b in range(num_bins):
            inside = bins == b
            if inside.any():
                rows.append(
                    {"run": run, "bin": b, "low": b / num_bins, "high": (b + 1) / num_bins,
                     "count": int(inside.sum()), "confidence": p[inside].mean(),
                     "accuracy": g["correct"].to_numpy()[inside].mean()}
                )  # fmt: skip
    return pd.DataFrame(rows, columns=["run", "bin", "low", "high", "count", "confidence", "accuracy"])


def calibration_summary(problems: pd.DataFrame, num_bins: int = 10) -> pd.DataFrame:
    """Per run: ECE of the clipped score and Spearman(score, length), pooled and within correct
    and incorrect responses, over finished responses (the metrics of ``laser.algo``)."""
    import torch

    from laser.algo import expected_calibration_error, length_correlations

    rows = []
    for run, g in _finished(problems).groupby("run", sort=True):
        score = torch.tensor(g["score"].astype(float).to_numpy())
        correct = torch.tensor(g["correct"].astype(bool).to_numpy())
        row = {"run": run, "responses": len(g)}
        row[mn.SELF_VERIFY_ECE] = float(expected_calibration_error(score.clamp(0, 1), correct, num_bins))
        if g["length"].notna().all():
            length = torch.tensor(g["length"].astype(float).to_numpy())
            row |= {k: float(v) for k, v in length_correlations(score, length, correct.double()).items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _grid(n: int, max_cols: int = 3):
    cols = min(max(n, 1), max_cols)
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[max(n, 1) :]:
        ax.set_visible(False)
    if n == 0:
        _empty(flat[0])
    return fig, flat


def plot_reliability(problems: pd.DataFrame, num_bins: int = 10, path: str | Path | None = None):
    """Reliability diagram per run: the share of correct responses against the mean clipped score
    in each bin (marker area ~ responses in the bin), the diagonal being perfect calibration."""
    use_style()
    table = reliability_table(problems, num_bins)
    summary = calibration_summary(problems, num_bins).set_index("run") if not table.empty else None
    run_ids = sorted(table["run"].unique())
    fig, flat = _grid(len(run_ids))
    for ax, run in zip(flat, run_ids, strict=False):
        t = table[table["run"] == run]
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
        ax.bar(t["low"], t["accuracy"], width=1 / num_bins, align="edge", alpha=0.25, color="#1f77b4")
        ax.scatter(t["confidence"], t["accuracy"], s=20 + 200 * t["count"] / t["count"].max(), zorder=3)
        ece = summary.loc[run, mn.SELF_VERIFY_ECE]
        ax.set(title=f"{run}: ECE {ece:.3f}", xlabel="clipped score", ylabel="share correct")
        ax.set(xlim=(0, 1), ylim=(-0.02, 1.02))
    return _finish(fig, path)


def plot_score_vs_length(problems: pd.DataFrame, path: str | Path | None = None):
    """Self-reward score against response length per run (finished responses), correct and
    incorrect apart, with Spearman's rho pooled and within each class in the title."""
    use_style()
    done = _finished(problems)
    done = done[done["length"].notna()] if "length" in done else done.iloc[0:0]
    summary = calibration_summary(done).set_index("run") if not done.empty else None
    run_ids = sorted(done["run"].unique())
    fig, flat = _grid(len(run_ids))
    for ax, run in zip(flat, run_ids, strict=False):
        g = done[done["run"] == run]
        for correct, color, name in ((True, "#2ca02c", "correct"), (False, "#d62728", "incorrect")):
            sel = g[g["correct"] == correct]
            ax.scatter(
                sel["length"], sel["score"], s=8, alpha=0.5, color=color, label=f"{name} (n={len(sel)})"
            )
        spearman = (
            mn.SELF_VERIFY_LENGTH_SPEARMAN,
            mn.SELF_VERIFY_LENGTH_SPEARMAN_CORRECT,
            mn.SELF_VERIFY_LENGTH_SPEARMAN_INCORRECT,
        )
        rho = [summary.loc[run, name] for name in spearman]
        title = f"{run}: rho {rho[0]:.2f} (correct {rho[1]:.2f}, incorrect {rho[2]:.2f})"
        ax.set(title=title, xlabel="response length (tokens)", ylabel="self-reward score")
        ax.legend(loc="best")
    return _finish(fig, path)


# --------------------------------------------------------------------------- 6. test-time confidence
CONFIDENCE_COLORS = {
    "laser": "#d62728",
    "mean_logprob": "#1f77b4",
    "self_certainty": "#2ca02c",
    "deepconf_lowest_group": "#ff7f0e",
    "deepconf_tail": "#9467bd",
    "written_verdict": "#8c564b",
}
_CURVE_COLUMNS = ("method", "rule", "k", "accuracy", "threshold", "mean_samples")


def _run_titles(frame: pd.DataFrame) -> dict[str, str]:
    """Legend labels of the runs of a confidence table (its meta and override columns only)."""
    return run_labels(frame[[c for c in frame.columns if c not in _CURVE_COLUMNS]].drop_duplicates("run"))


def plot_confidence_scaling(
    scaling: pd.DataFrame,
    adaptive: pd.DataFrame | None = None,
    rule: str = "weighted_majority",
    k_max: int = 8,
    path: str | Path | None = None,
):
    """Accuracy against samples drawn per prompt, one line per confidence method: voting with
    `rule` at fixed k = 1..`k_max` (solid), adaptive sampling over its thresholds (dotted, x = the
    mean samples drawn), and plain majority voting (dashed gray); one panel per evaluation.

    ``scaling``: ``run, ..., method, rule, k, accuracy`` (``runs.load_confidence_scaling``);
    ``adaptive``: ``run, ..., method, threshold, mean_samples, accuracy`` (``runs.load_adaptive``).
    """
    use_style()
    run_ids = sorted(scaling["run"].unique()) if not scaling.empty else []
    fig, flat = _grid(len(run_ids))
    titles = _run_titles(scaling) if run_ids else {}
    for ax, run in zip(flat, run_ids, strict=False):
        g = scaling[(scaling["run"] == run) & (scaling["k"] <= k_max)]
        base = g[g["rule"] == "majority"].sort_values("k")
        ax.plot(base["k"], base["accuracy"], color="gray", linestyle="--", label="majority")
        for method, m in g[g["rule"] == rule].groupby("method", sort=False):
            color = CONFIDENCE_COLORS.get(method)
            m = m.sort_values("k")
            ax.plot(m["k"], m["accuracy"], marker="o", color=color, label=method)
            a = (
                adaptive[(adaptive["run"] == run) & (adaptive["method"] == method)]
                if adaptive is not None
                else []
            )
            if len(a):
                a = a.sort_values("mean_samples")
                ax.plot(a["mean_samples"], a["accuracy"], linestyle=":", marker="x", color=color)
        ax.set(title=f"{titles[run]}: {rule}", xlabel="samples per prompt", ylabel="accuracy")
        ax.set(xlim=(0.5, min(k_max, g["k"].max()) + 0.5))
    if run_ids:
        flat[0].legend(loc="best", title="solid: fixed k, dotted: adaptive")
    return _finish(fig, path)


def voting_rules_table(scaling: pd.DataFrame) -> pd.DataFrame:
    """Each run's voting rules at its largest k: ``run, method`` and one column per rule
    (weighted_majority, best_of_k, filtered_top10, filtered_top90, majority)."""
    if scaling.empty:
        return pd.DataFrame(columns=["run", "method"])
    largest = scaling.groupby("run")["k"].transform("max")
    at_largest = scaling[scaling["k"] == largest]
    table = at_largest.pivot_table(index=["run", "method"], columns="rule", values="accuracy")
    table.columns.name = None
    return table.reset_index()

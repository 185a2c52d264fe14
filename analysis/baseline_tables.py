"""The RLVR baselines' tables: each baseline without and with LaSeR on top, mean ± sd over seeds.

Rows come from run files like the other tables (`analysis.tables`): `+experiment=baselines` runs
give the eight arms (GRPO, Dr. GRPO, DAPO and GSPO, each without and with LaSeR), and the bar each
LaSeR arm's verification is held to (LaSeR on GRPO, the default, from the same sweep); the
showcase's DAPO runs give DAPO with LaSeR with and without the dropped groups kept for the MSE.
"""

from __future__ import annotations

import statistics

from analysis.formatting import markdown

BASELINES = {"grpo": "laser", "dr_grpo": "dr_grpo_laser", "dapo": "dapo_laser", "gspo": "gspo_laser"}
NAMES = {"grpo": "GRPO", "dr_grpo": "Dr. GRPO", "dapo": "DAPO", "gspo": "GSPO"}
ACCURACY_BAR = -2.0  # points: a LaSeR arm's accuracy against its own baseline's (mean over seeds)
nan = float("nan")


def variant_of(algo: str) -> str | None:
    """The LaSeR preset an arm named `<preset>_<tag>` varies (`algo.name=dr_grpo_laser_alpha0.125`
    on the command line), None for a preset's own name or another name."""
    presets = [laser for laser in BASELINES.values() if algo.startswith(f"{laser}_")]
    return max(presets, key=len, default=None)


def arm_name(algo: str) -> str:
    for base, with_laser in BASELINES.items():
        if algo == base:
            return NAMES[base]
        if algo == with_laser:
            return f"{NAMES[base]} + LaSeR"
    preset = variant_of(algo)
    return f"{arm_name(preset)}, {algo[len(preset) + 1 :]}" if preset else algo


def _pairs(by: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """(baseline, arm with LaSeR) in table order: each preset, then its variants by name."""
    return [(base, arm) for base, laser in BASELINES.items()
            for arm in [laser, *sorted(a for a in by if variant_of(a) == laser)]]  # fmt: skip


def _by_algo(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        out.setdefault(run["algo"], []).append(run)
    return out


def _values(group: list[dict], key: str) -> list[float]:
    return [r[key] for r in group if r[key] == r[key]]


def _mean(group: list[dict], key: str) -> float:
    values = _values(group, key)
    return statistics.mean(values) if values else nan


def _mean_sd(group: list[dict], key: str, digits: int = 4) -> str:
    return _fmt_mean_sd(_values(group, key), digits)


def _fmt_mean_sd(values: list[float], digits: int, signed: bool = False) -> str:
    """`mean ± sd` (sample sd) of the values, `–` for none; `signed` shows a gain's + sign."""
    if not values:
        return "–"
    sd = f"{statistics.stdev(values):.{digits}f}" if len(values) > 1 else "–"
    return f"{statistics.mean(values):{'+' if signed else ''}.{digits}f} ± {sd}"


def _gain(group: list[dict], key: str, over: str) -> str:
    """`key` − `over` in points, mean ± sd over the runs."""
    return _fmt_mean_sd([100 * (r[key] - r[over]) for r in group if r[key] == r[key]], 1, signed=True)


def _labelled(arm: str, group: list[dict]) -> str:
    """An arm's row label with the seeds its runs used."""
    return f"{arm} ({', '.join(str(r['seed']) for r in group)})"


def _arms_in_order(runs: list[dict]) -> list[tuple[str, list[dict]]]:
    by = _by_algo(runs)
    order = list(dict.fromkeys(a for pair in _pairs(by) for a in pair))
    return [(a, by[a]) for a in order if a in by] + [(a, g) for a, g in by.items() if a not in order]


def baselines_table(runs: list[dict]) -> str:
    """One row per arm: accuracy, self-verification, voting, time and samples per step."""
    k = runs[0]["k"]
    header = [
        "arm (seeds)", "accuracy T=1, last 3", "greedy, final", "F1, last 3", "AUROC, last 3",
        "within-prompt AUROC", f"weighted@{k} − majority@{k} (pts)", "gradient norm, median",
        "s / step", "samples / step",
    ]  # fmt: skip
    rows = []
    for algo, group in _arms_in_order(runs):
        rows.append(
            [_labelled(arm_name(algo), group), _mean_sd(group, "last3"), _mean_sd(group, "greedy"),
             _mean_sd(group, "f1"), _mean_sd(group, "auroc"), _mean_sd(group, "within"),
             _gain(group, "weighted_majority", "majority"), _mean_sd(group, "grad_norm", digits=2),
             _mean_sd(group, "step_s", digits=2),
             _mean_sd(group, "samples_per_step", digits=1)]
        )  # fmt: skip
    return markdown(header, rows)


def baselines_checks(runs: list[dict]) -> str:
    """Each LaSeR arm against its own baseline's accuracy (over the seeds both ran), and its
    verification against LaSeR on GRPO's (the default LaSeR) from the same sweep, on the means over
    seeds: one machine, the same seeds and warm-ups."""
    by = _by_algo(runs)
    reference = by.get("laser", [])
    rows = []
    for base, laser in _pairs(by):
        if base not in by or laser not in by:
            rows.append([f"{arm_name(laser)}", "–", "", "no runs"])
            continue
        diffs = _paired(by[laser], by[base], "last3")
        gap = (
            statistics.mean(diffs) if diffs else 100 * (_mean(by[laser], "last3") - _mean(by[base], "last3"))
        )
        shown = f" (per seed: {', '.join(f'{d:+.1f}' for d in diffs)})" if len(diffs) > 1 else ""
        verdict = "met" if gap >= ACCURACY_BAR else "**missed**"
        label = f"{arm_name(laser)} − {NAMES[base]}: accuracy, last 3"
        rows.append([label, f"{gap:+.1f} pts{shown}", f"≥ {ACCURACY_BAR:+.0f} pts", verdict])
        if laser == "laser":
            continue
        for key, name in (("f1", "F1"), ("auroc", "pooled AUROC")):
            value, bar = _mean(by[laser], key), _mean(reference, key)
            verdict = "met" if value >= bar else "**missed**"
            label = f"{arm_name(laser)}: {name}, last 3"
            rows.append([label, f"{value:.4f}", f"≥ {bar:.4f} (GRPO + LaSeR)", verdict])
    return markdown(["check (mean over seeds)", "value", "bar", ""], rows)


def _paired(runs: list[dict], baseline: list[dict], key: str) -> list[float]:
    """The difference in points on each seed both arms ran, in seed order: a seed's warm-up is
    shared by every arm, so a gap over the seeds both ran is not blurred by the seeds' spread."""
    base = {r["seed"]: r[key] for r in baseline}
    return [100 * (r[key] - base[r["seed"]]) for r in runs if r["seed"] in base]


def _dapo_arm(run: dict) -> str:
    if run["algo"] == "dapo_laser" and run["keep_for_mse"]:
        return "DAPO + LaSeR, dropped groups kept for the MSE"
    return arm_name(run["algo"])


def dynamic_sampling_table(runs: list[dict]) -> str:
    """DAPO without and with LaSeR, the groups dynamic sampling drops kept for the MSE or not: the
    within-prompt ranking and the voting gains it gives."""
    k = runs[0]["k"]
    header = [
        "arm (seeds)", "accuracy T=1, last 3", "F1, last 3", "AUROC, last 3", "within-prompt AUROC",
        f"weighted@{k} − majority@{k} (pts)", f"best-of-{k} − pass@1 (pts)", "samples / step",
        "dropped share of drawn groups", "s / step",
    ]  # fmt: skip
    groups: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: (r["keep_for_mse"], r["algo"] != "dapo", r["seed"])):
        groups.setdefault(_dapo_arm(run), []).append(run)
    rows = []
    for arm, group in groups.items():
        rows.append(
            [_labelled(arm, group), _mean_sd(group, "last3"),
             _mean_sd(group, "f1"), _mean_sd(group, "auroc"), _mean_sd(group, "within"),
             _gain(group, "weighted_majority", "majority"), _gain(group, "best_of_k", "pass@1"),
             _mean_sd(group, "samples_per_step", 1),
             _mean_sd(group, "dropped_frac", 2), _mean_sd(group, "step_s", 2)]
        )  # fmt: skip
    return markdown(header, rows)

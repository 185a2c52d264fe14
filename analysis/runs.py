"""Load LaSeR / GRPO runs into tidy pandas frames.

Shapes (all "long"/tidy, one observation per row):

* :func:`load_runs` -> one row per run x step x metric, columns
  ``run, path, experiment, algo, <differing overrides...>, split, step, epoch, metric, value``.
  ``split`` is the metric prefix (``train`` / ``val``); ``metric`` keeps the full logged name
  (``val/self_verify/f1``). NaN cells of the CSVLogger (train and val rows are separate) are dropped.
  Use :func:`wide` for one row per run x step and :func:`final_metrics` for one row per run.
  Metric names are those of :mod:`laser.metric_names`; asking a run for a metric its
  ``metrics.csv`` does not have raises :class:`MissingMetricError` (:func:`require_metrics`).
* :func:`load_voting` -> ``run, ..., method, k, accuracy`` from each run's ``voting.csv``.
* :func:`load_scaling` -> ``run, ..., problem, k, method, accuracy`` from ``laser.evaluate`` dirs
  (``scaling.csv``); :func:`scaling_summary` averages it to ``run, ..., method, k, accuracy``.
* :func:`load_problems` -> one row per evaluated response: ``run, problem, sample, correct, score``.
* :func:`load_confidence_scaling`, :func:`load_adaptive`, :func:`load_confidence` and
  :func:`load_accuracy_estimates` -> the confidence comparison of ``laser.evaluate`` dirs
  (``docs/confidence.md``): voting rules against k, adaptive sampling, per-method metrics and the
  accuracy estimates.
* :func:`load_wandb_runs` -> the :func:`load_runs` shape from the W&B API (needs network + login).

``paths`` is a directory, a glob, or a list of them; directories are searched recursively, so a
Hydra sweep dir (``<sweep>/0``, ``<sweep>/1``, ...) or ``outputs/`` works as is.
"""

from __future__ import annotations

import functools
import glob
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml

META_COLUMNS = ["run", "path", "experiment", "algo"]
_SKIP_OVERRIDE_PREFIXES = ("hydra.", "ckpt_path", "wandb.", "logger.", "paths.")


# --------------------------------------------------------------------------- discovery
def _expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = str(p)
        hits = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        out.extend(Path(h) for h in hits)
    return out


def find_dirs(paths, marker: str) -> list[Path]:
    """Directories (found recursively under ``paths``) that contain the file ``marker``."""
    found: set[Path] = set()
    for p in _expand(paths):
        if p.is_file() and p.name == marker:
            found.add(p.parent.resolve())
        elif p.is_dir():
            found.update(f.parent.resolve() for f in p.rglob(marker) if "checkpoints" not in f.parts)
    return sorted(found)


def _run_ids(dirs: list[Path]) -> dict[Path, str]:
    """Short unique ids: the path relative to the runs' common parent."""
    if not dirs:
        return {}
    if len(dirs) == 1:
        return {dirs[0]: dirs[0].name}
    root = Path(os.path.commonpath([str(d) for d in dirs]))
    return {d: (str(d.relative_to(root)) or d.name) for d in dirs}


# --------------------------------------------------------------------------- run metadata
def _select(cfg: dict, dotted: str):
    cur = cfg
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _read_yaml(path: Path):
    if not path.exists():
        return None
    with open(path) as f:
        return yaml.safe_load(f)


def _overrides(run_dir: Path) -> list[str]:
    ov = _read_yaml(run_dir / ".hydra" / "overrides.yaml")
    if ov:
        return list(ov)
    info_path = run_dir / "run_info.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        return list((info.get("hydra") or {}).get("overrides") or [])
    return []


def _parse_override(ov: str, cfg: dict) -> tuple[str, object] | None:
    if "=" not in ov or ov.startswith("~"):
        return None
    key, val = ov.split("=", 1)
    key = key.lstrip("+")
    if key.startswith(_SKIP_OVERRIDE_PREFIXES):
        return None
    if key in META_COLUMNS:  # e.g. +experiment=ablate_beta: a config group, not task_name
        return f"{key}_group", val
    resolved = _select(cfg, key)
    if resolved is not None and not isinstance(resolved, (dict, list)):
        return key, resolved
    try:
        parsed = yaml.safe_load(val)
    except yaml.YAMLError:
        parsed = val
    return key, parsed if isinstance(parsed, (int, float, str, bool)) else val


def _launch_path(run_dir: Path, path: str | None) -> str | None:
    """`path` as given on the run's command line: a relative one is relative to the directory the
    run was launched from (Hydra's runtime cwd), not to where the analysis runs."""
    if not path or Path(path).is_absolute():
        return path
    hydra_cfg = _read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    cwd = _select(hydra_cfg, "hydra.runtime.cwd")
    return str(Path(cwd) / path) if cwd else path


def run_meta(run_dir: Path) -> dict:
    """Experiment, algo and overrides of one run dir (training or evaluate dir)."""
    run_dir = Path(run_dir)
    cfg = _read_yaml(run_dir / "config.yaml") or _read_yaml(run_dir / ".hydra" / "config.yaml") or {}
    meta = {"path": str(run_dir), "experiment": cfg.get("task_name"), "algo": _select(cfg, "algo.name")}
    overrides = {}
    for ov in _overrides(run_dir):
        parsed = _parse_override(ov, cfg)
        if parsed:
            overrides[parsed[0]] = parsed[1]
    ckpt = _launch_path(run_dir, cfg.get("ckpt_path"))
    if ckpt and (Path(ckpt) / "config.yaml").exists() and Path(ckpt).resolve() != run_dir.resolve():
        # a laser.evaluate dir: describe it by the training run it evaluated
        src = run_meta(Path(ckpt))
        meta.update(experiment=src["experiment"], algo=src["algo"])
        overrides = {**src["overrides"], **overrides}
        cfg = src["config"]
    meta["overrides"] = overrides
    meta["config"] = cfg
    return meta


def _meta_frame(dirs: list[Path]) -> pd.DataFrame:
    """One row per run: run, path, experiment, algo and every override that differs between runs."""
    ids = _run_ids(dirs)
    metas = [run_meta(d) for d in dirs]
    keys = sorted({k for m in metas for k in m["overrides"]})
    rows = []
    for d, m in zip(dirs, metas, strict=True):
        row = {"run": ids[d], "path": m["path"], "experiment": m["experiment"], "algo": m["algo"]}
        for k in keys:
            # a key overridden in some runs only: fall back to the run's resolved config value
            v = m["overrides"].get(k, _select(m["config"], k))
            row[k] = None if isinstance(v, (dict, list)) else v
        rows.append(row)
    frame = pd.DataFrame(rows, columns=META_COLUMNS + keys)
    differing = [k for k in keys if frame[k].astype(str).nunique(dropna=False) > 1]
    return frame[META_COLUMNS + differing]


def override_columns(df: pd.DataFrame) -> list[str]:
    """The override columns of a frame from this module (those that differ between its runs)."""
    known = set(META_COLUMNS) | {
        "split", "step", "epoch", "metric", "value", "method", "k", "accuracy", "problem", "sample",
        "correct", "score", "source", "finished", "length",
    }  # fmt: skip
    return [c for c in df.columns if c not in known and "/" not in c]


# --------------------------------------------------------------------------- metrics
def _tidy_metrics(csv: Path) -> pd.DataFrame:
    raw = pd.read_csv(csv)
    id_vars = [c for c in ("epoch", "step") if c in raw.columns]
    long = raw.melt(id_vars=id_vars, var_name="metric", value_name="value").dropna(subset=["value"])
    long["split"] = long["metric"].str.split("/").str[0]
    return long.reset_index(drop=True)


def load_runs(paths) -> pd.DataFrame:
    """Tidy metrics of every run dir (holding ``metrics.csv``) under ``paths``; see module doc."""
    dirs = find_dirs(paths, "metrics.csv")
    if not dirs:
        raise FileNotFoundError(f"no run directory with metrics.csv under {paths!r}")
    meta = _meta_frame(dirs)
    frames = []
    for d, (_, m) in zip(dirs, meta.iterrows(), strict=True):
        t = _tidy_metrics(d / "metrics.csv")
        for col, val in m.items():
            t[col] = val
        frames.append(t)
    df = pd.concat(frames, ignore_index=True)
    order = [*list(meta.columns), "split", "step", "epoch", "metric", "value"]
    return df[[c for c in order if c in df.columns]]


class MissingMetricError(LookupError):
    """A plot or table asked a run for a metric that the run's metrics file does not have (a
    renamed metric, or a run from before it was logged)."""


@functools.lru_cache(maxsize=1024)
def _csv_columns(csv: str, mtime_ns: int) -> frozenset[str]:
    """The column names of a metrics.csv (read once per version of the file)."""
    return frozenset(pd.read_csv(csv, nrows=0).columns)


def logged_metrics(df: pd.DataFrame) -> dict[str, tuple[str, frozenset[str]]]:
    """Per run of a :func:`load_runs` frame: where its metrics come from and every metric logged
    there, those with no value (all NaN) included.

    The source is the run's ``<path>/metrics.csv`` where that file exists (its columns are read);
    otherwise (a W&B frame, whose ``path`` is the run's page) the metrics the frame holds.
    """
    out = {}
    for run, g in df.groupby("run", sort=True):
        path = g["path"].iloc[0] if "path" in g.columns else None
        csv = Path(str(path)) / "metrics.csv" if path is not None and not pd.isna(path) else None
        if csv is not None and csv.is_file():
            out[run] = (str(csv), _csv_columns(str(csv), csv.stat().st_mtime_ns))
        else:
            out[run] = (str(path if path is not None else run), frozenset(g["metric"]))
    return out


def require_metrics(df: pd.DataFrame, metrics: Iterable[str], any_of: bool = False) -> None:
    """Check that every run of ``df`` logged each of ``metrics`` (with ``any_of``: at least one).

    Raises:
        MissingMetricError: Naming the metric, the run and the file that lacks it.
    """
    metrics = list(metrics)
    for run, (source, logged) in logged_metrics(df).items():
        missing = [m for m in metrics if m not in logged]
        if missing and (not any_of or len(missing) == len(metrics)):
            wanted = " or ".join(repr(m) for m in missing) if any_of else repr(missing[0])
            raise MissingMetricError(
                f"metric {wanted} is not in {source} (run {run!r}): renamed in laser.metric_names, "
                f"or not logged by this run; it logs {len(logged)} metrics"
            )


def wide(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run x step, one column per metric (first logged value wins at a duplicate step)."""
    idx = [c for c in df.columns if c not in ("metric", "value", "split", "epoch")]
    return df.pivot_table(
        index=idx, columns="metric", values="value", aggfunc="first", dropna=False
    ).reset_index()


def final_metrics(
    df: pd.DataFrame, metrics: Iterable[str] | None = None, required: bool = True
) -> pd.DataFrame:
    """One row per run with the last logged (non-NaN) value of each metric (of ``metrics``, or all).

    Raises:
        MissingMetricError: If ``required`` and a run's metrics file lacks one of ``metrics``.
    """
    if metrics is not None:
        metrics = list(metrics)
        if required:
            require_metrics(df, metrics)
        df = df[df["metric"].isin(metrics)]
    meta = [c for c in df.columns if c not in ("split", "step", "epoch", "metric", "value")]
    last = df.sort_values("step", kind="stable").groupby(["run", "metric"], sort=False).tail(1)
    out = last.pivot_table(index="run", columns="metric", values="value", aggfunc="last")
    out.columns.name = None
    info = df[meta].drop_duplicates("run").set_index("run")
    return info.join(out).reset_index()


# --------------------------------------------------------------------------- voting / scaling
def _with_meta(dirs: list[Path], read) -> pd.DataFrame:
    meta = _meta_frame(dirs)
    frames = []
    for d, (_, m) in zip(dirs, meta.iterrows(), strict=True):
        t = read(d)
        for col, val in m.items():
            t[col] = val
        frames.append(t)
    if not frames:
        return pd.DataFrame(columns=[*META_COLUMNS, "method", "k", "accuracy"])
    df = pd.concat(frames, ignore_index=True)
    front = list(meta.columns)
    return df[front + [c for c in df.columns if c not in front]]


def _read_voting(d: Path, name: str) -> pd.DataFrame:
    v = pd.read_csv(d / name, index_col=0)
    v.index.name = "method"
    long = v.reset_index().melt(id_vars="method", var_name="k", value_name="accuracy")
    long["k"] = long["k"].astype(int)
    return long.sort_values(["method", "k"]).reset_index(drop=True)


def load_voting(paths) -> pd.DataFrame:
    """``voting.csv`` of every training run under ``paths`` -> ``run, ..., method, k, accuracy``."""
    return _with_meta(find_dirs(paths, "voting.csv"), lambda d: _read_voting(d, "voting.csv"))


def load_scaling(paths) -> pd.DataFrame:
    """Per-problem ``scaling.csv`` of every ``laser.evaluate`` dir under ``paths``.

    Columns ``run, path, experiment, algo, ..., ckpt_path, problem, k, method, accuracy``; ``ckpt_path``
    is the evaluated run dir (from the evaluate dir's ``.hydra/config.yaml``).
    """

    def read(d: Path) -> pd.DataFrame:
        t = pd.read_csv(d / "scaling.csv")
        cfg = _read_yaml(d / ".hydra" / "config.yaml") or {}
        t["ckpt_path"] = cfg.get("ckpt_path")
        return t

    return _with_meta(find_dirs(paths, "scaling.csv"), read)


def scaling_summary(scaling: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over problems: ``run, ..., method, k, accuracy``."""
    keys = [c for c in scaling.columns if c not in ("problem", "accuracy")]
    return scaling.groupby(keys, dropna=False, sort=True)["accuracy"].mean().reset_index()


PROBLEM_COLUMNS = ["problem", "sample", "correct", "score", "finished", "length"]


def load_problems(paths) -> pd.DataFrame:
    """``problems.jsonl`` of every evaluate dir -> one row per response.

    Columns ``run, ..., problem, sample, correct, score, finished, length`` (``finished`` and
    ``length`` are missing values in evaluations made before they were written).
    """

    def read(d: Path) -> pd.DataFrame:
        rows = []
        with open(d / "problems.jsonl") as f:
            for i, line in enumerate(f):
                rec = json.loads(line)
                missing = [None] * len(rec["score"])
                values = zip(
                    rec["correct"], rec["score"], rec.get("finished", missing), rec.get("length", missing),
                    strict=True,
                )  # fmt: skip
                rows += [(i, j, bool(c), s, done, n) for j, (c, s, done, n) in enumerate(values)]
        return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)

    return _with_meta(find_dirs(paths, "problems.jsonl"), read)


def load_self_verify(paths) -> pd.DataFrame:
    """``self_verify.json`` of every evaluate dir -> one row per run."""

    def read(d: Path) -> pd.DataFrame:
        return pd.DataFrame([json.loads((d / "self_verify.json").read_text())])

    return _with_meta(find_dirs(paths, "self_verify.json"), read)


# --------------------------------------------------------------------------- confidence comparison
def _load_csv(paths, name: str) -> pd.DataFrame:
    return _with_meta(find_dirs(paths, name), lambda d: pd.read_csv(d / name))


def load_confidence_scaling(paths) -> pd.DataFrame:
    """``confidence_scaling.csv`` of every evaluate dir -> ``run, ..., method, rule, k, accuracy``."""
    return _load_csv(paths, "confidence_scaling.csv")


def load_adaptive(paths) -> pd.DataFrame:
    """``adaptive.csv`` of every evaluate dir -> ``run, ..., method, threshold, mean_samples, accuracy``."""
    return _load_csv(paths, "adaptive.csv")


def load_confidence(paths) -> pd.DataFrame:
    """``confidence.csv`` of every evaluate dir -> one row per run x method: AUROCs, ECEs, costs."""
    return _load_csv(paths, "confidence.csv")


def load_accuracy_estimates(paths) -> pd.DataFrame:
    """``accuracy_estimate.csv`` of every evaluate dir -> ``run, ..., method, calibration, target,
    predicted, predicted_low, predicted_high, true, true_low, true_high, error``."""
    return _load_csv(paths, "accuracy_estimate.csv")


# --------------------------------------------------------------------------- W&B
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def load_wandb_runs(project: str, filters: dict | None = None, keys: list[str] | None = None) -> pd.DataFrame:
    """Same tidy shape as :func:`load_runs`, read from the W&B API (``entity/project``).

    Override columns are the flattened config keys whose values differ between the selected runs.
    """
    import wandb  # lazy: only needed online

    api = wandb.Api()
    frames, metas = [], []
    for r in api.runs(project, filters=filters or {}):
        cfg = _flatten({k: v for k, v in r.config.items() if not k.startswith("_")})
        hist = r.history(keys=keys, pandas=True) if keys else r.history(pandas=True)
        # Lightning logs the trainer's step as a metric; W&B's own `_step` counts log calls
        step_col = "trainer/global_step" if "trainer/global_step" in hist.columns else "_step"
        hist = hist.assign(step=hist[step_col])
        skip = {"step", "trainer/global_step"}
        metric_cols = [c for c in hist.columns if "/" in c and not c.startswith("_") and c not in skip]
        long = hist.melt(id_vars=["step"], value_vars=metric_cols, var_name="metric", value_name="value")
        # tables and histograms are not numbers: they drop out here
        long["value"] = pd.to_numeric(long["value"], errors="coerce")
        long = long.dropna(subset=["value"])
        long["split"] = long["metric"].str.split("/").str[0]
        long["epoch"] = float("nan")
        long["run"] = r.name or r.id
        long["path"] = r.url
        frames.append(long)
        metas.append(
            {"run": r.name or r.id, "experiment": cfg.get("task_name"), "algo": cfg.get("algo.name"), **cfg}
        )
    if not frames:
        return pd.DataFrame(columns=[*META_COLUMNS, "split", "step", "epoch", "metric", "value"])
    meta = pd.DataFrame(metas)
    extra = [
        c
        for c in meta.columns
        if c not in META_COLUMNS and meta[c].astype(str).nunique(dropna=False) > 1 and "/" not in c
    ]
    df = pd.concat(frames, ignore_index=True).merge(meta[["run", "experiment", "algo", *extra]], on="run")
    order = [*META_COLUMNS, *extra, "split", "step", "epoch", "metric", "value"]
    return df[order]

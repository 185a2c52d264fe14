"""The metric names in one module: importable by anything, and the names committed runs were
logged under (docs/results/runs/, read by analysis/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from laser import metric_names as names
from laser.lit.timing import STAGES

ROOT = Path(__file__).resolve().parents[1]


def test_the_names_import_without_torch_or_any_framework() -> None:
    code = "import json, sys, laser.metric_names; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & {"torch", "lightning", "transformers", "hydra", "pandas"}


def defined_names() -> set[str]:
    """Every metric name (without its stage) that laser.metric_names defines or builds."""
    constants = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    built = {n for q in names.SUMMARIZED for n in names.summary_names(q)}
    built |= {names.stat(names.VERIFIER, k) for k in names.VERIFIER_COUNTS}
    built |= {names.timing(s) for s in (*STAGES, "step")}
    return constants | built


def test_every_metric_of_the_committed_runs_is_named_here() -> None:
    files = sorted((ROOT / "docs" / "results" / "runs").glob("*/*/metrics.csv"))
    known = defined_names()
    for csv in files:
        columns = [c for c in pd.read_csv(csv, nrows=0).columns if c not in ("epoch", "step")]
        stages = {names.TRAIN, names.VAL}
        unknown = [c for c in columns if c.split("/", 1)[0] not in stages or c.split("/", 1)[1] not in known]
        assert not unknown, f"{csv}: {unknown}"


def test_a_logged_name_is_stage_quantity_stat() -> None:
    assert names.val(names.SELF_VERIFY_F1) == "val/self_verify/f1"
    assert names.train(names.REWARD_MEAN) == "train/reward/mean"
    assert names.summary_names(names.SCORE_CORRECT)[0] == "self_reward/score_correct/mean"
    assert names.train(names.timing("update")) == "train/timing_s/update"

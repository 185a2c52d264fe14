"""End to end: real debug runs -> analysis loaders -> headless notebooks -> figures + HTML report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `analysis/` is a repo-root package, not installed with `laser`
    sys.path.insert(0, str(ROOT))

from analysis import figures, runs  # noqa: E402

ENV = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
FIGURES = [
    "01_self_verify_val.png",
    "01_self_verify_train.png",
    "02_scaling.png",
    "03_ablation.png",
    "04_score_distributions.png",
    "04_score_means.png",
    "05_verify_loss_rewards.png",
    "05_self_reward_only.png",
    "05_reliability.png",
    "05_score_vs_length.png",
    "05_calibration_curves.png",
    "06_confidence_scaling.png",
]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    f = open(log, "w")  # noqa: SIM115 - closed by the OS when the child exits; read back on failure
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)


def _wait(proc: subprocess.Popen, log: Path, timeout: int = 600) -> None:
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"{' '.join(map(str, proc.args))} failed:\n{log.read_text()[-3000:]}"


def _multirun(experiment: str, sweep_dir: Path, log: Path, cache: str) -> subprocess.Popen:
    return _start(["-m", "laser.run", "-m", f"+experiment={experiment}", "debug=fast",
                   f"hydra.sweep.dir={sweep_dir}", cache], log)  # fmt: skip


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    """One LaSeR run, one GRPO run, the 3-run beta_v grid, an evaluation of the LaSeR run, the
    MSE-vs-SFT grid and a self-reward-only run (at most about five processes at a time)."""
    root = tmp_path_factory.mktemp("runs")
    cache = f"paths.cache_dir={tmp_path_factory.mktemp('cache')}"  # the warm-ups, outside the checkout
    laser = _start(
        ["-m", "laser.run", "debug=fast", f"hydra.run.dir={root / 'laser'}", cache], root / "laser.log"
    )
    grpo = _start(
        ["-m", "laser.run", "debug=fast", "algo=grpo", f"hydra.run.dir={root / 'grpo'}", cache],
        root / "grpo.log",
    )
    grid = _multirun("ablate_beta", root / "grid", root / "grid.log", cache)
    _wait(laser, root / "laser.log")
    evaluate = _start(
        [
            "-m",
            "laser.evaluate",
            f"ckpt_path={root / 'laser'}",
            "max_problems=8",
            "num_samples=4",
            "rollout.max_new_tokens=24",
            "wandb.mode=disabled",
            f"hydra.run.dir={root / 'eval'}",
        ],
        root / "eval.log",
    )
    _wait(grpo, root / "grpo.log")
    verify_loss = _multirun("ablate_verify_loss", root / "verify_loss", root / "verify_loss.log", cache)
    _wait(evaluate, root / "eval.log")
    self_only = _start(
        [
            "-m",
            "laser.run",
            "+experiment=self_reward_only",
            "debug=fast",
            f"hydra.run.dir={root / 'self_only'}",
            cache,
        ],
        root / "self_only.log",
    )
    for proc, name in ((grid, "grid"), (verify_loss, "verify_loss"), (self_only, "self_only")):
        _wait(proc, root / f"{name}.log")
    return root


def _last_logged(csv: Path, metric: str) -> float:
    return float(pd.read_csv(csv)[metric].dropna().iloc[-1])


@pytest.mark.slow
def test_loaders_and_render(run_root: Path, tmp_path: Path):
    # --- loaders hold the runs' own values
    df = runs.load_runs(run_root)
    grids = {"grid/0", "grid/1", "grid/2", "verify_loss/0", "verify_loss/1"}
    assert set(df["run"]) == {"laser", "grpo", "self_only", *grids}
    assert {"run", "experiment", "algo", "step", "metric", "value", "algo.self_reward.beta_v"} <= set(
        df.columns
    )
    final = runs.final_metrics(df).set_index("run")
    assert final.loc["grpo", "algo"] == "grpo" and final.loc["laser", "algo"] == "laser"
    assert final.loc["grid/0", "experiment"] == "ablate_beta"
    for run in ("laser", "grpo", "grid/1"):
        for metric in ("val/accuracy", "val/response/length/mean", "train/reward/mean"):
            expected = _last_logged(run_root / run / "metrics.csv", metric)
            assert final.loc[run, metric] == pytest.approx(expected), (run, metric)
    wide = runs.wide(df[df["run"] == "laser"])
    assert wide["step"].is_monotonic_increasing

    grid = runs.load_runs(run_root / "grid")
    table = figures.ablation_table(grid)
    assert table.columns[0] == "algo.self_reward.beta_v"
    assert sorted(table["algo.self_reward.beta_v"]) == [0.2, 0.5, 1.0]
    for _, row in table.iterrows():
        expected = _last_logged(
            Path(grid.loc[grid["run"] == row["run"], "path"].iloc[0]) / "metrics.csv", "val/accuracy"
        )
        assert row["val/accuracy"] == pytest.approx(expected)

    voting = runs.load_voting(run_root)
    raw = pd.read_csv(run_root / "laser" / "voting.csv", index_col=0)
    got = voting[(voting["run"] == "laser")].set_index(["method", "k"])["accuracy"]
    for method in raw.index:
        for k in raw.columns:
            assert got[(method, int(k))] == pytest.approx(raw.loc[method, k])

    scaling = runs.load_scaling(run_root)
    assert set(scaling["run"]) == {"eval"} and scaling["algo"].iloc[0] == "laser"
    summary = runs.scaling_summary(scaling)
    raw_summary = pd.read_csv(run_root / "eval" / "scaling_summary.csv", index_col=0)
    for method in raw_summary.index:
        for k in raw_summary.columns:
            sel = summary[(summary["method"] == method) & (summary["k"] == int(k))]["accuracy"]
            assert sel.iloc[0] == pytest.approx(raw_summary.loc[method, k])
    problems = runs.load_problems(run_root)
    assert len(problems) == 8 * 4

    # --- the render command, headless, on all runs
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.render", "--runs", str(run_root), "--out", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FIGURES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = out / "report.html"
    assert report.is_file() and report.stat().st_size > 0
    html = report.read_text()
    assert all(name in html for name in FIGURES) and "data:image/png;base64" in html
    rendered = pd.read_csv(out / "03_ablation.csv")
    assert {0.2, 0.5, 1.0} <= set(rendered["algo.self_reward.beta_v"].dropna())
    rendered_final = pd.read_csv(out / "01_final_metrics.csv").set_index("run")
    assert rendered_final.loc["grpo", "val/accuracy"] == pytest.approx(
        _last_logged(run_root / "grpo" / "metrics.csv", "val/accuracy")
    )
    _check_paper_comparisons(run_root, out)
    # the committed notebooks stay output-free
    import nbformat

    for nb in (ROOT / "analysis").glob("*.ipynb"):
        cells = nbformat.read(nb, as_version=4).cells
        assert all(
            not c.get("outputs") and c.get("execution_count") is None for c in cells if c.cell_type == "code"
        )


def _check_paper_comparisons(run_root: Path, out: Path) -> None:
    """Notebook 05's tables hold the runs' own values."""
    losses = pd.read_csv(out / "05_verify_loss.csv").set_index("run")
    assert sorted(losses["algo.self_reward.loss"]) == ["mse", "sft"]
    for run in losses.index:
        csv = run_root / run / "metrics.csv"
        assert losses.loc[run, "val/accuracy"] == pytest.approx(_last_logged(csv, "val/accuracy"))
        assert losses.loc[run, "val/self_verify/ece"] == pytest.approx(
            _last_logged(csv, "val/self_verify/ece")
        )
    (switch,) = pd.read_csv(out / "05_switch.csv").to_dict("records")  # the one run with a switch
    marks = pd.read_csv(run_root / "self_only" / "metrics.csv").dropna(subset=["train/reward_source/self"])
    assert switch["run"] == "self_only"
    assert switch["switch_step"] == marks.loc[marks["train/reward_source/self"] > 0.5, "step"].min() == 1
    calibration = pd.read_csv(out / "05_calibration.csv").set_index("run")
    verify = json.loads((run_root / "eval" / "self_verify.json").read_text())
    for key in ("self_verify/ece", "self_verify/length_spearman"):
        assert calibration.loc["eval", key] == pytest.approx(verify[key], nan_ok=True), key
    loaded = runs.load_self_verify(run_root).set_index("run")  # the loader reads the same file
    assert list(loaded.index) == ["eval"]
    assert loaded.loc["eval", "self_verify/ece"] == pytest.approx(verify["self_verify/ece"], nan_ok=True)


class _FakeWandbRun:
    """What the W&B API returns for a run that Lightning's WandbLogger logged: the nested config,
    and a history with W&B's own `_step` counter, `trainer/global_step`, and media columns."""

    def __init__(self, run_dir: Path, name: str) -> None:
        from omegaconf import OmegaConf

        self.name, self.id, self.url = name, name.replace("=", "-"), f"https://wandb.test/{name}"
        self.config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")) | {
            "run_info": {"seed": 0},
            "_wandb": {"cli_version": "test"},
        }
        hist = pd.read_csv(run_dir / "metrics.csv").rename(columns={"step": "trainer/global_step"})
        hist.insert(0, "_step", range(len(hist)))  # counts log calls, not training steps
        hist["_runtime"] = 1.5 * hist["_step"]
        hist["train/samples"] = [{"_type": "table-file"} if i % 3 == 0 else None for i in range(len(hist))]
        self._history = hist

    def history(self, keys=None, pandas=True) -> pd.DataFrame:
        return self._history if keys is None else self._history[["_step", *keys]]


@pytest.mark.slow
def test_wandb_loader_reads_api_runs_as_the_local_loader_does(run_root: Path, monkeypatch):
    import wandb

    grid = sorted((run_root / "grid").glob("[0-9]*"))
    fake = [_FakeWandbRun(d, f"run-{d.name}") for d in grid]

    class FakeApi:
        def runs(self, project, filters=None):
            assert project == "me/laser" and filters == {"state": "finished"}
            return fake

    monkeypatch.setattr(wandb, "Api", FakeApi)
    online = runs.load_wandb_runs("me/laser", {"state": "finished"})
    local = runs.load_runs(run_root / "grid")
    assert "algo.self_reward.beta_v" in online.columns
    assert set(online["metric"]) <= set(local["metric"])  # media and W&B internals dropped
    assert set(online["experiment"]) == {"ablate_beta"} and set(online["algo"]) == {"laser"}
    for beta in (0.2, 0.5, 1.0):
        on = online[(online["algo.self_reward.beta_v"] == beta) & (online["metric"] == "val/accuracy")]
        lo = local[(local["algo.self_reward.beta_v"] == beta) & (local["metric"] == "val/accuracy")]
        assert len(on) > 1
        assert on["step"].tolist() == lo["step"].tolist()  # the trainer's steps, not W&B's counter
        assert on["value"].tolist() == pytest.approx(lo["value"].tolist())


def test_legends_name_the_algorithm_and_the_swept_value(run_root: Path):
    pair = runs.load_runs([run_root / "laser", run_root / "grpo"])
    assert sorted(figures.run_labels(pair).values()) == ["GRPO", "LaSeR"]
    grid = runs.load_runs(run_root / "grid")
    assert sorted(figures.run_labels(grid).values()) == [f"LaSeR beta_v={b}" for b in (0.2, 0.5, 1.0)]


def test_report_lists_a_table_without_rows_instead_of_failing(tmp_path: Path):
    from analysis.render import write_report

    (tmp_path / "05_switch.csv").write_text("\n")  # what the notebook writes without a switch run
    (tmp_path / "05_verify_loss.csv").write_text("run,loss\na,mse\n")
    report = write_report(tmp_path, ["runs"], [ROOT / "analysis" / "05-paper-comparisons.ipynb"])
    text = report.read_text()
    assert "05_switch.csv</h4><p>no data for these runs</p>" in text and "<td>mse</td>" in text


def test_an_evaluation_launched_elsewhere_is_described_by_its_training_run(tmp_path: Path):
    train_dir = tmp_path / "launch" / "outputs" / "run"
    train_dir.mkdir(parents=True)
    (train_dir / "config.yaml").write_text("task_name: train\nalgo:\n  name: grpo\n")
    eval_dir = tmp_path / "elsewhere" / "eval"
    (eval_dir / ".hydra").mkdir(parents=True)
    (eval_dir / ".hydra" / "config.yaml").write_text("ckpt_path: outputs/run\n")
    (eval_dir / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {tmp_path / 'launch'}\n")
    meta = runs.run_meta(eval_dir)
    assert (meta["experiment"], meta["algo"]) == ("train", "grpo")


def test_the_confidence_figure_and_tables_read_an_evaluations_files(tmp_path: Path):
    """Notebook 06's figure and tables from the files `laser.evaluate` writes (made by hand here)."""
    ev = tmp_path / "eval"
    (ev / ".hydra").mkdir(parents=True)
    (ev / ".hydra" / "config.yaml").write_text("task_name: eval\nckpt_path: null\n")
    rows = [("majority", "majority", k, 0.4 + 0.02 * k) for k in range(1, 5)]
    rules = ("weighted_majority", "best_of_k")
    rows += [(m, r, k, 0.5 + 0.03 * k) for m in ("laser", "mean_logprob") for r in rules for k in range(1, 5)]
    pd.DataFrame(rows, columns=["method", "rule", "k", "accuracy"]).to_csv(
        ev / "confidence_scaling.csv", index=False
    )
    adaptive = [("laser", t, 1 + 3 * t, 0.5 + 0.1 * t) for t in (0.0, 0.5, 1.0)]
    pd.DataFrame(adaptive, columns=["method", "threshold", "mean_samples", "accuracy"]).to_csv(
        ev / "adaptive.csv", index=False
    )
    scaling, loaded = runs.load_confidence_scaling(tmp_path), runs.load_adaptive(tmp_path)
    assert len(scaling) == len(rows) and set(loaded["run"]) == {"eval"}
    fig = figures.plot_confidence_scaling(scaling, loaded, path=tmp_path / "06.png")
    assert (tmp_path / "06.png").stat().st_size > 0
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert {"majority", "laser", "mean_logprob"} <= set(labels)
    adaptive_line = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert [list(line.get_xdata()) for line in adaptive_line] == [[1.0, 2.5, 4.0]]
    table = figures.voting_rules_table(scaling).set_index(["run", "method"])
    assert table.loc[("eval", "laser"), "best_of_k"] == pytest.approx(0.62)  # at the largest k, 4
    assert table.loc[("eval", "majority"), "majority"] == pytest.approx(0.48)
    empty = runs.load_confidence_scaling(tmp_path / "nothing")
    assert (
        figures.plot_confidence_scaling(empty, None) is not None and figures.voting_rules_table(empty).empty
    )


def _write_run(run_dir: Path, metrics: dict[str, list[float]]) -> Path:
    """A run directory with a config and a metrics.csv of `metrics` over steps 0, 1, ..."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("task_name: ablate_beta\nalgo:\n  name: laser\n")
    steps = len(next(iter(metrics.values())))
    pd.DataFrame({"epoch": [0] * steps, "step": range(steps), **metrics}).to_csv(
        run_dir / "metrics.csv", index=False
    )
    return run_dir


def test_a_plot_or_table_asking_for_a_metric_a_run_lacks_names_it_and_the_file(tmp_path: Path):
    """A run logged before a metric existed (or under another name) is an error, not a "no data"
    panel; the names come from laser.metric_names."""
    from laser import metric_names as mn

    acc, f1 = mn.val(mn.ACCURACY), mn.val(mn.SELF_VERIFY_F1)
    _write_run(tmp_path / "new", {acc: [0.1, 0.2], f1: [0.3, 0.4]})
    old = _write_run(tmp_path / "old", {acc: [0.5, 0.6], "val/self_verify/f1_renamed": [0.3, 0.4]})
    df = runs.load_runs(tmp_path)
    message = rf"metric '{f1}' is not in {old / 'metrics.csv'} \(run 'old'\)"
    with pytest.raises(runs.MissingMetricError, match=message):
        runs.final_metrics(df, [acc, f1])
    with pytest.raises(runs.MissingMetricError, match=message):
        figures.ablation_table(df, "run")
    with pytest.raises(runs.MissingMetricError, match=message):
        figures.plot_curves(df, [acc, f1])
    with pytest.raises(runs.MissingMetricError, match=message):
        figures.plot_self_verify(df, split="val", metrics=[mn.SELF_VERIFY_F1])
    assert runs.final_metrics(df, [acc, f1], required=False).set_index("run").loc["new", f1] == 0.4


def test_a_metric_logged_without_values_draws_no_data_instead(tmp_path: Path):
    from laser import metric_names as mn

    acc, auroc = mn.val(mn.ACCURACY), mn.val(mn.SELF_VERIFY_AUROC)
    _write_run(tmp_path / "one", {acc: [0.1, 0.2], auroc: [0.7, 0.8]})
    _write_run(tmp_path / "two", {acc: [0.5, 0.6], auroc: [float("nan")] * 2})  # a class was empty
    df = runs.load_runs(tmp_path)
    figures.plot_curves(df, [acc, auroc])
    final = runs.final_metrics(df, [acc, auroc]).set_index("run")
    assert final.loc["one", auroc] == 0.8 and pd.isna(final.loc["two", auroc])
    with pytest.raises(runs.MissingMetricError, match="'val/self_reward/score/mean'"):
        figures.plot_score_distributions(None, df)  # none of the score summaries

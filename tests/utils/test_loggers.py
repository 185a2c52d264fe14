"""W&B with no network and no login: an offline debug run leaves `wandb/offline-run-*` in its run
directory holding the resolved config, the run's group/name/tags, the defined metrics (x-axis and
best-value summaries), the completions table and the self-reward histograms.

The offline run is read back from its `.wandb` file (a LevelDB-style log of protobuf records, the
file `wandb sync` uploads).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from wandb.proto import wandb_internal_pb2

from laser.configs import register_schemas
from laser.utils import loggers
from laser.utils.loggers import fill_wandb_identity, hydra_run_identity, resolve_wandb_mode

from helpers import compose_train

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 32768  # the log's block size; a record's 7-byte header never straddles blocks
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of a `.wandb` file (header ':W&B', 0xBEE1, version; then FULL/FIRST/MIDDLE/LAST chunks)."""
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block padding
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


def offline_env(tmp_path: Path) -> dict[str, str]:
    """Offline, not logged in, a W&B server that cannot be reached, W&B's own dirs under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    wandb_home = str(tmp_path / "wandb_home")
    return env | {
        "WANDB_MODE": "offline",
        "WANDB_BASE_URL": UNREACHABLE,
        "NETRC": str(tmp_path / "no_netrc"),
        "WANDB_CONFIG_DIR": wandb_home,
        "WANDB_CACHE_DIR": wandb_home,
        "WANDB_DATA_DIR": wandb_home,
    }


@pytest.mark.slow
def test_offline_run_holds_config_metrics_table_and_histograms(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "laser.run", "+experiment=ablate_beta", "algo.self_reward.beta_v=0.5",
        "debug=fast", "logger=default", "callbacks.wandb_completions.every_n_steps=2",
        f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (run_dir / "metrics.csv").exists()  # the CSV logger runs alongside
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    records = list(wandb_records(log_file))
    by_kind: dict[str, list] = {}
    for r in records:
        by_kind.setdefault(r.WhichOneof("record_type"), []).append(getattr(r, r.WhichOneof("record_type")))

    (run,) = by_kind["run"]
    assert run.run_group == "ablate_beta"  # the experiment, from Hydra's runtime choices
    assert "algo.self_reward.beta_v=0.5" in run.display_name  # the job's overrides
    assert "experiment" not in run.display_name and {"ablate_beta", "ablation"} <= set(run.tags)

    config = {item.key: json.loads(item.value_json) for c in by_kind["config"] for item in c.update}
    assert config["algo"]["self_reward"]["beta_v"] == 0.5 and config["seed"] == 0
    assert config["run_info"]["packages"]["wandb"] and "commit" in config["run_info"]["git"]

    metrics = {m.name or m.glob_name: m for m in by_kind["metric"]}
    assert metrics["*"].step_metric == "trainer/global_step"
    for name in ("val/accuracy", "val/self_verify/f1"):
        assert metrics[name].summary.max and metrics[name].step_metric == "trainer/global_step"

    history = {item.nested_key[0]: item for h in by_kind["history"] for item in h.item}
    calibration = {"val/self_verify/ece", "val/self_verify/length_spearman"}
    assert {"train/samples", "val/accuracy", "train/loss/total", *calibration} <= set(history)
    hists = [k for k in history if k.startswith("val/self_reward/hist/")]
    assert hists, sorted(history)
    tables = [json.loads(p.read_text()) for p in offline.glob("files/media/table/train/samples_*.table.json")]
    assert sorted(t["data"][0][0] for t in tables) == [2, 4]  # every 2 of the 4 steps
    assert tables[0]["columns"] == [
        "step",
        "prompt",
        "response",
        "answer",
        "reward",
        "self_reward",
        "finished",
    ]
    assert len(tables[0]["data"]) == 8  # B * G = 2 * 4 rows, under max_rows


def test_mode_is_offline_without_login_or_network(tmp_path: Path, monkeypatch) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    assert resolve_wandb_mode("auto") == "offline"  # not logged in
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", UNREACHABLE)
    assert resolve_wandb_mode("auto") == "offline"  # logged in, server unreachable: no waiting
    monkeypatch.setattr(loggers, "wandb_reachable", lambda timeout_s=2.0: True)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"  # the environment wins
    with pytest.raises(ValueError, match=r"logger\.wandb\.mode"):
        resolve_wandb_mode("sometimes")


def test_group_falls_back_to_task_name_outside_hydra(tmp_path: Path) -> None:
    """Composed without `@hydra.main` (no Hydra runtime), the group is the experiment's task_name."""
    cfg = compose_train(tmp_path, ["+experiment=ablate_c_ref", "logger=default"])
    fill_wandb_identity(cfg)
    assert (cfg.logger.wandb.group, cfg.logger.wandb.name) == ("ablate_c_ref", None)
    cfg = compose_train(tmp_path, ["logger=default", "logger.wandb.group=mine", "logger.wandb.name=n"])
    fill_wandb_identity(cfg)
    assert (cfg.logger.wandb.group, cfg.logger.wandb.name) == ("mine", "n")  # given values stay


@pytest.mark.parametrize(
    ("overrides", "group"),
    [
        (["+experiment=ablate_beta"], "ablate_beta"),
        (["+experiment=laser_main", "+sweeps=optuna_lr_alpha_beta"], "lr_alpha_beta-laser_main"),
    ],
)
def test_group_is_the_experiment_or_the_optuna_study(overrides, group, monkeypatch) -> None:
    """Under `@hydra.main` (here: Hydra's config set by hand) trials are grouped under their study."""
    monkeypatch.chdir(ROOT)  # sweeps/ is found from the project root
    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "optim.lr=0.001"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert hydra_run_identity() == (group, "optim.lr=0.001")
    finally:
        HydraConfig.instance().cfg = None


EVAL_LOGGING = """
import sys
import pandas as pd
from omegaconf import OmegaConf
from laser.evaluate import log_to_wandb
methods = pd.Index(["majority", "best_of_k"], name="method")
summary = pd.DataFrame({1: [0.25, 0.25], 2: [0.5, 0.75]}, index=methods)
cfg = OmegaConf.create({"wandb": {"mode": "auto", "project": "laser"}, "benchmark": "arithmetic"})
log_to_wandb(cfg, summary, {"self_verify/auroc": 0.7}, sys.argv[1])
"""


def test_evaluation_logs_its_scaling_table_offline(tmp_path: Path) -> None:
    # the scaling summary's columns are the ints k; W&B tables need str names
    proc = subprocess.run(
        [sys.executable, "-c", EVAL_LOGGING, str(tmp_path)],
        cwd=ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    (table_file,) = offline.glob("files/media/table/eval/scaling_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["method", "1", "2"]
    assert table["data"] == [["majority", 0.25, 0.5], ["best_of_k", 0.25, 0.75]]


class FakeLogger:
    def __init__(self) -> None:
        self.logged: list[dict] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.logged.append(metrics)


class TwoRankModule:
    """What the histogram callback reads of a LaSeR module, with `gather_rows` standing in for two
    data-parallel ranks that hold the same rows."""

    self_reward_id = 5
    sr = SimpleNamespace(beta_v=0.5, loss="mse")

    def __init__(self, rows: dict) -> None:
        self.val_rows = [rows]

    def gather_rows(self, x):
        return torch.cat([x, x])


def test_self_reward_histograms_hold_the_rows_of_every_rank(monkeypatch) -> None:
    from laser.lit import callbacks

    logger = FakeLogger()
    monkeypatch.setattr(callbacks, "wandb_loggers", lambda trainer: [logger])
    rows = {
        "z_logp": torch.tensor([-10.0, -11.0, -12.0]),
        "c_ref": torch.full((3,), -12.0),
        "finished": torch.tensor([True, True, False]),
        "rewards": torch.tensor([1.0, 0.0, 1.0]),
    }
    hist = callbacks.WandbSelfRewardHistograms(num_bins=4)
    module, trainer = TwoRankModule(rows), SimpleNamespace(global_step=3)
    hist.on_validation_epoch_start(trainer, module)
    hist.on_validation_batch_end(trainer, module, None, None, 0)
    hist.on_validation_epoch_end(trainer, module)
    (logged,) = logger.logged
    # one finished correct and one finished incorrect row (the truncated one left out), from each rank
    correct, incorrect = logged["val/self_reward/hist/correct"], logged["val/self_reward/hist/incorrect"]
    assert sum(correct.histogram) == 2 and sum(incorrect.histogram) == 2

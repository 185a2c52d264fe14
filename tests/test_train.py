"""End to end: `laser.run.train` on the fast debug preset (seconds on CPU)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from laser.assembly import export_policy, gather_sharded_weights
from laser.configs import validate
from laser.models.base_policy import cached_model
from laser.run import train

from helpers import char_tokenizer, compose_train, tiny_model


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_debug_run_trains_logs_checkpoints_and_exports(tmp_path: Path, capsys) -> None:
    metrics, objects = train(compose_train(tmp_path))
    run_dir = tmp_path / "run"
    assert objects["trainer"].global_step == 4
    rows = read_metrics(run_dir)
    columns = set(rows[0])
    for key in (
        "train/reward/mean",
        "train/self_verify/f1",
        "val/accuracy",
        "val/accuracy_greedy",
        "val/self_verify/auroc",
    ):
        assert key in columns, key
    assert any(r["val/accuracy"] for r in rows) and any(r["train/loss/total"] for r in rows)
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "config.yaml").exists()
    # the export loads with plain transformers and reproduces the trained policy's logits
    policy = AutoModelForCausalLM.from_pretrained(run_dir / "policy")
    tok = AutoTokenizer.from_pretrained(run_dir / "policy")
    ids = torch.tensor([tok.encode("12+7=")])
    trained = objects["module"].policy.eval()
    torch.testing.assert_close(policy(ids).logits, trained(ids).logits)
    info = json.loads((run_dir / "policy" / "self_reward.json").read_text())
    assert info["token"] == "<reserved_0>" and info["c_ref"] == pytest.approx(metrics["summary/c_ref"])
    out = capsys.readouterr().out
    assert "eval accuracy" in out and "self-reward F1" in out and str(run_dir) in out
    assert "held-out voting at k=4" in out and (run_dir / "voting.csv").exists()
    assert {"final/majority@4", "final/weighted_majority@4"} <= set(metrics)
    ranking = {f"final/self_verify/{m}" for m in ("auroc", "auroc_within", "auroc_difficulty")}
    assert ranking <= set(metrics) and "knowing only each prompt's difficulty" in out
    # the export path for sharded strategies: weights from a checkpoint, not the in-memory policy
    assert gather_sharded_weights(objects["trainer"], run_dir) is None  # not sharded
    module = objects["module"]
    with torch.no_grad():
        for p in module.policy.parameters():
            p.zero_()
    run = validate(compose_train(tmp_path))
    export = export_policy(
        module, tok, run, tmp_path / "from_ckpt", weights=run_dir / "checkpoints" / "last.ckpt"
    )
    from_ckpt = AutoModelForCausalLM.from_pretrained(export)
    torch.testing.assert_close(from_ckpt(ids).logits, policy(ids).logits)


def test_grpo_baseline_runs_and_logs_the_untrained_score(tmp_path: Path) -> None:
    metrics, _ = train(compose_train(tmp_path, ["algo=grpo"]))
    assert "val/self_verify/f1" in metrics and "train/self_reward/mse" in metrics


def test_resume_from_last_checkpoint_continues_the_run(tmp_path: Path) -> None:
    first, _ = train(compose_train(tmp_path))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resumed = compose_train(tmp_path / "resumed", [f"ckpt_path={ckpt}", "trainer.max_steps=6"])
    second, objects = train(resumed)
    assert objects["trainer"].global_step == 6
    assert second["summary/c_ref"] == pytest.approx(first["summary/c_ref"])  # restored, not re-estimated


def test_base_policy_warm_up_is_cached(tmp_path: Path) -> None:
    train(compose_train(tmp_path))
    cached = list((tmp_path / "cache" / "base_policy").iterdir())
    stamp = [p.stat().st_mtime_ns for p in cached]
    train(compose_train(tmp_path, ["trainer.max_steps=2"]))
    assert list((tmp_path / "cache" / "base_policy").iterdir()) == cached
    assert [p.stat().st_mtime_ns for p in cached] == stamp


def test_warm_up_cache_ignores_settings_that_do_not_shape_it(tmp_path: Path) -> None:
    train(compose_train(tmp_path, ["trainer.max_steps=2"]))
    cached = sorted((tmp_path / "cache" / "base_policy").iterdir())
    other_token = ["model.self_reward_token='<reserved_1>'", "model.gradient_checkpointing=true"]
    train(
        compose_train(
            tmp_path / "b", ["trainer.max_steps=2", f"paths.cache_dir={tmp_path / 'cache'}", *other_token]
        )
    )
    assert sorted((tmp_path / "cache" / "base_policy").iterdir()) == cached
    train(
        compose_train(
            tmp_path / "c",
            ["trainer.max_steps=2", f"paths.cache_dir={tmp_path / 'cache'}", "model.tiny.num_layers=2"],
        )
    )
    assert len(list((tmp_path / "cache" / "base_policy").iterdir())) == len(cached) + 1


def test_same_seed_gives_the_same_metrics(tmp_path: Path) -> None:
    a, _ = train(compose_train(tmp_path / "a"))
    b, _ = train(compose_train(tmp_path / "b"))
    assert a == pytest.approx(b, nan_ok=True)


def test_memory_and_stage_times_are_logged_with_the_other_training_metrics(tmp_path: Path) -> None:
    train(compose_train(tmp_path, ["trainer.log_every_n_steps=2"]))  # debug=fast: 4 steps
    rows = read_metrics(tmp_path / "run")
    memory_steps = [int(r["step"]) for r in rows if r.get("train/memory/peak_rss_gib")]
    reward_steps = [int(r["step"]) for r in rows if r.get("train/reward/mean")]
    timed_steps = [int(r["step"]) for r in rows if r.get("train/timing_s/step")]
    assert memory_steps == reward_steps == timed_steps == [1, 3]  # every 2 steps, on Lightning's index


def test_sft_run_is_evaluated_with_its_own_score_calibration_and_length_bias(tmp_path: Path) -> None:
    from laser.algo import expected_calibration_error
    from laser.evaluate import evaluate
    from laser.utils.compose import compose_config

    sft = ["algo.self_reward.loss=sft", "algo.self_reward.incorrect_token='<reserved_1>'"]
    metrics, _ = train(compose_train(tmp_path, sft))
    assert "train/self_reward/ce" in metrics and "val/self_verify/ece" in metrics
    out = tmp_path / "eval"
    options = ["max_problems=8", "num_samples=4", "rollout.max_new_tokens=24", "wandb.mode=disabled"]
    paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={out}", "self_reward.calibration_bins=4"]
    evaluate(compose_config([f"ckpt_path={tmp_path / 'run'}", *options, *paths], config_name="eval"))
    verify = json.loads((out / "self_verify.json").read_text())
    spearmans = [f"self_verify/length_spearman{s}" for s in ("", "_correct", "_incorrect")]
    assert {"self_verify/ece", *spearmans} <= set(verify)
    rows = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    keys = ("score", "correct", "finished", "length")
    flat = [sample for r in rows for sample in zip(*(r[k] for k in keys), strict=True)]
    assert len(flat) == 32 and all(0 < n <= 24 for *_, n in flat)
    done = [(s, c) for s, c, f, _ in flat if f]
    assert done and all(0.0 <= s <= 1.0 for s, _ in done)  # the SFT score is pi(z | x, y)
    scores, correct = torch.tensor([s for s, _ in done]), torch.tensor([c for _, c in done])
    assert verify["self_verify/ece"] == pytest.approx(expected_calibration_error(scores, correct, 4).item())


def test_warm_up_made_by_another_process_meanwhile_is_kept(tmp_path: Path) -> None:
    """Two processes make the same warm-up at once: the one that saves second keeps the first's."""
    tok = char_tokenizer()
    theirs = tiny_model(tok, seed=1)

    def make_while_another_process_saves():
        theirs.save_pretrained(tmp_path / "key")  # the other process finished first
        return tiny_model(tok, seed=2)

    model = cached_model(tmp_path, "key", make_while_another_process_saves)
    ids = torch.tensor([tok.encode("1+2=")])
    loaded = cached_model(tmp_path, "key", lambda: pytest.fail("the cache was not used"))
    torch.testing.assert_close(loaded(ids).logits, theirs(ids).logits)
    assert model is not None and sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no leftovers

"""`laser.evaluate` at its edge settings: one sample per problem, a benchmark answered all right or
all wrong, more problems asked for than the file holds, an empty file, and bad numbers. Each either
writes its files or stops before any model loads, naming the setting."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

import laser.evaluate as evaluate_module
from laser.evaluate import evaluate
from laser.utils.compose import compose_config

FILES = ("scaling.csv", "scaling_summary.csv", "self_verify.json", "problems.jsonl")
CONFIDENCE_FILES = ("confidence.csv", "confidence_scaling.csv", "adaptive.csv", "accuracy_estimate.csv")


def eval_config(policy_dir: Path, tmp_path: Path, *overrides: str):
    base = [
        f"ckpt_path={policy_dir}",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'eval'}",
        "wandb.mode=disabled",
        "rollout.max_new_tokens=12",
        "num_resamples=4",
        "max_problems=6",
    ]
    return compose_config([*base, *overrides], config_name="eval")


def read_outputs(out: Path) -> tuple[pd.DataFrame, dict, list[dict]]:
    assert all((out / name).is_file() for name in FILES), sorted(p.name for p in out.iterdir())
    summary = pd.read_csv(out / "scaling_summary.csv", index_col="method")
    verify = json.loads((out / "self_verify.json").read_text())
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    return summary, verify, problems


def test_one_sample_per_problem_reports_pass_at_1_and_marks_the_rest_not_applicable(
    policy_dir: Path, tmp_path: Path, capsys
) -> None:
    result = evaluate(eval_config(policy_dir, tmp_path, "num_samples=1"))
    summary, verify, problems = read_outputs(tmp_path / "eval")
    assert list(summary.columns) == ["1"] and len(problems) == 6
    accuracy = sum(p["correct"][0] for p in problems) / len(problems)
    assert summary.loc["pass@1", "1"] == pytest.approx(accuracy)
    # a ranking within a problem, or against the problem's own accuracy, needs >= 2 samples
    assert verify["self_verify/auroc_within"] is None and verify["self_verify/auroc_difficulty"] is None
    assert verify == result["self_verify"]
    out = capsys.readouterr().out
    assert "pass@1" in out and "auroc_difficulty=n/a" in out and "num_samples=1" in out


class ConstantVerifier:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, responses, answers, prompts) -> torch.Tensor:
        return torch.full((len(responses),), self.value)


@pytest.mark.parametrize("right", [True, False], ids=["all-right", "all-wrong"])
def test_a_benchmark_answered_all_right_or_all_wrong_writes_its_files(
    policy_dir: Path, tmp_path: Path, monkeypatch, right: bool
) -> None:
    monkeypatch.setattr(
        evaluate_module, "make_eval_verifier", lambda cfg, task, check: ConstantVerifier(float(right))
    )
    evaluate(eval_config(policy_dir, tmp_path, "num_samples=4"))
    summary, verify, problems = read_outputs(tmp_path / "eval")
    assert (summary.loc[["pass@1", "pass@k", "majority", "best_of_k"]] == float(right)).all().all()
    assert all(all(p["correct"]) == right for p in problems)
    assert any(any(s != 0 for s in p["score"]) for p in problems)  # some responses finished
    assert all(len(p["responses"]) == 4 and all(isinstance(t, str) for t in p["responses"]) for p in problems)
    present, absent = ("acc_correct", "acc_incorrect") if right else ("acc_incorrect", "acc_correct")
    assert 0 <= verify[f"self_verify/{present}"] <= 1
    for name in (absent, "f1", "auroc", "auroc_within", "auroc_difficulty"):
        assert verify[f"self_verify/{name}"] is None, name  # one class only: not applicable


def test_more_problems_than_the_file_holds_evaluates_them_all(
    policy_dir: Path, tmp_path: Path, caplog
) -> None:
    rows = [{"problem": f"{i}+1", "answer": str(i + 1)} for i in range(3)]
    file = tmp_path / "three.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="laser.evaluate"):
        evaluate(eval_config(policy_dir, tmp_path, f"benchmark={file}", "max_problems=10", "num_samples=2"))
    _, _, problems = read_outputs(tmp_path / "eval")
    assert len(problems) == 3
    assert "max_problems=10 exceeds the 3 problems" in caplog.text


def never_load(*args, **kwargs):
    raise AssertionError("the policy was loaded: the evaluation should have stopped before")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", r"benchmark=.*empty\.jsonl' is empty"), ("\n\n", r"benchmark=.*empty\.jsonl' is empty")],
)
def test_an_empty_file_stops_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch, content: str, message: str
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    file = tmp_path / "empty.jsonl"
    file.write_text(content)
    with pytest.raises(ValueError, match=message):
        evaluate(eval_config(policy_dir, tmp_path, f"benchmark={file}"))
    assert not (tmp_path / "eval").exists()


def test_a_json_file_of_no_rows_stops_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    file = tmp_path / "none.json"
    file.write_text("[]")
    with pytest.raises(ValueError, match=r"benchmark=.*none\.json.*holds no rows"):
        evaluate(eval_config(policy_dir, tmp_path, f"benchmark={file}"))


@pytest.mark.parametrize(
    "override", ["num_samples=0", "max_problems=0", "batch_size=0", "num_resamples=0", "num_samples=1.5"]
)
def test_bad_numbers_stop_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch, override: str
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    key, value = override.split("=")
    with pytest.raises(ValueError, match=f"{key}={value} is invalid"):
        evaluate(eval_config(policy_dir, tmp_path, override))


def test_a_training_run_gives_its_response_budget_and_its_scored_check(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    trained = {
        "rollout": {"max_new_tokens": 72},
        "reward": {"check": "scored"},
        "data": {"task": {"check": "split", "num_operands": 3}},
    }
    OmegaConf.save(trained, run / "config.yaml")
    cfg = eval_config(run, tmp_path, "rollout.max_new_tokens=48")
    assert evaluate_module.response_budget(cfg, run) == 72  # 48 would cut the run's solutions off
    assert evaluate_module.response_budget(cfg, None) == 48
    assert evaluate_module.response_budget(eval_config(run, tmp_path, "rollout.max_new_tokens=96"), run) == 96
    scored = evaluate_module.run_scores_check(run)
    verifier = evaluate_module.make_eval_verifier(cfg, evaluate_module.run_task(run), scored)
    honest = "12+35=47, 47-7=40; -7+35=28; 40-12=28, 28-28=0 #### 40"
    wrong_check = "12+35=47, 47-7=40; -7+35=29; 40-12=28, 28-29=-1 #### 40"
    rewards = verifier([honest, wrong_check], ["40", "40"], ["12+35-7=", "12+35-7="])
    assert rewards.tolist() == [1.0, 0.0]  # the run scored its check, so its evaluation does too
    assert evaluate_module.run_scores_check(None) is False
    OmegaConf.save(trained | {"reward": {"score_check": True, "check": None}}, run / "config.yaml")
    assert evaluate_module.run_scores_check(run) is True  # the key runs save since the rename


class CoinVerifier:
    """A verifier that calls each response right with probability 0.4, at random (seeded)."""

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(0)

    def __call__(self, responses, answers, prompts) -> torch.Tensor:
        return (torch.rand(len(responses), generator=self.generator) < 0.4).float()


def test_the_confidence_comparison_and_its_transfer_calibration(
    policy_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(evaluate_module, "make_eval_verifier", lambda cfg, task, check: CoinVerifier())
    light = ("num_samples=4", "confidence.timing.repeats=1", "confidence.calibration.bootstrap=20")
    first = evaluate(eval_config(policy_dir, tmp_path, *light))
    out = tmp_path / "eval"
    assert all((out / name).is_file() for name in CONFIDENCE_FILES)
    methods = ["laser", "mean_logprob", "self_certainty", "deepconf_lowest_group", "deepconf_tail"]
    assert list(first["confidence"].index) == methods  # no written check on this task: no verdict
    ranking = pd.read_csv(out / "confidence.csv", index_col="method")
    assert {"auroc/pooled", "auroc/within", "ece/calibrated", "cost/extra_ms_per_sample"} <= set(
        ranking.columns
    )
    rules = set(pd.read_csv(out / "confidence_scaling.csv")["rule"])
    assert rules == {"majority", "weighted_majority", "best_of_k", "filtered_top10", "filtered_top90"}
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert all(set(p["confidence"]) == set(methods) and len(p["confidence"]["laser"]) == 4 for p in problems)
    assert "predicted pass@1 accuracy" in capsys.readouterr().out
    # an evaluation of "another policy" calibrated on the first one's labelled samples
    second = evaluate(
        eval_config(policy_dir, tmp_path / "second", *light, "seed=1", f"confidence.calibration.source={out}")
    )
    estimate = second["accuracy_estimate"]
    assert set(estimate["calibration"]) == {"none", "cross_fit", "transfer"}
    assert set(estimate.loc[estimate["calibration"] == "none", "method"]) == {"laser"}  # its own scale
    assert (
        (estimate["predicted_low"] <= estimate["predicted"])
        & (estimate["predicted"] <= estimate["predicted_high"])
    ).all()


def test_no_confidence_method_writes_no_comparison(policy_dir: Path, tmp_path: Path) -> None:
    result = evaluate(eval_config(policy_dir, tmp_path, "num_samples=2", "confidence.methods=[]"))
    assert "confidence" not in result and not (tmp_path / "eval" / "confidence.csv").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("confidence.methods=[laser,magic]", r"confidence.methods=.*unknown \['magic'\]"),
        ("confidence.top_k=0", r"confidence.top_k=0 is invalid"),
        (
            "confidence.calibration.source=/nowhere",
            r"confidence.calibration.source='/nowhere'.*does not exist",
        ),
    ],
)
def test_bad_confidence_settings_stop_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch, override: str, message: str
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        evaluate(eval_config(policy_dir, tmp_path, override))


def test_measuring_the_costs_leaves_the_samples_as_they_were(policy_dir: Path, tmp_path: Path) -> None:
    def responses(timing: int) -> list:
        out = tmp_path / f"timing{timing}"
        cfg = eval_config(policy_dir, out, "num_samples=3", f"confidence.timing.problems={timing}")
        result = evaluate(cfg)
        rows = (out / "eval" / "problems.jsonl").read_text().splitlines()
        return [json.loads(r)["responses"] for r in rows], result["confidence"]

    measured, ranking = responses(2)
    unmeasured, unmeasured_ranking = responses(0)
    assert measured == unmeasured  # the timing runs restart and restore the sampler's RNG
    assert ranking["cost/generation_ms_per_sample"].notna().all()
    assert math.isnan(unmeasured_ranking.loc["laser", "cost/generation_ms_per_sample"])  # not measured
    assert unmeasured_ranking.loc["mean_logprob", "cost/generation_ms_per_sample"] == 0  # records nothing


def test_a_training_checkpoint_is_evaluated_as_the_policy_it_held(policy_dir: Path, tmp_path: Path) -> None:
    """ckpt_path=<run>/checkpoints/<step>.ckpt: the run's export with that checkpoint's weights and
    c_ref, exported once beside it; split=train draws the run's training prompts."""
    run = tmp_path / "run"
    shutil.copytree(policy_dir, run / "policy")
    OmegaConf.save({"data": {"task": {"train_size": 64, "eval_size": 32}}}, run / "config.yaml")
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    state = {f"policy.{k}": v + 0.01 for k, v in model.state_dict().items()}  # an "earlier" policy
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "step000002.ckpt"
    torch.save({"state_dict": state | {"c_ref": torch.tensor(-7.5)}}, ckpt)
    model_dir, run_dir = evaluate_module.resolve_policy(str(ckpt))
    assert (Path(model_dir), run_dir) == (run / "checkpoints" / "step000002.policy", run)
    exported = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert all(torch.equal(exported[k[len("policy.") :]], v) for k, v in state.items())
    assert json.loads((Path(model_dir) / "self_reward.json").read_text())["c_ref"] == -7.5
    cfg = eval_config(ckpt, tmp_path, "split=train", "num_samples=2", "confidence.methods=[]")
    records = evaluate_module.load_records(cfg, None, evaluate_module.run_task(run))
    held_out = evaluate_module.load_records(eval_config(ckpt, tmp_path), None, evaluate_module.run_task(run))
    assert not {r["prompt"] for r in records} & {r["prompt"] for r in held_out}
    evaluate(cfg)
    read_outputs(tmp_path / "eval")


def test_a_checkpoint_of_an_unfinished_run_names_the_fix(tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(FileNotFoundError, match=r"has no exported policy.*resume it"):
        evaluate_module.resolve_policy(str(ckpt))


def test_an_unknown_split_stops_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    with pytest.raises(ValueError, match="split='test' is invalid"):
        evaluate(eval_config(policy_dir, tmp_path, "split=test"))

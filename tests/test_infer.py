"""`laser.infer`: answers for a file of problems without answers, on a tiny random policy. Bad rows
are named by file and line and skipped (or stop a strict run before the policy loads), rows already
answered are kept, and each answer carries the calibrated confidence of its vote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import laser.evaluate as evaluate_module
from laser.data.collate import PromptCollator
from laser.eval.confidence import ScoringContext, clip_unit
from laser.eval.settings import confidence_config
from laser.eval.unlabelled import Problem
from laser.infer import Drawn, answer_row, draw_adaptively, infer
from laser.rollout.types import Rollout
from laser.utils.compose import compose_config

from helpers import char_tokenizer

ROOT = Path(__file__).resolve().parents[1]
BAD_LINES = {10: {"problem": "1+2="}, 500: {"prompt": "  "}, 999: "not json {"}


def problems_file(path: Path, rows: int, bad: dict | None = None) -> Path:
    """`rows` lines of arithmetic prompts, with `bad` {line: row or raw text} put in their place."""
    lines = [json.dumps({"prompt": f"{i % 40}+{i % 7}=", "id": i}) for i in range(rows)]
    for line, row in (bad or {}).items():
        lines[line - 1] = row if isinstance(row, str) else json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    return path


def infer_config(policy_dir: Path, problems: Path, tmp_path: Path, *overrides: str):
    base = [
        f"ckpt_path={policy_dir}",
        f"problems={problems}",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'infer'}",
        "rollout.max_new_tokens=4",
        "num_samples=2",
        "batch_size=500",
        "confidence.calibration.bootstrap=20",
    ]
    return compose_config([*base, *overrides], config_name="infer")


def never_load(*args, **kwargs):
    raise AssertionError("the policy was loaded: the command should have stopped before")


def test_a_thousand_rows_with_three_bad_lines(policy_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    file = problems_file(tmp_path / "problems.jsonl", 1000, BAD_LINES)
    summary = infer(infer_config(policy_dir, file, tmp_path))
    answers = [json.loads(line) for line in (tmp_path / "problems.answers.jsonl").read_text().splitlines()]
    assert len(answers) == summary["answers"] == 997
    assert [a["line"] for a in answers] == [n for n in range(1, 1001) if n not in BAD_LINES]
    assert all(a["id"] == a["line"] - 1 and 0 <= a["confidence"] <= 1 for a in answers)
    assert all(a["samples"] == 2 and len(a["answers"]) == 2 for a in answers)
    out = capsys.readouterr().out
    for line, why in ((10, "no 'prompt' field"), (500, "empty 'prompt'"), (999, "not a JSON object")):
        assert f"{file}:{line}: {why}" in out
    assert len(summary["bad_lines"]) == 3 and all(str(file) in bad for bad in summary["bad_lines"])
    assert "estimated accuracy" in out and summary["calibration"] == "none"
    written = json.loads((tmp_path / "problems.answers.summary.json").read_text())
    assert written["answers"] == 997 and written["estimated_accuracy"] == summary["estimated_accuracy"]
    # strict: the same file stops before the policy loads, naming every bad line
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    with pytest.raises(ValueError, match=r"strict=true and 3 bad lines") as err:
        infer(infer_config(policy_dir, file, tmp_path, "strict=true"))
    assert all(f"{file}:{line}:" in str(err.value) for line in BAD_LINES)


def test_rows_already_answered_are_kept(policy_dir: Path, tmp_path: Path) -> None:
    file = problems_file(tmp_path / "few.jsonl", 6)
    output = tmp_path / "out" / "answers.jsonl"
    infer(infer_config(policy_dir, file, tmp_path, f"output={output}"))
    first = output.read_text().splitlines()
    again = infer(infer_config(policy_dir, file, tmp_path, f"output={output}"))
    assert again["answered_now"] == 0 and output.read_text().splitlines() == first
    lines = file.read_text().splitlines()
    lines[2] = json.dumps({"prompt": "9+9="})  # a changed prompt is answered again
    file.write_text("\n".join(lines) + "\n")
    with open(output, "a") as f:
        f.write('{"line": 4, "prompt": "3')  # a torn last line, as an interrupted run leaves
    third = infer(infer_config(policy_dir, file, tmp_path, f"output={output}"))
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert third["answered_now"] == 1 and [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["prompt"] == "9+9=" and [json.dumps(r) for r in rows[3:]] == first[3:]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ('[{"prompt": "1+1="}]\n', ValueError, r"is not JSONL .*:1: a JSON list, not an object"),
        ("prompt,answer\n1+1=,2\n", ValueError, r"is not JSONL .*:1: not a JSON object"),
        ("\n\n", ValueError, r"is empty"),
        (None, FileNotFoundError, r"problems=.*missing\.jsonl' does not exist"),
    ],
    ids=["json-array", "csv", "blank", "missing"],
)
def test_a_file_that_is_not_jsonl_stops_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch, content, error, message
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    file = tmp_path / "missing.jsonl"
    if content is not None:
        file.write_text(content)
    with pytest.raises(error, match=message):
        infer(infer_config(policy_dir, file, tmp_path))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method=mean_logprob", r"method='mean_logprob' has no probability scale.*calibration.source"),
        ("method=nope", r"method='nope' is invalid"),
        ("num_samples=0", r"num_samples=0 is invalid"),
        ("confidence.adaptive.rule=worst", r"confidence.adaptive.rule='worst' is invalid"),
    ],
)
def test_bad_settings_stop_before_the_policy_loads(
    policy_dir: Path, tmp_path: Path, monkeypatch, override: str, message: str
) -> None:
    monkeypatch.setattr(evaluate_module.AutoModelForCausalLM, "from_pretrained", never_load)
    file = problems_file(tmp_path / "p.jsonl", 3)
    with pytest.raises(ValueError, match=message):
        infer(infer_config(policy_dir, file, tmp_path, override))


def test_an_answer_is_the_weighted_vote_with_its_samples_confidence() -> None:
    drawn = Drawn()
    texts = ["1+3=4 #### 4", "2+2=4 #### 4", "2+3=5 #### 5", "2+2=4 #### 4"]
    drawn.add(texts, torch.tensor([0.5, 0.7, 1.4, 0.9]), torch.tensor([True, True, True, False]))
    row = answer_row(Problem(7, "2+2=", "x"), drawn, "laser", clip_unit)
    # the truncated fourth sample does not vote: '4' weighs 0.5 + 0.7 = 1.2, '5' weighs min(1.4, 1) = 1
    assert row["answer"] == "4" and row["votes"] == pytest.approx({"4": 1.2, "5": 1.0})
    assert row["confidence"] == pytest.approx(0.6)  # the mean probability of its samples (0.5, 0.7)
    assert (row["line"], row["id"], row["samples"]) == (7, "x", 4)


class ScriptedSampler:
    """Answers '4' every time to prompt 'sure', '1' and '2' in turn to any other prompt."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def sample(self, policy, batch, group_size, score=True, **record):
        self.calls.append(list(batch.prompts))
        n = len(batch) * group_size
        self.texts = [
            "#### 4" if prompt == "sure" else f"#### {1 + i % 2}"
            for prompt in batch.prompts
            for i in range(group_size)
        ]
        return Rollout(
            prompt_ids=torch.ones(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1, dtype=torch.long),
            response_ids=torch.ones(n, 2, dtype=torch.long), response_mask=torch.ones(n, 2, dtype=torch.long),
            finished=torch.ones(n, dtype=torch.bool), z_logp=torch.full((n,), -1.0),
        )  # fmt: skip

    def decode(self, rollout):
        return self.texts


@pytest.mark.parametrize("rule", ["lead", "margin"])
def test_adaptive_sampling_stops_a_sure_prompt_early(rule: str) -> None:
    batch = PromptCollator(char_tokenizer())([{"prompt": p, "answer": ""} for p in ("sure", "torn")])
    adaptive = [f"rule={rule}", "threshold=0.6", "thresholds=[0.5]"]
    overrides = ["paths.root_dir=.", *(f"confidence.adaptive.{a}" for a in adaptive)]
    conf = confidence_config(compose_config(overrides, config_name="infer").confidence)
    ctx = ScoringContext(top_k=2, group_window=2, tail=2, beta_v=0.1, c_ref=-5.0)
    sampler = ScriptedSampler()
    drawn = draw_adaptively(None, sampler, batch, "laser", ctx, conf, num_samples=6)
    # rounds of 2, each sample's weight 0.4: 'sure' agrees with itself (lead 0.8, margin 1 > 0.6) and
    # stops; 'torn' splits 1:1 (lead and margin 0) to the end
    assert [len(d.texts) for d in drawn] == [2, 6]
    assert sampler.calls == [["sure", "torn"], ["torn"], ["torn"]]
    assert drawn[0].answers == ["4", "4"] and drawn[1].answers == ["1", "2"] * 3


@pytest.mark.slow
def test_the_command_exits_non_zero_only_when_strict(policy_dir: Path, tmp_path: Path) -> None:
    file = problems_file(tmp_path / "problems.jsonl", 20, {3: {"prompt": ""}})
    args = [sys.executable, "-m", "laser.infer", f"ckpt_path={policy_dir}", f"problems={file}",
            "rollout.max_new_tokens=4", "num_samples=2", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lenient = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    assert f"{file}:3: empty 'prompt'" in lenient.stdout
    strict = subprocess.run(
        [*args, "strict=true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert strict.returncode != 0 and f"{file}:3: empty 'prompt'" in strict.stderr

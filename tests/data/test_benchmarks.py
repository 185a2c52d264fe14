"""Tests for laser.data.benchmarks: shipped benchmarks, custom files, prompt rendering, clear errors."""

import json
from pathlib import Path

import pytest
from datasets import Dataset

from laser.data.benchmarks import (
    BENCHMARKS,
    INSTRUCTION,
    ROOT_ENV,
    default_benchmark_root,
    load_benchmark,
    load_benchmarks,
    load_problems,
    load_training_set,
    render_prompt,
)
from laser.models.char_tokenizer import build_char_tokenizer

ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
COLUMNS = ["prompt", "problem", "answer"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def root():
    if not ROOT.is_dir():
        pytest.skip(f"shared benchmarks absent: {ROOT} not found (expected ../shared/benchmarks)")
    return ROOT


@pytest.fixture
def chat_tokenizer():
    tok = build_char_tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_default_root_is_shared_benchmarks(monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert default_benchmark_root().resolve() == ROOT.resolve()
    monkeypatch.setenv(ROOT_ENV, "/somewhere/else")
    assert default_benchmark_root() == Path("/somewhere/else")


@pytest.mark.parametrize(("name", "size"), [("math500", 500), ("aime24", 30), ("aime25", 30), ("amc23", 40)])
def test_shipped_benchmark_loads(root, name, size):
    data = load_benchmark(name, root=root)
    assert len(data) == size == BENCHMARKS[name].size
    assert data.column_names == COLUMNS
    row = data[0]
    assert all(isinstance(row[c], str) and row[c] for c in COLUMNS)
    assert row["prompt"] == f"Question: {row['problem']} {INSTRUCTION}\nAnswer:"


def test_integer_answers_become_strings(root):
    aime25 = load_benchmark("aime25", root=root)  # its answers are JSON integers
    assert aime25[0]["answer"] == "70"
    assert all(a.isdigit() for a in aime25["answer"])


def test_chat_template_used_when_present(root, chat_tokenizer):
    data = load_benchmark("aime24", chat_tokenizer, root=root, limit=3)
    assert len(data) == 3
    problem = data[0]["problem"]
    assert data[0]["prompt"] == f"<|user|>{problem} {INSTRUCTION}\n<|assistant|>"


def test_render_prompt_modes(chat_tokenizer):
    plain = build_char_tokenizer()
    assert getattr(plain, "chat_template", None) is None
    assert render_prompt("1+1?", plain) == f"Question: 1+1? {INSTRUCTION}\nAnswer:"
    assert render_prompt("1+1?") == render_prompt("1+1?", plain)
    assert render_prompt("1+1?", chat_tokenizer, use_chat_template=False) == render_prompt("1+1?")
    with_system = render_prompt("{x}", chat_tokenizer, system_prompt="Be brief.")
    assert with_system == f"<|system|>Be brief.\n<|user|>{{x}} {INSTRUCTION}\n<|assistant|>"
    assert (
        render_prompt("2+2?", user_template="Solve: {problem}", plain_template="{user} =") == "Solve: 2+2? ="
    )
    with pytest.raises(ValueError, match="no chat_template"):
        render_prompt("1+1?", plain, use_chat_template=True)


def test_load_benchmarks_by_name_and_path(root, tmp_path):
    custom = _write_jsonl(tmp_path / "mine.jsonl", [{"problem": "1+1?", "answer": 2}])
    out = load_benchmarks(["amc23", root / "aime24" / "test.jsonl", custom])
    assert {k: len(v) for k, v in out.items()} == {"amc23": 40, "aime24": 30, "mine": 1}


def test_custom_fields_jsonl_and_parquet(tmp_path, chat_tokenizer):
    rows = [
        {"question": "What is 3*4?", "final": 12, "level": 1},
        {"question": "Half of 1?", "final": "1/2", "level": 2},
    ]
    jsonl = _write_jsonl(tmp_path / "custom.jsonl", rows)
    parquet = tmp_path / "custom.parquet"
    Dataset.from_list([{**r, "final": str(r["final"])} for r in rows]).to_parquet(str(parquet))  # one type
    for path in (jsonl, parquet):
        data = load_benchmark(path, problem_field="question", answer_field="final", keep_fields=["level"])
        assert data.column_names == [*COLUMNS, "level"]
        assert data["answer"] == ["12", "1/2"] and data["problem"] == ["What is 3*4?", "Half of 1?"]
        assert data["level"] == [1, 2]
    data = load_problems(parquet, chat_tokenizer, problem_field="question", answer_field="final")
    assert data[0]["prompt"].startswith("<|user|>What is 3*4?")


def test_training_set_format_and_nested_fields(tmp_path):
    path = tmp_path / "train.parquet"
    Dataset.from_list([{"problem": "1+2?", "answer": "3"}, {"problem": "2+2?", "answer": "4"}]).to_parquet(
        str(path)
    )
    data = load_training_set(path)
    assert data.column_names == COLUMNS and data["answer"] == ["3", "4"]
    verl = tmp_path / "verl.parquet"
    Dataset.from_list(
        [{"question": "5-1?", "reward_model": {"ground_truth": "4", "style": "rule"}}]
    ).to_parquet(str(verl))
    data = load_training_set(verl, problem_field="question", answer_field="reward_model.ground_truth")
    assert data["answer"] == ["4"]


def test_missing_field_error_names_file_and_fix(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "1+1?", "answer": "2"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl.*no problem field 'problem'.*question.*problem_field="):
        load_benchmark(path)
    with pytest.raises(ValueError, match=r"no answer field 'solution'.*answer_field="):
        load_problems(path, problem_field="question", answer_field="solution")
    null = _write_jsonl(tmp_path / "null.jsonl", [{"problem": "1+1?", "answer": None}])
    with pytest.raises(ValueError, match="row 0 has no answer"):
        load_problems(null)


def test_missing_file_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"benchmark 'math500'.*nope.*root="):
        load_benchmark("math500", root=tmp_path / "nope")
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=ROOT_ENV):
        load_benchmark("aime24")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl not found"):
        load_benchmark(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="unknown benchmark 'gsm9k'"):
        load_benchmark("gsm9k")
    (tmp_path / "data.csv").write_text("problem,answer\n")
    with pytest.raises(ValueError, match="unsupported extension"):
        load_benchmark(tmp_path / "data.csv")

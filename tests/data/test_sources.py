"""Training on local maths files (`data=math`, data.source=files): held-out splits, field names,
prompts, and bad paths or fields failing at validation, before any model loads."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laser.catalog import INSTRUCTION
from laser.configs import DataConfig, validate
from laser.data.arithmetic import arithmetic_dataset
from laser.data.benchmarks import load_benchmark
from laser.data.sources import build_datasets, dataset_key
from laser.models.char_tokenizer import build_char_tokenizer
from laser.run import train

from helpers import char_tokenizer, compose_train, config_block

BENCHMARK_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ROWS = [{"problem": f"What is {i} times 3?", "answer": 3 * i} for i in range(20)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", ROWS)


@pytest.fixture
def chat_tokenizer():
    tok = build_char_tokenizer()  # a fresh one: the shared char tokenizer stays without a template
    tok.chat_template = CHAT_TEMPLATE
    return tok


def files_data(**files) -> DataConfig:
    return config_block("data", "data=math", files=files)


# -- building the splits ------------------------------------------------------------------------


@pytest.mark.parametrize(("held_out", "sizes"), [(0.25, (15, 5)), (3, (17, 3))])
def test_part_of_the_training_file_is_held_out(train_file: Path, held_out, sizes) -> None:
    data = build_datasets(files_data(train=str(train_file), eval=held_out), char_tokenizer())
    assert (len(data["train"]), len(data["eval"])) == sizes
    assert set(data["train"]["problem"]).isdisjoint(data["eval"]["problem"])
    assert sorted([*data["train"]["problem"], *data["eval"]["problem"]]) == sorted(r["problem"] for r in ROWS)
    answers = {r["problem"]: str(r["answer"]) for r in ROWS}  # integers in the file become strings
    assert all(answers[p] == a for p, a in zip(data["eval"]["problem"], data["eval"]["answer"], strict=True))


def test_the_held_out_draw_follows_the_split_seed(train_file: Path) -> None:
    def held_out(seed: int) -> list[str]:
        cfg = files_data(train=str(train_file), eval=5, split_seed=seed)
        return list(build_datasets(cfg, char_tokenizer())["eval"]["problem"])

    assert held_out(0) == held_out(0)
    assert held_out(0) != held_out(1)


def test_holding_out_every_row_fails_naming_the_key(train_file: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.files\.eval=20 holds out 20 of the training file's 20"):
        build_datasets(files_data(train=str(train_file), eval=20), char_tokenizer())


def test_parquet_with_other_and_nested_field_names(tmp_path: Path) -> None:
    """verl-style rows: the question in `question`, the answer under `reward_model.ground_truth`."""
    table = pa.table(
        {
            "question": [r["problem"] for r in ROWS],
            "reward_model": [{"ground_truth": str(r["answer"]), "style": "rule"} for r in ROWS],
        }
    )
    pq.write_table(table, tmp_path / "train.parquet")
    eval_rows = [{"question": "What is 2 plus 2?", "reward_model": {"ground_truth": "4"}}]
    eval_file = write_jsonl(tmp_path / "held_out.jsonl", eval_rows)
    cfg = files_data(
        train=str(tmp_path / "train.parquet"),
        eval=str(eval_file),
        problem_field="question",
        answer_field="reward_model.ground_truth",
        max_train=12,
    )
    data = build_datasets(cfg, char_tokenizer())
    assert list(data["train"]["problem"]) == [r["problem"] for r in ROWS[:12]]
    assert list(data["train"]["answer"]) == [str(r["answer"]) for r in ROWS[:12]]
    assert data["eval"].to_list() == [
        {"prompt": data["eval"][0]["prompt"], "problem": "What is 2 plus 2?", "answer": "4"}
    ]


def test_a_shipped_benchmark_keeps_its_own_fields(tmp_path: Path) -> None:
    if not (BENCHMARK_ROOT / "math500").is_dir():
        pytest.skip(f"shared benchmarks absent: {BENCHMARK_ROOT} not found")
    train_file = write_jsonl(tmp_path / "train.jsonl", [{"q": r["problem"], "a": r["answer"]} for r in ROWS])
    cfg = files_data(
        train=str(train_file), eval="math500", problem_field="q", answer_field="a", max_eval=7,
        benchmark_root=str(BENCHMARK_ROOT),
    )  # fmt: skip
    data = build_datasets(cfg, char_tokenizer())
    math500 = load_benchmark("math500", char_tokenizer(), root=BENCHMARK_ROOT)
    assert len(data["train"]) == 20 and data["eval"].to_list() == math500.select(range(7)).to_list()


def test_prompts_are_the_papers_in_the_chat_template(train_file: Path, chat_tokenizer) -> None:
    chat = build_datasets(files_data(train=str(train_file), eval=2), chat_tokenizer)["train"][0]
    assert chat["prompt"] == f"<|user|>{chat['problem']} {INSTRUCTION}\n<|assistant|>"
    cfg = files_data(train=str(train_file), eval=2, prompt_format="plain")
    plain = build_datasets(cfg, chat_tokenizer)["train"][0]
    assert plain["prompt"] == f"Question: {plain['problem']} {INSTRUCTION}\nAnswer:"
    custom = files_data(
        train=str(train_file), eval=2, user_template="Solve: {problem}", system_prompt="Be brief."
    )
    row = build_datasets(custom, chat_tokenizer)["train"][0]
    assert row["prompt"] == f"<|system|>Be brief.\n<|user|>Solve: {row['problem']}\n<|assistant|>"
    with pytest.raises(ValueError, match="no chat_template"):
        build_datasets(files_data(train=str(train_file), eval=2, prompt_format="chat"), char_tokenizer())


def test_held_out_problems_seen_in_training_are_reported(tmp_path: Path, train_file: Path, caplog) -> None:
    eval_file = write_jsonl(
        tmp_path / "eval.jsonl", [ROWS[0], {"problem": "What is 99 times 3?", "answer": 297}]
    )
    with caplog.at_level(logging.WARNING, logger="laser.data.sources"):
        build_datasets(files_data(train=str(train_file), eval=str(eval_file)), char_tokenizer())
    assert "1 of 2 held-out problems also appear in the training file" in caplog.text


def test_the_arithmetic_source_and_its_cache_key_are_unchanged() -> None:
    cfg = config_block("data")
    built = build_datasets(cfg, char_tokenizer())
    expected = arithmetic_dataset(**asdict(cfg.task))
    assert built["train"].to_dict() == expected["train"].to_dict()
    # warmed-up base policies stay cached: the key is the task block from before `choices` existed
    before = {
        "num_operands": 3,
        "max_operand": 40,
        "ops": "+-",
        "train_size": 20000,
        "eval_size": 1024,
        "seed": 0,
    }
    assert dataset_key(cfg) == before
    listed = config_block("data", task={"choices": 4})
    assert dataset_key(listed) == before | {"choices": 4}


# -- validation ---------------------------------------------------------------------------------


def math_overrides(train_path: str | Path, *extra: str) -> list[str]:
    return [
        "data=math",
        f"data.files.train={train_path}",
        "reward=math_verify",
        "model.base_sft.steps=0",
        *extra,
    ]


@pytest.fixture
def math500_stand_in(tmp_path: Path, monkeypatch) -> Path:
    """A one-problem math500 file as the default held-out set, so validation does not need the
    shared benchmarks."""
    root = tmp_path / "benchmarks"
    (root / "math500").mkdir(parents=True)
    (root / "math500" / "test.jsonl").write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n")
    monkeypatch.setenv("LASER_BENCHMARK_ROOT", str(root))
    return root


def test_the_math_preset_validates(tmp_path: Path, train_file: Path, math500_stand_in: Path) -> None:
    run = validate(compose_train(tmp_path, math_overrides(train_file), debug=None))
    files = run.data.files
    assert run.data.source == "files" and files.eval == "math500" and files.prompt_format == "auto"
    assert files.user_template == "{problem} " + INSTRUCTION


def _bad_cases(tmp: Path) -> list[tuple[list[str], type, str]]:
    (tmp / "folder").mkdir()
    (tmp / "rows.csv").write_text("problem,answer\n1+1,2\n")
    train = tmp / "train.jsonl"
    (tmp / "empty.jsonl").write_text("\n")
    pq.write_table(pa.table({"problem": pa.array([], pa.string()), "answer": pa.array([], pa.string())}),
                   tmp / "empty.parquet")  # fmt: skip
    return [
        (math_overrides(tmp / "empty.jsonl"), ValueError, r"data\.files\.train=.*empty\.jsonl' is empty"),
        (math_overrides(tmp / "empty.parquet"), ValueError, r"data\.files\.train=.*empty\.parquet' is empty"),
        (
            math_overrides(train, f"data.files.eval={tmp}/empty.jsonl"),
            ValueError,
            r"data\.files\.eval=.* is empty",
        ),
        (math_overrides(tmp / "missing.jsonl"), FileNotFoundError, r"data\.files\.train=.*does not exist"),
        (math_overrides(tmp / "folder"), ValueError, r"data\.files\.train=.* is a folder"),
        (math_overrides(tmp / "rows.csv"), ValueError, r"data\.files\.train=.*unsupported extension '\.csv'"),
        (
            math_overrides(train, "data.files.problem_field=question"),
            ValueError,
            r"data\.files\.problem_field='question': .* \(fields: problem, answer\)",
        ),
        (math_overrides(train, "data.files.answer_field=solution"), ValueError, r"data\.files\.answer_field"),
        (math_overrides(train, "data.files.eval=gsm8k"), ValueError, r"data\.files\.eval='gsm8k' is neither"),
        (math_overrides(train, "data.files.eval=1.5"), ValueError, r"data\.files\.eval=1\.5"),
        (math_overrides(train, "data.files.eval=0"), ValueError, r"data\.files\.eval=0"),
        (math_overrides(train, f"data.files.eval={tmp}/no.jsonl"), FileNotFoundError, r"data\.files\.eval="),
        (
            math_overrides(train, f"data.files.benchmark_root={tmp}"),
            FileNotFoundError,
            r"data\.files\.eval='math500': .* not found; set data\.files\.benchmark_root",
        ),
        (math_overrides(train, "data.files.prompt_format=html"), ValueError, r"data\.files\.prompt_format"),
        (math_overrides(train, "data.files.user_template=Solve"), ValueError, r"data\.files\.user_template"),
        (math_overrides(train, "reward=arithmetic"), ValueError, r"reward\.kind=.* use reward=math_verify"),
        (math_overrides(train, "model.base_sft.steps=10"), ValueError, r"model\.base_sft\.steps=10"),
        (
            ["data=math", "reward=math_verify", "model.base_sft.steps=0"],
            ValueError,
            r"data\.files\.train=None",
        ),
    ]


def test_bad_files_and_fields_fail_at_validation_naming_the_key(
    tmp_path: Path, train_file: Path, math500_stand_in: Path
) -> None:
    for overrides, error, message in _bad_cases(tmp_path):
        with pytest.raises(error, match=message):
            validate(compose_train(tmp_path, overrides, debug=None))


def test_a_bad_field_fails_before_anything_is_built(tmp_path: Path, train_file: Path) -> None:
    cfg = compose_train(tmp_path, math_overrides(train_file, "data.files.answer_field=final"), debug=None)
    with pytest.raises(ValueError, match=r"data\.files\.answer_field='final'"):
        train(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_a_null_answer_in_a_later_row_fails_at_loading(tmp_path: Path) -> None:
    # the cheap check reads the first row only; loading checks every row and names the option
    rows = [{"problem": "1+1", "answer": "2"}, {"problem": "2+2", "answer": None}]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(ValueError, match="row 1 has no answer"):
        build_datasets(files_data(train=str(path), eval=1), char_tokenizer())


def test_an_empty_file_fails_at_loading_naming_it(tmp_path: Path) -> None:
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    (tmp_path / "none.json").write_text("[]")
    for name in ("blank.jsonl", "none.json"):
        with pytest.raises(ValueError, match=f"data file .*{name} (is empty|holds no rows)"):
            load_benchmark(tmp_path / name, char_tokenizer())

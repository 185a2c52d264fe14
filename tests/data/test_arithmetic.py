"""Tests for laser.data.arithmetic: the arithmetic task's problems, solutions, splits and choices."""

import pytest

from laser.data.arithmetic import arithmetic_dataset, make_problem
from laser.rewards.verifier import extract_answer


def test_make_problem_hand_computed():
    p = make_problem([12, 7, 30], ["+", "-"])
    assert p.prompt == "12+7-30="
    assert p.solution == "12+7=19, 19-30=-11 #### -11"
    assert p.answer == "-11"


def test_make_problem_multiplication_folds_left_to_right():
    # (2 + 3) * 4 = 20, not 2 + 3 * 4 = 14: the solution folds left to right
    p = make_problem([2, 3, 4], ["+", "*"])
    assert p.prompt == "2+3*4="
    assert p.solution == "2+3=5, 5*4=20 #### 20"
    assert p.answer == "20"


def test_make_problem_rejects_unknown_operator_and_length_mismatch():
    with pytest.raises(ValueError, match="unsupported operator"):
        make_problem([1, 2], ["/"])
    with pytest.raises(ValueError):
        make_problem([1, 2, 3], ["+"])


def test_dataset_is_deterministic_per_seed():
    a = arithmetic_dataset(train_size=40, eval_size=10, seed=3)
    b = arithmetic_dataset(train_size=40, eval_size=10, seed=3)
    c = arithmetic_dataset(train_size=40, eval_size=10, seed=4)
    assert a["train"].to_dict() == b["train"].to_dict()
    assert a["eval"].to_dict() == b["eval"].to_dict()
    assert a["train"]["prompt"] != c["train"]["prompt"]
    assert a["eval"]["prompt"] != c["eval"]["prompt"]


def test_dataset_sizes_columns_and_disjoint_splits():
    ds = arithmetic_dataset(train_size=60, eval_size=20, num_operands=2, max_operand=9, seed=0)
    assert set(ds) == {"train", "eval"}
    assert ds["train"].num_rows == 60 and ds["eval"].num_rows == 20
    assert ds["train"].column_names == ["prompt", "solution", "answer"]
    train, held_out = set(ds["train"]["prompt"]), set(ds["eval"]["prompt"])
    assert len(train) == 60 and len(held_out) == 20  # distinct within a split
    assert train.isdisjoint(held_out)


@pytest.mark.parametrize("ops", ["+-", "+-*"])
def test_every_solution_agrees_with_answer_and_expression(ops):
    ds = arithmetic_dataset(train_size=50, eval_size=10, num_operands=3, max_operand=12, ops=ops, seed=1)
    for split in ("train", "eval"):
        for row in ds[split]:
            prompt, solution, answer = row["prompt"], row["solution"], row["answer"]
            assert prompt.endswith("=")
            assert extract_answer(solution) == answer
            # left-to-right folding: bracket the expression so that eval() also folds left to right
            expr = prompt[:-1]
            operands = [int(x) for x in expr.replace("+", " ").replace("-", " ").replace("*", " ").split()]
            signs = [ch for ch in expr if ch in "+-*"]
            folded = str(operands[0])
            for op, x in zip(signs, operands[1:], strict=True):
                folded = f"({folded}){op}{x}"
            assert eval(folded) == int(answer)
            if "*" not in expr:  # no precedence issue: the plain expression evaluates the same
                assert eval(expr) == int(answer)
            assert all(1 <= x <= 12 for x in operands)


def test_multiplication_is_drawn_when_allowed():
    ds = arithmetic_dataset(train_size=30, eval_size=5, ops="*", seed=0)
    assert all("*" in p and "+" not in p and "-" not in p for p in ds["train"]["prompt"])
    row = ds["train"][0]
    a, b, c = (int(x) for x in row["prompt"][:-1].split("*"))
    assert int(row["answer"]) == a * b * c


def test_exactly_the_whole_problem_space_can_be_drawn_but_not_more():
    # 2 operands in [1, 3] with one op '+': 3 * 3 = 9 distinct prompts
    ds = arithmetic_dataset(train_size=5, eval_size=4, num_operands=2, max_operand=3, ops="+")
    prompts = set(ds["train"]["prompt"]) | set(ds["eval"]["prompt"])
    assert prompts == {f"{a}+{b}=" for a in range(1, 4) for b in range(1, 4)}
    with pytest.raises(ValueError, match="train_size"):
        arithmetic_dataset(train_size=6, eval_size=4, num_operands=2, max_operand=3, ops="+")


def test_choices_list_the_answer_among_distinct_distractors_in_range():
    data = arithmetic_dataset(train_size=300, eval_size=50, choices=4)
    for row in data["train"].to_list() + data["eval"].to_list():
        listed, expr = row["prompt"].split(":")
        options = [int(x) for x in listed.split(";")]
        assert len(set(options)) == 4 and int(row["answer"]) in options
        assert all(-79 <= x <= 120 for x in options)  # 3 operands in 1..40 with + and -
        assert row["solution"] == make_problem_from(expr).solution


def make_problem_from(expr: str):
    import re

    operands = [int(x) for x in re.findall(r"\d+", expr)]
    return make_problem(operands, re.findall(r"[+\-*]", expr))


def test_choices_keep_the_splits_disjoint_and_off_is_the_plain_task():
    with_list = arithmetic_dataset(train_size=400, eval_size=100, choices=3)
    exprs = {split: {p.split(":")[1] for p in with_list[split]["prompt"]} for split in ("train", "eval")}
    assert not exprs["train"] & exprs["eval"] and len(exprs["train"]) == 400
    plain = arithmetic_dataset(train_size=400, eval_size=100, choices=0)
    assert ":" not in "".join(plain["train"]["prompt"])
    assert plain["train"]["prompt"] == arithmetic_dataset(train_size=400, eval_size=100)["train"]["prompt"]


def test_choices_beyond_the_answer_range_are_rejected():
    with pytest.raises(ValueError, match=r"data\.task\.choices=9"):
        arithmetic_dataset(train_size=1, eval_size=1, num_operands=2, max_operand=2, ops="+", choices=9)

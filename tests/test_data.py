"""Tests for the arithmetic task, prompt collation, the char tokenizer and model-source checks."""

import pytest
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from laser.data.arithmetic import arithmetic_dataset, make_problem
from laser.data.collate import PromptCollator, pad_batch
from laser.data.datamodule import EpochOrder
from laser.models.char_tokenizer import build_char_tokenizer, reserved_token
from laser.models.loading import check_model_source, load_tokenizer
from laser.rewards.verifier import extract_answer

from helpers import char_tokenizer

# ---------------------------------------------------------------- arithmetic task


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


# ---------------------------------------------------------------- collation


def test_pad_batch_left_and_right():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, left=True)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=9, left=False)
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == torch.long and mask.dtype == torch.long


def test_prompt_collator_left_pads_and_prepends_bos():
    tok = char_tokenizer()
    batch = PromptCollator(tok)([{"prompt": "1+2=", "answer": 3}, {"prompt": "10+2=", "answer": "12"}])
    bos, pad = tok.bos_token_id, tok.pad_token_id
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    assert batch.prompt_ids.tolist() == [[pad, bos, *enc("1+2=")], [bos, *enc("10+2=")]]
    assert batch.prompt_mask.tolist() == [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    assert batch.prompts == ["1+2=", "10+2="]
    assert batch.answers == ["3", "12"]  # references become strings
    assert len(batch) == 2


def test_prompt_collator_without_bos():
    tok = char_tokenizer()
    enc = tok.encode("7=", add_special_tokens=False)
    batch = PromptCollator(tok, add_bos=False)([{"prompt": "7=", "answer": "7"}])
    assert batch.prompt_ids.tolist() == [enc]

    no_bos = build_char_tokenizer()
    no_bos.bos_token = None
    assert no_bos.bos_token_id is None
    batch = PromptCollator(no_bos)([{"prompt": "7=", "answer": "7"}])
    assert batch.prompt_ids.tolist() == [enc]


# ---------------------------------------------------------------- char tokenizer


def test_char_tokenizer_round_trips_task_text():
    tok = char_tokenizer()
    text = "12+7=19, 19-30=-11 #### -11\n(3*4)/2: ok?"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one id per character
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    # distinct characters get distinct ids
    assert len(set(ids)) == len(set(text))


def test_char_tokenizer_special_and_reserved_tokens_are_single_ids():
    tok = char_tokenizer()
    ids = {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}
    assert len(ids) == 4 and None not in ids
    reserved = [tok.encode(reserved_token(i), add_special_tokens=False) for i in range(8)]
    assert all(len(r) == 1 for r in reserved)
    assert len({r[0] for r in reserved} | ids) == 12
    # a reserved token inside text stays one token; the characters around it are separate
    ids = tok.encode("ab" + reserved_token(3) + "c", add_special_tokens=False)
    assert ids == [*tok.encode("ab", add_special_tokens=False), reserved[3][0], tok.encode("c")[0]]
    assert tok.encode("é", add_special_tokens=False) == [tok.unk_token_id]


def test_char_tokenizer_save_and_reload_keeps_ids(tmp_path):
    tok = char_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<bos>12+7=19 #### 19<eos>" + reserved_token(0)
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert len(loaded) == len(tok)
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(loaded, attr) == getattr(tok, attr)
    assert loaded.decode(tok.encode("3*4=12", add_special_tokens=False)) == "3*4=12"


# ---------------------------------------------------------------- model sources


@pytest.mark.parametrize("path", ["/nonexistent/x", "./nope", "~/surely/not/here/x"])
def test_check_model_source_rejects_missing_local_paths(path):
    with pytest.raises(FileNotFoundError, match=r"model\.name_or_path"):
        check_model_source(path)


def test_check_model_source_accepts_hub_ids_and_existing_folders(tmp_path):
    check_model_source("org/name")
    check_model_source("gpt2")
    check_model_source(str(tmp_path))  # exists: passes


def test_load_tokenizer_none_is_the_char_tokenizer():
    tok = load_tokenizer(None)
    ref = char_tokenizer()
    assert tok.get_vocab() == ref.get_vocab()
    assert tok.encode("1+2=3", add_special_tokens=False) == ref.encode("1+2=3", add_special_tokens=False)
    assert tok.eos_token_id == ref.eos_token_id


def test_load_tokenizer_from_a_folder_falls_back_to_eos_for_padding(tmp_path):
    with_pad = build_char_tokenizer()
    with_pad.save_pretrained(tmp_path / "with_pad")
    assert load_tokenizer(str(tmp_path / "with_pad")).pad_token_id == with_pad.pad_token_id == 0
    no_pad = build_char_tokenizer()
    no_pad.pad_token = None
    no_pad.save_pretrained(tmp_path / "no_pad")
    loaded = load_tokenizer(str(tmp_path / "no_pad"))
    assert loaded.pad_token_id == loaded.eos_token_id == no_pad.eos_token_id


def test_load_tokenizer_checks_the_source_first():
    with pytest.raises(FileNotFoundError, match=r"model\.name_or_path"):
        load_tokenizer("/nonexistent/tokenizer")


@pytest.mark.parametrize(("rows", "batch_size", "seed"), [(64, 2, 0), (10, 3, 5), (7, 7, 1)])
def test_epoch_order_is_the_shuffling_loaders_order_epoch_after_epoch(rows, batch_size, seed):
    data = list(range(rows))
    generator = torch.Generator().manual_seed(seed)
    shuffled = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
    ordered = DataLoader(data, batch_size=batch_size, drop_last=True, sampler=EpochOrder(rows, seed))
    expected = [[b.tolist() for b in shuffled] for _ in range(3)]
    assert [[b.tolist() for b in ordered] for _ in range(3)] == expected
    # resumed within epoch 1 after 1 batch: the rest of that epoch, then epoch 2 as before
    order = EpochOrder(rows, seed)
    order.set_epoch(1)
    order.resume_at(1, batch_size)
    resumed = DataLoader(data, batch_size=batch_size, drop_last=True, sampler=order)
    assert [[b.tolist() for b in resumed] for _ in range(2)] == [expected[1][1:], expected[2]]


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

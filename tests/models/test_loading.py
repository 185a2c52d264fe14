"""Tests for laser.models.loading: model-source checks and tokenizer loading."""

import pytest

from laser.models.char_tokenizer import build_char_tokenizer
from laser.models.loading import check_model_source, load_tokenizer

from helpers import char_tokenizer


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

"""Tests for laser.data.collate: padding and prompt collation."""

import torch

from laser.data.collate import PromptCollator, pad_batch
from laser.models.char_tokenizer import build_char_tokenizer

from helpers import char_tokenizer


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

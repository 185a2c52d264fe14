"""Tests for laser.rollout.tokens: the self-reward and second verdict tokens each resolve to one token."""

import pytest

from laser.rollout.tokens import resolve_incorrect_token, resolve_single_token

from helpers import char_tokenizer, self_reward_id


def test_resolve_single_token():
    tok = char_tokenizer()
    assert resolve_single_token(tok, "<reserved_0>", "algo.self_reward.token") == 4
    assert resolve_single_token(tok, "#", "k") == tok.encode("#", add_special_tokens=False)[0]
    for bad in ("ab", tok.eos_token, tok.pad_token, "é", ""):
        with pytest.raises(ValueError, match=r"algo\.self_reward\.token"):
            resolve_single_token(tok, bad, "algo.self_reward.token")


def test_resolve_incorrect_token_rejects_z_and_stop_tokens():
    tok = char_tokenizer()
    z = self_reward_id(tok)
    z_i = resolve_incorrect_token(tok, "<reserved_1>", z, [tok.eos_token_id])
    assert z_i == tok.convert_tokens_to_ids("<reserved_1>")
    with pytest.raises(ValueError, match=r"same token as algo\.self_reward\.token"):
        resolve_incorrect_token(tok, "<reserved_0>", z, [tok.eos_token_id])
    with pytest.raises(ValueError, match="stop token"):
        resolve_incorrect_token(tok, "x", z, [tok.convert_tokens_to_ids("x")])
    with pytest.raises(ValueError, match=r"incorrect_token='ab' encodes to 2 tokens"):
        resolve_incorrect_token(tok, "ab", z, [tok.eos_token_id])

"""Tests for laser.rollout.sampler: banned tokens, the greedy copy and the saved RNG state."""

import pytest
import torch

from laser.data.collate import PromptBatch, PromptCollator
from laser.rollout.sampler import Sampler

from helpers import PROMPTS, add_logit_bias, char_tokenizer, encode_prompts, gen, self_reward_id, tiny_model


def test_sampler_never_draws_a_banned_verdict_token():
    tok = char_tokenizer()
    z_i = tok.convert_tokens_to_ids("<reserved_1>")
    model = add_logit_bias(tiny_model(tok), {z_i: 50.0})  # z_i would be drawn at every step
    sampler = Sampler(tok, max_new_tokens=6, self_reward_id=self_reward_id(tok), seed=0)
    batch = PromptCollator(tok)([{"prompt": p, "answer": "0"} for p in PROMPTS[:2]])
    assert (sampler.sample(model, batch, group_size=2).response_ids == z_i).all()
    sampler.ban(z_i)
    sampler.ban(z_i)  # once is enough
    assert sampler.banned_ids == [z_i]
    assert not (sampler.sample(model, batch, group_size=2).response_ids == z_i).any()


def test_greedy_sampler_decodes_the_argmax_and_keeps_the_samplers_bans():
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = add_logit_bias(tiny_model(tok), {z: 30.0})
    sampler = Sampler(tok, max_new_tokens=6, temperature=1.0, self_reward_id=z, seed=3)
    greedy = sampler.greedy()
    banned = tok.convert_tokens_to_ids("7")
    sampler.ban(banned)  # banned after the copy was made: still banned in it
    batch = PromptCollator(tok)([{"prompt": p, "answer": "0"} for p in PROMPTS[:4]])
    first, second = (greedy.sample(model, batch, score=False) for _ in range(2))
    torch.testing.assert_close(first.response_ids, second.response_ids)  # no sampling noise
    ids, mask = encode_prompts(tok, PROMPTS[:4])
    argmax = gen(model, tok, ids, mask, temperature=0.0, self_reward_id=z, max_new_tokens=6,
                 banned_ids=[banned])  # fmt: skip
    torch.testing.assert_close(first.response_ids, argmax.response_ids)
    assert greedy.temperature == 0.0 and sampler.temperature == 1.0


def test_a_sampler_continues_from_a_saved_rng_state():
    tok = char_tokenizer()
    model = tiny_model(tok)
    ids, mask = encode_prompts(tok, ["1+2=", "30-4="])
    batch = PromptBatch(prompt_ids=ids, prompt_mask=mask, prompts=["1+2=", "30-4="], answers=["3", "26"])
    sampler = Sampler(tok, max_new_tokens=6, seed=3)
    sampler.sample(model, batch, group_size=2)
    state = sampler.rng_state()
    expected = sampler.sample(model, batch, group_size=2).response_ids
    fresh = Sampler(tok, max_new_tokens=6, seed=3)
    fresh.load_rng_state(state)
    torch.testing.assert_close(fresh.sample(model, batch, group_size=2).response_ids, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_sampler_on_cuda_continues_from_a_saved_rng_state():
    tok = char_tokenizer()
    model = tiny_model(tok).cuda()
    ids, mask = encode_prompts(tok, ["1+2=", "30-4="])
    batch = PromptBatch(prompt_ids=ids, prompt_mask=mask, prompts=["1+2=", "30-4="], answers=["3", "26"])
    sampler = Sampler(tok, max_new_tokens=6, seed=3)
    sampler.sample(model, batch, group_size=2)
    state = sampler.rng_state()
    assert state["device"] is not None  # the accelerator generator's state is saved too
    expected = sampler.sample(model, batch, group_size=2).response_ids
    fresh = Sampler(tok, max_new_tokens=6, seed=3)
    fresh.load_rng_state(state)
    torch.testing.assert_close(fresh.sample(model, batch, group_size=2).response_ids, expected)

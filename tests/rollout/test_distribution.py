"""The sampled policy is the trained policy: one distribution for the sampler and every log-prob pass."""

from __future__ import annotations

import math

import pytest
import torch

from laser.data.collate import PromptCollator
from laser.rollout.distribution import SamplingDistribution, token_entropy
from laser.rollout.generate import sample_next
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.sampler import Sampler
from laser.rollout.types import Rollout

from helpers import add_logit_bias, char_tokenizer, encode_prompts, tiny_model

PROMPTS = ["1+2=", "12+30-4=", "7=", "40-39+1="]


def prompt_batch(tok):
    return PromptCollator(tok)([{"prompt": p, "answer": "0"} for p in PROMPTS])


def test_log_probs_remove_banned_ids_and_temper_the_rest() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    out = SamplingDistribution(temperature=0.5, banned_ids=(0,)).log_probs(logits)
    allowed = torch.tensor([0.0, 1.0, -1.0]) / 0.5
    expected = allowed - allowed.logsumexp(-1)  # by hand: softmax over ids 1..3 at T = 0.5
    assert out[0, 0] == -math.inf
    torch.testing.assert_close(out[0, 1:], expected)
    # a banned id adds nothing to the entropy (no NaN from 0 * -inf)
    assert token_entropy(out).item() == pytest.approx(-(expected.exp() * expected).sum().item())


def test_greedy_distribution_is_scored_at_temperature_one_and_records_zero() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    dist = SamplingDistribution(temperature=0.0)
    torch.testing.assert_close(dist.log_probs(logits), torch.log_softmax(logits, -1))
    tok, logp = sample_next(logits, dist, None)
    assert tok.tolist() == [1] and logp.tolist() == [0.0]  # a point mass


def test_sample_next_records_the_log_prob_of_the_nucleus_it_drew_from() -> None:
    # p = (0.5, 0.3, 0.2), top-p 0.6 keeps {0, 1}: the draws' probabilities are 0.5/0.8 and 0.3/0.8
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(200, 3)
    tok, logp = sample_next(logits, SamplingDistribution(top_p=0.6), torch.Generator().manual_seed(0))
    expected = torch.tensor([math.log(0.5 / 0.8), math.log(0.3 / 0.8), math.nan])[tok]
    torch.testing.assert_close(logp, expected)
    assert set(tok.tolist()) == {0, 1}


def test_training_log_probs_sum_to_one_over_the_allowed_tokens() -> None:
    """Every one-token response to a prompt, scored by the training pass: their probabilities add up
    to 1 over the tokens the sampler may draw, and the banned ids (z, a verdict token) get none."""
    tok = char_tokenizer()
    model = tiny_model(tok)
    z = tok.convert_tokens_to_ids("<reserved_0>")
    sampler = Sampler(tok, max_new_tokens=4, temperature=0.7, self_reward_id=z)
    sampler.ban(tok.convert_tokens_to_ids("<reserved_1>"))
    add_logit_bias(model, {z: 6.0})  # z would otherwise take most of the mass
    ids, mask = encode_prompts(tok, ["12+30-4="])
    vocab = model.config.vocab_size
    allowed = [v for v in range(vocab) if v not in sampler.distribution.banned_ids]
    n = len(allowed)
    rollout = Rollout(
        prompt_ids=ids.expand(n, -1), prompt_mask=mask.expand(n, -1),
        response_ids=torch.tensor(allowed)[:, None], response_mask=torch.ones(n, 1, dtype=torch.long),
        finished=torch.zeros(n, dtype=torch.bool),
    )  # fmt: skip
    logp = sequence_logprobs(model, rollout, z, sampler.distribution).logp[:, 0]
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_log_probs_equal_the_old_policy_pass(temperature: float) -> None:
    tok = char_tokenizer()
    model = add_logit_bias(tiny_model(tok), {tok.eos_token_id: 2.0})
    z = tok.convert_tokens_to_ids("<reserved_0>")
    add_logit_bias(model, {z: 4.0})  # a banned token with real mass: the full-vocabulary pass differs
    sampler = Sampler(tok, max_new_tokens=10, temperature=temperature, self_reward_id=z, seed=1)
    rollout = sampler.sample(model, prompt_batch(tok), group_size=4)
    assert rollout.finished.any() and rollout.response_mask.sum() > len(rollout)
    old = sequence_logprobs(model, rollout, z, sampler.distribution).logp
    torch.testing.assert_close(rollout.logp, old, atol=1e-5, rtol=0)
    assert (rollout.logp[rollout.response_mask == 0] == 0).all()


def test_top_p_makes_the_rollout_log_probs_higher_than_the_training_pass() -> None:
    tok = char_tokenizer()
    model = tiny_model(tok)
    sampler = Sampler(tok, max_new_tokens=6, top_p=0.5, seed=0)
    rollout = sampler.sample(model, prompt_batch(tok), group_size=2)
    train = sequence_logprobs(model, rollout, None, sampler.distribution).logp
    gap = (rollout.logp - train)[rollout.response_mask.bool()]
    assert (gap >= -1e-6).all() and gap.max() > 0.1  # the nucleus renormalises upwards, by design

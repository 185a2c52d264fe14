"""Tests for laser.rollout.generate: sampling, the in-rollout self-reward score and what it costs,
`sample_next`, and the per-token confidence statistics."""

import math

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from laser.rollout.distribution import SamplingDistribution
from laser.rollout.generate import generate, position_ids_from_mask, sample_next
from laser.rollout.logprobs import sequence_logprobs

from helpers import (
    BOS,
    EOS,
    PAD,
    PROMPTS,
    Z_AFTER_EOS,
    Z,
    add_logit_bias,
    bigram,
    char_tokenizer,
    count_forwards,
    encode_prompts,
    gen,
    peaked_model,
    self_reward_id,
    tiny_model,
)

# ---------------------------------------------------------------- scripted model


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3]]


def test_masks_finished_and_nan_score_for_truncated_rows():
    ids = torch.tensor([[PAD, BOS, 4], [BOS, 7, 6]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    r = generate(
        bigram(),
        ids,
        mask,
        eos_id=EOS,
        pad_id=PAD,
        max_new_tokens=3,
        temperature=0.0,
        self_reward_id=Z,
    )
    assert r.response_ids.tolist() == [[5, EOS, PAD], [7, 6, 7]]
    assert r.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert r.finished.tolist() == [True, False]
    assert r.lengths.tolist() == [2, 3]
    assert r.z_logp[0].item() == pytest.approx(Z_AFTER_EOS, abs=1e-6)
    assert math.isnan(r.z_logp[1].item())
    assert torch.equal(r.prompt_ids, ids) and torch.equal(r.prompt_mask, mask)


def test_score_false_or_no_self_reward_token_gives_no_z_logp():
    ids, mask = torch.tensor([[BOS, 4]]), torch.tensor([[1, 1]])
    kw = {"eos_id": EOS, "pad_id": PAD, "max_new_tokens": 4, "temperature": 0.0}
    assert generate(bigram(), ids, mask, self_reward_id=Z, score=False, **kw).z_logp is None
    assert generate(bigram(), ids, mask, self_reward_id=None, score=True, **kw).z_logp is None


def test_response_mask_stops_at_first_eos_when_pad_is_eos():
    ids, mask = torch.tensor([[BOS, 4], [BOS, 5]]), torch.tensor([[1, 1], [1, 1]])
    r = generate(
        bigram(),
        ids,
        mask,
        eos_id=EOS,
        pad_id=EOS,
        max_new_tokens=5,
        temperature=0.0,
        self_reward_id=Z,
    )
    # row 1 ends at once; the batch stops when all rows are done
    assert r.response_ids.tolist() == [[5, EOS], [EOS, EOS]]
    assert r.response_mask.tolist() == [[1, 1], [1, 0]]
    assert r.finished.tolist() == [True, True]
    assert r.z_logp.tolist() == pytest.approx([Z_AFTER_EOS, Z_AFTER_EOS], abs=1e-6)


@pytest.mark.parametrize(
    ("last_tokens", "max_new_tokens", "plain", "scored"),
    [
        # rows end at different steps, the last EOS at step 1: 2 forwards, +1 to read its score
        ([5, 4], 10, 2, 3),
        # the EOS comes at the final allowed step: +1 forward to score it
        ([4, 4], 2, 2, 3),
        # nothing finishes: nothing to score, no extra forward
        ([6, 7], 3, 3, 3),
    ],
)
def test_scoring_costs_at_most_one_extra_forward_scripted(last_tokens, max_new_tokens, plain, scored):
    ids = torch.tensor([[BOS, t] for t in last_tokens])
    mask = torch.ones_like(ids)
    calls = {}
    for score in (False, True):
        model = bigram()
        counter = count_forwards(model)
        r = generate(
            model,
            ids,
            mask,
            eos_id=EOS,
            pad_id=PAD,
            max_new_tokens=max_new_tokens,
            temperature=0.0,
            self_reward_id=Z,
            score=score,
        )
        calls[score] = counter[0]
    assert calls == {False: plain, True: scored}
    finished = r.finished
    assert torch.isnan(r.z_logp).eq(~finished).all()
    assert r.z_logp[finished].tolist() == pytest.approx([Z_AFTER_EOS] * int(finished.sum()))


# ---------------------------------------------------------------- tiny transformer


@pytest.mark.parametrize(("arch", "eos_bias"), [("llama", 4.0), ("gpt2", 3.0)])
def test_in_rollout_score_matches_full_forward(arch, eos_bias):
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = peaked_model(tok, eos_bias=eos_bias, arch=arch)
    ids, mask = encode_prompts(tok, PROMPTS)
    assert len(set(mask.sum(-1).tolist())) > 3  # left padding of several widths
    r = gen(
        model,
        tok,
        ids,
        mask,
        temperature=0.7,
        self_reward_id=z,
        generator=torch.Generator().manual_seed(0),
    )
    fin = r.finished
    assert fin.sum() >= 3 and not fin.all()  # some finished rows, and a truncated one
    assert len(set(r.lengths[fin].tolist())) >= 2  # rows finish at different steps
    full = sequence_logprobs(model, r, z, SamplingDistribution(0.7))
    assert torch.allclose(r.z_logp[fin], full.z_logp[fin], atol=1e-4, rtol=0)
    assert torch.isnan(r.z_logp[~fin]).all()
    assert (full.z_logp[~fin] == 0).all()
    # the scores differ between rows by far more than the tolerance, so a misplaced read would show
    assert r.z_logp[fin].max() - r.z_logp[fin].min() > 0.1


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_greedy_matches_one_prompt_at_a_time(arch):
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = peaked_model(tok, eos_bias=0.0, arch=arch)
    prompts = PROMPTS[:5]
    ids, mask = encode_prompts(tok, prompts)
    batched = gen(model, tok, ids, mask, temperature=0.0, self_reward_id=z, max_new_tokens=6)
    full_batched = sequence_logprobs(model, batched, z)
    for i, prompt in enumerate(prompts):
        one_ids, one_mask = encode_prompts(tok, [prompt])
        alone = gen(model, tok, one_ids, one_mask, temperature=0.0, self_reward_id=z, max_new_tokens=6)
        n = int(alone.lengths[0])
        assert batched.response_ids[i, :n].tolist() == alone.response_ids[0, :n].tolist()
        assert int(batched.lengths[i]) == n
        full_alone = sequence_logprobs(model, alone, z)
        torch.testing.assert_close(full_batched.logp[i, :n], full_alone.logp[0, :n], atol=1e-4, rtol=0)
    if arch == "gpt2":  # absolute positions: the responses depend on the prompt (and its padding)
        assert len({tuple(row) for row in batched.response_ids.tolist()}) > 1


def test_self_reward_token_is_never_sampled():
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = add_logit_bias(tiny_model(tok), {z: 30.0})
    ids, mask = encode_prompts(tok, PROMPTS[:4])
    for temperature, top_p in ((1.0, 1.0), (0.7, 0.9), (0.0, 1.0)):
        r = gen(
            model,
            tok,
            ids,
            mask,
            temperature=temperature,
            top_p=top_p,
            self_reward_id=z,
            max_new_tokens=5,
            generator=torch.Generator().manual_seed(1),
        )
        assert not (r.response_ids == z).any()
    unbanned = gen(
        model,
        tok,
        ids,
        mask,
        temperature=1.0,
        self_reward_id=None,
        max_new_tokens=5,
        generator=torch.Generator().manual_seed(1),
    )
    assert (unbanned.response_ids == z).all()


def test_scoring_adds_at_most_one_forward_and_keeps_samples():
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    ids, mask = encode_prompts(tok, PROMPTS)
    calls, rollouts = {}, {}
    for score in (False, True):
        model = peaked_model(tok, eos_bias=4.0)
        counter = count_forwards(model)
        rollouts[score] = gen(
            model,
            tok,
            ids,
            mask,
            temperature=0.7,
            self_reward_id=z,
            score=score,
            generator=torch.Generator().manual_seed(0),
        )
        calls[score] = counter[0]
    assert torch.equal(rollouts[False].response_ids, rollouts[True].response_ids)
    width = rollouts[False].response_ids.shape[1]
    assert calls[False] == width  # one prompt forward, then one per further token
    assert calls[False] <= calls[True] <= calls[False] + 1


def test_score_step_feeds_only_the_rows_that_ended_last(monkeypatch):
    tok = char_tokenizer()
    z = self_reward_id(tok)
    ids, mask = encode_prompts(tok, PROMPTS)
    model = peaked_model(tok, eos_bias=5.0)
    fed: list[int] = []
    model.register_forward_pre_hook(lambda m, a, kw: fed.append(kw["input_ids"].shape[0]), with_kwargs=True)

    def run():
        fed.clear()
        return gen(
            model,
            tok,
            ids,
            mask,
            self_reward_id=z,
            max_new_tokens=16,
            generator=torch.Generator().manual_seed(4),
        )

    r = run()
    assert not r.z_logp.requires_grad  # generation builds no autograd graph
    last = r.lengths == r.lengths.max()
    assert r.finished.all() and 0 < last.sum() < len(PROMPTS)  # some rows end at the last step
    assert fed[:-1] == [len(PROMPTS)] * (len(fed) - 1) and fed[-1] == last.sum()
    full = sequence_logprobs(model, r, z)
    torch.testing.assert_close(r.z_logp, full.z_logp, atol=1e-4, rtol=0)
    # a cache that cannot be narrowed takes the step with every row, to the same scores
    monkeypatch.setattr(DynamicLayer, "batch_select_indices", None)
    whole = run()
    assert fed[-1] == len(PROMPTS) and torch.equal(whole.response_ids, r.response_ids)
    torch.testing.assert_close(whole.z_logp, r.z_logp, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- sample_next


def draw(logits, temperature, top_p, banned, generator):
    """The tokens `sample_next` draws, with these settings."""
    return sample_next(logits, SamplingDistribution(temperature, top_p, tuple(banned)), generator)[0]


def test_sample_next_small_top_p_is_argmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0)) * 0.3
    many = logits.repeat(100, 1)  # (400, 10): 100 draws per row
    gen_ = torch.Generator().manual_seed(0)
    draws = draw(many, 1.0, 1e-3, [], gen_)
    assert (draws == many.argmax(-1)).all()
    # sanity: without top_p the same distribution yields other tokens too
    assert (draw(many, 1.0, 1.0, [], gen_) != many.argmax(-1)).any()


def test_sample_next_top_p_keeps_the_nucleus():
    # p = (0.5, 0.3, 0.2): the smallest set with mass >= 0.6 is {0, 1}
    logits = torch.tensor([[0.5, 0.3, 0.2]]).log().expand(2000, 3)
    draws = draw(logits, 1.0, 0.6, [], torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}
    assert (draws == 0).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.05)


def test_sample_next_top_p_exact_boundary_keeps_the_smallest_set():
    # p = (0.5, 0.25, 0.25) exactly: the smallest set with mass >= 0.5 is {0} alone
    logits = torch.tensor([[0.5, 0.25, 0.25]]).log().expand(500, 3)
    draws = draw(logits, 1.0, 0.5, [], torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0}


def test_sample_next_banned_ids_never_drawn():
    logits = torch.zeros(3, 6)
    logits[:, 2] = 50.0  # banned and otherwise certain
    logits[:, 4] = 1.0
    many = logits.repeat(100, 1)
    gen_ = torch.Generator().manual_seed(0)
    for temperature, top_p in ((1.0, 1.0), (2.0, 0.5), (0.5, 1.0)):
        draws = draw(many, temperature, top_p, [2, 5], gen_)
        assert not ((draws == 2) | (draws == 5)).any()
        assert set(draws.tolist()) <= {0, 1, 3, 4}
    assert draw(logits, 0.0, 1.0, [2], None).tolist() == [4, 4, 4]
    assert draw(logits, 0.0, 1.0, [], None).tolist() == [2, 2, 2]


def test_sample_next_temperature_sharpens():
    logits = torch.tensor([[1.0, 0.0]]).expand(4000, 2)
    cold = draw(logits, 0.25, 1.0, [], torch.Generator().manual_seed(0))
    hot = draw(logits, 4.0, 1.0, [], torch.Generator().manual_seed(0))
    p_cold, p_hot = 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-0.25))
    assert (cold == 0).float().mean().item() == pytest.approx(p_cold, abs=0.03)
    assert (hot == 0).float().mean().item() == pytest.approx(p_hot, abs=0.03)


# ---------------------------------------------------------------- per-token confidence statistics


def test_token_statistics_scripted_hand_values():
    # row 0 greedily emits 5 then EOS, row 1 (7 -> 6 -> 7) never ends; every step's logits are one 5
    # and seven 0s, so with L = ln(e^5 + 7): log p = 5 - L (top) and -L (the rest), and
    # KL(U || p) = -ln 8 - (5/8 - L); the top-2 token confidence is -((5 - L) + (-L)) / 2 = L - 2.5
    ids, mask = torch.tensor([[BOS, 4], [BOS, 7]]), torch.ones(2, 2, dtype=torch.long)
    r = generate(
        bigram(), ids, mask, eos_id=EOS, pad_id=PAD, max_new_tokens=3, temperature=0.0,
        self_reward_id=Z, self_certainty=True, confidence_top_k=2,
    )  # fmt: skip
    big_l = math.log(math.exp(5) + 7)
    certainty, confidence = big_l - math.log(8) - 5 / 8, big_l - 2.5
    assert r.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    on = r.response_mask.float()
    torch.testing.assert_close(r.token_self_certainty, certainty * on)
    torch.testing.assert_close(r.token_confidence, confidence * on)
    plain = generate(bigram(), ids, mask, eos_id=EOS, pad_id=PAD, max_new_tokens=3, temperature=0.0)
    assert plain.token_self_certainty is None and plain.token_confidence is None  # not asked: not made


def test_recording_token_statistics_draws_the_same_samples():
    tok = char_tokenizer()
    z = self_reward_id(tok)
    ids, mask = encode_prompts(tok, PROMPTS)
    model = peaked_model(tok, eos_bias=3.0, scale=3.0)
    kw = {"temperature": 0.8, "self_reward_id": z, "max_new_tokens": 10}
    plain = gen(model, tok, ids, mask, generator=torch.Generator().manual_seed(0), **kw)
    stats = gen(
        model, tok, ids, mask, generator=torch.Generator().manual_seed(0), self_certainty=True,
        confidence_top_k=5, **kw,
    )  # fmt: skip
    assert torch.equal(plain.response_ids, stats.response_ids)
    assert torch.equal(plain.logp, stats.logp) and torch.allclose(plain.z_logp, stats.z_logp, equal_nan=True)
    # the recorded statistics are those of a full forward pass over prompt + response
    full_ids = torch.cat([ids, stats.response_ids], dim=1)
    full_mask = torch.cat([mask, stats.response_mask], dim=1)
    pos = position_ids_from_mask(full_mask)
    with torch.no_grad():
        logits = model(input_ids=full_ids, attention_mask=full_mask, position_ids=pos).logits
    step_logp = torch.log_softmax(logits[:, ids.shape[1] - 1 : -1].float(), -1)  # (N, R, V)
    on = stats.response_mask.bool()
    expected = -math.log(step_logp.shape[-1]) - step_logp.mean(-1)
    torch.testing.assert_close(stats.token_self_certainty[on], expected[on], atol=1e-4, rtol=1e-4)
    expected = -step_logp.topk(5, -1).values.mean(-1)
    torch.testing.assert_close(stats.token_confidence[on], expected[on], atol=1e-4, rtol=1e-4)

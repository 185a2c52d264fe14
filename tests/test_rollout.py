"""Tests for laser.rollout: sampling, the in-rollout self-reward score, log-probs and batches."""

import math

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from laser.data.collate import PromptBatch, PromptCollator
from laser.rollout.distribution import SamplingDistribution
from laser.rollout.generate import generate, position_ids_from_mask, sample_next
from laser.rollout.logprobs import sequence_logprobs
from laser.rollout.sampler import Sampler
from laser.rollout.tokens import resolve_incorrect_token, resolve_single_token
from laser.rollout.types import Rollout

from helpers import (
    BigramLM,
    add_logit_bias,
    chain_table,
    char_tokenizer,
    count_forwards,
    encode_prompts,
    tiny_model,
)

PROMPTS = ["1+2=", "12+30-4=", "7=", "40-39+1=", "3*3=", "11=", "25-5=", "9*9-1="]

# Scripted bigram vocabulary: pad 0, bos 1, eos 2, z 3, others 4..7.
# Greedy chains: 4 -> 5 -> EOS, 6 -> 7 -> 6 -> ... (never ends).
PAD, BOS, EOS, Z, V = 0, 1, 2, 3, 8


def bigram() -> BigramLM:
    table = chain_table(V, {4: 5, 5: EOS, 6: 7, 7: 6})
    table[EOS, Z] = 1.5  # the distribution after EOS: log p(z) = 1.5 - log(7 + e^1.5)
    return BigramLM(table)


Z_AFTER_EOS = 1.5 - math.log(7 + math.exp(1.5))


def self_reward_id(tok) -> int:
    return tok.convert_tokens_to_ids("<reserved_0>")


def peaked_model(tok, eos_bias: float, scale: float = 20.0, arch: str = "llama") -> torch.nn.Module:
    """A tiny model with sharpened logits (so that scores vary) and EOS made likely."""
    model = tiny_model(tok, arch=arch)
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)
    return add_logit_bias(model, {tok.eos_token_id: eos_bias})


def draw(logits, temperature, top_p, banned, generator):
    """The tokens `sample_next` draws, with these settings."""
    return sample_next(logits, SamplingDistribution(temperature, top_p, tuple(banned)), generator)[0]


def gen(model, tok, ids, mask, **kw):
    kw.setdefault("max_new_tokens", 8)
    return generate(model, ids, mask, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, **kw)


# ---------------------------------------------------------------- resolve_single_token


def test_resolve_single_token():
    tok = char_tokenizer()
    assert resolve_single_token(tok, "<reserved_0>", "algo.self_reward.token") == 4
    assert resolve_single_token(tok, "#", "k") == tok.encode("#", add_special_tokens=False)[0]
    for bad in ("ab", tok.eos_token, tok.pad_token, "é", ""):
        with pytest.raises(ValueError, match=r"algo\.self_reward\.token"):
            resolve_single_token(tok, bad, "algo.self_reward.token")


# ---------------------------------------------------------------- generate: scripted model


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


# ---------------------------------------------------------------- generate: tiny transformer


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


# ---------------------------------------------------------------- sample_next


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


# ---------------------------------------------------------------- Rollout batches


def make_rollout(n: int, p: int, r: int, start: int, z: bool = True) -> Rollout:
    ar = torch.arange(start, start + n)
    return Rollout(
        prompt_ids=ar[:, None].expand(n, p).clone() + 10,
        prompt_mask=torch.ones(n, p, dtype=torch.long),
        response_ids=ar[:, None].expand(n, r).clone() + 20,
        response_mask=torch.ones(n, r, dtype=torch.long),
        finished=ar % 2 == 0,
        z_logp=-ar.float() if z else None,
    )


def test_rollout_cat_repads_left_prompts_and_right_responses():
    a, b = make_rollout(1, 1, 3, 0), make_rollout(2, 3, 1, 1)
    c = Rollout.cat([a, b], pad_id=0)
    assert c.prompt_ids.tolist() == [[0, 0, 10], [11, 11, 11], [12, 12, 12]]
    assert c.prompt_mask.tolist() == [[0, 0, 1], [1, 1, 1], [1, 1, 1]]
    assert c.response_ids.tolist() == [[20, 20, 20], [21, 0, 0], [22, 0, 0]]
    assert c.response_mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert c.finished.tolist() == [True, False, True]
    assert c.z_logp.tolist() == [0.0, -1.0, -2.0]
    assert c.lengths.tolist() == [3, 1, 1]
    assert Rollout.cat([a, make_rollout(1, 1, 1, 5, z=False)], pad_id=0).z_logp is None


def test_rollout_rows_and_split():
    ro = make_rollout(5, 2, 3, 0)
    parts = ro.split(2)
    assert [len(p) for p in parts] == [2, 2, 1]
    assert parts[1].prompt_ids[:, 0].tolist() == [12, 13]
    assert parts[2].z_logp.tolist() == [-4.0]
    back = Rollout.cat(parts, pad_id=0)
    for name in (
        "prompt_ids",
        "prompt_mask",
        "response_ids",
        "response_mask",
        "finished",
        "z_logp",
    ):
        assert torch.equal(getattr(back, name), getattr(ro, name))
    picked = ro.rows(torch.tensor([4, 0]))
    assert picked.response_ids[:, 0].tolist() == [24, 20]
    assert picked.finished.tolist() == [True, True]
    no_z = make_rollout(3, 1, 1, 0, z=False).rows(slice(1, 3))
    assert len(no_z) == 2 and no_z.z_logp is None


# ---------------------------------------------------------------- sequence_logprobs


def test_sequence_logprobs_scripted_hand_values():
    table = bigram().table
    ro = Rollout(
        prompt_ids=torch.tensor([[PAD, BOS, 4], [BOS, 7, 6]]),
        prompt_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
        response_ids=torch.tensor([[5, EOS, PAD], [7, 6, 7]]),
        response_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]),
        finished=torch.tensor([True, False]),
    )
    for temperature in (1.0, 2.0):
        out = sequence_logprobs(bigram(), ro, Z, SamplingDistribution(temperature), with_entropy=True)
        ls = torch.log_softmax(table / temperature, -1)
        expected = [[ls[4, 5], ls[5, EOS], 0.0], [ls[6, 7], ls[7, 6], ls[6, 7]]]
        torch.testing.assert_close(out.logp, torch.tensor(expected))
        # z is read after EOS at temperature 1, and is 0 for the truncated row
        torch.testing.assert_close(out.z_logp, torch.tensor([Z_AFTER_EOS, 0.0]))
        ent = -(ls.exp() * ls).sum(-1)
        torch.testing.assert_close(out.entropy[1], ent[[6, 7, 6]])
    assert sequence_logprobs(bigram(), ro, None).z_logp.tolist() == [0.0, 0.0]
    assert sequence_logprobs(bigram(), ro, Z).entropy is None
    # the SFT loss's second verdict token, from the same distribution after EOS: logit 0 there
    both = sequence_logprobs(bigram(), ro, Z, incorrect_id=6)
    torch.testing.assert_close(both.z_logp, torch.tensor([Z_AFTER_EOS, 0.0]))
    torch.testing.assert_close(both.incorrect_logp, torch.tensor([-math.log(7 + math.exp(1.5)), 0.0]))
    assert sequence_logprobs(bigram(), ro, Z).incorrect_logp is None


def test_sequence_logprobs_matches_manual_forward_and_padding():
    torch.manual_seed(0)
    tok = char_tokenizer()
    z = self_reward_id(tok)
    model = peaked_model(tok, eos_bias=0.0, scale=5.0)
    prompt, _ = encode_prompts(tok, ["12+3="])
    response = torch.tensor([[*tok.encode("15 #", add_special_tokens=False), tok.eos_token_id]])
    p, r = prompt.shape[1], response.shape[1]
    single = Rollout(
        prompt_ids=prompt,
        prompt_mask=torch.ones_like(prompt),
        response_ids=response,
        response_mask=torch.ones_like(response),
        finished=torch.tensor([True]),
    )
    with torch.no_grad():
        logits = model(input_ids=torch.cat([prompt, response], -1)).logits[0]  # (P + R, V)
        out = sequence_logprobs(model, single, z)
        hot = sequence_logprobs(model, single, z, SamplingDistribution(2.0))
    for t in range(r):
        assert out.logp[0, t].item() == pytest.approx(
            torch.log_softmax(logits[p - 1 + t], -1)[response[0, t]].item(), abs=1e-5
        )
        assert hot.logp[0, t].item() == pytest.approx(
            torch.log_softmax(logits[p - 1 + t] / 2, -1)[response[0, t]].item(), abs=1e-5
        )
    z_manual = torch.log_softmax(logits[p + r - 1], -1)[z].item()
    assert out.z_logp.item() == pytest.approx(z_manual, abs=1e-5)
    assert hot.z_logp.item() == pytest.approx(z_manual, abs=1e-5)  # z is read at temperature 1
    assert not torch.allclose(out.logp, hot.logp, atol=1e-3)

    # the same row left-padded, beside a longer row, with padding after its EOS: same values, and
    # exactly 0 on masked response positions
    other_prompt, _ = encode_prompts(tok, ["40-39+1="])
    width = other_prompt.shape[1]
    pad = tok.pad_token_id
    batch = Rollout(
        prompt_ids=torch.cat([torch.full((1, width - p), pad), prompt], -1).expand(1, -1),
        prompt_mask=torch.cat([torch.zeros(1, width - p), torch.ones(1, p)], -1).long(),
        response_ids=torch.cat([response, torch.full((1, 2), pad)], -1),
        response_mask=torch.cat([torch.ones(1, r), torch.zeros(1, 2)], -1).long(),
        finished=torch.tensor([True]),
    )
    batch = Rollout.cat([batch, make_rollout(1, width, r + 2, 30)], pad_id=pad)
    with torch.no_grad():
        padded = sequence_logprobs(model, batch, z)
    torch.testing.assert_close(padded.logp[0, :r], out.logp[0], atol=1e-4, rtol=0)
    assert padded.logp[0, r:].tolist() == [0.0, 0.0]
    assert padded.z_logp[0].item() == pytest.approx(out.z_logp.item(), abs=1e-4)


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


def test_rollout_cat_pads_the_token_statistics():
    a, b = make_rollout(1, 1, 3, 0), make_rollout(1, 1, 1, 1)
    a.token_confidence, b.token_confidence = torch.ones(1, 3), torch.full((1, 1), 2.0)
    c = Rollout.cat([a, b], pad_id=0)
    assert c.token_confidence.tolist() == [[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]
    assert c.token_self_certainty is None
    assert Rollout.cat([a, make_rollout(1, 1, 1, 1)], pad_id=0).token_confidence is None
    assert c.rows(slice(1, 2)).token_confidence.tolist() == [[2.0, 0.0, 0.0]]

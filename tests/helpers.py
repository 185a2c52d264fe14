"""Shared test helpers: a scripted bigram LM, tiny real models, logit biases and forward counters, and
the scripted rollouts that the tests of laser.rollout (tests/rollout/) share."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from types import SimpleNamespace

import torch
from lightning import Callback
from omegaconf import OmegaConf

from laser.configs import SCHEMAS
from laser.lit.step_record import StepRecord
from laser.models.char_tokenizer import build_char_tokenizer
from laser.models.loading import build_tiny_model
from laser.rollout.generate import generate
from laser.rollout.types import Rollout
from laser.utils.compose import compose_config

_CHAR_TOKENIZER = None


class LastStep(Callback):
    """Keeps the `StepRecord` of the last training step (what `training_step` hands the callbacks)."""

    def __init__(self) -> None:
        self.record: StepRecord | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record = StepRecord.of(outputs)


def char_tokenizer():
    """The project's character tokenizer (built once per test session; treat as read-only)."""
    global _CHAR_TOKENIZER
    if _CHAR_TOKENIZER is None:
        _CHAR_TOKENIZER = build_char_tokenizer()
    return _CHAR_TOKENIZER


def tiny_model(tok=None, seed: int = 0, arch: str = "llama") -> torch.nn.Module:
    """A 1-layer, 32-wide random causal LM over the char tokenizer, in eval mode (float32).

    `arch="gpt2"` has learned absolute position embeddings, so wrong position ids change its outputs
    (Llama's rotary embeddings are blind to a common shift of all positions).
    """
    tok = tok if tok is not None else char_tokenizer()
    model = build_tiny_model(
        tok, arch=arch, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=seed
    )
    return model.eval()


def finishing_policy(tok, seed: int = 0) -> torch.nn.Module:
    """:func:`tiny_model` in train mode with EOS made likely, so that most sampled responses finish."""
    policy = tiny_model(tok, seed=seed).train()
    with torch.no_grad():
        policy.lm_head.weight[tok.eos_token_id] += 0.5 * policy.lm_head.weight.abs().mean()
    return policy


def add_logit_bias(model: torch.nn.Module, biases: dict[int, float]) -> torch.nn.Module:
    """Give `model.lm_head` (a bias-free Linear) a bias: `biases[id]` added to that token's logit."""
    head = model.lm_head
    bias = torch.zeros(head.out_features)
    for token_id, value in biases.items():
        bias[token_id] = value
    head.bias = torch.nn.Parameter(bias, requires_grad=False)
    return model


def count_forwards(model: torch.nn.Module) -> list[int]:
    """A one-element list incremented by every call of `model(...)`."""
    calls = [0]

    def hook(module, args, output):
        calls[0] += 1

    model.register_forward_hook(hook)
    return calls


def encode_prompts(tok, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """BOS + characters of each prompt, left-padded with the pad id: ids and mask (N, P)."""
    seqs = [[tok.bos_token_id, *tok.encode(p, add_special_tokens=False)] for p in prompts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s)
        mask[i, width - len(s) :] = 1
    return ids, mask


class BigramLM(torch.nn.Module):
    """A scripted causal LM: the next-token logits are `table[current token]`.

    It ignores positions and the attention mask, so its outputs are computable by hand; it follows
    the transformers call convention used by laser (`cache` in and out, `logits_to_keep`).
    """

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table.float()  # (V, V)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        use_cache=None,
        cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        logits = self.table[input_ids]  # (N, L, V)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, cache=(cache or 0) + 1 if use_cache else None)


def chain_table(vocab_size: int, successors: dict[int, int], high: float = 5.0) -> torch.Tensor:
    """A bigram table whose argmax after token a is successors[a]; all other logits are 0."""
    table = torch.zeros(vocab_size, vocab_size)
    for a, b in successors.items():
        table[a, b] = high
    return table


def compose_train(tmp_path: Path, overrides: list[str] = (), debug: str | None = "fast"):
    """The training config as `python -m laser.run debug=<debug> <overrides>` would compose it."""
    base = [
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    if debug:
        base.append(f"debug={debug}")
    return compose_config([*base, *overrides])


@functools.cache
def _composed(overrides: tuple[str, ...]):
    return compose_config(["paths.root_dir=.", "paths.output_dir=.", *overrides])


def config_block(group: str, *overrides: str, **changes):
    """The `group` block (`algo`, `optim`, `data`, ...) of the default run as its schema's object:
    conf/ composed with `overrides` (command-line syntax, e.g. "algo=grpo"), then `changes` on top
    (keys of the block; a nested block as a dict of its keys). The way tests build config objects:
    the values come from the YAML, as in a run (schemas default only what no YAML gives)."""
    values = OmegaConf.to_container(_composed(tuple(overrides))[group], resolve=True)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SCHEMAS[group]), values, changes))


# ---------------------------------------------------------------- scripted rollouts (tests/rollout/)

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


def gen(model, tok, ids, mask, **kw):
    kw.setdefault("max_new_tokens", 8)
    return generate(model, ids, mask, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, **kw)


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

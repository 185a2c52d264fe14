"""Policy and tokenizer loading: any Hugging Face causal LM by name or path, or a tiny model built here."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from laser.configs import TinyModelConfig
from laser.models.char_tokenizer import build_char_tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_model_source(name_or_path: str) -> None:
    """Fail early, naming the fix, when a local model path does not exist.

    A string that looks like a path (starting with /, . or ~, or with more than one /) must exist;
    anything else (`gpt2`, `org/name`) is treated as a Hub id and left to transformers.
    """
    looks_local = name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1
    if looks_local and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(
            f"model.name_or_path={name_or_path!r} does not exist. Give an existing local model "
            "folder (with config.json), a Hugging Face Hub id such as 'Qwen/Qwen2.5-0.5B', or "
            "model.name_or_path=null for the built-in tiny model."
        )


def load_tokenizer(name_or_path: str | None) -> PreTrainedTokenizerBase:
    """The tokenizer of a pretrained model, or the project's character tokenizer when None."""
    if name_or_path is None:
        return build_char_tokenizer()
    check_model_source(name_or_path)
    tok = AutoTokenizer.from_pretrained(name_or_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def stop_token_ids(
    tokenizer: PreTrainedTokenizerBase, stop_tokens: Sequence[str] = (), model=None
) -> list[int]:
    """The ids that end a response: the tokenizer's EOS, the model's generation_config.eos_token_id
    (an id or a list; chat models list their end-of-turn token there) and `stop_tokens` (strings,
    e.g. the chat template's `<|im_end|>`), each of which must be one token of the vocabulary."""
    ids = [tokenizer.eos_token_id]
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += [config_eos] if isinstance(config_eos, int) else list(config_eos or [])
    for text in stop_tokens:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) != 1 or tokenizer.decode(encoded) != text:  # several ids, or the unknown token
            raise ValueError(
                f"model.stop_tokens: {text!r} is not one token of this tokenizer's vocabulary (it encodes "
                f"to {encoded}); list only single tokens, such as the chat template's end of turn"
            )
        ids.append(encoded[0])
    return sorted({i for i in ids if i is not None})


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase, tiny: TinyModelConfig | None = None, seed: int = 0, **changes
) -> torch.nn.Module:
    """A small randomly initialised causal LM of a standard transformers architecture: `tiny`
    (`model.tiny`; None: its schema's defaults, the tiny model's) with `changes` on top
    (e.g. `hidden_size=32`)."""
    tiny = dataclasses.replace(tiny or TinyModelConfig(), **changes)
    config = AutoConfig.for_model(
        tiny.arch,
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_heads,
        intermediate_size=tiny.intermediate_size,
        max_position_embeddings=tiny.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)


def load_pretrained(name_or_path: str, dtype: str = "float32") -> torch.nn.Module:
    """A pretrained causal LM from the Hub or a local folder (as saved by `save_pretrained`)."""
    check_model_source(name_or_path)
    if dtype not in _DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not one of {sorted(_DTYPES)}")
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=_DTYPES[dtype])

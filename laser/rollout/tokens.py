"""Resolve token strings given in configs to token ids."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def resolve_single_token(tokenizer: PreTrainedTokenizerBase, text: str, key: str) -> int:
    """The id of `text`, which must encode to exactly one token; else a ValueError naming `key`."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        specials = [t for t in tokenizer.all_special_tokens if t not in (tokenizer.eos_token,)]
        hint = f" Special tokens of this tokenizer include {specials[:8]}." if specials else ""
        raise ValueError(
            f"{key}={text!r} encodes to {len(ids)} tokens {ids} with this tokenizer, but must be "
            f"exactly one known token. Pick a single (ideally unused, special) token.{hint}"
        )
    if ids[0] in (tokenizer.eos_token_id, tokenizer.pad_token_id):
        raise ValueError(f"{key}={text!r} is the EOS or pad token; pick a token the policy never emits")
    return ids[0]

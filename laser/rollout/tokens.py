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


def resolve_incorrect_token(
    tokenizer: PreTrainedTokenizerBase, text: str, self_reward_id: int | None, stop_ids: list[int]
) -> int:
    """The id of the SFT loss's second verdict token z_i: one known token, not z, not a stop token."""
    key = "algo.self_reward.incorrect_token"
    token_id = resolve_single_token(tokenizer, text, key)
    if token_id == self_reward_id:
        raise ValueError(
            f"{key}={text!r} is the same token as algo.self_reward.token; the SFT loss needs two "
            "different verdict tokens"
        )
    if token_id in stop_ids:
        raise ValueError(f"{key}={text!r} ends responses (a stop token of this model); pick a token "
                         "the policy never emits")  # fmt: skip
    return token_id

"""A character-level tokenizer built by the project, saved and loaded as a standard HF tokenizer."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
DEFAULT_ALPHABET = "0123456789+-*/=()#., ;:?\nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def reserved_token(i: int) -> str:
    """Name of the i-th reserved special token (never produced by encoding text)."""
    return f"<reserved_{i}>"


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET, num_reserved: int = 8) -> PreTrainedTokenizerFast:
    """Build a character-level tokenizer: one id per character, plus pad/bos/eos/unk and reserved tokens.

    Reserved tokens are special tokens that never occur in training text, the natural choice for
    the self-reward token (like the unused special tokens the paper picks in Qwen and Llama vocabularies).
    """
    chars = list(dict.fromkeys(alphabet))
    specials = [PAD, BOS, EOS, UNK] + [reserved_token(i) for i in range(num_reserved)]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=[reserved_token(i) for i in range(num_reserved)],
    )
    tok.padding_side = "left"
    return tok

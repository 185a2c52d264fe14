"""Tests for laser.models.char_tokenizer: one id per character, special and reserved tokens, saving."""

from transformers import AutoTokenizer

from laser.models.char_tokenizer import reserved_token

from helpers import char_tokenizer


def test_char_tokenizer_round_trips_task_text():
    tok = char_tokenizer()
    text = "12+7=19, 19-30=-11 #### -11\n(3*4)/2: ok?"
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one id per character
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    # distinct characters get distinct ids
    assert len(set(ids)) == len(set(text))


def test_char_tokenizer_special_and_reserved_tokens_are_single_ids():
    tok = char_tokenizer()
    ids = {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}
    assert len(ids) == 4 and None not in ids
    reserved = [tok.encode(reserved_token(i), add_special_tokens=False) for i in range(8)]
    assert all(len(r) == 1 for r in reserved)
    assert len({r[0] for r in reserved} | ids) == 12
    # a reserved token inside text stays one token; the characters around it are separate
    ids = tok.encode("ab" + reserved_token(3) + "c", add_special_tokens=False)
    assert ids == [*tok.encode("ab", add_special_tokens=False), reserved[3][0], tok.encode("c")[0]]
    assert tok.encode("é", add_special_tokens=False) == [tok.unk_token_id]


def test_char_tokenizer_save_and_reload_keeps_ids(tmp_path):
    tok = char_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<bos>12+7=19 #### 19<eos>" + reserved_token(0)
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert len(loaded) == len(tok)
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(loaded, attr) == getattr(tok, attr)
    assert loaded.decode(tok.encode("3*4=12", add_special_tokens=False)) == "3*4=12"

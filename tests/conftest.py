"""Fixtures shared by several test files (helpers that are plain functions live in helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import char_tokenizer, finishing_policy


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory) -> Path:
    """A tiny policy exported as training exports one (save_pretrained and self_reward.json)."""
    out = tmp_path_factory.mktemp("policy")
    tok = char_tokenizer()
    policy = finishing_policy(tok)
    policy.generation_config.eos_token_id = [tok.eos_token_id]
    policy.save_pretrained(out)
    tok.save_pretrained(out)
    info = {"token": "<reserved_0>", "beta_v": 0.1, "c_ref": -5.0, "threshold": 0.5}
    (out / "self_reward.json").write_text(json.dumps(info))
    return out

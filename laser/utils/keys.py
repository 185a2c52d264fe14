"""Cache keys made from config blocks by one rule, which the schemas' field metadata parametrise."""

from __future__ import annotations

import copy
from dataclasses import fields, is_dataclass
from typing import Any


def cache_view(block: Any) -> dict:
    """A config block (a schema dataclass) as the part of a cache key it makes: every field, nested
    blocks alike, except as the field's metadata says (`laser.configs.keyed`): `in_key=False` leaves
    it out (it does not shape the cached artefact; deprecated aliases neither), `neutral` leaves it
    out while it holds that value (a field added after artefacts were cached leaves their keys as
    they were until it is used), and `key_name` keys it under that name (its name when they were
    cached)."""
    view = {}
    for f in fields(block):
        meta, value = f.metadata, getattr(block, f.name)
        if not meta.get("in_key", True) or ("neutral" in meta and value == meta["neutral"]):
            continue
        view[meta.get("key_name", f.name)] = (
            cache_view(value) if is_dataclass(value) else copy.deepcopy(value)
        )
    return view

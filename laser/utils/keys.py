"""Cache keys that survive added config fields."""

from __future__ import annotations


def without_off_values(block: dict, added: dict) -> dict:
    """`block` without the fields of `added` (field -> its "off" value) that hold that value: a
    field added to a config block leaves the keys of existing caches valid until it is used."""
    return {k: v for k, v in block.items() if k not in added or v != added[k]}

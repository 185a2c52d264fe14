"""Generated documentation pages are what their sources give."""

from __future__ import annotations

from analysis import config_reference


def test_the_configuration_reference_is_what_the_schemas_give() -> None:
    assert config_reference.main(["check"]) == 0, "run `python -m analysis.config_reference` and commit"


def test_every_schema_block_and_a_nested_key_are_documented() -> None:
    text = config_reference.page()
    for group in ("algo", "model", "rollout", "data", "optim", "reward"):
        assert f"## `{group}`" in text
    assert "| `algo.self_reward.beta_v` |" in text and "| `data.task.max_operand` |" in text


def test_no_page_is_left_with_a_fill_in_marker() -> None:
    pages = [config_reference.ROOT / "README.md", *sorted((config_reference.ROOT / "docs").glob("*.md"))]
    markers = ("PLACEHOLDER", "JOURNAL_FINDINGS", "QUICKSTART_", "_SENTENCE")
    left = [p.name for p in pages if any(m in p.read_text() for m in markers)]
    assert not left, f"fill in: {left}"

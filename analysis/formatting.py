"""Markdown for the results tables (`analysis.tables` and the tables it gathers)."""

from __future__ import annotations


def fmt(x: float, digits: int = 4) -> str:
    """A number with `digits` decimals, `–` for NaN."""
    return "–" if x != x else f"{x:.{digits}f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])

"""Problems without answers, read from a JSONL file line by line, and the answers file of
`laser.infer` (kept across runs: the rows already answered are not answered again).

Every bad row is named by its file and line: a line that is not a JSON object, a row without the
prompt field, a prompt that is empty or not text. A file in which no line holds a JSON object is
not JSONL, and an error whatever `strict` says.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One usable row: its 1-based line, its prompt text and its `id` field (None without one)."""

    line: int
    prompt: str
    id: object = None


@dataclass(frozen=True)
class ProblemsFile:
    """The usable rows of a problems file and its bad lines ('<file>:<line>: <why>')."""

    path: Path
    problems: list[Problem]
    bad: list[str]


def load_object(text: str) -> tuple[dict | None, str | None]:
    """(the JSON object of a line, None), or (None, why it is not one)."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not a JSON object ({err.msg} at column {err.colno})"
    if not isinstance(row, dict):
        return None, f"a JSON {type(row).__name__}, not an object"
    return row, None


def prompt_of(row: dict, field: str) -> tuple[str | None, str | None]:
    """(the row's prompt, None), or (None, why the row has no usable prompt)."""
    if field not in row:
        fields = ", ".join(map(repr, row)) or "none"
        return None, f"no {field!r} field (fields: {fields}); pass prompt_field= naming it"
    prompt = row[field]
    if not isinstance(prompt, str):
        return None, f"{field!r} is a {type(prompt).__name__}, not text"
    if not prompt.strip():
        return None, f"empty {field!r}"
    return prompt, None


def read_problems(path: str | os.PathLike, field: str = "prompt", key: str = "problems") -> ProblemsFile:
    """Every non-blank line of a JSONL file, as usable problems and named bad lines.

    Raises:
        FileNotFoundError: `path` is not a file (the message names `key`).
        ValueError: the file holds no rows, or no line holds a JSON object (not JSONL).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}={str(path)!r} does not exist; give a .jsonl file of problems")
    problems, bad, objects = [], [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            row, why = load_object(text)
            if row is not None:
                objects += 1
                prompt, why = prompt_of(row, field)
            if why is None:
                problems.append(Problem(line, prompt, row.get("id")))
            else:
                bad.append(f"{path}:{line}: {why}")
    if not problems and not bad:
        raise ValueError(f"{key}={str(path)!r} is empty; give a file with one JSON object per line")
    if objects == 0:
        raise ValueError(f"{key}={str(path)!r} is not JSONL (one JSON object per line): {bad[0]}")
    return ProblemsFile(path, problems, bad)


def answered_rows(output: Path, problems: list[Problem]) -> dict[int, dict]:
    """The rows of an earlier answers file that still answer the same prompt at the same line
    (a row whose prompt changed, or a torn last line, is answered again)."""
    if not output.is_file():
        return {}
    prompts = {p.line: p.prompt for p in problems}
    kept = {}
    for number, text in enumerate(output.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(text)
        except json.JSONDecodeError:
            log.warning("%s:%d is not a JSON row (an interrupted write?): answering it again", output, number)
            continue
        if isinstance(row, dict) and prompts.get(row.get("line")) == row.get("prompt"):
            kept[row["line"]] = row
    return kept


def write_rows(output: Path, rows: list[dict]) -> None:
    """Replace `output` by `rows`, one JSON object per line, in one step (a temporary file moved)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(output)


def append_rows(output: Path, rows: list[dict]) -> None:
    """Add `rows` at the end of `output` (progress survives an interruption)."""
    with open(output, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)

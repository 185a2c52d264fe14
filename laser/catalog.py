"""What the data loaders know without reading any data: the paper's prompt, the shipped benchmarks,
the file formats, and a cheap look at a file's columns (for config validation; no `datasets` import).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROOT_ENV = "LASER_BENCHMARK_ROOT"

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
USER_TEMPLATE = "{problem} " + INSTRUCTION
"""The user turn; ``{problem}`` is substituted literally (no other braces are interpreted)."""
PLAIN_TEMPLATE = "Question: {user}\nAnswer:"
"""The whole prompt for tokenizers without a chat template; ``{user}`` is the rendered user turn."""

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""File extension -> `datasets` loader."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """A shipped benchmark: its file under the benchmark root, fields and expected size."""

    file: str
    size: int
    problem_field: str = "problem"
    answer_field: str = "answer"


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "math500": BenchmarkSpec("math500/test.jsonl", 500),
    "aime24": BenchmarkSpec("aime24/test.jsonl", 30),
    "aime25": BenchmarkSpec("aime25/test.jsonl", 30),
    "amc23": BenchmarkSpec("amc23/test.jsonl", 40),
}


def default_benchmark_root() -> Path:
    """``$LASER_BENCHMARK_ROOT`` if set, else ``<project root>/../shared/benchmarks``."""
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "benchmarks")


def check_data_file(path: str | os.PathLike, key: str) -> Path:
    """`path` as a Path when it is an existing file of a supported format; else an error naming `key`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{key}={str(path)!r} is a folder; give the .jsonl/.json/.parquet file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"{key}={str(path)!r} does not exist; give an existing .jsonl/.parquet file")
    if path.suffix.lower() not in FILE_FORMATS:
        raise ValueError(
            f"{key}={str(path)!r}: unsupported extension {path.suffix!r}; use .jsonl, .json or .parquet"
        )
    if not has_rows(path):
        raise ValueError(f"{key}={str(path)!r} is empty (no rows); give a file with at least one problem")
    return path


def has_rows(path: Path) -> bool:
    """False for a file that certainly holds no rows: a Parquet file of 0 rows, or a JSON file with
    nothing but whitespace (cheap: the Parquet footer, or up to the first non-blank line)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows > 0
    with open(path, encoding="utf-8") as f:
        return any(line.strip() for line in f)


def file_columns(path: Path) -> list[str] | None:
    """The top-level field names of a data file, read cheaply (a Parquet schema, or the first JSON
    line); None when that is not possible (a .json array), which leaves the check to loading."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return None
    return list(row) if isinstance(row, dict) else None


def check_fields(path: Path, fields: dict[str, str]) -> None:
    """Each `{config key: field}` names a column of the file (``a.b``: column ``a``); else an error
    naming the key, the file's fields and the fix."""
    columns = file_columns(path)
    if columns is None:
        return
    for key, field in fields.items():
        if field.split(".")[0] not in columns:
            raise ValueError(
                f"{key}={field!r}: {path} has no such field (fields: {', '.join(columns)}); "
                f"set {key} to the column holding it"
            )

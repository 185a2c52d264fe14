"""Maths benchmarks and training sets from local JSONL / Parquet files, normalised to one schema.

Every loader returns a :class:`datasets.Dataset` with the columns

* ``prompt``: the rendered prompt, ready to tokenise (see :func:`render_prompt`);
* ``problem``: the problem text;
* ``answer``: the reference final answer as a string (integers in the files become ``"70"``).

Shipped benchmarks (:data:`BENCHMARKS`) live in ``<root>/<name>/test.jsonl``, where ``root`` defaults to
``../shared/benchmarks`` next to the project root (:func:`default_benchmark_root`; the environment
variable ``LASER_BENCHMARK_ROOT`` overrides it). They are read in place, never copied into the project.

Prompts follow the paper (training, §3; evaluation, §6): the user turn is
``{problem} Please reason step by step, and put your final answer within \\boxed{}.``, rendered with the
tokenizer's chat template and the generation prompt when the tokenizer has one. Otherwise the plain
template :data:`PLAIN_TEMPLATE` is used:

    Question: {problem} Please reason step by step, and put your final answer within \\boxed{}.
    Answer:
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset, load_dataset

from laser.catalog import (  # re-exported: the loaders' public names
    BENCHMARKS,
    FILE_FORMATS,
    INSTRUCTION,
    PLAIN_TEMPLATE,
    PROJECT_ROOT,
    ROOT_ENV,
    USER_TEMPLATE,
    BenchmarkSpec,
    default_benchmark_root,
    has_rows,
)

__all__ = [
    "BENCHMARKS",
    "INSTRUCTION",
    "PLAIN_TEMPLATE",
    "PROJECT_ROOT",
    "ROOT_ENV",
    "USER_TEMPLATE",
    "BenchmarkSpec",
    "benchmark_path",
    "default_benchmark_root",
    "load_benchmark",
    "load_benchmarks",
    "load_problems",
    "load_training_set",
    "render_prompt",
]


def render_prompt(
    problem: str,
    tokenizer=None,
    *,
    user_template: str = USER_TEMPLATE,
    plain_template: str = PLAIN_TEMPLATE,
    system_prompt: str | None = None,
    use_chat_template: bool | None = None,
) -> str:
    """The prompt text for one problem.

    Args:
        problem: the problem statement.
        tokenizer: a Hugging Face tokenizer or None.
        user_template: the user turn, with ``{problem}``.
        plain_template: the prompt without a chat template, with ``{user}`` (the rendered user turn).
        system_prompt: optional system turn (chat template only).
        use_chat_template: None: use the tokenizer's chat template when it has one; True: require it;
            False: always the plain template.
    """
    user = user_template.replace("{problem}", problem)
    has_template = tokenizer is not None and getattr(tokenizer, "chat_template", None)
    if use_chat_template is None:
        use_chat_template = bool(has_template)
    if not use_chat_template:
        return plain_template.replace("{user}", user)
    if not has_template:
        raise ValueError(
            "render_prompt: use_chat_template=True but the tokenizer has no chat_template; "
            "set one on the tokenizer or pass use_chat_template=None/False for the plain template"
        )
    messages = [{"role": "user", "content": user}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _read(path: Path) -> Dataset:
    if path.is_dir():
        raise ValueError(f"data path {path} is a folder; give the .jsonl/.json/.parquet file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found; check the path")
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"data file {path}: unsupported extension {path.suffix!r}; use .jsonl, .json or .parquet"
        )
    if not has_rows(path):
        raise ValueError(f"data file {path} is empty (no rows); give a file with at least one problem")
    empty = f"data file {path} holds no rows; give a file with at least one problem"
    try:
        data = load_dataset(fmt, data_files=str(path), split="train")
    except ValueError as err:  # a JSON array with no element: `datasets` finds no split
        if "corresponds to no data" in str(err):
            raise ValueError(empty) from None
        raise
    if len(data) == 0:
        raise ValueError(empty)
    return data


def _field(data: Dataset, path: Path, field: str, role: str, option: str) -> list:
    """Values of `field` (``a.b`` reaches into a struct column), with a clear error when absent."""
    head, *rest = field.split(".")
    if head not in data.column_names:
        raise ValueError(
            f"data file {path}: no {role} field {field!r} (fields: {', '.join(data.column_names)}); "
            f"pass {option}= naming the {role} column"
        )
    values = data[head]
    for key in rest:
        try:
            values = [v[key] for v in values]
        except (KeyError, TypeError) as err:
            raise ValueError(f"data file {path}: {role} field {field!r}: no key {key!r} in {head!r}") from err
    return values


def _answer_text(value, path: Path, row: int) -> str:
    if value is None:
        raise ValueError(f"data file {path}: row {row} has no answer (null)")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def load_problems(
    path: str | os.PathLike,
    tokenizer=None,
    *,
    problem_field: str = "problem",
    answer_field: str = "answer",
    keep_fields: Sequence[str] = (),
    limit: int | None = None,
    option_prefix: str = "",
    **prompt_kwargs,
) -> Dataset:
    """Problems and answers from one JSONL/JSON/Parquet file, normalised to prompt/problem/answer.

    Args:
        path: the file (``.jsonl``/``.json`` read as JSON lines, ``.parquet``).
        tokenizer: renders prompts with its chat template when it has one (see :func:`render_prompt`).
        problem_field / answer_field: the columns holding the problem and the final answer; ``a.b``
            reads key ``b`` of struct column ``a`` (e.g. verl's ``reward_model.ground_truth``).
        keep_fields: extra columns to carry over unchanged (e.g. ``("solution", "level")``).
        limit: keep only the first `limit` rows.
        option_prefix: prefix of the field options in error messages (e.g. ``data.files.``).
        **prompt_kwargs: passed to :func:`render_prompt` (user_template, plain_template, ...).
    """
    path = Path(path)
    data = _read(path)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    opt = option_prefix
    problems = [str(p) for p in _field(data, path, problem_field, "problem", f"{opt}problem_field")]
    answers = [
        _answer_text(a, path, i)
        for i, a in enumerate(_field(data, path, answer_field, "answer", f"{opt}answer_field"))
    ]
    columns = {
        "prompt": [render_prompt(p, tokenizer, **prompt_kwargs) for p in problems],
        "problem": problems,
        "answer": answers,
    }
    for name in keep_fields:
        columns[name] = _field(data, path, name, "kept", f"{opt}keep_fields")
    return Dataset.from_dict(columns)


def benchmark_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """File of a shipped benchmark under `root` (default :func:`default_benchmark_root`)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; shipped: {', '.join(BENCHMARKS)}, or give a file path")
    return Path(root if root is not None else default_benchmark_root()) / BENCHMARKS[name].file


def load_benchmark(
    name_or_path: str | os.PathLike,
    tokenizer=None,
    *,
    root: str | os.PathLike | None = None,
    problem_field: str | None = None,
    answer_field: str | None = None,
    **kwargs,
) -> Dataset:
    """A shipped benchmark by name (``math500``, ``aime24``, ``aime25``, ``amc23``) or any file path.

    Field names default to the benchmark's (``problem``/``answer``); other keyword arguments go to
    :func:`load_problems`.
    """
    key = str(name_or_path).lower()
    if key in BENCHMARKS:
        spec = BENCHMARKS[key]
        path = benchmark_path(key, root)
        if not path.is_file():
            raise FileNotFoundError(
                f"benchmark {key!r}: {path} not found; pass root= (data: benchmark root) or set "
                f"${ROOT_ENV} to the folder holding {spec.file.split('/')[0]}/ (default ../shared/benchmarks)"
            )
        problem_field = problem_field or spec.problem_field
        answer_field = answer_field or spec.answer_field
    else:
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            raise ValueError(
                f"unknown benchmark {name_or_path!r}; shipped: {', '.join(BENCHMARKS)}, "
                "or give a .jsonl/.json/.parquet path"
            )
    return load_problems(
        path,
        tokenizer,
        problem_field=problem_field or "problem",
        answer_field=answer_field or "answer",
        **kwargs,
    )


def load_benchmarks(names: Sequence[str | os.PathLike], tokenizer=None, **kwargs) -> dict[str, Dataset]:
    """Several benchmarks, keyed by name (a path's key is its parent folder or file stem)."""
    out = {}
    for name in names:
        key = str(name) if str(name).lower() in BENCHMARKS else _path_key(Path(name))
        out[key] = load_benchmark(name, tokenizer, **kwargs)
    return out


def _path_key(path: Path) -> str:
    return (
        path.parent.name if path.stem in {"test", "train", "validation"} and path.parent.name else path.stem
    )


def load_training_set(
    path: str | os.PathLike,
    tokenizer=None,
    *,
    problem_field: str = "problem",
    answer_field: str = "answer",
    **kwargs,
) -> Dataset:
    """The paper's training-set format: one (problem, answer) record per row, JSONL or Parquet."""
    return load_problems(path, tokenizer, problem_field=problem_field, answer_field=answer_field, **kwargs)

"""The prompt datasets a run trains and validates on, built from the typed data config.

Every source gives a DatasetDict with `train` and `eval` splits, each with `prompt` and `answer`
columns (the arithmetic task adds the worked `solution` its supervised warm-up needs).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from datasets import Dataset, DatasetDict

from laser.configs import DataConfig, FilesConfig
from laser.data.arithmetic import arithmetic_dataset
from laser.data.benchmarks import BENCHMARKS, load_benchmark, load_training_set
from laser.utils.keys import cache_view

log = logging.getLogger(__name__)
_USE_CHAT_TEMPLATE = {"auto": None, "chat": True, "plain": False}


def build_datasets(cfg: DataConfig, tokenizer) -> DatasetDict:
    """The `train` and `eval` splits of the configured source; prompts rendered for `tokenizer`."""
    match cfg.source:
        case "arithmetic":
            return arithmetic_dataset(**asdict(cfg.task))
        case "files":
            return files_dataset(cfg.files, tokenizer)
    raise ValueError(f"data.source={cfg.source!r} is invalid: use 'arithmetic' or 'files'")


def dataset_key(cfg: DataConfig) -> dict:
    """What the data depends on, as part of cache keys: the source's block (`cache_view`: fields
    added since caches were made are left out at their neutral value, so existing caches stay valid)."""
    if cfg.source != "arithmetic":
        return {"files": cache_view(cfg.files)}
    return cache_view(cfg.task)


def files_dataset(cfg: FilesConfig, tokenizer) -> DatasetDict:
    """Training problems from `cfg.train`; held-out ones from a benchmark, a file, or the training file.

    Raises:
        ValueError: a field is missing, an answer is null, or the held-out count leaves no training rows.
    """
    options = {
        "problem_field": cfg.problem_field,
        "answer_field": cfg.answer_field,
        "user_template": cfg.user_template,
        "system_prompt": cfg.system_prompt,
        "use_chat_template": _USE_CHAT_TEMPLATE[cfg.prompt_format],
        "option_prefix": "data.files.",
    }
    train = load_training_set(Path(cfg.train).expanduser(), tokenizer, limit=cfg.max_train, **options)
    if cfg.holdout is not None:
        train, held_out = hold_out(train, cfg.holdout, cfg.split_seed)
    else:
        source = str(cfg.eval)
        if source.lower() in BENCHMARKS:  # a shipped benchmark has its own field names
            options = {k: v for k, v in options.items() if not k.endswith("_field")}
        else:
            source = Path(source).expanduser()
        held_out = load_benchmark(source, tokenizer, root=cfg.benchmark_root, **options)
    if cfg.max_eval is not None:
        held_out = held_out.select(range(min(cfg.max_eval, len(held_out))))
    warn_overlap(train, held_out)
    log.info("data: %d training and %d held-out problems", len(train), len(held_out))
    return DatasetDict(train=train, eval=held_out)


def hold_out(data: Dataset, size: float | int, seed: int) -> tuple[Dataset, Dataset]:
    """(train, held out): a seeded random `size` of the rows (a fraction < 1, or a count)."""
    count = round(size * len(data)) if isinstance(size, float) else size
    if not 1 <= count < len(data):
        raise ValueError(
            f"data.files.eval={size!r} holds out {count} of the training file's {len(data)} rows; "
            "it must leave at least one row on each side"
        )
    split = data.train_test_split(test_size=count, seed=seed, shuffle=True)
    return split["train"], split["test"]


def warn_overlap(train: Dataset, held_out: Dataset) -> None:
    """Log a warning when held-out problems also appear in the training set (inflated accuracy)."""
    shared = set(train["problem"]) & set(held_out["problem"])
    if shared:
        log.warning(
            "data: %d of %d held-out problems also appear in the training file; held-out accuracy "
            "overstates generalisation (remove them from the training file)",
            len(shared),
            len(held_out),
        )

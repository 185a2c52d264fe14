"""Rule-based verifier: extract the final answer of a response and compare it with the reference.

Rewards are 0/1. The comparison, in order of cost:

1. fast path in this process (:func:`quick_match`): identical strings, plain integers, and simple
   decimals / fractions (``0.5``, ``3/4``, ``\\frac{1}{2}``) decided exactly where math-verify would agree;
2. pre-checks (:func:`laser.rewards.guards.pathology`): over-long or obviously pathological predictions
   (``9^{9^{9^9}}``, deep nesting, factorial towers) are incorrect without parsing;
3. math-verify (``verify(parse("\\boxed{gold}"), parse("\\boxed{pred}"))``, as in the paper) in a
   persistent worker-process pool with a hard time limit per verification (:mod:`laser.rewards.pool`);
   a verification that runs out of time is incorrect.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from fractions import Fraction

import torch

from laser.configs import RewardConfig
from laser.rewards.guards import pathology
from laser.rewards.pool import MathVerifyPool, shared_pool

_MARKER = re.compile(r"####\s*([^\s#]+)")
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BRACE = re.compile(r"[{}]")
_BARE_TOKEN = re.compile(r"[^\s$]+")
_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)")
_SLASH = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_TEX_FRAC = re.compile(r"([+-]?)\\[dt]?frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_MAX_RATIONAL_CHARS = 40
_REL_TOL = 1e-4  # rationals further apart than this are unequal for math-verify too


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` in `text` (balanced braces), or None.

    ``\\boxed 5`` (no braces) gives ``5``. Only the last box counts: if it is unbalanced (a truncated
    response), the result is None even when an earlier box is complete.
    """
    last = None
    for last in _BOX_COMMAND.finditer(text):  # noqa: B007 - want the last match
        pass
    if last is None:
        return None
    i = last.end()
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        bare = _BARE_TOKEN.match(text, i) if i > last.end() else None
        return bare.group() if bare else None
    depth = 0
    for brace in _BRACE.finditer(text, i):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[i + 1 : brace.start()]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last `\\boxed{...}`, else the last `#### <answer>`, else None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    found = _MARKER.findall(text)
    return found[-1].strip() if found else None


def _integer(text: str) -> str | None:
    """Canonical form of a plain integer (sign, no leading zeros), or None."""
    if not _INT.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    return digits if digits == "0" or not text.startswith("-") else "-" + digits


def _rational(text: str) -> Fraction | None:
    """Value of a short decimal, `a/b` or `\\frac{a}{b}`, or None."""
    if len(text) > _MAX_RATIONAL_CHARS:
        return None
    try:
        if _INT.fullmatch(text) or _DECIMAL.fullmatch(text):
            return Fraction(text)
        if m := _SLASH.fullmatch(text):
            return Fraction(int(m.group(1)), int(m.group(2)))
        if m := _TEX_FRAC.fullmatch(text):
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


def quick_match(pred: str, gold: str) -> bool | None:
    """Decide without math-verify when that is safe: True/False, or None when math-verify is needed."""
    pred, gold = pred.strip(), gold.strip()
    if pred == gold:
        return True
    pred_int, gold_int = _integer(pred), _integer(gold)
    if pred_int is not None and gold_int is not None:
        return pred_int == gold_int
    pred_q, gold_q = _rational(pred), _rational(gold)
    if pred_q is None or gold_q is None:
        return None
    if pred_q == gold_q:
        return True
    if abs(pred_q - gold_q) > _REL_TOL * max(1, abs(pred_q), abs(gold_q)):
        return False
    return None  # nearly equal: math-verify's rounding decides (0.333333 equals 1/3 for it)


def answers_match(
    pred: str,
    gold: str,
    *,
    timeout_s: float = RewardConfig.timeout_s,
    max_answer_chars: int = RewardConfig.max_answer_chars,
) -> bool:
    """Whether two final answers are equal: fast path, pre-checks, then math-verify within `timeout_s`."""
    quick = quick_match(pred, gold)
    if quick is not None:
        return quick
    if pathology(pred, max_answer_chars) is not None:
        return False
    return bool(shared_pool().run(gold.strip(), pred.strip(), timeout_s))


class Verifier:
    """Callable: responses and reference answers in, a (N,) float tensor of 0/1 rewards out.

    Args:
        timeout_s: hard wall-clock limit of one math-verify comparison; past it the answer is
            incorrect (and the worker process is killed and replaced if it does not stop by itself).
        max_answer_chars: extracted answers longer than this are incorrect without parsing.
        num_workers: math-verify worker processes, shared by every Verifier of this process with the
            same settings; None: min(4, CPUs).
        single_box: reward 0 for responses with more than one ``\\boxed`` (the paper's training format
            check); off by default (the paper's evaluation).
        memory_limit_mb: address-space limit of each worker (None: none).
        cache_size: remembered (gold, prediction) verdicts, across calls.

    The first four default to the `reward` block's (`laser.configs.RewardConfig`). The worker pool
    starts on the first comparison that needs math-verify (a few seconds); call
    :meth:`warmup` to pay that up front. Instances pickle without their pool and cache.
    """

    def __init__(
        self,
        timeout_s: float = RewardConfig.timeout_s,
        max_answer_chars: int = RewardConfig.max_answer_chars,
        num_workers: int | None = RewardConfig.num_workers,
        single_box: bool = RewardConfig.single_box,
        memory_limit_mb: int | None = 4096,
        cache_size: int = 100_000,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"verifier: timeout_s must be > 0, got {timeout_s}")
        if max_answer_chars <= 0:
            raise ValueError(f"verifier: max_answer_chars must be > 0, got {max_answer_chars}")
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"verifier: num_workers must be >= 1 or None, got {num_workers}")
        self.timeout_s = float(timeout_s)
        self.max_answer_chars = max_answer_chars
        self.num_workers = num_workers
        self.single_box = single_box
        self.memory_limit_mb = memory_limit_mb
        self.cache_size = cache_size
        self.last_stats: dict[str, int] = {}
        self._cache: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def pool(self) -> MathVerifyPool:
        """The shared worker pool for this verifier's settings (started on first access)."""
        return shared_pool(self.num_workers, self.memory_limit_mb)

    def warmup(self) -> None:
        """Start the worker pool and wait until every worker is ready."""
        self.pool.warmup()

    def close(self) -> None:
        """Kill the worker pool (a later call starts a new one)."""
        self.pool.close()

    def extract(self, response: str) -> str | None:
        """The final answer of one response, or None (no answer, or several boxes with `single_box`)."""
        if self.single_box and len(_BOX_COMMAND.findall(response)) > 1:
            return None
        return extract_answer(response)

    def _cheap_verdict(self, pred: str | None, gold: str, stats: dict[str, int]) -> bool | None:
        """Verdict without math-verify (fast path, cache, pre-checks), or None when it is needed."""
        if pred is None:
            stats["no_answer"] += 1
            return False
        quick = quick_match(pred, gold)
        if quick is not None:
            stats["fast"] += 1
            return quick
        cached = self._cache.get((gold, pred))
        if cached is not None:
            stats["cached"] += 1
            return cached
        if pathology(pred, self.max_answer_chars) is not None:
            stats["pathological"] += 1
            return False
        return None

    def judge(self, preds: Sequence[str | None], golds: Sequence[str]) -> list[bool]:
        """Correctness of extracted answers against references (None: no answer, incorrect).

        Distinct (gold, prediction) pairs that need math-verify run once each, spread over the pool.
        Counts of each route land in :attr:`last_stats`, with the time-outs and the workers killed
        (logged per training step as `train/verifier/*`).
        """
        if len(preds) != len(golds):
            raise ValueError(f"verifier: {len(preds)} answers but {len(golds)} references")
        routes = ("no_answer", "fast", "cached", "pathological", "math_verify", "timeouts", "killed_workers")
        stats = dict.fromkeys(routes, 0)
        verdicts: list[bool] = [False] * len(preds)
        pending: dict[tuple[str, str], list[int]] = {}
        for i, (pred, gold) in enumerate(zip(preds, golds, strict=True)):
            pred, gold = (None if pred is None else pred.strip()), str(gold).strip()
            verdict = self._cheap_verdict(pred, gold, stats)
            if verdict is None:
                pending.setdefault((gold, pred), []).append(i)
            else:
                verdicts[i] = verdict
        keys = list(pending)
        results = []
        if keys:
            killed = self.pool.num_killed
            results = self.pool.map(keys, self.timeout_s)
            stats["killed_workers"] = self.pool.num_killed - killed  # timed out or died, replaced
        stats["math_verify"], stats["timeouts"] = len(keys), results.count(None)
        with self._lock:
            if len(self._cache) + len(keys) > self.cache_size:
                self._cache.clear()
            self._cache.update((k, r) for k, r in zip(keys, results, strict=True) if r is not None)
        for key, result in zip(keys, results, strict=True):
            for i in pending[key]:
                verdicts[i] = bool(result)
        self.last_stats = stats
        return verdicts

    def match(self, pred: str, gold: str) -> bool:
        """Whether one extracted answer equals its reference."""
        return self.judge([pred], [gold])[0]

    def __call__(
        self, responses: Sequence[str], answers: Sequence[str], prompts: Sequence[str] | None = None
    ) -> torch.Tensor:
        """(N,) 0/1 rewards; `prompts` is accepted for a uniform interface and not used."""
        if len(responses) != len(answers):
            raise ValueError(f"verifier: {len(responses)} responses but {len(answers)} reference answers")
        verdicts = self.judge([self.extract(r) for r in responses], answers)
        return torch.tensor(verdicts, dtype=torch.float32)

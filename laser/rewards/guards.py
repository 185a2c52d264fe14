"""Cheap pre-checks that reject obviously pathological answers before anything parses them.

They run in the caller's process in microseconds and only catch what no sane final answer contains:
over-long strings, deep nesting, many exponents, power towers and factorials whose value cannot be
computed. Anything subtler is left to the hard time limit of :mod:`laser.rewards.pool`.
"""

from __future__ import annotations

import math
import re

MAX_NESTING = 12  # brackets {[( nested deeper than this (a 15-deep \frac takes seconds to parse)
MAX_POWERS = 24  # `^` / `**` operators in one answer
MAX_EXPONENT = 1e6  # a literal power tower / exponent above this is not computable in time
MAX_FACTORIAL = 100_000  # largest literal n in n!

_DIGITS = re.compile(r"\d+")
_POWER = re.compile(r"\^|\*\*")
_BIG_FACTORIAL = re.compile(r"(\d+)\s*!")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_OPEN, _CLOSE = "{[(", "}])"


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting of `text`, all of {[( counted together."""
    depth = deepest = 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in _CLOSE:
            depth -= 1
    return deepest


def _group_end(text: str, start: int) -> int:
    """Index just past the bracket group opening at `start` (or len(text) when unbalanced)."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in _OPEN:
            depth += 1
        elif text[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _operand(text: str, start: int) -> str:
    """The exponent after a `^`/`**` at `start`: a bracket group, a signed number or one character."""
    i = start
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] in "+-":
        i += 1
    if i >= len(text):
        return ""
    if text[i] in _OPEN:
        return text[i : _group_end(text, i)]
    number = _DIGITS.match(text, i)
    return number.group() if number else text[i]


def _strip_group(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _OPEN and _group_end(text, 0) == len(text):
        text = text[1:-1].strip()
    return text.lstrip("+-").strip()


def log10_value(text: str) -> float | None:
    """log10 of |value| when `text` is a literal integer or a power tower of them, else None.

    ``9^{9^9}`` gives 3.7e8 (the number has ~370 million digits); ``x^2`` gives None (not literal).
    """
    text = _strip_group(text)
    if _DIGITS.fullmatch(text):
        digits = text.lstrip("0")
        if not digits:
            return -math.inf
        return math.log10(int(digits[:15])) + max(len(digits) - 15, 0)
    power = _POWER.search(text)
    if power is None:
        return None
    base, exponent = text[: power.start()], text[power.end() :]
    base_log, exp_log = log10_value(base), log10_value(exponent)
    if base_log is None or exp_log is None:
        return None
    if exp_log > 300:  # the exponent itself has over 300 digits
        return math.inf
    return max(base_log, 0.0) * 10**exp_log


def _huge_exponent(text: str) -> bool:
    """Whether some exponent in `text` is a literal whose value exceeds MAX_EXPONENT."""
    for power in _POWER.finditer(text):
        exp_log = log10_value(_operand(text, power.end()))
        if exp_log is not None and exp_log > math.log10(MAX_EXPONENT):
            return True
    return False


def _huge_factorial(text: str) -> bool:
    """A literal n! with n > MAX_FACTORIAL, n!!! and beyond, or a factorial of a literal group holding
    another factorial or a power (``(9^9)!``, ``((3!)!)!``)."""
    if "!!!" in text.replace(" ", ""):
        return True
    for m in _BIG_FACTORIAL.finditer(text):
        if len(m.group(1)) > 7 or int(m.group(1)) > MAX_FACTORIAL:
            return True
    for bang in re.finditer(r"[)}\]]\s*!", text):
        close, depth, i = bang.start(), 0, bang.start()
        while i >= 0:  # walk back to the matching opening bracket
            depth += text[i] in _CLOSE
            depth -= text[i] in _OPEN
            if depth == 0:
                break
            i -= 1
        inner = _COMMAND.sub("", text[max(i, 0) : close])
        if not re.search(r"[A-Za-z]", inner) and re.search(r"!|\^|\*\*", inner):
            return True
    return False


def pathology(answer: str, max_chars: int) -> str | None:
    """Why `answer` should be judged incorrect without parsing it, or None when it looks harmless."""
    if len(answer) > max_chars:
        return f"longer than {max_chars} characters"
    if nesting_depth(answer) > MAX_NESTING:
        return f"brackets nested deeper than {MAX_NESTING}"
    if len(_POWER.findall(answer)) > MAX_POWERS:
        return f"more than {MAX_POWERS} powers"
    if _huge_exponent(answer):
        return f"a literal exponent above {MAX_EXPONENT:g}"
    if _huge_factorial(answer):
        return "a factorial too large to compute"
    return None

"""Tests for the math-verify verifier: MATH500 reference answers, fast path, pre-checks, hard time limit."""

import json
import pickle
import random
import threading
import time
from pathlib import Path

import pytest

import laser.rewards.pool as pool_mod
from laser.rewards.guards import log10_value, pathology
from laser.rewards.pool import MathVerifyPool
from laser.rewards.verifier import Verifier, answers_match, extract_answer, last_boxed, quick_match

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
MATH500 = BENCHMARKS / "math500" / "test.jsonl"
LIMIT_S = 1.0  # small time limit for the adversarial tests
SLACK_S = 0.5  # allowed overshoot: process scheduling on a loaded machine, the kill and the reply
WORKERS = 2

# answers no verification may spend more than its limit on
ADVERSARIAL = [
    "9^{9^{9^9}}",  # power tower (~10^(3.7e8) digits)
    "10^{10^{10}}",
    "9^{9^9}",
    "2^{100000000}",
    "9**9**9**9",
    "(9^9)!",  # factorial of a huge literal
    "((((3!)!)!)!)!",  # factorial tower
    "99999999999999!",
    "\\left(10^{10}\\right)!",
    "\\frac{" * 30 + "1" + "}{2}" * 30,  # deep nesting (hangs math-verify for > 20 s)
    "{" * 5000 + "1" + "}" * 5000,
    "(" * 200 + "1" + ")" * 200,
    "x^" * 100 + "2",  # long exponent chain (hangs)
    "x^" * 20 + "2",  # under the pre-check caps: reaches math-verify and its time limit
    "\\frac{" * 11 + "1" + "}{2}" * 11,  # under the caps, ~0.4 s
    "1" * 1_000_000,  # a megabyte answer
    "a" * 1_000_000,
    "+".join(f"x^{{{i}}}" for i in range(60)),
]


@pytest.fixture(scope="module")
def verifier():
    v = Verifier(timeout_s=LIMIT_S, num_workers=WORKERS)
    v.warmup()
    return v


@pytest.fixture(scope="module")
def math500():
    if not MATH500.is_file():
        pytest.skip(f"shared benchmarks absent: {MATH500} not found (expected ../shared/benchmarks)")
    return [json.loads(line) for line in MATH500.read_text().splitlines() if line.strip()]


# -- extraction -----------------------------------------------------------------------------------


def test_last_boxed_variants():
    assert last_boxed(r"first \boxed{1}, then \fbox{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\fbox{3} and \boxed{4}") == "4"
    assert last_boxed(r"so $\boxed 5$.") == "5"
    assert last_boxed(r"\boxed {7}") == "7"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\boxedx{3}") is None
    assert last_boxed(r"\boxed{1} then a truncated \boxed{2") is None
    assert last_boxed("ends with \\boxed") is None


def test_extraction_of_huge_responses_is_fast():
    big = "x" * 1_000_000
    for response in (big + r"\boxed{42}", r"\boxed{" + big, "#### " + big, big + "#### 3"):
        start = time.perf_counter()
        extract_answer(response)
        assert time.perf_counter() - start < 0.5


# -- fast path and pre-checks (no worker process) -------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("12", "12", True),
        ("-0", "+0", True),
        ("1" * 5000, "1" * 5000, True),  # beyond int()'s 4300-digit limit
        ("1" * 5000 + "2", "1" * 5001, False),
        ("0.5", r"\frac{1}{2}", True),
        (r"-\dfrac{3}{4}", "-0.75", True),
        ("3/4", r"\frac{-3}{-4}", None),  # not a simple fraction form: math-verify decides
        ("0.5", "0.6", False),
        ("5", "5.0", True),
        ("0.333333", r"\frac{1}{3}", None),  # math-verify's rounding decides
        ("x+1", "1+x", None),
    ],
)
def test_quick_match(pred, gold, expected):
    assert quick_match(pred, gold) is expected


@pytest.mark.parametrize("answer", [a for a in ADVERSARIAL if len(a) > 500 or "^{9" in a or "!" in a])
def test_pathology_rejects_obvious_cases(answer):
    assert pathology(answer, max_chars=500) is not None


@pytest.mark.parametrize(
    "answer",
    ["2^{10}", "e^{i\\pi}", "10^{-5}", "2^{2^{2}}", "(n^2)!", "9!!", "100!", "x^{2}+x^{3}", "2^{1000000}"],
)
def test_pathology_keeps_reasonable_answers(answer):
    assert pathology(answer, max_chars=500) is None


def test_pathology_keeps_math500_answers(math500):
    for row in math500:
        assert pathology(row["answer"], max_chars=500) is None, row["answer"]
        assert pathology(last_boxed(row["solution"]), max_chars=500) is None, row["solution"]


def test_log10_value():
    assert log10_value("1000") == pytest.approx(3)
    assert log10_value("{2^{10}}") == pytest.approx(10 * 0.30103, rel=1e-4)
    assert log10_value("9^{9^9}") > 3e8
    assert log10_value("x^2") is None


# -- math-verify through the pool -----------------------------------------------------------------


def test_math500_reference_answers_verify(verifier, math500):
    boxed = [last_boxed(row["solution"]) for row in math500]
    golds = [row["answer"] for row in math500]
    assert all(b is not None for b in boxed)
    verdicts = Verifier(timeout_s=5.0, num_workers=WORKERS).judge(boxed, golds)
    wrong = [(b, g) for b, g, ok in zip(boxed, golds, verdicts, strict=True) if not ok]
    assert len(wrong) <= 1, wrong
    # most boxed answers equal the answer field verbatim (fast path): check math-verify itself too
    raw = verifier.pool.map([(g.strip(), b.strip()) for g, b in zip(golds, boxed, strict=True)], 5.0)
    wrong = [(b, g) for b, g, ok in zip(boxed, golds, raw, strict=True) if ok is not True]
    assert len(wrong) <= 1, wrong


def test_math500_shuffled_pairs_mostly_unequal(math500):
    boxed = [last_boxed(row["solution"]) for row in math500]
    golds = [row["answer"] for row in math500]
    order = list(range(len(golds)))
    random.Random(0).shuffle(order)
    verdicts = Verifier(timeout_s=5.0, num_workers=WORKERS).judge([boxed[i] for i in order], golds)
    equal_by_chance = sum(boxed[i].strip() == g.strip() for i, g in zip(order, golds, strict=True))
    assert sum(verdicts) < 0.1 * len(golds)
    assert sum(verdicts) >= equal_by_chance


def test_math_verify_equivalences(verifier):
    assert verifier.match(r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}")
    assert verifier.match("0.333333", r"\frac{1}{3}")
    assert verifier.match("x^2+1", "1+x^2")
    assert not verifier.match("x^2-1", "1+x^2")
    assert verifier.last_stats["math_verify"] == 1
    assert answers_match(r"\dfrac{14}{3}", r"\frac{14}{3}")  # module-level API, shared default pool


def test_verifier_rewards_and_options():
    v = Verifier(timeout_s=5.0, num_workers=WORKERS, single_box=True)
    responses = [r"\boxed{1} or \boxed{2}", r"so \boxed{\frac{1}{2}}", "#### 4", "nothing"]
    assert v(responses, ["2", "0.5", 4, "1"]).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert Verifier(num_workers=WORKERS)(responses[:1], ["2"]).tolist() == [1.0]
    with pytest.raises(ValueError, match="timeout_s"):
        Verifier(timeout_s=0)


def test_verifier_pickles(verifier):
    assert verifier.match("x+1", "1+x")
    clone = pickle.loads(pickle.dumps(verifier))
    assert clone.timeout_s == LIMIT_S and clone._cache == {}
    assert clone.match("2x", "x+x")


# -- hard time limit ------------------------------------------------------------------------------


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("answer", ADVERSARIAL, ids=lambda a: a[:24])
def test_adversarial_answer_within_limit(verifier, answer):
    for response in (rf"\boxed{{{answer}}}", "#### " + answer):
        reward, elapsed = _timed(verifier, [response], ["1"])
        assert reward.tolist() == [0.0]
        assert elapsed < LIMIT_S + SLACK_S, (answer[:40], elapsed)


def test_unbalanced_box_is_no_answer(verifier):
    reward, elapsed = _timed(verifier, [r"\boxed{" * 1000 + "1"], ["1"])
    assert reward.tolist() == [0.0] and elapsed < SLACK_S


def test_adversarial_answers_in_parallel_threads(verifier):
    # two pool-bound (one per worker) and several pre-checked ones, all at once
    answers = ["x^" * 20 + "2", "\\frac{" * 11 + "1" + "}{2}" * 11, *ADVERSARIAL[:6]]
    barrier = threading.Barrier(len(answers))
    times: dict[int, float] = {}

    def work(i: int, answer: str) -> None:
        barrier.wait()
        ok, times[i] = _timed(verifier.match, answer, "1")
        assert not ok

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(answers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == len(answers)
    assert max(times.values()) < LIMIT_S + SLACK_S, times


def test_batch_of_adversarial_answers(verifier):
    # distinct slow answers are each cut at the limit: the batch ends within the sum of their limits
    # (ceil(n / workers) limits when the workers run them side by side, as they do on an idle
    # machine; a loaded one may serialise them), not after sympy's unbounded time on any of them
    slow = ["x^" * n + "2" for n in (18, 19, 20, 21)]
    responses = [rf"\boxed{{{a}}}" for a in slow + ADVERSARIAL] + [r"\boxed{3}"] * 8
    rewards, elapsed = _timed(verifier, responses, ["1"] * (len(slow) + len(ADVERSARIAL)) + ["3"] * 8)
    assert rewards.sum().item() == 8
    assert elapsed < len(slow) * (LIMIT_S + SLACK_S), elapsed


def test_stuck_worker_is_killed_and_replaced(monkeypatch):
    # With the worker's own soft limit out of the way, only the parent's kill can stop these.
    monkeypatch.setattr(pool_mod, "SOFT_FRACTION", 100.0)
    pool = MathVerifyPool(num_workers=2)
    try:
        pool.warmup()
        times: list[float] = []

        def work(answer: str) -> None:
            result, elapsed = _timed(pool.run, "1", answer, LIMIT_S)
            assert result is None
            times.append(elapsed)

        threads = [threading.Thread(target=work, args=(a,)) for a in ("10^{10^{10}}", "9^{9^{9^9}}")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(times) == 2 and max(times) < LIMIT_S + SLACK_S, times
        assert pool.num_killed == 2
        assert pool.run("1", "1.0", 10.0) is True  # replacements start in the background
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run("1", "1", 1.0)

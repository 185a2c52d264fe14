"""Child process of :mod:`laser.rewards.pool`: answers math-verify equivalence queries over a socket.

Started as ``python -m laser.rewards._worker FD [MEMORY_LIMIT_MB]`` (not through ``multiprocessing``, so
it never re-imports the parent's ``__main__``, torch or CUDA). It imports only the standard library and
math-verify. Protocol, pickled objects over a ``multiprocessing.connection.Connection`` on socket FD:

* after start-up: ``("ready", None)`` or ``("error", traceback_text)``;
* then, per request ``(gold, pred, soft_timeout_s)``: ``True`` / ``False``, or ``None`` when the soft
  time limit (an interval timer raising :class:`SoftTimeout`) interrupted the computation; ``None`` as a
  request, or the parent closing the socket, ends the process.

The soft limit interrupts Python-level work (most of sympy) without losing the process; work stuck
inside one C call (a huge integer power) ignores it, and the parent kills the process instead.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback


class SoftTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that math-verify's ``except Exception`` cannot swallow it."""


_armed = False


def _on_alarm(signum, frame) -> None:
    if _armed:
        raise SoftTimeout


def _equal(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    # math-verify's own (signal.alarm) timeouts are off: this process keeps its own interval timer.
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _cpu_backstop(soft_timeout_s: float) -> None:
    """Let the kernel end this process (SIGXCPU) if one request burns far more CPU than allowed.

    The parent kills a worker that overruns the wall-clock limit; this only matters when the parent
    itself died while the worker was stuck inside a C call, where it would otherwise spin unseen.
    """
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    budget = usage.ru_utime + usage.ru_stime + max(10.0, 5 * soft_timeout_s)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(budget) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _timed_equal(gold: str, pred: str, soft_timeout_s: float) -> bool | None:
    global _armed
    try:
        _cpu_backstop(soft_timeout_s)
        _armed = True
        signal.setitimer(signal.ITIMER_REAL, max(soft_timeout_s, 1e-3))
        try:
            return _equal(gold, pred)
        finally:
            _armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except SoftTimeout:
        return None
    except (Exception, RecursionError, MemoryError):  # unparsable or too big: not equal
        return False


def _limit_memory(memory_limit_mb: int) -> None:
    import resource

    limit = memory_limit_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _no_core_dumps() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    try:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
        _equal("1", "1")  # import and warm up sympy/latex2sympy before reporting ready
        if len(argv) > 1 and int(argv[1]) > 0:
            _limit_memory(int(argv[1]))
        _no_core_dumps()
        signal.signal(signal.SIGALRM, _on_alarm)
        status = ("ready", None)
    except BaseException:
        status = ("error", traceback.format_exc())
    try:
        conn.send(status)
        while status[0] == "ready":
            request = conn.recv()
            if request is None:
                return
            gold, pred, soft_timeout_s = request
            conn.send(_timed_equal(gold, pred, soft_timeout_s))
    except (EOFError, OSError):  # the parent went away or killed the pool
        return


if __name__ == "__main__":
    main(sys.argv[1:])

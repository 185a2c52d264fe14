"""A small persistent pool of math-verify worker processes with a hard time limit per verification.

math-verify's own timeout uses ``signal.alarm``, which only works in the main thread and cannot stop
work stuck inside one C call (Python's big-integer power, for instance). Here every verification runs
in a separate worker process (:mod:`laser.rewards._worker`):

* the worker arms a *soft* interval timer (a fraction of the limit) that interrupts Python-level work
  and answers "timed out" while keeping the process;
* the parent waits on the socket for at most the *hard* limit; past it the worker is killed (SIGKILL)
  and the call returns "timed out". A replacement starts in a background thread and joins the idle
  queue once it has imported math-verify, so no caller waits for its own replacement.

Workers are plain subprocesses (``python -m laser.rewards._worker``), not ``multiprocessing`` children:
they never re-import the parent's ``__main__`` (torch, CUDA, Hydra), start the same way from threads
and forked processes, and die on their own when the parent goes away (the socket closes).

The time limit of :meth:`MathVerifyPool.run` starts when the request reaches an idle worker; waiting
for a free worker is bounded by the limits of the verifications ahead of it (and by a replacement's
start-up when every worker has just been killed).
"""

from __future__ import annotations

import atexit
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # folder holding the `laser` package
SOFT_FRACTION = 0.8  # the worker interrupts itself at this fraction of the hard limit


def default_num_workers() -> int:
    """min(4, CPUs available to this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class _Worker:
    """One worker subprocess and the parent's end of its socket."""

    def __init__(self, memory_limit_mb: int | None) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        fd = child_sock.fileno()
        args = [sys.executable, "-m", "laser.rewards._worker", str(fd), str(memory_limit_mb or 0)]
        try:
            self.proc = subprocess.Popen(args, pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL)
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.tasks = 0

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the worker has imported math-verify; RuntimeError if it fails or takes too long."""
        try:
            if not self.conn.poll(timeout_s):
                raise RuntimeError(f"a math-verify worker did not start within {timeout_s:.0f} s")
            status, detail = self.conn.recv()
        except (EOFError, OSError) as err:
            raise RuntimeError(
                f"a math-verify worker exited during start-up (code {self.proc.poll()})"
            ) from err
        if status != "ready":
            raise RuntimeError(f"a math-verify worker failed to start (is math-verify installed?):\n{detail}")

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.conn.close()


class MathVerifyPool:
    """``num_workers`` persistent math-verify processes; thread-safe.

    Args:
        num_workers: worker processes (each ~100-200 MB). Default :func:`default_num_workers`.
        memory_limit_mb: address-space limit (RLIMIT_AS) of each worker; an answer needing more is judged
            unequal. None or 0: no limit.
        startup_timeout_s: how long a caller waits for a first ready worker before RuntimeError.
        max_tasks_per_worker: recycle a worker after this many verifications (bounds sympy's memory
            growth over a long run); None: never.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        memory_limit_mb: int | None = None,
        startup_timeout_s: float = 120.0,
        max_tasks_per_worker: int | None = 20_000,
    ) -> None:
        self.num_workers = num_workers or default_num_workers()
        self.memory_limit_mb = memory_limit_mb
        self.startup_timeout_s = startup_timeout_s
        self.max_tasks_per_worker = max_tasks_per_worker
        self.pid = os.getpid()
        self.num_killed = 0
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._error: str | None = None
        for _ in range(self.num_workers):
            self._spawn()

    # -- life cycle ---------------------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start a worker in a background thread; it joins the idle queue once ready."""
        threading.Thread(target=self._launch, name="laser-math-verify-start", daemon=True).start()

    def _launch(self) -> None:
        try:
            worker = _Worker(self.memory_limit_mb)
        except OSError as err:
            self._error = f"could not start a math-verify worker: {err}"
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(worker)  # from now on close() kills it
        if closed:
            worker.kill()
            return
        try:
            worker.wait_ready(self.startup_timeout_s)
        except RuntimeError as err:
            with self._lock:
                self._live.discard(worker)
                closed = self._closed
            worker.kill()
            if not closed:
                self._error = str(err)
            return
        self._idle.put(worker)

    def _retire(self, worker: _Worker, replace: bool = True) -> None:
        with self._lock:
            self._live.discard(worker)
            replace = replace and not self._closed
        worker.kill()
        if replace:
            self._spawn()

    def _acquire(self) -> _Worker:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._closed:
                raise RuntimeError("the math-verify pool is closed")
            try:
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                if self._error is not None and not self._live:
                    raise RuntimeError(self._error) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no math-verify worker became free within {self.startup_timeout_s:.0f} s"
                    ) from None

    def warmup(self) -> None:
        """Block until every worker is ready (e.g. before timing-sensitive use)."""
        deadline = time.monotonic() + self.startup_timeout_s
        while self._idle.qsize() < self.num_workers:
            if self._error is not None:
                raise RuntimeError(self._error)
            if time.monotonic() > deadline:
                raise RuntimeError(f"math-verify workers not ready within {self.startup_timeout_s:.0f} s")
            time.sleep(0.02)

    def close(self) -> None:
        """Kill every worker; later calls raise RuntimeError."""
        with self._lock:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
        for worker in workers:
            worker.kill()

    # -- verification ------------------------------------------------------------------------------

    def run(self, gold: str, pred: str, timeout_s: float) -> bool | None:
        """math-verify equivalence of two answers (no ``\\boxed``): True/False, None if timed out."""
        worker = self._acquire()
        try:
            worker.conn.send((gold, pred, SOFT_FRACTION * timeout_s))
            if worker.conn.poll(timeout_s):
                result = worker.conn.recv()
                worker.tasks += 1
                if self.max_tasks_per_worker is not None and worker.tasks >= self.max_tasks_per_worker:
                    self._retire(worker)
                else:
                    self._idle.put(worker)
                return result
        except (EOFError, OSError):  # the worker died (out of memory, crash): treat as a time-out
            pass
        self.num_killed += 1
        self._retire(worker)
        return None

    def map(self, pairs: Sequence[tuple[str, str]], timeout_s: float) -> list[bool | None]:
        """:meth:`run` over (gold, pred) pairs, spread over the workers."""
        if not pairs:
            return []
        if len(pairs) == 1:
            return [self.run(*pairs[0], timeout_s)]
        with ThreadPoolExecutor(min(self.num_workers, len(pairs)), thread_name_prefix="laser-mv") as ex:
            return list(ex.map(lambda pair: self.run(pair[0], pair[1], timeout_s), pairs))


_SHARED: dict[tuple, MathVerifyPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(num_workers: int | None = None, memory_limit_mb: int | None = None) -> MathVerifyPool:
    """The process-wide pool for these settings, started on first use (a forked child gets its own)."""
    key = (num_workers or default_num_workers(), memory_limit_mb)
    with _SHARED_LOCK:
        pool = _SHARED.get(key)
        if pool is None or pool._closed or pool.pid != os.getpid():
            pool = _SHARED[key] = MathVerifyPool(*key)
        return pool


@atexit.register
def close_shared_pools() -> None:
    """Kill the workers of every shared pool of this process (also run at exit)."""
    with _SHARED_LOCK:
        pools = [p for p in _SHARED.values() if p.pid == os.getpid()]
        _SHARED.clear()
    for pool in pools:
        pool.close()

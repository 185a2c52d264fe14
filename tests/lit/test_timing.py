"""StageTimer: seconds per stage from the clock reads around each stage, nested stages included."""

from __future__ import annotations

import itertools

from laser.lit import timing
from laser.lit.timing import StageTimer


def test_stages_add_up_their_own_clock_reads(monkeypatch) -> None:
    clock = itertools.count(start=0.0, step=1.0)  # every read advances one second
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    synced = []
    timer = StageTimer(sync=lambda: synced.append(1))
    # step reads the clock at 0 and 5, sample at 1 and 4, score at 2 and 3
    with timer.stage("step"), timer.stage("sample"), timer.stage("score"):
        pass
    with timer.stage("sample"):  # reads 6, 7: a second round adds to the first
        pass
    stats = timer.stats()
    assert stats["timing_s/step"] == 5.0 and stats["timing_s/sample"] == 4.0
    assert stats["timing_s/score"] == 1.0 and stats["timing_s/update"] == 0.0
    assert len(synced) == 8  # before every clock read
    assert timer.stats() == stats  # reading does not clear
    timer.reset()
    assert timer.stats()["timing_s/step"] == 0.0

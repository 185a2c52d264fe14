"""Several sweep processes on one Optuna study in a real PostgreSQL server, as on several machines.

The fixture starts a throwaway server from the installed PostgreSQL binaries (Debian: `apt-get install
postgresql`; `make test` installs it when run as root). Without them the tests are skipped, or fail
when CI=true, where they must run.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sync_hooks import announce, wait_for

ROOT = Path(__file__).resolve().parents[1]
SEARCHPATH = f"hydra.searchpath=[file://{ROOT}]"
HOOKS_PATH = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))  # sync_hooks
SERVER_HINT = "install the server: apt-get install postgresql (Debian/Ubuntu), or `make postgres` as root"
WORKERS = 2
TRIALS_PER_WORKER = 2
# a metric that differs between trials of debug=fast runs (their F1 is 0), so each trial's value
# identifies its run
METRIC = "val/self_reward/mse"


def skip_or_fail(reason: str) -> None:
    """CI must run the PostgreSQL tests: there a missing server fails them instead of skipping them."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


def postgres_bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's newest /usr/lib/postgresql/<v>/bin, else from PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        return None
    folder = Path(initdb).resolve().parent
    return folder if (folder / "pg_ctl").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A cluster in a temporary folder, run as the `postgres` OS user when we are root (the server
    refuses to run as root), listening on 127.0.0.1 and a socket in the same folder."""

    def __init__(self, bin_dir: Path, base: Path, os_user: str | None) -> None:
        self.bin_dir, self.base, self.os_user = bin_dir, base, os_user
        self.data, self.log = base / "data", base / "server.log"
        self.port = free_port()

    def run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        if self.os_user:
            cmd = [shutil.which("runuser") or "/sbin/runuser", "-u", self.os_user, "--", *cmd]
        proc = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}{log}")

    def start(self) -> None:
        args = ["-U", "laser", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        self.run("initdb", "-D", str(self.data), *args)
        for attempt in range(3):  # another process may take the free port before the server binds it
            # fsync off: a throwaway cluster need not survive a crash
            options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -F"
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
                return
            except RuntimeError:
                if attempt == 2 or (self.data / "postmaster.pid").exists():
                    raise
                self.port = free_port()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        # autocommit: CREATE DATABASE cannot run in a transaction
        with psycopg.connect(f"postgresql://laser@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://laser@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def server_os_user() -> str | None:
    """`postgres` when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        skip_or_fail(f"running as root but there is no `postgres` OS user to run the server: {SERVER_HINT}")
    return "postgres"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A fresh server for this module's tests, stopped after them (also when they fail)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        skip_or_fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {SERVER_HINT}")
    try:
        import psycopg  # noqa: F401  # the driver of postgresql+psycopg:// URLs
    except ImportError:
        skip_or_fail("the PostgreSQL driver psycopg is not installed: pip install -e '.[dev]'")
    os_user = server_os_user()
    # under /tmp, not pytest's tmp_path: the postgres user cannot enter root's private pytest folder
    base = Path(tempfile.mkdtemp(prefix="laser-pg-"))
    if os_user:
        user = pwd.getpwnam(os_user)
        os.chown(base, user.pw_uid, user.pw_gid)
    server = PostgresServer(bin_dir, base, os_user)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def start_worker(
    sweep_dir: Path,
    storage: str,
    seed: int,
    n_jobs: int,
    extra: list[str] = (),
    n_trials: int = TRIALS_PER_WORKER,
) -> subprocess.Popen:
    """One sweep process adding `n_trials` trials to the shared study `shared`; `extra`: more overrides."""
    cmd = [sys.executable, "-m", "laser.run", SEARCHPATH, "+sweeps=optuna_lr_alpha_beta", "debug=fast"]
    cmd += ["logger=csv", "num_threads=1", f"optimized_metric={METRIC}", "hydra.sweeper.direction=minimize"]
    # the URL through the environment, as sweeps/README.md advises (no password in saved overrides)
    cmd += ["hydra.sweeper.storage=${oc.env:OPTUNA_STORAGE}", "hydra.sweeper.study_name=shared"]
    cmd += [f"hydra.sweeper.seed={seed}", f"hydra.sweeper.n_trials={n_trials}"]
    cmd += [f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweep.dir={sweep_dir}", *extra]
    cmd += [f"paths.cache_dir={sweep_dir.parent / 'cache'}", "-m"]  # warm-ups shared by the test's workers
    env = {**os.environ, "WANDB_MODE": "disabled", "OPTUNA_STORAGE": storage, "PYTHONPATH": HOOKS_PATH}
    sweep_dir.mkdir(parents=True)
    with (sweep_dir.parent / f"{sweep_dir.name}.log").open("w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    try:
        for proc, log in zip(procs, logs, strict=True):
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, f"sweep worker exited {code}:\n{log.read_text()[-6000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def last_logged(metrics_csv: Path, name: str) -> float:
    """The last value of `name` in a run's metrics.csv (Lightning's CSVLogger)."""
    with metrics_csv.open() as f:
        values = [row[name] for row in csv.DictReader(f) if row.get(name)]
    assert values, f"{metrics_csv} has no {name}"
    return float(values[-1])


# each process announces itself and waits for the others (a barrier), then opens the storage and
# creates (or loads) the study
OPEN_STUDY_TOGETHER = """
import sys
from pathlib import Path
import optuna
from hydra_plugins.laser_optuna_sweeper.sweeper import open_storage
from sync_hooks import announce, wait_for
url, barrier, me, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
announce(barrier / f"ready{me}")
for other in range(n):
    wait_for(barrier / f"ready{other}")
optuna.create_study(storage=open_storage(url), study_name="race", load_if_exists=True)
"""


@pytest.mark.slow
def test_sweeps_starting_together_on_an_empty_database_all_open_the_study(postgres, tmp_path):
    """They race to create Optuna's tables on the real server (whether a process loses the race
    depends on the scheduler; the retry itself is tested deterministically in test_sweeper.py)."""
    url = postgres.create_database("race")
    n = 4
    env = {**os.environ, "PYTHONPATH": HOOKS_PATH}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STUDY_TOGETHER, url, str(tmp_path), str(i), str(n)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        for i in range(n)
    ]
    errors = [p.communicate(timeout=300)[1].decode()[-2000:] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(errors)
    assert optuna.get_all_study_names(url) == ["race"]


@pytest.mark.slow
def test_two_workers_share_one_study_and_record_each_trial_once(postgres, tmp_path):
    url = postgres.create_database("two_workers")
    sweep_dirs = [tmp_path / f"worker{i}" for i in range(WORKERS)]
    # distinct seeds, as on several machines; n_jobs=2 asks two trials at once, which the other
    # worker may interleave
    procs = [start_worker(d, url, seed=i, n_jobs=i + 1) for i, d in enumerate(sweep_dirs)]
    wait_all(procs, [d.parent / f"{d.name}.log" for d in sweep_dirs])

    (name,) = optuna.get_all_study_names(url)
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    total = WORKERS * TRIALS_PER_WORKER
    assert [t.state for t in trials] == [TrialState.COMPLETE] * total
    assert sorted(t.number for t in trials) == list(range(total))
    run_dirs = [Path(t.user_attrs["output_dir"]) for t in trials]
    assert len(set(run_dirs)) == total
    for trial, run_dir in zip(trials, run_dirs, strict=True):
        assert run_dir.parent in sweep_dirs
        assert run_dir.name == str(trial.number)  # directories are named by trial number
        assert trial.value == pytest.approx(last_logged(run_dir / "metrics.csv", METRIC), rel=1e-9)
    # each worker ran its own trials, in its own sweep directory
    for sweep_dir in sweep_dirs:
        assert sum(d.parent == sweep_dir for d in run_dirs) == TRIALS_PER_WORKER


@pytest.mark.slow
def test_batch_interleaved_with_another_process_keeps_trial_numbers_as_directory_names(postgres, tmp_path):
    """Another process asks a trial between the two asks of one batch (the worker's sampler stops
    after the first ask until the test has asked): the batch's trials get non-consecutive numbers,
    and their run directories are still named by trial number."""
    url = postgres.create_database("interleaved")
    handshake = tmp_path / "handshake"
    handshake.mkdir()
    hook = ["hydra.sweeper.sampler._target_=sync_hooks.HandshakeSampler"]
    hook += [f"++hydra.sweeper.sampler.handshake_dir={handshake}"]
    sweep_dir = tmp_path / "worker"
    worker = start_worker(sweep_dir, url, seed=0, n_jobs=2, extra=hook)
    try:
        first = int(wait_for(handshake / "asked", alive=lambda: worker.poll() is None))
        study = optuna.load_study(study_name="shared", storage=url)
        between = study.ask()
        study.tell(between, state=TrialState.FAIL)
        announce(handshake / "answered")
        wait_all([worker], [tmp_path / "worker.log"])
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert between.number == first + 1
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert [t.number for t in complete] == [first, first + 2]
    run_dirs = [Path(t.user_attrs["output_dir"]) for t in complete]
    assert run_dirs == [sweep_dir / str(first), sweep_dir / str(first + 2)]
    assert all((d / "metrics.csv").is_file() for d in run_dirs)


HEARTBEAT = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]


def wait_until_stale(url: str, number: int, timeout_s: float = 120) -> None:
    """Until trial `number` of study `shared` has had no heartbeat for the grace period (2 s)."""
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
    study_id = storage.get_study_id_from_name("shared")
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    deadline = time.monotonic() + timeout_s
    while trial_id not in storage._get_stale_trial_ids(study_id):
        assert time.monotonic() < deadline, f"trial {number} still counts as alive after {timeout_s} s"
        time.sleep(0.2)  # polling for the condition; its timing decides nothing


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_of_a_killed_worker_is_failed_once_and_retried_by_another(postgres, tmp_path):
    """Worker A is killed with SIGKILL in the middle of its trial (its training blocks until then).
    Once that trial's heartbeats are older than the grace period, worker B marks it FAIL, runs it
    again with the same params, and then its own trials: the study completes A's and B's budgets."""
    url = postgres.create_database("dead_worker")
    started = tmp_path / "started"
    block = ["+callbacks.block._target_=sync_hooks.BlockTraining", f"+callbacks.block.started={started}"]
    a = start_worker(tmp_path / "a", url, seed=0, n_jobs=1, n_trials=1, extra=[*HEARTBEAT, *block])
    try:
        wait_for(started, alive=lambda: a.poll() is None)  # trial 0 is training, its heartbeats running
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    study = optuna.load_study(study_name="shared", storage=url)
    (dead,) = study.get_trials()
    assert dead.state == TrialState.RUNNING  # what a killed process leaves
    wait_until_stale(url, dead.number)
    b = start_worker(tmp_path / "b", url, seed=1, n_jobs=1, n_trials=2, extra=HEARTBEAT)
    wait_all([b], [tmp_path / "b.log"])

    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3
    retry = trials[1]
    assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params
    assert all("failed_trial" not in t.system_attrs for t in trials[2:])  # B's own, new trials
    run_dirs = [Path(t.user_attrs["output_dir"]) for t in trials[1:]]
    assert run_dirs == [tmp_path / "b" / str(n) for n in (1, 2, 3)]
    log = (tmp_path / "b.log").read_text()
    assert f"Trials [{dead.number}] stopped sending heartbeats" in log
    assert f"Trial 1 retries trial {dead.number}" in log

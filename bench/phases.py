"""Where an `etl run` spends its time, by phase: wall seconds and CPU seconds, per thread.

    python bench/phases.py run --data-root DIR --warehouse FILE [other `etl run` options]

Runs the command in this process with the functions of PHASES wrapped in timers, and prints,
after it, each one's calls, wall seconds and two CPU figures:

- **own CPU**: the CPU of the thread the phase ran on (`time.thread_time`), less that of the
  phases it called on that thread. These add up: per Python thread, the phases' own CPU plus
  the line "outside phases" is that thread's whole CPU.
- **process CPU**: the whole process's CPU while the phase ran, every thread included (DuckDB's
  and polars' native pools, the writer thread): phases that overlap are each charged it, so
  these do not add up. Process CPU well above own CPU means the phase's work ran on the pools
  (or that another thread worked meanwhile).

The whole run's CPU is split the same way: each Python thread's own CPU, and the rest, which is
the native pools' (DuckDB's and polars' worker threads, which no phase can be charged alone),
read per thread from /proc (DuckDB's as the warehouse closes, when they end).
A phase whose wall is well above its process CPU waited (for DuckDB's lock, the writer, or other
processes on a busy machine). cProfile charges Python-heavy code several times its cost (the
`holidays` calendar: 4 s under it, 0.26 s without); these timers cost nothing measurable.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

# (module, function or Class.method), wrapped where the callers look them up: a module that
# imports a function by name comes after it (etl.run.load imports stage_files).
PHASES = (
    ("etl.stage.batch", "FileReader.read"),
    ("etl.stage.batch", "stage_files"),
    ("etl.stage.batch", "_canonical"),
    ("etl.stage.batch", "add_in_dc_columns"),
    ("etl.stage.batch", "_mark_keys_elsewhere"),
    ("etl.stage.batch", "_check"),
    ("etl.stage.batch", "_quarantine_rows"),
    ("etl.run.load", "load"),
    ("etl.engine.duckdb.writer", "BatchWriter._write"),
    ("etl.engine.duckdb.writer", "BatchWriter.flush"),
    ("etl.run.publish", "audit"),
    ("etl.engine.duckdb.engine", "DuckDBEngine.publish"),
    ("etl.engine.duckdb.build", "_write_calendar"),
    ("etl.engine.duckdb.build", "_write_matches"),
    ("etl.engine.duckdb.build", "control_totals"),
    ("etl.engine.duckdb.sql_models", "build"),
)


def cpu_seconds() -> float:
    """The process's CPU seconds so far, every thread's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Phase:
    calls: int = 0
    wall: float = 0.0
    own_cpu: float = 0.0  # on its thread, less the phases it called there
    process_cpu: float = 0.0


@dataclass
class Thread:
    cpu: float = 0.0  # as last seen: a thread that has ended keeps its last phase's figure
    in_phases: float = 0.0  # the own CPU of the phases that ran on it


@dataclass
class Timers:
    phases: dict[str, Phase] = field(default_factory=lambda: defaultdict(Phase))
    threads: dict[str, Thread] = field(default_factory=lambda: defaultdict(Thread))
    native_ids: set[int] = field(default_factory=set)  # the Python threads' ids in /proc
    local: threading.local = field(default_factory=threading.local)

    def timed(self, name: str, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            stack = self.local.__dict__.setdefault("stack", [])  # the CPU of phases called inside
            stack.append(0.0)
            wall, cpu, own = time.perf_counter(), cpu_seconds(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                now = time.thread_time()
                spent, inner = now - own, stack.pop()
                if stack:
                    stack[-1] += spent
                phase = self.phases[name]
                phase.calls += 1
                phase.wall += time.perf_counter() - wall
                phase.own_cpu += spent - inner
                phase.process_cpu += cpu_seconds() - cpu
                self.native_ids.add(threading.get_native_id())
                thread = self.threads[threading.current_thread().name]
                thread.cpu = now
                thread.in_phases += spent - inner

        return wrapper

    def thread_ended(self) -> None:
        """Record the calling thread's CPU as it ends (`count_threads`)."""
        self.native_ids.add(threading.get_native_id())
        self.seen_now()

    def seen_now(self) -> None:
        """Bring the calling thread's CPU up to date (the main thread's, at the end)."""
        self.threads[threading.current_thread().name].cpu = time.thread_time()


TIMERS = Timers()


def count_threads() -> None:
    """Every Python thread (the read-ahead thread, the writer) tells its CPU as it ends: after
    it, its CPU can no longer be read, and it need not run a phase."""
    run = threading.Thread.run

    def counted(thread: threading.Thread) -> None:
        try:
            run(thread)
        finally:
            TIMERS.thread_ended()

    threading.Thread.run = counted


def pool_threads(python_threads: set[int]) -> dict[int, tuple[str, float]]:
    """The process's other live threads: id to pool and CPU seconds, from /proc (Linux; empty
    elsewhere). polars names its workers polars-N (its streaming engine's async-executor-N);
    DuckDB's workers keep the process's name."""
    tasks = f"/proc/{os.getpid()}/task"
    if not os.path.isdir(tasks):
        return {}
    tick, process = os.sysconf("SC_CLK_TCK"), _process_name()
    threads = {}
    for tid in map(int, os.listdir(tasks)):
        if tid == os.getpid() or tid in python_threads:
            continue
        with open(f"{tasks}/{tid}/stat") as stat:
            text = stat.read()
        name = text[text.index("(") + 1 : text.rindex(")")]
        utime, stime = text[text.rindex(")") + 2 :].split()[11:13]
        pool = "DuckDB" if name == process else name
        pool = "polars" if name.startswith("polars") else pool
        pool = "polars streaming" if name.startswith("async-executor") else pool
        threads[tid] = (pool, (int(utime) + int(stime)) / tick)
    return threads


POOLS: dict[int, tuple[str, float]] = {}  # pool threads as last seen


def see_pools() -> None:
    """Read the pools' CPU now: DuckDB's workers end when the warehouse is closed."""
    python = {thread.native_id for thread in threading.enumerate()}  # live, but not yet seen
    POOLS.update(pool_threads(TIMERS.native_ids | python))


def closing(close):
    @functools.wraps(close)
    def wrapper(*args, **kwargs):
        see_pools()
        return close(*args, **kwargs)

    return wrapper


def _process_name() -> str:
    with open(f"/proc/{os.getpid()}/comm") as comm:
        return comm.read().strip()


def wrap(module_name: str, name: str) -> None:
    """Replace the function in its module (or class) before the pipeline imports it."""
    owner = importlib.import_module(module_name)
    *classes, attribute = name.split(".")
    for cls in classes:
        owner = getattr(owner, cls)
    setattr(
        owner,
        attribute,
        TIMERS.timed(f"{module_name.rsplit('.', 1)[-1]}.{name}", getattr(owner, attribute)),
    )


def report(started: float, cpu: float, main_cpu: float) -> None:
    """The figures; `main_cpu`: the main thread's CPU before the run (imports, wrapping)."""
    TIMERS.seen_now()
    TIMERS.threads[threading.main_thread().name].cpu -= main_cpu
    total = cpu_seconds() - cpu
    python = sum(thread.cpu for thread in TIMERS.threads.values())
    print(f"\nwhole run: wall {time.perf_counter() - started:.2f} s, CPU {total:.2f} s")
    for name, thread in sorted(TIMERS.threads.items()):
        print(
            f"  thread {name}: {thread.cpu:.2f} s "
            f"({thread.in_phases:.2f} in phases, {thread.cpu - thread.in_phases:.2f} outside)"
        )
    see_pools()
    pools: dict[str, float] = defaultdict(float)
    for pool, spent in POOLS.values():
        pools[pool] += spent
    for name, spent in sorted(pools.items(), key=lambda item: -item[1]):
        if spent >= 0.01:
            print(f"  {name} workers: {spent:.2f} s")
    print(f"  native threads that ended unseen: {total - python - sum(pools.values()):.2f} s")
    print(f"{'phase':42} {'calls':>5} {'wall s':>8} {'own CPU s':>10} {'process CPU s':>14}")
    for name, phase in sorted(TIMERS.phases.items(), key=lambda item: -item[1].wall):
        print(
            f"{name:42} {phase.calls:5d} {phase.wall:8.2f} {phase.own_cpu:10.2f} "
            f"{phase.process_cpu:14.2f}"
        )


def main() -> None:
    count_threads()
    for module_name, name in PHASES:
        wrap(module_name, name)
    engine = importlib.import_module("etl.engine.duckdb.engine").DuckDBEngine
    engine.close = closing(engine.close)
    atexit.register(report, time.perf_counter(), cpu_seconds(), time.thread_time())
    sys.argv = ["etl", *sys.argv[1:]]
    from etl.cli.main import main as etl_main

    etl_main()


if __name__ == "__main__":
    main()

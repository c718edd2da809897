"""Where an `etl run` spends its time, by phase: wall seconds and process CPU seconds.

    python bench/phases.py run --data-root DIR --warehouse FILE [other `etl run` options]

Runs the command in this process with the functions of PHASES wrapped in timers, and prints,
after it, each one's calls, wall seconds and process CPU seconds (every thread's, DuckDB's and
polars' pools included: a phase that runs while the writer thread writes is charged that
thread's CPU too, so phases overlap and do not add up). A phase whose CPU is about its wall
used one core; with wall well above CPU it waited (for DuckDB's lock, the writer, or other
processes on a busy machine). cProfile charges Python-heavy code several times its cost (the
`holidays` calendar: 4 s under it, 0.26 s without); these timers cost nothing measurable.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import resource
import sys
import time
from collections import defaultdict

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

TIMES: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # calls, wall, CPU


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        try:
            return function(*args, **kwargs)
        finally:
            entry = TIMES[name]
            entry[0] += 1
            entry[1] += time.perf_counter() - wall
            entry[2] += cpu_seconds() - cpu

    return wrapper


def wrap(module_name: str, name: str) -> None:
    """Replace the function in its module (or class) before the pipeline imports it."""
    owner = importlib.import_module(module_name)
    *classes, attribute = name.split(".")
    for cls in classes:
        owner = getattr(owner, cls)
    setattr(
        owner,
        attribute,
        timed(f"{module_name.rsplit('.', 1)[-1]}.{name}", getattr(owner, attribute)),
    )


def report(started: float, cpu: float) -> None:
    print(
        f"\nwhole run: wall {time.perf_counter() - started:.2f} s, CPU {cpu_seconds() - cpu:.2f} s"
    )
    print(f"{'phase':42} {'calls':>5} {'wall s':>8} {'CPU s':>8}")
    for name, (calls, wall, spent) in sorted(TIMES.items(), key=lambda item: -item[1][1]):
        print(f"{name:42} {calls:5d} {wall:8.2f} {spent:8.2f}")


def main() -> None:
    for module_name, name in PHASES:
        wrap(module_name, name)
    atexit.register(report, time.perf_counter(), cpu_seconds())
    sys.argv = ["etl", *sys.argv[1:]]
    from etl.cli.main import main as etl_main

    etl_main()


if __name__ == "__main__":
    main()

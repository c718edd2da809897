"""Run a command as a whole process and measure it: wall time, CPU time and peak memory; or
time queries on warehouses in this process (`measure_queries`)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measurement:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    exit_code: int

    def as_dict(self) -> dict:
        return asdict(self)


def measure(name: str, command: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run `command` to completion; its peak RSS comes from wait4, so children are not mixed in."""
    started = time.perf_counter()
    # stderr goes to a file: a pipe read only after the child ends would fill up and block it.
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
            env={**os.environ, **(env or {})},
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        stderr_file.seek(0)
        stderr = stderr_file.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 2):
        raise RuntimeError(f"{name} failed with exit code {code}:\n{stderr[-2000:]}")
    return Measurement(
        name=name,
        wall_s=round(wall, 2),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        exit_code=code,
    )


def measure_queries(
    warehouses: dict[str, Path], statements: dict[str, str], params: dict, rounds: int = 5
) -> list[Measurement]:
    """Each statement on each warehouse (label: path), read-only, `rounds` times, interleaved
    (round by round, warehouse by warehouse), so that a slow minute slows every one alike.
    A figure is the median of the rounds; CPU time counts DuckDB's threads (the process's own
    rusage), and the first round warms the cache as an analyst's session would."""
    import duckdb  # only this harness's in-process cases need it

    cons = {label: duckdb.connect(str(path), read_only=True) for label, path in warehouses.items()}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for _ in range(rounds):
            for label, con in cons.items():
                for name, sql in statements.items():
                    cpu, wall = _cpu(), time.perf_counter()
                    con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchall()
                    spent = (time.perf_counter() - wall, _cpu() - cpu)
                    times.setdefault((label, name), []).append(spent)
    finally:
        for con in cons.values():
            con.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        Measurement(
            name=f"{name}, {label}",
            wall_s=round(statistics.median(w for w, _ in runs), 3),
            cpu_s=round(statistics.median(c for _, c in runs), 3),
            peak_rss_mb=round(peak, 1),
            exit_code=0,
        )
        for (label, name), runs in times.items()
    ]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

"""Run a command as a whole process and measure it: wall time, CPU time and peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass


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

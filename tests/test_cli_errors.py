"""An error no command expected: one line, never a traceback; exit 3 for a bug, 2 for the machine.

Every test runs the command line in a real child process, as a user or a scheduler would.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl.cli.errors import describe
from etl.engine.duckdb.warehouse import connect
from etl.paths import PROJECT_ROOT

# The child replaces one library function with a fault, then runs the real `etl` entry point.
INJECT = """
import sys
import time
import etl.report.status

def fault(*args, **kwargs):
    {raise_line}

etl.report.status.last_runs = fault
from etl.cli.main import main
main()
"""


def etl(*args: str, raise_line: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    code = ["-m", "etl"] if raise_line is None else ["-c", INJECT.format(raise_line=raise_line)]
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, *code, *args],
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        **kwargs,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr + (done.stdout or "")
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh" / "w.duckdb"
    connect(path).close()
    return path


def test_a_bug_is_exit_3_one_line_and_the_traceback_in_a_log_beside_the_warehouse(warehouse):
    done = etl("status", "--warehouse", str(warehouse), raise_line="{}['run_id']")
    assert done.returncode == 3
    line = one_line(done)
    expected = r"error: internal error: KeyError: 'run_id'; the traceback is in (.+)"
    match = re.fullmatch(expected, line)
    assert match, line
    log = Path(match.group(1))
    assert log.parent == warehouse.parent / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 'run_id'" in text
    assert "in fault" in text  # the frame where it happened


def test_the_log_goes_to_the_temp_folder_when_the_warehouse_folder_cannot_take_it(
    warehouse, tmp_path
):
    (warehouse.parent / "logs").write_text("a file where the logs folder would be")
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    done = etl("status", "--warehouse", str(warehouse), raise_line="1 / 0", env=env)
    assert done.returncode == 3
    log = Path(one_line(done).rpartition("the traceback is in ")[2])
    assert log.parent == temp / "etl-logs" and "ZeroDivisionError" in log.read_text()


def test_a_full_disk_under_the_output_is_one_line_and_exit_2(warehouse):
    with open("/dev/full", "w") as full:
        done = etl("sql", "SELECT 42 AS answer", "--warehouse", str(warehouse), stdout=full)
    assert done.returncode == 2
    assert one_line(done) == "error: no space left on device"


def test_an_environment_error_is_exit_2_and_names_the_file(warehouse):
    fault = "raise OSError(28, 'No space left on device', '/var/w.duckdb.wal')"
    done = etl("status", "--warehouse", str(warehouse), raise_line=fault)
    assert done.returncode == 2
    assert one_line(done) == "error: no space left on device: /var/w.duckdb.wal"
    assert not (warehouse.parent / "logs").exists()


def test_a_full_disk_behind_a_later_error_is_still_named():
    full = OSError(errno.ENOSPC, "No space left on device", "w.duckdb.wal")
    later = RuntimeError("cannot rollback - no transaction is active")
    later.__context__ = full  # as when a ROLLBACK fails after a failed commit
    assert describe(later, []) == (2, "no space left on device: w.duckdb.wal")


class DeadGatewayError(Exception):
    """Like a Spark error whose message is fetched from a JVM that has died."""

    def __str__(self) -> str:
        raise ConnectionRefusedError(111, "Connection refused")


def test_an_error_whose_message_cannot_be_read_is_still_one_line(tmp_path):
    # The warehouse given, so the traceback's log goes beside it, not into the checkout.
    args = ["run", "--warehouse", str(tmp_path / "w.duckdb")]
    code, message = describe(DeadGatewayError(), args)
    assert code == 3
    assert message.startswith("internal error: DeadGatewayError: ")
    assert "its message could not be read" in message
    later = RuntimeError("publish failed")
    later.__context__ = DeadGatewayError()  # the dead JVM's error behind a later one
    assert describe(later, args)[0] == 3
    assert list((tmp_path / "logs").glob("etl-error-*.log"))


def _tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _tmpfs_available(), reason="needs `unshare` to mount a small tmpfs")
def test_a_real_full_disk_during_a_run_is_one_line_and_exit_2(tmp_path):
    from dfhv import member_text, trip, write_zip

    data = tmp_path / "data"
    rows = [trip(i) for i in range(1, 200)]
    write_zip(data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(rows)})
    disk = tmp_path / "disk"
    disk.mkdir()
    run = (
        f"mount -t tmpfs -o size=64k tmpfs {disk} && exec {sys.executable} -m etl run "
        f"--data-root {data} --warehouse {disk / 'w.duckdb'}"
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", run],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "No space left on device" in last


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_is_exit_130_not_the_audit_code_and_the_next_run_recovers(
    sample_data, tmp_path, signum
):
    """Ctrl-C or a scheduler's SIGTERM: exit 130 and a last line saying so, never 1 ("audit
    failed"); the next run loads everything, as after a kill. (Stopped mid-read, the prefetch
    thread's generator can still print an "Exception ignored" traceback as it is collected.)"""
    warehouse = tmp_path / "w.duckdb"
    args = ["-m", "etl", "run", "--data-root", str(sample_data), "--warehouse", str(warehouse)]
    child = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not warehouse.exists() and time.monotonic() < deadline:  # the run is under way
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted"), stderr
    again = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr

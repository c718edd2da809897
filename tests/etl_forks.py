"""`python -m etl ...` as real processes, without the imports each one pays.

A small command pays more for its imports (pandera and pandas, duckdb, polars: about 2.5 s of
CPU) than for its work. One server process imports them once; each command is a fork of it: a
process of its own that runs `etl`'s entry point as `python -m etl` does, exits through the
interpreter's normal shutdown, and can be killed (SIGKILL gives returncode -9, as from
subprocess). For tests that run dozens of commands (tests/test_crash_points.py).

The server starts no thread of its own before forking: the libraries' import-time threads
(jemalloc's, polars' spill cleaner) do no work a child depends on.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = ("duckdb", "polars", "pandera", "shapely", "yaml", "etl.cli.main")  # pandera: pandas


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`python -m etl *args` in `env`, in this process's working directory, like
    `subprocess.run(..., capture_output=True, text=True, timeout=timeout)`."""
    server = _server()
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        request = {"args": args, "env": env, "cwd": os.getcwd(), "timeout": timeout}
        request |= {"stdout": str(out), "stderr": str(err)}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        if not line:
            raise RuntimeError("the etl fork server stopped (its error is above)")
        reply = json.loads(line)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(["etl", *args], timeout)
        return subprocess.CompletedProcess(
            ["etl", *args], reply["returncode"], out.read_text(), err.read_text()
        )


_started: list[subprocess.Popen] = []


def _server() -> subprocess.Popen:
    if not _started:
        server = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        atexit.register(_stop, server)
        _started.append(server)
    return _started[0]


def _stop(server: subprocess.Popen) -> None:
    server.stdin.close()  # the server's loop ends at end of input
    server.wait(timeout=30)


def _serve() -> dict | None:
    """Fork a child per request and answer with its exit. Returns the request in the child."""
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return request
        deadline = time.monotonic() + request["timeout"]  # guards a hang, as subprocess's does
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(done[1]) if done[0] else None
        print(json.dumps({"returncode": code, "timed_out": done[0] == 0}), flush=True)
    return None


def _become(request: dict) -> None:
    """In the child: the environment, directory, output files and argv of the command, then
    the entry point `python -m etl` runs (etl/__main__.py)."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    import etl.cli.main

    sys.argv = [str(Path(etl.cli.main.__file__).parent.parent / "__main__.py"), *request["args"]]
    etl.cli.main.main()


if __name__ == "__main__":
    for name in PRELOAD:
        importlib.import_module(name)
    child = _serve()
    if child is not None:
        _become(child)

"""A Spark session shared by the Spark tests (local[2]), and a standalone cluster.

Every JVM the tests start runs with JAVA_OPTIONS: on this small data, the JIT's second
compiler (C2) and the parallel collector cost start-up CPU that nothing wins back; measured on
a 2-core machine, a session plus its first catalog statements took 53 s of JVM CPU by default,
25 s with these (README, "Start-up").

The tests here need the `spark` extra and Java 17 (bin/setup installs both); they are marked
`spark`, so `pytest -m 'not spark'` leaves them out on a machine without Java.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.engine.spark.session import JAVA_OPTIONS as DRIVER_OPTIONS
from etl.engine.spark.session import spark_session

# Derby's `test` durability: the metastore's commits are written, not forced to disk (fsync).
# A killed process loses nothing by it (the kill -9 test's case); only a machine that stops
# would, which a test's throw-away catalog does not outlive.
# With C1 alone the JVM reserves 48 MB for compiled code, not 240: a driver that runs several
# loads fills it, stops compiling and then fails a task ("Out of space in CodeCache").
JAVA_OPTIONS = (
    "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC"
    " -Dderby.system.durability=test"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/spark/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.spark)


# What the whole runs in this process cost in metastore calls (printed at the end): the
# figure the catalog's work is measured by, which, unlike seconds, does not depend on load.
METASTORE_CALLS: dict[str, int] = {}


def metastore_calls(spark) -> int:  # type: ignore[no-untyped-def]
    """The calls this JVM's Hive client has made to the metastore so far."""
    metrics = spark._jvm.org.apache.spark.metrics.source.HiveCatalogMetrics
    return int(metrics.METRIC_HIVE_CLIENT_CALLS().getCount())


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    for name, calls in METASTORE_CALLS.items():
        terminalreporter.write_line(f"metastore calls, {name}: {calls}")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("spark-warehouse")
    # local[2,2]: two cores, and a failed task is tried again once, as on a cluster (where
    # `spark.task.maxFailures` says how often): local[2] would fail the job at once.
    session = spark_session(folder, master="local[2,2]", conf={DRIVER_OPTIONS: JAVA_OPTIONS})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_run(spark, sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared sample loaded by the Spark engine, once a session: the readers' file of its
    warehouse. Tests that run again on it (in the session's one catalog) must leave what it
    published as it was, and take `spark_reads` first."""
    from conftest import DEFAULT_CONFIG

    from etl.run.pipeline import EngineChoice, run

    reader = tmp_path_factory.mktemp("spark_run") / "warehouse.duckdb"
    calls = metastore_calls(spark)
    result = run(DEFAULT_CONFIG, sample_data, reader, engine_choice=EngineChoice("spark"))
    METASTORE_CALLS["the sample's run"] = metastore_calls(spark) - calls
    assert result.exit_code == 0, result.message
    return reader


@dataclass(frozen=True)
class Reads:
    """What a user reads from a warehouse: `etl status --json`, `etl train --json` (and the
    folder it wrote) and `etl report --json` (with those models)."""

    status: list[dict[str, Any]]
    train: dict[str, Any]
    models: Path
    report: dict[str, Any]


def reads(warehouse: Path, folder: Path) -> Reads:
    def read(*args: str) -> Any:
        result = CliRunner().invoke(app, [*args, "--warehouse", str(warehouse), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    models = folder / "models"
    train = read("train", "--out", str(models))
    report = read("report", "--models", str(models))
    return Reads(read("status"), train, models, report)


@pytest.fixture(scope="session")
def spark_reads(spark_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Reads:
    """`reads` of the sample's Spark run, as it published (before any later run on it)."""
    return reads(spark_run, tmp_path_factory.mktemp("spark_reads"))


@pytest.fixture(scope="session")
def spark_options() -> list[str]:
    """`etl run --engine spark` options that give its driver (and executors) JAVA_OPTIONS."""
    return [
        "--spark-conf", f"{DRIVER_OPTIONS}={JAVA_OPTIONS}",
        "--spark-conf", f"spark.executor.extraJavaOptions={JAVA_OPTIONS}",
    ]  # fmt: skip


@dataclass(frozen=True)
class SparkCluster:
    """A standalone Spark cluster on 127.0.0.1: its master's URL and its folder (logs, the
    workers' work dirs, where each executor leaves its stderr)."""

    url: str
    folder: Path


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A master and two workers (one core each), started with PySpark's own `spark-class`;
    the workers run the project's Python. Every process is killed after, whatever happened."""
    import pyspark

    folder = tmp_path_factory.mktemp("spark-cluster")
    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_DAEMON_JAVA_OPTS": JAVA_OPTIONS,
    }
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    started: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with (folder / f"{name}.log").open("wb") as log:
            command = [spark_class, *args, "--host", "127.0.0.1", "--webui-port", str(_free_port())]
            started.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
            )

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--port", str(port))
        for n in (1, 2):
            worker = ["org.apache.spark.deploy.worker.Worker", url, "--port", str(_free_port())]
            work = ["--work-dir", str(folder / f"worker{n}")]
            start(f"worker{n}", *worker, "--cores", "1", "--memory", "1g", *work)
        _await_workers(folder / "master.log", 2, started)
        yield SparkCluster(url, folder)
    finally:
        for process in started:
            _kill_group(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _await_workers(master_log: Path, count: int, started: list[subprocess.Popen]) -> None:
    """Until the master has registered `count` workers; a process that died fails the test."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if master_log.read_text(errors="replace").count("Registering worker") >= count:
            return
        if any(p.poll() is not None for p in started):
            break
        time.sleep(0.5)
    pytest.fail(f"the cluster did not start:\n{master_log.read_text(errors='replace')[-2000:]}")


def _kill_group(process: subprocess.Popen) -> None:
    """The process and all it started (the JVM behind spark-class): asked, then forced."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue

"""The load on a real standalone Spark cluster, and a driver killed in the middle of its publish:
`etl run --engine spark` in a driver process of its own (tests/spark/etl_driver.py).

1. On a cluster (a master and two workers on 127.0.0.1, started from PySpark's own scripts),
   not only in local mode: the whole run (staging as tasks on the workers' executors, suites,
   build, publish) on a part of the shared sample; what it publishes equals what the DuckDB
   engine publishes from the same files.
2. What that run published is the state the same driver is then killed over (kill -9 in its
   next run's publish, on local[1]): it stays readable and unchanged, and the next run, in a new
   process, converges. Reusing the cluster run's driver and warehouse spares the kill test a JVM
   start and a whole first load of its own; so the two tests run in this order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dfhv import member_text, trip, write_zip

from etl.engine.spark.readers import tables_folder

from .conftest import SparkCluster
from .etl_driver import DONE
from .test_spark_run import content, rows

# A whole run on a cluster takes minutes on a busy machine; pytest's default limit is 10.
pytestmark = pytest.mark.timeout(3600)

DISPATCH_FILES = 8  # of the sample's 365: the trips the courier's are matched against
DRIVER = Path(__file__).with_name("etl_driver.py")
SPARK_RUN = ["run", "--engine", "spark"]


def part_of(sample: Path, root: Path) -> Path:
    """The sample's boundary, its courier files (12, with planted bad rows) and a few dispatch
    files, as a data root of their own."""
    shutil.copytree(sample / "dc_reference", root / "dc_reference")
    shutil.copytree(sample / "company" / "courier", root / "company" / "courier")
    dispatch = sorted((sample / "company" / "dispatch").iterdir())[:DISPATCH_FILES]
    (root / "company" / "dispatch").mkdir()
    for path in dispatch:
        shutil.copy2(path, root / "company" / "dispatch" / path.name)
    return root


class Driver:
    """One process that runs `etl` commands one after another (tests/spark/etl_driver.py):
    they share its JVM, which starts once. Killed on leaving, if still running."""

    def __init__(self, log: Path) -> None:
        self.log = log
        # A cluster's executors reach the driver on 127.0.0.1.
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, text=True, env=env,
            )  # fmt: skip

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def run(self, args: list[str], env: dict[str, str] | None = None) -> int | None:
        """`etl run --engine spark` with `args`: its exit code, or None if it ended the
        process."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps([[*SPARK_RUN, *args], env or {}]) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:  # the command's output, then its exit code
            if line.startswith(DONE):
                return int(line.removeprefix(DONE))
        return None


@dataclass(frozen=True)
class ClusterLoad:
    """The cluster run: its data root, `etl run` options (but the master), the DuckDB run's
    warehouse on the same files, the driver process it ran in and its exit code."""

    data: Path
    options: list[str]
    duck: Path
    reader: Path
    driver: Driver
    exit_code: int | None


@pytest.fixture(scope="module")
def cluster_load(
    spark_cluster: SparkCluster, sample_data: Path, spark_options: list[str], tmp_path_factory
) -> Iterator[ClusterLoad]:
    from conftest import DEFAULT_CONFIG

    from etl.run.pipeline import run

    folder = tmp_path_factory.mktemp("cluster_load")
    data = part_of(sample_data, folder / "data")
    duck = folder / "duckdb.duckdb"
    assert run(DEFAULT_CONFIG, data, duck).exit_code == 0
    reader = folder / "spark.duckdb"
    options = ["--data-root", str(data), "--warehouse", str(reader), *spark_options]
    with Driver(folder / "driver.log") as driver:
        code = driver.run(["--master", spark_cluster.url, *options])
        yield ClusterLoad(data, options, duck, reader, driver, code)


def test_the_load_on_a_standalone_cluster_publishes_what_duckdb_does(
    cluster_load: ClusterLoad, spark_cluster: SparkCluster
) -> None:
    reader, duck = cluster_load.reader, cluster_load.duck
    assert cluster_load.exit_code == 0, cluster_load.driver.log.read_text()[-3000:]
    with duckdb.connect(str(reader), read_only=True) as con:
        con.execute(f"ATTACH '{duck}' AS duck (READ_ONLY)")
        trips = content(con, "curated.trips")
        assert trips[0] > 1000
        assert trips == content(con, "duck.curated.trips")
    for sql in (
        "SELECT source, file, line, list_sort(reasons) FROM quality.quarantine",
        "SELECT source, path, status, rows_read, rows_staged, rows_quarantined FROM quality.files",
    ):
        got = sorted(rows(reader, sql), key=repr)
        assert got, sql
        assert got == sorted(rows(duck, sql), key=repr), sql
    # The tasks ran on both workers' executors, not in the driver.
    executors = sorted(spark_cluster.folder.glob("worker*/app-*/*/stderr"))
    assert {p.relative_to(spark_cluster.folder).parts[0] for p in executors} == {
        "worker1",
        "worker2",
    }


# -- a driver killed in its publish -------------------------------------------------------------


def etl(args: list[str]) -> subprocess.CompletedProcess:
    """`python -m etl run --engine spark` with `args`, as a process of its own."""
    command = [sys.executable, "-m", "etl", *SPARK_RUN, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def wait_for_jvm_to_end(folder: Path) -> None:
    """A killed driver's JVM ends when it sees its parent gone; the next run's may only start
    then (the embedded metastore takes one process at a time)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [
            p for p in Path("/proc").iterdir()
            if p.name.isdigit() and str(folder) in _cmdline(p)
        ]  # fmt: skip
        if not running:
            return
        time.sleep(0.5)
    raise AssertionError("the killed driver's JVM did not end")


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def published(reader: Path) -> tuple:
    """What the readers see: the trips and the runs that published."""
    with duckdb.connect(str(reader), read_only=True) as con:
        trips = content(con, "curated.trips")
        runs = con.execute("SELECT run_id FROM quality.runs WHERE published ORDER BY 1").fetchall()
        staged = con.execute("SELECT count(*) FROM staging.dc_taxi").fetchone()
    return trips, runs, staged


def test_a_driver_killed_in_its_publish_leaves_what_was_published(
    cluster_load: ClusterLoad,
) -> None:
    """After the cluster test (it reads what the cluster run published, which this changes)."""
    assert cluster_load.exit_code == 0, "the cluster run, which this starts from, failed"
    reader, driver = cluster_load.reader, cluster_load.driver
    paths = ["--master", "local[1]", *cluster_load.options]
    before = published(reader)
    assert before[0][0] > 1000 and len(before[1]) == 1 and before[2] == (0,)

    february = [trip(100 + k, DURATION=str(600 + k * 30)) for k in range(1, 31)]
    files = {"taxi_2017_02.txt": member_text(february)}
    write_zip(cluster_load.data / "dc_taxi" / "taxi_2017.zip", files)
    # All written, not yet switched.
    assert driver.run(paths, {"ETL_CRASH_AT": "recorded"}) is None
    assert driver.process.wait(timeout=600) == -9
    assert published(reader) == before
    wait_for_jvm_to_end(tables_folder(reader))

    converged = etl(paths)
    assert converged.returncode == 0, converged.stderr[-2000:]
    trips, runs, staged = published(reader)
    assert trips[0] == before[0][0] + 30 and staged == (30,)
    assert len(runs) == 2 and runs[0] == before[1][0]
    statuses = rows(reader, "SELECT status, count(*) FROM quality.runs GROUP BY 1 ORDER BY 1")
    assert statuses == [("crashed", 1), ("published", 2)]
    # Nothing of the dead run's is left: each version on disk is one a reader's view reads.
    versions = tables_folder(reader) / "tables" / "etl_versions.db"
    read = {v[0] for v in rows(reader, "SELECT sql FROM duckdb_views() WHERE NOT internal")}
    for folder in versions.iterdir():
        assert any(str(folder) + "/" in sql for sql in read), folder.name

"""The load on a real standalone Spark cluster (a master and two workers on 127.0.0.1, started
from PySpark's own scripts), not only in local mode: the whole `etl run --engine spark
--master spark://...` (staging as tasks on the workers' executors, suites, build, publish) from
a driver process of its own, on a part of the shared sample; what it publishes equals what the
DuckDB engine publishes from the same files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from .test_spark_run import content, rows

# A whole run on a cluster takes minutes on a busy machine; pytest's default limit is 10.
pytestmark = pytest.mark.timeout(3600)

DISPATCH_FILES = 8  # of the sample's 365: the trips the courier's are matched against


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


def test_the_load_on_a_standalone_cluster_publishes_what_duckdb_does(
    spark_cluster, sample_data: Path, spark_options: list[str], tmp_path: Path
) -> None:
    from conftest import DEFAULT_CONFIG

    from etl.run.pipeline import run

    data = part_of(sample_data, tmp_path / "data")
    duck = tmp_path / "duckdb.duckdb"
    assert run(DEFAULT_CONFIG, data, duck).exit_code == 0
    reader = tmp_path / "spark.duckdb"
    command = [sys.executable, "-m", "etl", "run", "--engine", "spark"]
    command += ["--master", spark_cluster.url, "--data-root", str(data)]
    command += ["--warehouse", str(reader), *spark_options]
    # The driver listens on 127.0.0.1, where the executors reach it.
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]

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

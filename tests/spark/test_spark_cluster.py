"""`etl run --engine spark` on a real standalone Spark cluster (a master and two workers on
127.0.0.1), not only in local mode: the files staged as tasks on the workers' executors, each
file's counts and the published trips those of the DuckDB engine on the same sample."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

FILES = "SELECT path, status, rows_read, rows_staged, rows_quarantined FROM quality.files"
TRIPS = "SELECT count(*), count(DISTINCT trip_id) FROM curated.trips"


def test_etl_run_on_a_standalone_cluster_loads_the_sample_as_duckdb(
    spark_cluster, sample_data: Path, sample_warehouse, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    command = [sys.executable, "-m", "etl", "run", "--engine", "spark",
               "--master", spark_cluster.url, "--spark-conf", "spark.executor.memory=768m",
               "--data-root", str(sample_data), "--warehouse", str(warehouse)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def read(path: Path, sql: str) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as con:
            return sorted(con.execute(sql).fetchall())

    on_cluster = read(warehouse, FILES)
    assert len(on_cluster) > 400
    assert on_cluster == read(sample_warehouse.wh.path, FILES)
    assert all(read_ == staged + quarantined for *_, read_, staged, quarantined in on_cluster)
    assert read(warehouse, TRIPS) == read(sample_warehouse.wh.path, TRIPS)
    # The tasks ran on both workers' executors, not in the driver.
    executors = sorted(spark_cluster.folder.glob("worker*/app-*/*/stderr"))
    assert {p.relative_to(spark_cluster.folder).parts[0] for p in executors} == {
        "worker1",
        "worker2",
    }

"""The load's staging on a real standalone Spark cluster (a master and two workers on
127.0.0.1), not only in local mode: files as tasks on the workers' executors, each running the
toolkit's reader, mapping and row checks, with the DuckDB load's counts for every file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

JOB = Path(__file__).with_name("cluster_job.py")
SOURCES = ["courier"]  # 12 files: a task costs seconds on a shared machine


def test_staging_on_a_standalone_cluster_counts_every_file_as_duckdb(
    spark_cluster, sample_data: Path, sample_warehouse, tmp_path: Path
) -> None:
    command = [sys.executable, str(JOB), spark_cluster.url, str(sample_data), str(tmp_path)]
    command += SOURCES
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    counts = json.loads((tmp_path / "counts.json").read_text())
    with duckdb.connect(str(sample_warehouse.wh.path), read_only=True) as con:
        expected = con.execute(
            "SELECT path, rows_read, rows_staged, rows_quarantined FROM quality.files "
            "WHERE source IN (SELECT unnest(?)) ORDER BY path",
            [list(SOURCES)],
        ).fetchall()
    assert len(expected) == 12
    got = [(p, c["rows_read"], c["rows_staged"], c["rows_quarantined"]) for p, c in counts.items()]
    assert sorted(got) == expected
    assert all(read == staged + quarantined for _, read, staged, quarantined in got)
    assert sum(q for *_, q in got) > 0  # the sample's planted bad rows were quarantined
    # The tasks ran on both workers' executors, not in the driver.
    executors = sorted(spark_cluster.folder.glob("worker*/app-*/*/stderr"))
    assert {p.relative_to(spark_cluster.folder).parts[0] for p in executors} == {
        "worker1",
        "worker2",
    }

"""The engine seam's loading contract (etl.engine.base.Engine), on the DuckDB engine.

The run hands batches to the engine, which writes them behind the read of the next one: every
batch handed over is in the table once loading ends, a failed write is not lost, and an error
that stops a load is the one the run reports, with the warehouse still usable to record it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from etl.config.load import load_config
from etl.engine.duckdb.engine import DuckDBEngine
from etl.paths import DEFAULTS_DIR, MODELS_DIR
from etl.readers import formats

BIG = 2_000_000  # rows of a batch whose write takes a while
QUARANTINE = pl.DataFrame(
    schema={"run_id": pl.Utf8, "source": pl.Utf8, "file": pl.Utf8, "line": pl.Int64,
            "reasons": pl.List(pl.Utf8), "raw": pl.Utf8}
)  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path):
    engine = DuckDBEngine(
        tmp_path / "warehouse.duckdb",
        MODELS_DIR,
        load_config(DEFAULTS_DIR / "sources.yaml", formats()),
    )
    empty = pl.DataFrame(schema={"_run_id": pl.Utf8, "_file": pl.Utf8, "n": pl.Int64})
    engine.create_staging("things", empty, [])
    yield engine
    engine.close()


def rows(run_id: str, file: str, numbers: range) -> pl.DataFrame:
    return pl.DataFrame({"_run_id": run_id, "_file": file, "n": list(numbers)})


def quarantined(run_id: str, file: str) -> pl.DataFrame:
    row = {"run_id": run_id, "source": "things", "file": file, "line": 1, "reasons": ["x"],
           "raw": "{}"}  # fmt: skip
    return pl.concat([QUARANTINE, pl.DataFrame([row], schema=QUARANTINE.schema)])


def test_every_batch_handed_over_is_written_when_loading_ends(engine):
    with engine.loading():
        for k in range(5):
            batch = rows("r1", f"f{k}", range(k * 10, k * 10 + 10))
            engine.stage_batch("things", batch, QUARANTINE)
    assert engine.query("SELECT count(*), sum(n) FROM staging.things") == [(50, sum(range(50)))]


def test_a_batch_is_written_only_while_loading(engine):
    with pytest.raises(RuntimeError, match="only while loading"):
        engine.stage_batch("things", rows("r1", "f", range(3)), QUARANTINE)
    with engine.loading():
        pass
    with pytest.raises(RuntimeError, match="only while loading"):
        engine.stage_batch("things", rows("r1", "f", range(3)), QUARANTINE)


def test_a_write_that_fails_is_raised_when_loading_ends(engine):
    bad = pl.DataFrame({"_run_id": "r1", "_file": "f", "n": ["not a number"]})
    with pytest.raises(Exception, match="not a number"), engine.loading():
        engine.stage_batch("things", bad, QUARANTINE)


def test_an_error_that_stops_a_load_is_the_one_raised_after_the_write_in_flight(engine):
    """The run records the error next, and the next run recovers what was written: neither may
    race a write still going on in the writer thread."""
    bad = pl.DataFrame({"_run_id": "r1", "_file": "f", "n": ["not a number"]})
    with pytest.raises(ValueError, match="the reader failed"), engine.loading():
        engine.stage_batch("things", bad, QUARANTINE)  # fails in the writer thread
        raise ValueError("the reader failed")
    with pytest.raises(ValueError, match="the reader failed"), engine.loading():
        engine.stage_batch("things", rows("r1", "f", range(BIG)), QUARANTINE)
        raise ValueError("the reader failed")
    assert engine.query("SELECT count(*) FROM staging.things") == [(BIG,)]
    engine.start_run("r2", "sources.yaml", "data")
    engine.fail_run("r2", 3, "ValueError: the reader failed")
    assert engine.query("SELECT status, exit_code FROM quality.runs") == [("error", 3)]


def test_a_discarded_file_leaves_none_of_its_rows_of_this_run(engine):
    with engine.loading():
        engine.stage_batch("things", rows("old", "a", range(3)), QUARANTINE)
        engine.stage_batch("things", rows("r1", "a", range(4)), quarantined("r1", "a"))
        engine.stage_batch("things", rows("r1", "b", range(5)), quarantined("r1", "b"))
        engine.stage_batch("things", rows("r1", "c", range(BIG)), quarantined("r1", "c"))
        engine.discard_file("r1", "things", "a")
        engine.discard_file("r1", "things", "c")  # waits for the write in flight first
    assert engine.query(
        "SELECT _run_id, _file, count(*) FROM staging.things GROUP BY ALL ORDER BY ALL"
    ) == [("old", "a", 3), ("r1", "b", 5)]
    assert engine.query("SELECT file FROM quality.quarantine") == [("b",)]

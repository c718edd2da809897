"""Opening the warehouse, upgrading its fixed tables and bounding DuckDB's memory."""

from __future__ import annotations

import pytest

from etl.engine.duckdb import warehouse


@pytest.fixture
def open_with(tmp_path, monkeypatch):
    """A warehouse opened with ETL_DUCKDB_MEMORY set to the given cap."""

    def open_(cap: str):
        monkeypatch.setenv("ETL_DUCKDB_MEMORY", cap)
        return warehouse.connect(tmp_path / "w.duckdb")

    return open_


def memory(con) -> float:
    return warehouse._bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def test_connect_caps_duckdb_memory_from_the_environment(open_with):
    with open_with("600MB") as con:
        assert memory(con) == pytest.approx(600e6, rel=0.01)


@pytest.mark.parametrize(
    ("cap", "inside"),
    [("1GB", 256e6), ("100MB", 100e6)],  # lowered for the block; a lower cap never raised
)
def test_memory_limit_caps_a_block_and_restores_the_cap(open_with, cap, inside):
    with open_with(cap) as con:
        before = memory(con)
        with warehouse.memory_limit(con, "256MB"):
            assert memory(con) == pytest.approx(inside, rel=0.01)
        assert memory(con) == pytest.approx(before, rel=1e-3)  # as DuckDB rounds it


def test_memory_limit_restores_the_cap_when_the_block_fails(open_with):
    with open_with("1GB") as con:
        with pytest.raises(ValueError), warehouse.memory_limit(con, "256MB"):
            raise ValueError("a batch failed")
        assert memory(con) == pytest.approx(1e9, rel=0.01)


@pytest.mark.parametrize("size", ["1 GiB", "953.6 MiB", "256MB", "512 KiB", "2TB"])
def test_sizes_read_as_duckdb_writes_them(size):
    assert warehouse._bytes(size) > 0


def test_a_size_that_is_not_one_is_a_one_line_error():
    with pytest.raises(warehouse.WarehouseError, match="not a memory size: 'lots'"):
        warehouse._bytes("lots")


def test_a_warehouse_from_before_mtime_ns_gets_the_column_and_keeps_its_rows(tmp_path):
    import duckdb

    path = tmp_path / "w.duckdb"
    with warehouse.connect(path) as con:
        con.execute("ALTER TABLE quality.files DROP COLUMN mtime_ns")
        con.execute(
            "INSERT INTO quality.files (run_id, source, path, status, recorded_at) "
            "VALUES ('r1', 'courier', 'c.csv', 'loaded', now())"
        )
    with warehouse.connect(path) as con:
        rows = con.execute("SELECT path, mtime_ns FROM quality.manifest").fetchall()
    assert rows == [("c.csv", None)]
    with duckdb.connect(str(path), read_only=True) as con:
        columns = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'files'"
            ).fetchall()
        ]
    assert columns[-1] == "mtime_ns"

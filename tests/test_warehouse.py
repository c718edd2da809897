"""Opening the warehouse and bounding DuckDB's memory."""

from __future__ import annotations

import pytest

from etl.publish import warehouse


def memory(con) -> float:
    return warehouse._bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def test_connect_caps_duckdb_memory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DUCKDB_MEMORY", "600MB")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        assert memory(con) == pytest.approx(600e6, rel=0.01)


def test_memory_limit_lowers_the_cap_for_a_block_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DUCKDB_MEMORY", "1GB")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        with warehouse.memory_limit(con, "256MB"):
            assert memory(con) == pytest.approx(256e6, rel=0.01)
        assert memory(con) == pytest.approx(1e9, rel=0.01)


def test_memory_limit_never_raises_a_lower_configured_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DUCKDB_MEMORY", "100MB")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        with warehouse.memory_limit(con, "256MB"):
            assert memory(con) == pytest.approx(100e6, rel=0.01)
        assert memory(con) == pytest.approx(100e6, rel=0.01)


def test_memory_limit_restores_the_cap_when_the_block_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_DUCKDB_MEMORY", "1GB")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        with pytest.raises(ValueError), warehouse.memory_limit(con, "256MB"):
            raise ValueError("a batch failed")
        assert memory(con) == pytest.approx(1e9, rel=0.01)


@pytest.mark.parametrize("size", ["1 GiB", "953.6 MiB", "256MB", "512 KiB", "2TB"])
def test_sizes_read_as_duckdb_writes_them(size):
    assert warehouse._bytes(size) > 0


def test_a_size_that_is_not_one_is_a_one_line_error():
    with pytest.raises(warehouse.WarehouseError, match="not a memory size: 'lots'"):
        warehouse._bytes("lots")

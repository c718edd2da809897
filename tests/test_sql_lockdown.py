"""`etl sql` runs one read-only SELECT: every write, escape and setting change is refused.

Each attack is one of issue 16's reproductions. After each, the warehouse file, another
warehouse beside it and the folders around them are byte for byte as they were.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.engine.duckdb.warehouse import connect


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A warehouse with a curated table, another DuckDB file, and a data root with a CSV."""
    con = connect(tmp_path / "w.duckdb")
    con.execute("CREATE SCHEMA IF NOT EXISTS curated")
    con.execute("CREATE TABLE curated.trips AS SELECT range AS trip_id FROM range(5)")
    con.close()
    with duckdb.connect(str(tmp_path / "other.duckdb")) as other:
        other.execute("CREATE TABLE t AS SELECT 42 AS answer")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fares.csv").write_text("fare\n12.5\n7\n")
    (tmp_path / "secret.txt").write_text("not for analysts\n")
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with the sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sql(site: Path, query: str, *extra: str):
    return CliRunner().invoke(app, ["sql", query, "--warehouse", str(site / "w.duckdb"), *extra])


def refused(site: Path, query: str) -> str:
    """Run an attack; it must fail in one line, exit 2, and change no file."""
    before = snapshot(site)
    result = sql(site, query)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    assert snapshot(site) == before
    return lines[0]


def test_the_attach_use_detach_drop_chain_is_refused(site):
    chain = (
        f"ATTACH '{site / 'other.duckdb'}' AS n (READ_WRITE); USE n; DETACH w; "
        f"ATTACH '{site / 'w.duckdb'}' AS x (READ_WRITE); DROP TABLE x.curated.trips; SELECT 1"
    )
    assert "6 statements" in refused(site, chain)
    with duckdb.connect(str(site / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM curated.trips").fetchone() == (5,)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("ATTACH '{site}/other.duckdb' AS n (READ_WRITE)", "ATTACH"),
        ("DETACH w", "DETACH"),
        ("USE memory", "SET"),
        ("DROP TABLE curated.trips", "DROP"),
        ("COPY (SELECT 1) TO '{site}/other.duckdb'", "COPY"),
        ("COPY curated.trips TO '{site}/data/out.csv'", "COPY"),
        ("EXPORT DATABASE '{site}/export'", "EXPORT"),
        ("IMPORT DATABASE '{site}/export'", "PRAGMA"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("RESET memory_limit", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CALL checkpoint()", "CALL"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", "CREATE"),
        ("UPDATE curated.trips SET trip_id = 0", "UPDATE"),
    ],
)
def test_every_statement_but_a_select_is_refused(site, query, kind):
    message = refused(site, query.format(site=site))
    assert f"{kind} is not allowed" in message
    assert not (site / "export").exists() and not (site / "data" / "out.csv").exists()


def test_several_statements_are_refused_and_the_first_does_not_run(site):
    message = refused(site, f"COPY (SELECT 1) TO '{site}/data/x.csv'; SELECT 1")
    assert "2 statements" in message
    assert not (site / "data" / "x.csv").exists()


@pytest.mark.parametrize("query", ["", ";", "  ;  ; ", "/* only a comment */"])
def test_an_empty_query_is_one_line_and_exit_2(site, query):
    assert "empty query" in refused(site, query)


def test_a_select_cannot_smuggle_a_statement_through_query(site):
    refused(site, "SELECT * FROM query('ATTACH ''" + str(site / "other.duckdb") + "'' AS n')")


def test_files_outside_the_data_root_cannot_be_read(site):
    for path in (site / "secret.txt", site / "data" / ".." / "secret.txt", Path("/etc/hostname")):
        assert "Permission Error" in refused(site, f"SELECT * FROM read_text('{path}')")
    assert "Permission Error" in refused(site, f"SELECT * FROM glob('{site}/*')")


def test_a_select_reads_the_warehouse_and_files_under_the_data_root(site):
    result = sql(site, "SELECT count(*) AS n FROM curated.trips", "--format", "csv")
    assert result.exit_code == 0 and result.output.split() == ["n", "5"]
    query = f"SELECT sum(fare) AS total FROM read_csv('{site / 'data' / 'fares.csv'}')"
    result = sql(site, query, "--format", "csv", "--data-root", str(site / "data"))
    assert result.exit_code == 0 and result.output.split() == ["total", "19.5"]
    result = sql(site, "DESCRIBE curated.trips", "--format", "csv")
    assert result.exit_code == 0 and "trip_id" in result.output


def test_a_parameterised_internal_query_still_runs(site):
    from etl.report.query import run_query

    assert run_query(site / "w.duckdb", "SELECT $n::INT * 2 AS x", {"n": 21}) == (["x"], [(42,)])


def test_a_link_under_the_data_root_does_not_lead_out_of_it(site):
    (site / "data" / "link.txt").symlink_to(site / "secret.txt")
    query = f"SELECT * FROM read_text('{site / 'data' / 'link.txt'}')"
    result = sql(site, query, "--data-root", str(site / "data"))
    assert result.exit_code == 2 and "Permission Error" in result.output
    assert "not for analysts" not in result.output

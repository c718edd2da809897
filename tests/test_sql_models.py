"""The SQL models under warehouse/models: discovery, build order and materialization."""

from __future__ import annotations

import duckdb
import pytest

from etl.engine.duckdb import sql_models as models


@pytest.mark.parametrize("first, then", [("view", "table"), ("table", "view")])
def test_a_model_whose_materialization_changed_is_rebuilt_as_the_new_kind(tmp_path, first, then):
    """Editing a model's `-- materialized:` line must not fail the next run on the old object."""
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    model = folder / "numbers.sql"
    con = duckdb.connect()
    for kind in (first, then):
        model.write_text(f"-- materialized: {kind}\nSELECT range AS n FROM range(3)\n")
        models.build(con, models.discover(tmp_path / "models"))
        table_type = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'numbers'"
        ).fetchall()
        assert table_type == [("VIEW" if kind == "view" else "BASE TABLE",)]
        assert con.execute("SELECT sum(n) FROM curated.numbers").fetchone() == (3,)


def test_a_generated_column_is_computed_on_read_and_follows_incremental_updates(tmp_path):
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    (folder / "rows.sql").write_text(
        "-- materialized: incremental\n"
        "-- generated: row_id = source || ':' || n\n"
        "SELECT source, n, _file FROM main.incoming\n"
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE incoming AS SELECT 'a' AS source, 1 AS n, 'f1' AS _file")
    found = models.discover(tmp_path / "models")
    models.build(con, found)
    con.execute("INSERT INTO incoming VALUES ('b', 2, 'f2')")
    models.build(con, found, models.Changes(files=("f2",), sources=()))

    assert con.execute("SELECT row_id, n FROM curated.rows ORDER BY n").fetchall() == [
        ("a:1", 1),
        ("b:2", 2),
    ]
    generated = con.execute(
        "SELECT column_name, is_generated FROM information_schema.columns "
        "WHERE table_name = 'rows' ORDER BY ordinal_position"
    ).fetchall()
    assert generated[0] == ("row_id", "ALWAYS")  # first, as declared, and not stored


def test_a_view_cannot_declare_a_generated_column(tmp_path):
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    (folder / "v.sql").write_text("-- materialized: view\n-- generated: x = 1\nSELECT 1 AS y\n")
    with pytest.raises(models.SqlModelError, match=r"v\.sql: a view has no generated columns"):
        models.discover(tmp_path / "models")


def _compression(con: duckdb.DuckDBPyConnection, table: str, column: str) -> set[str]:
    con.execute("CHECKPOINT")
    rows = con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info(?) "
        "WHERE column_name = ? AND segment_type = 'VARCHAR'",
        [table, column],
    ).fetchall()
    return {compression for (compression,) in rows}


def test_an_uncompressed_column_is_stored_as_it_is_and_the_others_are_not(tmp_path):
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    (folder / "ids.sql").write_text(
        "-- uncompressed: id\nSELECT 'record-' || range AS id, 'same' AS kind FROM range(100000)\n"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    models.build(con, models.discover(tmp_path / "models"))
    assert _compression(con, "curated.ids", "id") == {"Uncompressed"}
    assert _compression(con, "curated.ids", "kind") != {"Uncompressed"}
    assert con.execute("SELECT count(DISTINCT id), max(kind) FROM curated.ids").fetchone() == (
        100000,
        "same",
    )


@pytest.mark.parametrize(
    "header, message",
    [
        ("-- materialized: view\n-- uncompressed: y\n", r"v\.sql: a view stores no columns"),
        ("-- uncompressed: y,z\n", r"v\.sql: uncompressed: no column z"),
    ],
)
def test_an_uncompressed_column_must_be_a_stored_column_of_the_select(tmp_path, header, message):
    folder = tmp_path / "models" / "curated"
    folder.mkdir(parents=True)
    (folder / "v.sql").write_text(f"{header}SELECT 1 AS y\n")
    with pytest.raises(models.SqlModelError, match=message):
        models.build(duckdb.connect(), models.discover(tmp_path / "models"))

"""curated.trips as a view (etl/engine/duckdb/trips_view.py): the model's rows, exactly, of
published runs only, and an older warehouse's table turned into the view with its rows kept."""

from __future__ import annotations

import duckdb
import polars as pl
from conftest import DEFAULT_CONFIG

from etl.config.load import load_config
from etl.engine.duckdb import sql_models
from etl.engine.duckdb.trips_view import with_text_id
from etl.engine.duckdb.warehouse import create_table, object_kind

SAME_ROWS = """
SELECT (SELECT count(*) FROM (SELECT * FROM curated.trips EXCEPT ALL SELECT * FROM {other})),
       (SELECT count(*) FROM (SELECT * FROM {other} EXCEPT ALL SELECT * FROM curated.trips)),
       (SELECT count(*) FROM {other})
"""


def test_the_view_has_the_rows_columns_and_types_of_the_models_table(sample_warehouse, tmp_path):
    copy = sample_warehouse.copy(tmp_path)
    trips = next(m for m in sql_models.discover(config=config()) if m.name == "curated.trips")
    with duckdb.connect(str(copy.path)) as con:
        assert object_kind(con, "curated.trips") == "VIEW"
        create_table(con, "main.model_table", trips.sql, trips.generated, trips.uncompressed)
        only_view, only_table, rows = con.execute(SAME_ROWS.format(other="model_table")).fetchone()
        described = [
            con.execute(f"DESCRIBE {name}").fetchall() for name in ("curated.trips", "model_table")
        ]
    assert (only_view, only_table) == (0, 0)
    assert rows > 1000
    assert [c[:2] for c in described[0]] == [c[:2] for c in described[1]]


def test_the_rows_of_a_run_not_published_are_not_trips(sample_warehouse, tmp_path):
    """A run that loaded and has not published (or died loading) leaves staged rows behind;
    they become trips in the transaction that marks their run published, not before."""
    copy = sample_warehouse.copy(tmp_path)
    with duckdb.connect(str(copy.path)) as con:
        before = con.execute("SELECT count(*) FROM curated.trips").fetchone()[0]
        con.execute(
            "INSERT INTO quality.runs (run_id, started_at, status, published) "
            "VALUES ('later', now(), 'running', false)"
        )
        con.execute(
            "INSERT INTO staging.dc_taxi SELECT * REPLACE ('later' AS _run_id, "
            "_record_id || 'x' AS _record_id) FROM staging.dc_taxi LIMIT 3"
        )
        hidden = con.execute("SELECT count(*) FROM curated.trips").fetchone()[0]
        con.execute("UPDATE quality.runs SET published = true WHERE run_id = 'later'")
        shown = con.execute("SELECT count(*) FROM curated.trips").fetchone()[0]
    assert (hidden, shown) == (before, before + 3)


def test_an_older_warehouses_table_becomes_the_view_with_its_rows(sample_warehouse, tmp_path):
    """A warehouse from before: curated.trips a table, staging without text ids. Its next run,
    with nothing new to load, turns the table into the view: the same rows, none lost."""
    copy = sample_warehouse.copy(tmp_path)
    with duckdb.connect(str(copy.path)) as con:
        con.execute("CREATE TABLE main.published AS SELECT * FROM curated.trips")
        con.execute("DROP VIEW curated.trips")
        con.execute("CREATE TABLE curated.trips AS SELECT * FROM main.published")
        con.execute("DROP TABLE intermediate.stored_trips")
        con.execute("ALTER TABLE staging.dc_taxi DROP COLUMN _record_id")
        con.execute("UPDATE quality.runs SET models_sha = 'before the view'")
    result = copy.run()
    assert result.exit_code == 0, result.message
    with duckdb.connect(str(copy.path), read_only=True) as con:
        assert object_kind(con, "curated.trips") == "VIEW"
        assert con.execute(SAME_ROWS.format(other="main.published")).fetchone()[:2] == (0, 0)
        missing = "SELECT count(*) FROM staging.dc_taxi WHERE _record_id IS NULL"
        assert con.execute(missing).fetchone()[0] == 0


def test_a_text_id_is_the_id_the_sql_model_computes():
    """Staged with the rows (once a file's scope) or filled in by SQL: the same text."""
    source = config().sources["dc_taxi"]
    staged = pl.DataFrame(
        {
            "_file": ["dc_taxi/taxi_2016.zip!a.txt", "dc_taxi/taxi_2017.zip!b.txt", "other.txt"],
            "source_record_id": [7, 12345678901, None],
        }
    )
    sql = f"SELECT {sql_models.record_id(source)} AS id FROM staged"
    expected = duckdb.sql(sql).pl()["id"].to_list()
    assert expected == ["2016-7", "2017-12345678901", None]
    assert with_text_id(staged, source)["_record_id"].to_list() == expected
    one_file = staged.head(1)
    assert with_text_id(one_file, source)["_record_id"].to_list() == ["2016-7"]
    unscoped = pl.DataFrame({"_file": ["other.txt"], "source_record_id": [5]})
    assert with_text_id(unscoped, source)["_record_id"].to_list() == ["-5"]


def config():
    return load_config(DEFAULT_CONFIG)

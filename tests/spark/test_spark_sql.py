"""The SQL on Spark (etl.engine.spark.sql, .build, .match) held to DuckDB's answers.

- each of the transpiler's rules on a small case: the Spark SQL it writes, and the value Spark
  gets from it equals the value DuckDB gets from the original;
- the matching's Spark twin on a dense conflict fixture: DuckDB's pairs, scores and rounds;
- the whole curated build on the shared sample's staging rows: every intermediate view,
  the matches, curated.trips, dim_date, the analyst views and the control totals equal those
  of the DuckDB warehouse that loaded the same rows; totals that do not add up raise.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_match import CAPITOL, T0, east, load, north

from etl.config.load import load_config
from etl.engine.duckdb import sql_models
from etl.engine.duckdb.match import RESULT_COLUMNS, MatchTolerance
from etl.engine.duckdb.match import match_trips as duckdb_match_trips
from etl.engine.spark import build, sql
from etl.engine.spark.match import match_trips
from etl.errors import ReconciliationError
from etl.paths import DDL_DIR, MODELS_DIR, PROJECT_ROOT
from etl.reference.calendar import build_dim_date

# (rule, DuckDB SQL, the Spark SQL expected): the rule table of etl.engine.spark.sql, and what
# sqlglot alone gets wrong or Spark refuses.
RULES = [
    ("enum_cast", "SELECT 'hour'::curated.time_precision",
     "SELECT TRY_CAST('hour' AS STRING)"),
    ("try_cast", "SELECT CAST('12' AS INTEGER)", "SELECT TRY_CAST('12' AS INT)"),
    ("timezone", "SELECT timezone('America/New_York', TIMESTAMPTZ '2024-07-01 12:00:00+00')",
     "SELECT FROM_UTC_TIMESTAMP(CAST(TRY_CAST('2024-07-01 12:00:00+00' AS TIMESTAMP) "
     "AS TIMESTAMP), 'America/New_York')"),
    ("row", "SELECT row(1, 'a')", "SELECT STRUCT(1 AS col1, 'a' AS col2)"),
    ("list_has_any", "SELECT list_has_any(['a', 'b'], ['b'])",
     "SELECT ARRAYS_OVERLAP(ARRAY('a', 'b'), ARRAY('b'))"),
    ("quantile_cont", "SELECT quantile_cont(x, 0.95) FROM (VALUES (1), (2), (4)) AS t(x)",
     "SELECT PERCENTILE(x, 0.95) FROM VALUES (1), (2), (4) AS t(x)"),
    ("epoch", "SELECT epoch(TIMESTAMPTZ '2020-01-01 00:00:01.25+00')",
     "SELECT UNIX_MICROS(TRY_CAST('2020-01-01 00:00:01.25+00' AS TIMESTAMP)) / 1e6"),
    ("isodow", "SELECT isodow(DATE '2024-01-07')",
     "SELECT WEEKDAY(TRY_CAST('2024-01-07' AS DATE)) + 1"),
    ("divide", "SELECT 7 / 2", "SELECT TRY_DIVIDE(7, 2)"),
    ("len", "SELECT len(['a', 'b'])", "SELECT SIZE(ARRAY('a', 'b'))"),
    ("index", "SELECT ['a', 'b'][2]", "SELECT TRY_ELEMENT_AT(ARRAY('a', 'b'), 2)"),
    ("index_out_of_range", "SELECT ['a'][3]", "SELECT TRY_ELEMENT_AT(ARRAY('a'), 3)"),
    ("slice", "SELECT ['a', 'b', 'c'][2:]",
     "SELECT SLICE(ARRAY('a', 'b', 'c'), 2, GREATEST((SIZE(ARRAY('a', 'b', 'c')) - 2) + 1, 0))"),
    ("ordered_list",
     "SELECT list(v ORDER BY k) FROM (VALUES (2, 'x'), (1, 'y'), (3, NULL)) AS t(k, v)",
     "SELECT TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(k AS _k0, v AS _v))), _s -> _s._v) "
     "FROM VALUES (2, 'x'), (1, 'y'), (3, NULL) AS t(k, v)"),
    ("materialized", "WITH t AS MATERIALIZED (SELECT 2 AS x) SELECT x * 3 FROM t",
     "WITH t AS (SELECT 2 AS x) SELECT x * 3 FROM t"),
    ("union_by_name", "SELECT * FROM a UNION ALL BY NAME SELECT * FROM b",
     "SELECT x, y, NULL AS z FROM a UNION ALL SELECT NULL AS x, y, z FROM b"),
]  # fmt: skip
UNION_COLUMNS = {"a": ["x", "y"], "b": ["y", "z"]}
AS_JSON = "to_json(struct(*), map('ignoreNullFields', 'false'))"  # a row, its NULLs kept


@pytest.mark.parametrize(("rule", "duckdb_sql", "spark_sql"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_writes_the_spark_sql_it_should(rule, duckdb_sql, spark_sql) -> None:
    assert sql.to_spark(duckdb_sql, columns=UNION_COLUMNS) == spark_sql


def test_every_rule_gives_on_spark_what_duckdb_gives(spark) -> None:
    """All the rules' cases, run on both engines (one Spark job for all of them)."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA curated")
    con.execute((DDL_DIR / "types.sql").read_text())
    for name, select in (("a", "SELECT 1 AS x, 2 AS y"), ("b", "SELECT 3 AS y, 4 AS z")):
        con.execute(f"CREATE VIEW {name} AS {select}")
        spark.sql(select).createOrReplaceTempView(name)
    expected = {}
    for rule, duckdb_sql, _ in RULES:
        expected[rule] = [_plain(row) for row in con.execute(duckdb_sql).fetchall()]
    union = " UNION ALL ".join(
        f"SELECT '{rule}' AS rule, to_json(collect_list(array({AS_JSON}))) AS rows "
        f"FROM ({sql.to_spark(duckdb_sql, columns=UNION_COLUMNS)})"
        for rule, duckdb_sql, _ in RULES
    )
    got = {row.rule: row.rows for row in spark.sql(union).collect()}
    for rule, rows in expected.items():
        assert _spark_rows(got[rule]) == sorted(rows, key=repr), rule


def _plain(row: tuple) -> list:
    """A DuckDB row as JSON would give it: a struct as its values, a time as ISO text."""
    values = []
    for value in row:
        if isinstance(value, dict | tuple):
            value = list(value.values() if isinstance(value, dict) else value)
        elif hasattr(value, "isoformat"):
            value = value.replace(tzinfo=None).isoformat(timespec="microseconds")
        values.append(value)
    return values


def _spark_rows(text: str) -> list:
    import json
    from datetime import datetime

    rows = []
    for (row,) in json.loads(text):
        values = list(json.loads(row).values())
        for i, value in enumerate(values):
            if isinstance(value, dict):
                values[i] = list(value.values())
            elif isinstance(value, str) and value[:2] == "20" and "T" in value:
                stamp = datetime.fromisoformat(value).replace(tzinfo=None)
                values[i] = stamp.isoformat(timespec="microseconds")
        rows.append(values)
    return sorted(rows, key=repr)


@pytest.mark.parametrize(
    "duckdb_sql",
    [
        "SELECT * FROM t QUALIFY row_number() OVER (ORDER BY x) = 1",
        "SELECT list(v ORDER BY k DESC) FROM t",
        "SELECT * FROM a UNION ALL BY NAME SELECT * FROM unknown",
    ],
)
def test_what_no_rule_covers_is_refused_not_mistranslated(duckdb_sql) -> None:
    with pytest.raises(sql.TranspileError):
        sql.to_spark(duckdb_sql, columns=UNION_COLUMNS)


def test_databases_are_renamed_to_build_beside_the_published_tables() -> None:
    renamed = sql.to_spark(
        "SELECT * FROM curated.trips JOIN quality.files USING (x)", databases={"curated": "next"}
    )
    assert renamed == "SELECT * FROM next.trips JOIN quality.files USING (x)"


def test_the_matching_twin_finds_duckdbs_pairs_scores_and_rounds(spark) -> None:
    """Dense conflicts (several rounds of best-first resolution) and a record id twice."""
    rng = random.Random(3)
    base = (38.9000, -77.0300)

    def trips(prefix: str, n: int) -> list:
        out = []
        for i in range(n):
            pickup = east(north(base, rng.uniform(0, 150)), rng.uniform(0, 150))
            dropoff = north(CAPITOL, 60 * rng.randrange(3) + rng.uniform(0, 40))
            at = T0 + timedelta(seconds=rng.uniform(0, 900), microseconds=rng.randrange(10**6))
            out.append((f"{prefix}{i:03d}", at, pickup, dropoff))
        return out

    left, right = trips("L", 80), trips("R", 80)
    right.append(right[0])  # an exact duplicate row: one edge, not two
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    load(con, "staging.dispatch", left)
    load(con, "staging.courier", right)
    table = duckdb_match_trips(con, "staging.dispatch", "staging.courier", MatchTolerance())
    expected = pl.from_arrow(con.table(table).to_arrow_table())
    for name in ("dispatch", "courier"):
        arrow = con.table(f"staging.{name}").to_arrow_table()
        spark.createDataFrame(arrow).createOrReplaceTempView(f"_test_{name}")
    pairs, found = match_trips(spark, "_test_dispatch", "_test_courier")
    got = pl.from_arrow(pairs.toArrow())
    assert expected["round"].max() > 1
    assert_same(got.select(RESULT_COLUMNS), expected, ["left_id"])
    assert found == expected.height  # counted as the rounds were computed


def normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """One type per kind of value, so that the two engines' columns compare: text for an ENUM,
    UTC wall-clock for a timestamp, 64-bit numbers, lists of text."""
    columns = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Enum | pl.Categorical):
            column = column.cast(pl.Utf8)
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        elif dtype.is_integer():
            column = column.cast(pl.Int64)
        elif dtype.is_float() or dtype.is_decimal():
            column = column.cast(pl.Float64)
        columns.append(column)
    return frame.select(columns)


def assert_same(got: pl.DataFrame, expected: pl.DataFrame, key: list[str]) -> None:
    """The same columns and rows in any order (sorted by `key`), floats within 1e-9 or 1e-6
    absolute: a time as seconds since 1970 is a double whose last bit is 2.4e-7 s in 2019, and
    the engines round a time's microseconds into it differently."""
    assert got.columns == expected.columns
    assert got.height == expected.height
    assert_frame_equal(
        normalised(got).sort(key, nulls_last=True),
        normalised(expected).sort(key, nulls_last=True),
        check_exact=False,
        rel_tol=1e-9,
        abs_tol=1e-6,
        check_dtypes=False,
    )


# -- the curated build on the shared sample -------------------------------------------------------

# The build writes into databases of its own: the session's catalog is shared with other tests.
DATABASES = {name: f"sqltest_{name}" for name in ("staging", "quality", "intermediate", "curated")}
COPIED = ("quality.files", "quality.quarantine")
TRIP_KEY = ["source", "source_record_id", "_file", "_line"]


@pytest.fixture(scope="module")
def built(spark, sample_warehouse, tmp_path_factory):
    """The DuckDB sample warehouse's staging and ledger rows as Spark tables (Parquet written
    by DuckDB), and the curated build run on them: (DuckDB connection, Spark tables, totals)."""
    folder = tmp_path_factory.mktemp("spark_sql_input")
    con = duckdb.connect(str(sample_warehouse.wh.path), read_only=True)
    config = load_config(PROJECT_ROOT / "sources.yaml")
    trip_sources = [f"staging.{n}" for n, s in config.sources.items() if s.entity == "trip"]
    where = build.Tables(spark, DATABASES)
    for table in (*trip_sources, *COPIED):
        path = folder / table
        path.mkdir()
        con.execute(f"COPY {table} TO '{path / 'rows.parquet'}' (FORMAT parquet)")
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {where.name(table).split('.')[0]}")
        spark.sql(f"DROP TABLE IF EXISTS {where.name(table)}")
        spark.sql(f"CREATE TABLE {where.name(table)} USING parquet LOCATION '{path}'")
    models = sql_models.discover(MODELS_DIR, config)
    run_id = sample_warehouse.result.run_id
    summary = build.build_curated(
        spark, config, run_id, models, build_dim_date, databases=DATABASES
    )
    yield con, where, summary
    con.close()


def duckdb_rows(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(query).to_arrow_table())


def spark_rows(where: build.Tables, table: str) -> pl.DataFrame:
    return pl.from_arrow(where.spark.table(where.name(table)).toArrow())


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("intermediate.dispatch_superseded", ["superseded_file", "superseded_line"]),
        ("intermediate.dispatch_trips", TRIP_KEY),
        ("intermediate.courier_trips", TRIP_KEY),
        ("intermediate.dc_taxi_trips", TRIP_KEY),
        ("intermediate.all_trips", TRIP_KEY),
        ("intermediate.trip_matches", ["kept_source", "kept_id"]),
        ("curated.trips", TRIP_KEY),
        ("curated.dim_date", ["date"]),
        ("curated.daily_by_source", ["day", "source"]),
        ("curated.speed_by_hour", ["day_of_week", "hour_of_day"]),
        ("curated.od_grid", ["origin_lat", "origin_lon", "destination_lat", "destination_lon"]),
    ],
)
def test_each_model_on_spark_equals_duckdbs(built, table, key) -> None:
    con, where, _ = built
    assert_same(spark_rows(where, table), duckdb_rows(con, f"SELECT * FROM {table}"), key)


def test_the_matches_and_their_scores_are_duckdbs(built) -> None:
    con, where, summary = built
    expected = duckdb_rows(con, "SELECT * FROM quality.matches")
    assert summary.matches == expected.height > 0
    assert_same(spark_rows(where, "quality.matches"), expected, ["left_source", "left_id"])


def test_the_control_totals_are_duckdbs_and_recorded(built) -> None:
    con, where, summary = built
    computed = summary.control_totals.drop("run_id")
    expected = duckdb_rows(con, "SELECT * FROM quality.control_totals").select(computed.columns)
    recorded = spark_rows(where, "quality.control_totals")
    assert_same(computed, expected, ["source"])
    assert_same(recorded.select(summary.control_totals.columns), summary.control_totals, ["source"])


def test_totals_that_do_not_add_up_raise_and_are_not_recorded(built, tmp_path: Path) -> None:
    """A file's manifest that says one row more was read than its rows staged and
    quarantined: the same ReconciliationError as on DuckDB, and nothing appended."""
    _, where, summary = built
    spark = where.spark
    bad = build.Tables(spark, {**DATABASES, "quality": "sqltest_bad_quality"})
    spark.sql("CREATE DATABASE IF NOT EXISTS sqltest_bad_quality")
    files = spark.table(where.name("quality.files"))
    first = files.orderBy("path").first()["path"]
    files = (
        files.selectExpr(
            *("rows_read + 1 AS rows_read" if c == "rows_read" else c for c in files.columns)
        )
        .where(f"path = '{first}'")
        .unionByName(files.where(f"path != '{first}'"))
    )
    bad.write(files, "quality.files")
    spark.sql(
        f"CREATE OR REPLACE VIEW {bad.name('quality.quarantine')} AS "
        f"SELECT * FROM {where.name('quality.quarantine')}"
    )
    with pytest.raises(ReconciliationError, match="do not reconcile") as raised:
        build.control_totals(bad, summary.control_totals["run_id"][0])
    assert raised.value.totals["unexplained_read"].to_list().count(1) == 1
    assert not spark.catalog.tableExists(bad.name("quality.control_totals"))

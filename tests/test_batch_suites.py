"""Batch suites: Great Expectations inside DuckDB (design step 6), with severities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from etl.quality.batch import (
    SKIPPED_NO_HISTORY,
    CheckResult,
    load_suite,
    parse_suite,
    run_suite,
    suite_path,
)

N = 4000
PARAMS = {"min_rows": N * 0.5, "max_rows": N * 2.0}
SPEED = "median implied speed 3-45 mph"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gx_ctx():
    """One ephemeral GX context for the module: importing GX and building it costs seconds."""
    from etl.quality.gx_duckdb import new_context

    return new_context()


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """A DuckDB database FILE held open read-write, as the pipeline holds the warehouse."""
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    c = duckdb.connect(str(path))
    c.execute("CREATE SCHEMA pending; CREATE SCHEMA audit")
    yield c
    c.close()


@pytest.fixture(scope="module")
def trip_suite():
    return load_suite(suite_path("trip"))


def make_trips(con, table: str, n: int = N, *, duration_factor: float = 1.0) -> None:
    """Plausible DC taxi trips, deterministic (hash-based noise, not random()).

    Median ~1.7 miles, ~10 min, ~$12; 15% of pickups and 5% of fares are null, as in real
    DFHV months. ``duration_factor=1/60`` plants durations in minutes in the seconds column.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        WITH u AS (
            SELECT i,
                   (hash(i, 1) % 1000003) / 1000003.0 AS u1,
                   (hash(i, 2) % 1000003) / 1000003.0 AS u2,
                   (hash(i, 3) % 1000003) / 1000003.0 AS u3,
                   (hash(i, 4) % 1000003) / 1000003.0 AS u4
            FROM range({n}) t(i)
        ), t AS (
            SELECT *, 0.3 - ln(1 - u1) * 2.0 AS miles, 120 - ln(1 - u2) * 700 AS secs FROM u
        )
        SELECT 'dc-' || i AS source_record_id,
               TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i * 600) AS pickup_at,
               TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i * 600 + secs::BIGINT)
                   AS dropoff_at,
               CASE WHEN u3 < 0.15 THEN NULL ELSE 38.85 + u1 * 0.1 END AS pickup_lat,
               CASE WHEN u3 < 0.15 THEN NULL ELSE -77.08 + u2 * 0.1 END AS pickup_lon,
               38.85 + u2 * 0.1 AS dropoff_lat,
               -77.08 + u1 * 0.1 AS dropoff_lon,
               miles AS distance_miles,
               secs * {duration_factor} AS duration_s,
               CASE WHEN u4 < 0.05 THEN NULL
                    ELSE round(3.25 + miles * 2.16 + secs / 60 * 0.35, 2) END AS fare_usd,
               'run-1' AS _run_id,
               'dc_taxi/taxi_2016.zip!taxi_2016_01.txt' AS _file,
               i + 2 AS _line
        FROM t
        """
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.expectation: r for r in results}


# ----------------------------------------------------------------------------- good batch


def test_good_batch_passes_and_every_result_has_an_observed_value(con, gx_ctx, trip_suite):
    make_trips(con, "pending.good")
    results = run_suite(con, "pending.good", trip_suite, PARAMS, context=gx_ctx)

    assert [r.expectation for r in results] == [e.name for e in trip_suite.expectations]
    assert all(r.suite == "trip" for r in results)
    failed_errors = [r for r in results if r.severity == "error" and not r.success]
    assert failed_errors == []
    assert all(r.success for r in results), [r for r in results if not r.success]
    # Regression for GX issues 10738/11579: unfixed, every expectation fails with
    # "IndexError: list index out of range" and has no observed value.
    for r in results:
        assert r.observed_value is not None, r
        assert "exception" not in r.details, r
        json.loads(r.observed_value)
    # Nothing the checks used is left in the database the pipeline holds.
    leftovers = "SELECT count(*) FROM duckdb_views() WHERE view_name = '_etl_gx_batch'"
    assert con.execute(leftovers).fetchone() == (0,)

    speed = json.loads(by_name(results)[SPEED].observed_value)
    expected = con.execute(
        "SELECT median(distance_miles * 3600 / duration_s) FROM pending.good WHERE duration_s > 0"
    ).fetchone()[0]
    assert speed == pytest.approx(expected, rel=1e-12)
    assert 5 < speed < 15


# ----------------------------------------------------------------------------- planted errors


def test_duration_in_minutes_fails_median_speed_with_the_true_median(con, gx_ctx, trip_suite):
    make_trips(con, "pending.minutes", duration_factor=1 / 60)
    # The pipeline's own audit VIEW with the derived column: the suite uses it as it is.
    con.execute(
        """
        CREATE OR REPLACE VIEW audit.minutes_batch AS
        SELECT *, distance_miles / (duration_s / 3600.0) AS implied_speed_mph
        FROM pending.minutes WHERE duration_s > 0
        """
    )
    results = by_name(run_suite(con, "audit.minutes_batch", trip_suite, PARAMS, context=gx_ctx))

    speed = results[SPEED]
    assert speed.severity == "error"
    assert speed.success is False
    expected = con.execute("SELECT median(implied_speed_mph) FROM audit.minutes_batch").fetchone()
    expected = expected[0]
    assert json.loads(speed.observed_value) == pytest.approx(expected, rel=1e-12)
    assert expected > 300  # ~60x a plausible city speed
    # The duration distribution check notices too, as a warning.
    durations = results["duration_s p10/p50/p90 in range"]
    assert (durations.severity, durations.success) == ("warn", False)
    # Nothing else is an error.
    assert [r.expectation for r in results.values() if not r.success and r.severity == "error"] == [
        SPEED
    ]


def test_null_rate_violation_fails_with_observed_rate(con, gx_ctx, trip_suite):
    make_trips(con, "pending.nulls")
    con.execute("UPDATE pending.nulls SET pickup_at = NULL WHERE _line % 20 = 0")  # 5%
    nulls = con.execute("SELECT count(*) FROM pending.nulls WHERE pickup_at IS NULL").fetchone()[0]
    assert nulls == N // 20

    results = by_name(run_suite(con, "pending.nulls", trip_suite, PARAMS, context=gx_ctx))
    r = results["pickup_at null rate <= 1%"]
    assert (r.severity, r.success) == ("error", False)
    assert r.details["unexpected_count"] == nulls
    assert r.details["element_count"] == N
    assert json.loads(r.observed_value) == pytest.approx(nulls / N)  # the share unexpected
    assert results["dropoff_at null rate <= 1%"].success


def test_duplicated_key_fails_uniqueness(con, gx_ctx, trip_suite):
    make_trips(con, "pending.dups")
    con.execute("INSERT INTO pending.dups SELECT * FROM pending.dups WHERE _line IN (10, 11, 12)")
    results = by_name(run_suite(con, "pending.dups", trip_suite, PARAMS, context=gx_ctx))
    r = results["record key unique in batch"]
    assert (r.severity, r.success) == ("error", False)
    assert r.details["unexpected_count"] == 6  # every row of a duplicated key: 3 keys x 2
    assert r.details["element_count"] == N + 3
    assert json.loads(r.observed_value) == pytest.approx(6 / (N + 3))


def test_fare_null_rate_is_a_warning_with_observed_proportion(con, gx_ctx, trip_suite):
    make_trips(con, "pending.fares")
    con.execute("UPDATE pending.fares SET fare_usd = NULL WHERE _line % 4 = 0")
    expected = con.execute("SELECT count(fare_usd) / count(*) FROM pending.fares").fetchone()[0]

    results = by_name(run_suite(con, "pending.fares", trip_suite, PARAMS, context=gx_ctx))
    r = results["fare_usd present in >= 85% of rows"]
    assert (r.severity, r.success) == ("warn", False)
    assert json.loads(r.observed_value) == pytest.approx(expected)
    assert all(x.success for x in results.values() if x.severity == "error")


# ----------------------------------------------------------------------------- $param


def test_param_substitution_and_missing_param_skips(con, gx_ctx, trip_suite):
    make_trips(con, "pending.params")
    row_count = "row count within the band of earlier runs"

    too_few = {"min_rows": N + 1, "max_rows": N * 3}
    r = by_name(run_suite(con, "pending.params", trip_suite, too_few, context=gx_ctx))[row_count]
    assert (r.severity, r.success, json.loads(r.observed_value)) == ("warn", False, N)
    assert r.details["kwargs"] == {"min_value": N + 1, "max_value": N * 3}

    r = by_name(run_suite(con, "pending.params", trip_suite, PARAMS, context=gx_ctx))[row_count]
    assert r.success and json.loads(r.observed_value) == N

    results = run_suite(con, "pending.params", trip_suite, {"min_rows": 1}, context=gx_ctx)
    r = by_name(results)[row_count]
    assert r == CheckResult("trip", row_count, "warn", True, None, SKIPPED_NO_HISTORY)
    assert all(x.success for x in results)
    assert trip_suite.params == {"min_rows", "max_rows"}


def test_params_inside_nested_kwargs(con, gx_ctx):
    make_trips(con, "pending.nested", n=500)
    suite = parse_suite(
        {
            "name": "t",
            "expectations": [
                {
                    "type": "expect_column_quantile_values_to_be_between",
                    "kwargs": {
                        "column": "duration_s",
                        "quantile_ranges": {
                            "quantiles": [0.5],
                            "value_ranges": [[{"$param": "lo"}, {"$param": "hi"}]],
                        },
                    },
                    "meta": {"severity": "error"},
                }
            ],
        }
    )
    [r] = run_suite(con, "pending.nested", suite, {"lo": 1.0, "hi": 2.0}, context=gx_ctx)
    assert r.expectation == "expect_column_quantile_values_to_be_between(duration_s)"
    assert not r.success
    assert r.details["kwargs"]["quantile_ranges"]["value_ranges"] == [[1.0, 2.0]]
    median = con.execute("SELECT quantile_disc(duration_s, 0.5) FROM pending.nested").fetchone()[0]
    assert json.loads(r.observed_value)["values"] == [pytest.approx(median)]
    [r] = run_suite(con, "pending.nested", suite, {"lo": 1.0}, context=gx_ctx)
    assert (r.success, r.observed_value, r.details) == (True, None, SKIPPED_NO_HISTORY)


# ----------------------------------------------------------------------------- robustness


def test_missing_column_is_a_failed_check_not_a_crash(con, gx_ctx):
    make_trips(con, "pending.nocol", n=100)
    suite = parse_suite(
        {
            "name": "t",
            "expectations": [
                {
                    "type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "no_such_column"},
                    "meta": {"severity": "error", "name": "x"},
                },
                {
                    "type": "expect_table_row_count_to_equal",
                    "kwargs": {"value": 100},
                    "meta": {"severity": "warn", "name": "y"},
                },
            ],
        }
    )
    x, y = run_suite(con, "pending.nocol", suite, {}, context=gx_ctx)
    assert (x.success, x.severity) == (False, "error")
    assert "no_such_column" in x.details["exception"]
    assert y.success and y.observed_value == "100"


def test_sees_committed_rows_and_leaves_the_pipeline_transaction_alone(con, gx_ctx):
    make_trips(con, "pending.txn", n=100)
    suite = parse_suite(
        {
            "name": "t",
            "expectations": [
                {
                    "type": "expect_table_row_count_to_be_between",
                    "kwargs": {"min_value": 0},
                    "meta": {"severity": "warn"},
                }
            ],
        }
    )
    con.execute("BEGIN")
    con.execute("CREATE TABLE pending.inside_txn AS SELECT 1 AS x")
    [r] = run_suite(con, "pending.txn", suite, {}, context=gx_ctx)
    assert r.observed_value == "100"
    con.execute("COMMIT")  # GX's rollbacks went to its own cursors, not to con's transaction
    assert con.execute("SELECT x FROM pending.inside_txn").fetchone() == (1,)


def test_unbuffered_duckdb_result_is_lost_when_the_connection_closes(con):
    """The mechanism behind GX issues 10738/11579, and why BufferedConnection fixes it."""
    import sqlalchemy as sa
    from duckdb_engine import ConnectionWrapper

    from etl.quality.gx_duckdb import BufferedConnection

    make_trips(con, "pending.mech", n=10)
    query = sa.text("SELECT count(*) FROM pending.mech")

    def fetch_after_close(wrapper) -> list:
        engine = sa.create_engine("duckdb://", creator=lambda: wrapper(con.cursor()))
        try:
            with engine.connect() as connection:  # what GX's execute_query does
                result = connection.execute(query)
            return result.fetchall()  # ... and GX fetches only after the close
        finally:
            engine.dispose()

    assert fetch_after_close(ConnectionWrapper) == []  # the IndexError of res[0]
    assert fetch_after_close(BufferedConnection) == [(10,)]


# ----------------------------------------------------------------------------- suite files


def test_trip_suite_file_declares_the_required_checks(trip_suite):
    sev = {e.name: e.severity for e in trip_suite.expectations}
    types = {(e.type, e.kwargs.get("column")): e.severity for e in trip_suite.expectations}
    assert sev["row count within the band of earlier runs"] == "warn"
    assert sev[SPEED] == "error"
    for col in ("pickup_at", "dropoff_at", "duration_s", "distance_miles"):
        assert types[("expect_column_values_to_not_be_null", col)] == "error"
    assert types[("expect_column_values_to_be_unique", "_record_key")] == "error"
    for col in ("fare_usd", "pickup_lat", "pickup_lon"):
        assert types[("expect_column_proportion_of_non_null_values_to_be_between", col)] == "warn"
    for col in ("fare_usd", "duration_s"):
        assert types[("expect_column_quantile_values_to_be_between", col)] == "warn"
    assert not any("regex" in e.type for e in trip_suite.expectations)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"name": "s", "expectations": [{"type": "expect_x", "kwargs": {}}]}, "severity"),
        (
            {
                "name": "s",
                "expectations": [{"type": "expect_x", "kwargs": {}, "meta": {"severity": "fatal"}}],
            },
            "severity",
        ),
        (
            {
                "name": "s",
                "expectations": [
                    {
                        "type": "expect_column_values_to_match_regex",
                        "kwargs": {"column": "a", "regex": "x"},
                        "meta": {"severity": "warn"},
                    }
                ],
            },
            "regex",
        ),
        (
            {
                "name": "s",
                "expectations": [
                    {
                        "type": "expect_x",
                        "kwargs": {"v": {"$param": 3}},
                        "meta": {"severity": "warn"},
                    }
                ],
            },
            "$param",
        ),
        ({"expectations": []}, "name"),
    ],
)
def test_bad_suite_files_are_refused(tmp_path: Path, doc, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        load_suite(path)


def test_unknown_expectation_type_raises_before_running(con, gx_ctx):
    make_trips(con, "pending.unknown", n=10)
    suite = parse_suite(
        {"name": "s", "expectations": [{"type": "expect_nothing", "meta": {"severity": "warn"}}]}
    )
    with pytest.raises(ValueError, match="expect_nothing"):
        run_suite(con, "pending.unknown", suite, {}, context=gx_ctx)


def test_importing_the_module_does_not_import_great_expectations():
    code = (
        "import sys, etl.quality.batch as b; b.load_suite(b.suite_path('trip'));"
        "assert 'great_expectations' not in sys.modules; assert 'sqlalchemy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_relation_invisible_to_a_cursor_is_a_clear_error(con, gx_ctx, trip_suite):
    con.execute("CREATE OR REPLACE TEMP VIEW only_on_con AS SELECT 1 AS x")
    with pytest.raises(ValueError, match="TEMP"):
        run_suite(con, "only_on_con", trip_suite, PARAMS, context=gx_ctx)
    with pytest.raises(ValueError, match="not a table or view name"):
        run_suite(con, "pending.good; DROP TABLE x", trip_suite, PARAMS, context=gx_ctx)

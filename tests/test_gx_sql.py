"""The one-pass metrics (etl.quality.gx_sql) against Great Expectations' own SQL engine.

Every expectation type whose metrics warehouse/audit/gx_metrics.sql computes is run both ways on
the same batches (odd and even sizes, one and two rows, empty, NULL-heavy and all-NULL columns,
duplicates, `mostly` thresholds met and missed, strict bounds, every `ignore_row_if`), and the
results must be identical: success, observed value, element/unexpected/missing counts and
percentages, as quality.checks stores them. What the file does not cover must go to GX.
"""

from __future__ import annotations

import json

import duckdb
import pytest
from test_batch_suites import make_trips

from etl.quality import batch
from etl.quality.batch import load_suite, parse_suite, run_suite, suite_path


def expectation(etype: str, severity: str = "error", **kwargs) -> dict:
    name = f"{etype}({json.dumps(kwargs, sort_keys=True)})"
    return {"type": etype, "kwargs": kwargs, "meta": {"severity": severity, "name": name}}


def pair(**kwargs) -> dict:
    return expectation(
        "expect_column_pair_values_a_to_be_greater_than_b",
        column_A="a_at",
        column_B="b_at",
        **kwargs,
    )


QUANTILES = {"quantiles": [0.0, 0.25, 0.5, 0.75, 1.0], "value_ranges": [[None, 50.0]] * 5}
# Every supported type, configured to pass on some batches and fail on others.
SUPPORTED = [
    expectation("expect_table_row_count_to_be_between", min_value=1, max_value=2000),
    expectation("expect_table_row_count_to_be_between", min_value=1001, strict_min=True),
    expectation("expect_table_row_count_to_equal", value=1000),
    expectation("expect_column_values_to_not_be_null", column="key"),
    expectation("expect_column_values_to_not_be_null", column="key", mostly=0.85),
    expectation("expect_column_values_to_not_be_null", column="key", mostly=0.9),
    expectation("expect_column_values_to_not_be_null", column="x", mostly=0.3),
    expectation("expect_column_values_to_not_be_null", column="nothing"),
    expectation("expect_column_values_to_not_be_null", column="i"),
    expectation("expect_column_values_to_be_null", column="nothing"),
    expectation("expect_column_values_to_be_null", column="x", mostly=0.5),
    expectation("expect_column_values_to_be_unique", column="key"),
    expectation("expect_column_values_to_be_unique", column="key", mostly=0.5),
    expectation("expect_column_values_to_be_unique", column="i"),
    expectation("expect_column_values_to_be_unique", column="small_int", mostly=0.9),
    expectation("expect_column_values_to_be_unique", column="nothing"),
    expectation("expect_column_values_to_be_unique", column="speed"),
    expectation("expect_column_values_to_be_unique", column="zeros"),  # 0.0, -0.0, NaN
    expectation(
        "expect_column_proportion_of_non_null_values_to_be_between",
        column="x",
        min_value=0.3,
        max_value=0.5,
    ),
    expectation(
        "expect_column_proportion_of_non_null_values_to_be_between",
        column="key",
        min_value=6 / 7,
        strict_min=True,
    ),
    expectation(
        "expect_column_proportion_of_non_null_values_to_be_between", column="nothing", max_value=0.0
    ),
    expectation(
        "expect_column_quantile_values_to_be_between", column="x", quantile_ranges=QUANTILES
    ),
    expectation(
        "expect_column_quantile_values_to_be_between",
        column="money",
        quantile_ranges={"quantiles": [0.1, 0.9], "value_ranges": [[0, 200], [800, None]]},
        allow_relative_error=True,
    ),
    expectation(
        "expect_column_quantile_values_to_be_between",
        column="small_int",
        quantile_ranges={"quantiles": [0.5], "value_ranges": [[6, 6]]},
    ),
    expectation(
        "expect_column_quantile_values_to_be_between",
        column="nothing",
        quantile_ranges={"quantiles": [0.5], "value_ranges": [[None, None]]},
    ),
    expectation("expect_column_median_to_be_between", column="x", min_value=40, max_value=60),
    expectation("expect_column_median_to_be_between", column="small_int", min_value=6, max_value=6),
    expectation(
        "expect_column_median_to_be_between",
        column="money",
        min_value=0,
        strict_max=True,
        max_value=500,
    ),
    expectation("expect_column_median_to_be_between", column="speed", min_value=3, max_value=45),
    expectation("expect_column_median_to_be_between", column="nothing", min_value=0),
    pair(),
    pair(or_equal=True),
    pair(or_equal=True, mostly=0.8),
    pair(ignore_row_if="either_value_is_missing", mostly=0.6),
    pair(ignore_row_if="neither", or_equal=True, mostly=0.6),
]


def make_batch(con: duckdb.DuckDBPyConnection, table: str, n: int, key_mod: int) -> None:
    """Deterministic rows: `key` 1 in 7 NULL and repeating every key_mod rows, `x` 60% NULL,
    `nothing` all NULL, `small_int` 0-12, `money` DECIMAL, two timestamps with NULLs, each
    sometimes before the other, `zeros` 0.0, -0.0, NaN and NULL."""
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {table} AS
        SELECT i,
               CASE WHEN i % 7 = 3 THEN NULL ELSE 'k' || (i % {key_mod}) END AS key,
               CASE WHEN i % 5 < 3 THEN NULL ELSE (hash(i, 1) % 1000) / 10.0 END AS x,
               CAST(NULL AS DOUBLE) AS nothing,
               (i % 13)::INTEGER AS small_int,
               ((hash(i, 2) % 100000) / 100.0)::DECIMAL(10, 2) AS money,
               CASE WHEN i % 11 = 4 THEN NULL
                    ELSE TIMESTAMPTZ '2016-01-01 00:00:00+00' + to_seconds(i * 60) END AS a_at,
               CASE WHEN i % 9 = 4 THEN NULL
                    ELSE TIMESTAMPTZ '2016-01-01 00:00:00+00'
                         + to_seconds(i * 60 + hash(i, 3) % 600 - 100) END AS b_at,
               CASE i % 4 WHEN 0 THEN 0.0::DOUBLE WHEN 1 THEN -0.0::DOUBLE
                          WHEN 2 THEN 'NaN'::DOUBLE END AS zeros,
               (hash(i, 4) % 50)::DOUBLE AS miles,
               (hash(i, 5) % 3)::DOUBLE * 600 AS secs
        FROM range({n}) t(i)
        """
    )


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    c = duckdb.connect(str(tmp_path_factory.mktemp("gx_sql") / "w.duckdb"))
    c.execute("CREATE SCHEMA pending")
    yield c
    c.close()


@pytest.fixture(scope="module")
def gx_ctx():
    from etl.quality.gx_duckdb import new_context

    return new_context()


@pytest.fixture
def sent_to_gx(monkeypatch) -> list[str]:
    """Names of the expectations the one-pass run left to GX's SQL engine."""
    sent: list[str] = []
    real = batch._validate_with_gx

    def spy(con, relation, derived, suite, to_run, *args):
        sent.extend(exp.name for _, exp, _ in to_run)
        return real(con, relation, derived, suite, to_run, *args)

    monkeypatch.setattr(batch, "_validate_with_gx", spy)
    return sent


def both_ways(con, relation, suite, gx_ctx, sent, params=None, **kwargs) -> tuple[list, list]:
    """GX's results (its SQL engine computing every metric), then the one-pass results; `sent`
    is left holding what the one-pass run sent to GX."""
    reference = run_suite(con, relation, suite, params or {}, context=gx_ctx, one_pass=False)
    sent.clear()
    one_pass = run_suite(con, relation, suite, params or {}, context=gx_ctx, **kwargs)
    return reference, one_pass


SUITE_UNIQUE_KEY = expectation("expect_column_values_to_be_unique", column="key")
SUITE = parse_suite(
    {
        "name": "all",
        "derived_columns": {"speed": "CASE WHEN secs > 0 THEN miles * 3600.0 / secs END"},
        "expectations": SUPPORTED,
    }
)


@pytest.mark.parametrize(
    ("n", "key_mod"),
    [(1001, 1001), (1000, 1000), (1000, 400), (999, 3), (2, 1), (1, 1), (0, 1)],
    ids=["odd-unique", "even-unique", "even-dups", "odd-few-keys", "two-rows", "one-row", "empty"],
)
def test_every_supported_type_matches_gx(con, gx_ctx, sent_to_gx, n, key_mod):
    table = f"pending.b{n}_{key_mod}"
    make_batch(con, table, n, key_mod)
    reference, one_pass = both_ways(con, table, SUITE, gx_ctx, sent_to_gx)

    assert sent_to_gx == []  # every one of them computed in the one pass
    for ref, got in zip(reference, one_pass, strict=True):
        assert "exception" not in ref.details, ref
        assert got == ref
    if n == 1000 and key_mod == 400:  # the batch holds failures of every kind
        assert sum(not r.success for r in one_pass) >= 10
        unique = one_pass[SUPPORTED.index(SUITE_UNIQUE_KEY)]
        repeated = f"SELECT count(*) FROM {table} WHERE key IN (SELECT key FROM {table} "
        repeated += "GROUP BY key HAVING count(*) > 1)"
        assert unique.details["unexpected_count"] == con.execute(repeated).fetchone()[0] > 0


def test_the_trip_suite_matches_gx_on_trips_with_planted_defects(con, gx_ctx, sent_to_gx):
    make_trips(con, "pending.trips", 3001)
    con.execute("UPDATE pending.trips SET pickup_at = NULL WHERE _line % 20 = 0")
    con.execute("UPDATE pending.trips SET fare_usd = NULL WHERE _line % 3 = 0")
    con.execute("INSERT INTO pending.trips SELECT * FROM pending.trips WHERE _line < 40")
    suite = load_suite(suite_path("trip"))
    for params in ({"min_rows": 1, "max_rows": 3000}, {"min_rows": 1}):
        reference, one_pass = both_ways(con, "pending.trips", suite, gx_ctx, sent_to_gx, params)
        assert one_pass == reference
        assert {r.expectation for r in one_pass if not r.success} == {
            "record key unique in batch",
            "pickup_at null rate <= 1%",
            "fare_usd present in >= 85% of rows",
            "row count within the band of earlier runs",
        } - ({"row count within the band of earlier runs"} if len(params) == 1 else set())
    assert sent_to_gx == []


def test_what_the_sql_file_does_not_cover_goes_to_gx(con, gx_ctx, sent_to_gx):
    make_batch(con, "pending.mixed", 500, 200)
    unsupported = [
        expectation("expect_column_values_to_be_between", column="x", min_value=0, max_value=50),
        expectation("expect_column_max_to_be_between", column="small_int", max_value=12),
        {
            **expectation("expect_column_values_to_not_be_null", column="key"),
            "kwargs": {"column": "key", "row_condition": "i > 10", "condition_parser": "spark"},
        },
        expectation("expect_column_median_to_be_between", column="no_such_column", min_value=0),
    ]
    suite = parse_suite({"name": "mixed", "expectations": SUPPORTED[:12] + unsupported})
    reference, one_pass = both_ways(con, "pending.mixed", suite, gx_ctx, sent_to_gx)

    assert one_pass == reference
    assert sent_to_gx == [e["meta"]["name"] for e in unsupported]
    assert "no_such_column" in one_pass[-1].details["exception"]


def test_example_values_are_left_to_gx(con, gx_ctx, sent_to_gx):
    make_batch(con, "pending.examples", 300, 100)
    suite = parse_suite({"name": "ex", "expectations": SUPPORTED[3:6] + SUPPORTED[11:13]})
    reference, one_pass = both_ways(
        con, "pending.examples", suite, gx_ctx, sent_to_gx, result_format="BASIC"
    )
    basic = run_suite(
        con, "pending.examples", suite, {}, context=gx_ctx, one_pass=False, result_format="BASIC"
    )
    assert len(sent_to_gx) == 2 * len(suite.expectations)  # the one-pass run's, then basic's
    assert one_pass == basic != reference  # reference: the default format, without examples
    assert any(r.details["partial_unexpected_list"] for r in one_pass)


def test_a_failing_query_leaves_the_suite_to_gx(con, gx_ctx, sent_to_gx):
    """A derived column that DuckDB cannot compute fails the one query: GX then runs every
    expectation and reports the error on each, as it did before."""
    make_batch(con, "pending.broken", 50, 50)
    suite = parse_suite(
        {
            "name": "broken",
            "derived_columns": {"bad": "CAST(key AS INTEGER)"},
            "expectations": [
                expectation("expect_column_values_to_not_be_null", column="bad"),
                expectation("expect_table_row_count_to_equal", value=50),
            ],
        }
    )
    reference, one_pass = both_ways(con, "pending.broken", suite, gx_ctx, sent_to_gx)
    assert one_pass == reference
    assert len(sent_to_gx) == 2
    assert not one_pass[0].success and "exception" in one_pass[0].details


def test_quality_checks_of_the_sample_run_are_what_gx_alone_gives(
    sample_warehouse, tmp_path, monkeypatch
):
    """The demo-sized sample's quality.checks rows, recomputed with GX's SQL engine computing
    every metric (the code before the one pass), are the rows the run stored."""
    from collections import Counter

    from etl.config.load import load_config
    from etl.engine.duckdb.engine import DuckDBEngine
    from etl.paths import project_models
    from etl.quality import gx_sql
    from etl.quality.audit import SuiteAudit

    run = sample_warehouse.result
    wh = sample_warehouse.copy(tmp_path)
    rows = (
        "SELECT source, suite, expectation, severity, success, observed_value, details "
        "FROM quality.checks WHERE run_id = ? ORDER BY ALL"
    )
    stored = wh.query(rows, [run.run_id])
    assert sum(r[5] is not None for r in stored) >= 20  # real batches, not skipped ones

    monkeypatch.setattr(gx_sql, "validate_in_one_pass", lambda *args: {})
    files = Counter(f.source for f in run.files if f.status == "loaded")
    config = load_config(wh.config)
    engine = DuckDBEngine(wh.path, project_models(wh.config.parent), config)
    try:
        engine.con.execute("DELETE FROM quality.checks WHERE run_id = ?", [run.run_id])
        engine.run_suites(SuiteAudit(config, wh.config.parent, run.run_id, files))
    finally:
        engine.close()
    assert wh.query(rows, [run.run_id]) == stored

"""Row checks: YAML specs -> pandera schema -> staged / flagged / rejected rows."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest
from pandera.config import ValidationDepth, config_context

from etl.quality.rows import (
    RowCheckError,
    RowSpecError,
    check_rows,
    load_row_spec,
    pandera_schema,
)
from etl.stage.labels import label_lists

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
DC_TAXI = SCHEMAS / "dc_taxi_rows.yaml"
TRIP = SCHEMAS / "trip_rows.yaml"

SCHEMA = {
    "source_record_id": pl.Utf8,
    "pickup_at": pl.Datetime("us", "UTC"),
    "dropoff_at": pl.Datetime("us", "UTC"),
    "pickup_lat": pl.Float64,
    "pickup_lon": pl.Float64,
    "dropoff_lat": pl.Float64,
    "dropoff_lon": pl.Float64,
    "distance_miles": pl.Float64,
    "duration_s": pl.Float64,
    "fare_usd": pl.Float64,
    "payment_type": pl.Int16,
    "trip_type": pl.Int16,
    "airport": pl.Boolean,
    "total_usd": pl.Float64,
    "pickup_in_dc": pl.Boolean,
    "dropoff_in_dc": pl.Boolean,
    "_line": pl.Int64,
    "_parse_errors": pl.List(pl.Utf8),
}
T0 = datetime(2016, 5, 3, 10, tzinfo=UTC)
H = timedelta(hours=1)
BWI = (39.1754, -76.6683)


def trip(**changes) -> dict:
    """A clean DC taxi trip (hour-rounded: drop-off equals pickup), with changes."""
    row = {
        "source_record_id": None,
        "pickup_at": T0,
        "dropoff_at": T0,
        "pickup_lat": 38.9017,
        "pickup_lon": -77.0365,
        "dropoff_lat": 38.8894,
        "dropoff_lon": -77.0091,
        "distance_miles": 2.5,
        "duration_s": 900.0,
        "fare_usd": 12.0,
        "payment_type": 1,
        "trip_type": 1,
        "airport": False,
        "total_usd": 14.0,
        "pickup_in_dc": None,  # no boundary loaded: the polygon checks do not apply
        "dropoff_in_dc": None,
        "_parse_errors": [],
    }
    row.update(changes)
    return row


def frame(rows: list[dict]) -> pl.DataFrame:
    rows = [{**r, "_line": i + 2, "source_record_id": str(i)} for i, r in enumerate(rows)]
    return pl.DataFrame(rows, schema=SCHEMA)


# (row, how many) planted in the frame of `planted()`; every other row is clean.
PLANTS = [
    (trip(fare_usd=-5.0), 3),  # negative fare
    (trip(fare_usd=None), 4),  # NULL fare: flagged, staged
    (trip(pickup_at=None, _parse_errors=["unparseable:pickup_at"]), 2),  # unparseable date
    (trip(dropoff_at=None, _parse_errors=["unparseable:dropoff_at"]), 1),  # as staging writes
    (trip(pickup_lat=40.7128, pickup_lon=-74.0060), 2),  # pickup in New York
    (
        trip(
            dropoff_lat=BWI[0],
            dropoff_lon=BWI[1],
            airport=True,
            distance_miles=32.0,
            duration_s=2700.0,
            fare_usd=90.0,
        ),
        1,
    ),  # airport trip to BWI: fine
    (trip(distance_miles=2591.82, duration_s=3600.0), 2),  # absurd mileage (and speed)
    (trip(distance_miles=10.0, duration_s=60.0), 1),  # 600 mph
    (trip(payment_type=9), 2),  # unknown payment code
    (trip(trip_type=0), 1),  # unknown trip type
    (trip(dropoff_at=T0 - 2 * H), 2),  # drop-off 2 h before pickup
    (trip(dropoff_at=T0 - H), 1),  # 1 h before: the repeated DST hour, accepted
    (trip(dropoff_at=T0 + H, duration_s=3540.0), 1),  # 59 minutes that look like +1 h
    (trip(pickup_lat=None, pickup_lon=None), 3),  # pickup not geocoded: flagged
    (trip(dropoff_lat=None, dropoff_lon=None, fare_usd=None), 2),  # two flags
    (trip(fare_usd=-1.0, payment_type=7, dropoff_at=T0 - 3 * H), 1),  # fails three checks
    (trip(_parse_errors=None), 2),  # null `_parse_errors` means none
]
N_CLEAN = 20


def planted() -> pl.DataFrame:
    rows = [trip() for _ in range(N_CLEAN)]
    for row, count in PLANTS:
        rows.extend(dict(row) for _ in range(count))
    # interleave so that order preservation is tested, not assumed
    rows = rows[::2] + rows[1::2]
    return frame(rows)


def test_planted_defects_give_exact_counts():
    df = planted()
    result = check_rows(df, load_row_spec(DC_TAXI))

    expected = {
        "fare_out_of_range": 3 + 1,
        "fare_missing": 4 + 2,
        "pickup_at_missing": 2,
        "unparseable:pickup_at": 2,
        "dropoff_at_missing": 1,
        "unparseable:dropoff_at": 1,
        "pickup_outside_area": 2,
        "mileage_out_of_range": 2,
        "speed_implausible": 2 + 1,
        "payment_type_unknown": 2 + 1,
        "trip_type_unknown": 1,
        "dropoff_before_pickup": 2 + 1,
        "pickup_not_geocoded": 3,
        "dropoff_not_geocoded": 2,
    }
    assert {k: v for k, v in result.reason_counts.items() if v} == expected
    # every check of the spec is counted, failing or not
    assert set(result.reason_counts) >= {c.name for c in load_row_spec(DC_TAXI).checks}
    assert result.reason_counts["duration_out_of_range"] == 0

    # the 600 mph row fails only speed_implausible, a flag: it is staged
    n_rejected = 3 + 2 + 1 + 2 + 2 + 1 + 2 + 1 + 2 + 1 - 1
    assert result.rejected.height == n_rejected
    assert result.staged.height + result.rejected.height == df.height
    # row order is kept within each part
    for part in (result.staged, result.rejected):
        lines = part["_line"].to_list()
        assert lines == sorted(lines)
    assert set(result.staged["_line"]) | set(result.rejected["_line"]) == set(df["_line"])
    # every rejected row has a reason, no staged row lacks its flags column
    assert result.rejected["_reasons"].list.len().min() >= 1
    assert result.staged["_flags"].dtype == pl.List(pl.Utf8)
    assert result.rejected.columns == [*df.columns, "_reasons", "_flags"]
    assert result.staged.columns == [*df.columns, "_flags"]


def test_a_row_failing_three_checks_lists_all_three():
    df = frame([trip(), trip(fare_usd=-1.0, payment_type=7, dropoff_at=T0 - 3 * H)])
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.rejected.height == 1
    assert result.rejected["_reasons"].to_list() == [
        ["dropoff_before_pickup", "fare_out_of_range", "payment_type_unknown"]
    ]


def test_staging_reasons_come_first_as_staging_wrote_them():
    df = frame(
        [
            trip(
                pickup_at=None,
                fare_usd=None,
                _parse_errors=["unparseable:pickup_at", "unparseable:fare_usd"],
            ),
            trip(_parse_errors=["ambiguous_local_time:dropoff_at"]),
        ]
    )
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.rejected["_reasons"].to_list() == [
        ["unparseable:fare_usd", "unparseable:pickup_at", "pickup_at_missing"],
        ["ambiguous_local_time:dropoff_at"],
    ]
    # the unparseable fare is null, so it is also flagged as missing
    assert result.rejected["_flags"].to_list() == [["fare_missing"], []]


def test_flagged_rows_stay_staged_with_their_flags():
    df = frame(
        [
            trip(),
            trip(fare_usd=None),
            trip(pickup_lat=None, pickup_lon=None),
            trip(dropoff_lat=None, fare_usd=None),  # a half-geocoded point is not geocoded
        ]
    )
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.rejected.height == 0
    assert result.staged["_flags"].to_list() == [
        [],
        ["fare_missing"],
        ["pickup_not_geocoded"],
        ["fare_missing", "dropoff_not_geocoded"],
    ]
    # null coordinates are not "outside DC", a null fare is not "out of range"
    assert result.reason_counts["pickup_outside_area"] == 0
    assert result.reason_counts["fare_out_of_range"] == 0


def test_rejected_rows_keep_their_flags():
    df = frame([trip(fare_usd=None, payment_type=6)])
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.rejected["_reasons"].to_list() == [["payment_type_unknown"]]
    assert result.rejected["_flags"].to_list() == [["fare_missing"]]


def test_airport_trip_outside_dc_is_not_rejected():
    bwi = dict(dropoff_lat=BWI[0], dropoff_lon=BWI[1], distance_miles=32.0, duration_s=2700.0)
    df = frame([trip(airport=True, **bwi), trip(airport=False, **bwi), trip(airport=None, **bwi)])
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.staged["_line"].to_list() == [2]
    assert result.rejected["_reasons"].to_list() == [["dropoff_outside_area"]] * 2


def test_hour_rounding_dropoff_equal_or_an_hour_early_is_fine_two_hours_is_not():
    df = frame([trip(dropoff_at=T0), trip(dropoff_at=T0 - H), trip(dropoff_at=T0 - 2 * H)])
    result = check_rows(df, load_row_spec(DC_TAXI))
    assert result.rejected["_line"].to_list() == [4]
    # the generic trip spec (second precision) allows no earlier drop-off at all
    generic = check_rows(df.drop("payment_type", "trip_type", "airport"), load_row_spec(TRIP))
    assert generic.rejected["_line"].to_list() == [3, 4]


def test_ignore_null_false_makes_a_null_fail(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "checks:\n"
        "  - {name: fare_high, kind: reject, column: fare_usd, between: [0, 100]}\n"
        "  - {name: fare_high_strict, kind: reject, column: fare_usd, between: [0, 100],"
        " ignore_null: false}\n"
    )
    result = check_rows(frame([trip(fare_usd=None), trip(fare_usd=500.0)]), load_row_spec(spec))
    assert result.rejected["_reasons"].to_list() == [
        ["fare_high_strict"],
        ["fare_high", "fare_high_strict"],
    ]


def test_a_bound_changed_in_yaml_changes_the_result(tmp_path):
    df = frame([trip(fare_usd=12.0), trip(fare_usd=150.0)])
    assert check_rows(df, load_row_spec(DC_TAXI)).rejected.height == 0

    for name in ("trip_rows.yaml", "dc_taxi_rows.yaml"):
        (tmp_path / name).write_text((SCHEMAS / name).read_text())
    edited = tmp_path / "dc_taxi_rows.yaml"
    text = edited.read_text()
    assert "between: [3.25, 180]" in text
    edited.write_text(text.replace("between: [3.25, 180]", "between: [3.25, 100]"))
    result = check_rows(df, load_row_spec(edited))
    assert result.rejected["_line"].to_list() == [3]
    assert result.rejected["_reasons"].to_list() == [["fare_out_of_range"]]


def test_extends_and_override_by_name(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(
        f"extends: {DC_TAXI}\n"
        "columns:\n"
        "  total_usd: money\n"
        "checks:\n"
        "  - {name: fare_missing, kind: reject}            # kind only; test inherited\n"
        "  - {name: mileage_out_of_range, between: [0, 2.8]}  # bound only; kind inherited\n"
        "  - {name: speed_implausible, enabled: false}\n"
        "  - {name: total_below_fare, kind: flag, expr: 'total_usd >= fare_usd'}\n"
    )
    base = load_row_spec(DC_TAXI)
    spec = load_row_spec(child)
    names = [c.name for c in spec.checks]
    assert names == [n for n in (c.name for c in base.checks) if n != "speed_implausible"] + [
        "total_below_fare"
    ]
    assert spec.kind_of("fare_missing") == "reject"
    assert spec.kind_of("mileage_out_of_range") == "reject"
    # the override of a bound keeps the column, and the grandparent's checks are all there
    mileage = next(c for c in spec.checks if c.name == "mileage_out_of_range")
    assert mileage.column == "distance_miles"
    assert "child.yaml" in mileage.where

    df = frame(
        [
            trip(),
            trip(fare_usd=None),
            trip(distance_miles=3.0),
            trip(total_usd=5.0),
            trip(distance_miles=1.0, duration_s=1.0),  # 3600 mph, but that check is disabled
        ]
    )
    result = check_rows(df, spec)
    assert result.rejected["_reasons"].to_list() == [["fare_missing"], ["mileage_out_of_range"]]
    assert result.staged["_flags"].to_list() == [[], ["total_below_fare"], []]
    assert "speed_implausible" not in result.reason_counts


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  - {name: fare_regex, kind: reject, column: fare_usd, regex: '^[0-9]'}",
            r"check 'fare_regex': unknown key\(s\) regex",
        ),
        (
            "  - {name: fare_warn, kind: warn, column: fare_usd, between: [0, 1]}",
            r"check 'fare_warn': kind 'warn' is unknown",
        ),
        (
            "  - {kind: reject, column: fare_usd, between: [0, 1]}",
            r"checks\[1\] \(kind: reject, column: fare_usd, between: \[0, 1\]\) has no `name`",
        ),
        (
            "  - {name: two_tests, kind: reject, column: fare_usd, between: [0, 1], isin: [1]}",
            r"check 'two_tests': needs exactly one test",
        ),
        (
            "  - {name: no_test, kind: reject, column: fare_usd}",
            r"check 'no_test': needs exactly one test",
        ),
        (
            "  - {name: bad_sql, kind: reject, expr: 'fare_usd >>> 3'}",
            r"check 'bad_sql': `expr: fare_usd >>> 3` is not a valid polars SQL",
        ),
        (
            "  - {name: typo, kind: reject, expr: 'fare_usdd > 3'}",
            r"check 'typo': uses column\(s\) fare_usdd that the spec does not declare",
        ),
        (
            "  - {name: reversed, kind: reject, column: fare_usd, between: [10, 1]}",
            r"check 'reversed': bounds of fare_usd are reversed",
        ),
        (
            "  - {name: no_kind, column: fare_usd, between: [0, 1]}",
            r"check 'no_kind' needs `kind: reject` or `kind: flag`: it overrides no check",
        ),
        (
            "  - {name: Bad-Name, kind: reject, column: fare_usd, between: [0, 1]}",
            r"check 'Bad-Name': a name is lower case",
        ),
        (
            "  - {name: dup, kind: reject, column: fare_usd, between: [0, 1]}\n"
            "  - {name: dup, kind: flag, not_null: fare_usd}",
            r"check 'dup' is defined twice",
        ),
        (
            "  - {name: ts_vs_number, kind: reject, expr: 'pickup_at + 1 > 3'}",
            r"check 'ts_vs_number': \+ not allowed on datetime",
        ),
        (
            "  - {name: not_boolean, kind: reject, expr: 'fare_usd * 2'}",
            r"check 'not_boolean': the test gives Float64, not true/false",
        ),
        (
            "  - {name: ts_range, kind: reject, column: pickup_at, between: [0, 1]}",
            r"check 'ts_range': `between` needs a numeric column; pickup_at is timestamp",
        ),
    ],
)
def test_a_bad_spec_names_the_check_and_line(tmp_path, body, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "columns: {fare_usd: money, pickup_at: timestamp}\n"
        "checks:\n"
        "  - {name: fare_missing, kind: flag, not_null: fare_usd}\n" + body + "\n"
    )
    with pytest.raises(RowSpecError, match=message) as info:
        load_row_spec(spec)
    assert f"{spec}:" in str(info.value)
    assert ":4:" in str(info.value) or ":5:" in str(info.value)  # the line of the bad entry


def test_bad_spec_files(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("checks: [\n")
    with pytest.raises(RowSpecError, match="not valid YAML"):
        load_row_spec(bad)
    bad.write_text("check: []\n")
    with pytest.raises(RowSpecError, match="unknown key\\(s\\) check"):
        load_row_spec(bad)
    bad.write_text("extends: b.yaml\nchecks: []\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nchecks: []\n")
    with pytest.raises(RowSpecError, match="cycle"):
        load_row_spec(bad)
    bad.write_text("extends: nowhere.yaml\n")
    with pytest.raises(RowSpecError, match="no such file"):
        load_row_spec(bad)
    bad.write_text(f"extends: {TRIP}\nchecks:\n  - {{name: fare_mising, enabled: false}}\n")
    with pytest.raises(RowSpecError, match=r"a.yaml:3: check 'fare_mising' needs `kind: reject`"):
        load_row_spec(bad)
    bad.write_text("columns: {fare_usd: decimal}\n")
    with pytest.raises(RowSpecError, match="column 'fare_usd' has type 'decimal'"):
        load_row_spec(bad)


def test_a_batch_missing_a_column_is_an_error_not_a_pass():
    df = frame([trip()]).drop("payment_type")
    with pytest.raises(RowCheckError, match=r"missing column 'payment_type'.*payment_type_unknown"):
        check_rows(df, load_row_spec(DC_TAXI))
    df = frame([trip()]).with_columns(pl.col("fare_usd").cast(pl.Utf8))
    with pytest.raises(RowCheckError, match="column 'fare_usd' is String, expected money"):
        check_rows(df, load_row_spec(DC_TAXI))


def test_a_check_that_fails_to_run_is_an_error_naming_it(tmp_path):
    spec = tmp_path / "s.yaml"  # no `columns:`, so the expression is not tried at load time
    spec.write_text("checks:\n  - {name: weird, kind: reject, expr: 'source_record_id + 1 > 3'}\n")
    with pytest.raises(RowCheckError, match=r"check 'weird': .*arithmetic on dtypes str"):
        check_rows(frame([trip()]), load_row_spec(spec))


def test_pandera_is_the_validator():
    spec = load_row_spec(DC_TAXI)
    schema = pandera_schema(spec)
    assert isinstance(schema, pa.DataFrameSchema)
    names = [c.name for c in schema.checks] + [
        c.name for col in schema.columns.values() for c in col.checks
    ]
    assert sorted(names) == sorted(c.name for c in spec.checks)
    schema.validate(frame([trip()]), lazy=True)  # a clean frame passes pandera itself
    with pytest.raises(pa.errors.SchemaErrors) as info:
        schema.validate(frame([trip(), trip(fare_usd=-3.0)]), lazy=True)
    assert info.value.failure_cases["check"].to_list() == ["fare_out_of_range"]
    assert info.value.failure_cases["index"].to_list() == [1]


def test_pandera_is_given_only_the_columns_the_checks_read(monkeypatch):
    seen = []
    validate = pa.DataFrameSchema.validate

    def spy(schema, df, *args, **kwargs):
        seen.append(df.columns)
        return validate(schema, df, *args, **kwargs)

    monkeypatch.setattr(pa.DataFrameSchema, "validate", spy)
    spec = load_row_spec(DC_TAXI)
    df = frame([trip(), trip(fare_usd=-3.0)]).with_columns(pl.lit("a.txt").alias("_file"))
    assert check_rows(df, spec).rejected["_line"].to_list() == [3]
    assert set(seen[0]) == spec.required_columns  # not `_file`, `_line`, `_parse_errors`


def test_pandera_settings_cannot_turn_the_checks_off():
    df = frame([trip(), trip(fare_usd=-3.0)])
    spec = load_row_spec(DC_TAXI)
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        assert check_rows(df, spec).rejected.height == 1
    with config_context(validation_enabled=False):
        assert check_rows(df, spec).rejected.height == 1
    # a LazyFrame is validated on its data too
    assert check_rows(df.lazy(), spec).rejected.height == 1


def test_a_clean_batch_and_an_empty_batch():
    spec = load_row_spec(DC_TAXI)
    result = check_rows(frame([trip(), trip()]), spec)
    assert result.rejected.height == 0
    assert result.staged["_flags"].to_list() == [[], []]
    assert set(result.reason_counts.values()) == {0}
    empty = check_rows(frame([]), spec)
    assert empty.staged.height == empty.rejected.height == 0
    assert "_reasons" in empty.rejected.columns


@pytest.mark.parametrize("n_labels", [3, 12, 70])
def test_label_lists_match_a_plain_computation(n_labels):
    import random

    rng = random.Random(n_labels)
    labels = [f"c{i}" for i in range(n_labels)]
    rows = [[rng.random() < 0.3 for _ in labels] for _ in range(500)]
    bits = pl.DataFrame(rows, schema=labels, orient="row")
    got = label_lists(bits, labels, bits.height).to_list()
    assert got == [[lab for lab, b in zip(labels, row, strict=True) if b] for row in rows]


def test_shipped_specs_load():
    trip_spec = load_row_spec(TRIP)
    dc = load_row_spec(DC_TAXI)
    assert {c.name for c in trip_spec.checks} <= {c.name for c in dc.checks}
    kinds = {c.name: c.kind for c in dc.checks}
    assert kinds["fare_missing"] == kinds["pickup_not_geocoded"] == "flag"
    assert kinds["fare_out_of_range"] == kinds["payment_type_unknown"] == "reject"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ETL_ROWCHECK_BENCH"), reason="set ETL_ROWCHECK_BENCH=5000000 to time"
)
def test_timing_at_scale():
    """5 M rows, a quarter flagged: prints the time; run with -s."""
    import numpy as np

    n = int(os.environ["ETL_ROWCHECK_BENCH"])
    rng = np.random.default_rng(0)
    dur = rng.gamma(2.0, 450.0, n)
    pick = pl.Series(rng.integers(0, 8760, n) * 3_600_000_000).cast(pl.Datetime("us", "UTC"))
    gone = pl.Series(rng.random(n) < 0.16)
    df = pl.DataFrame(
        {
            "source_record_id": pl.int_range(n, eager=True).cast(pl.Utf8),
            "pickup_at": pick,
            "dropoff_at": pick
            + pl.Series((np.round(dur / 3600) * 3_600_000_000).astype("int64")).cast(
                pl.Duration("us")
            ),
            "pickup_lat": rng.uniform(38.82, 38.99, n),
            "pickup_lon": rng.uniform(-77.11, -76.92, n),
            "dropoff_lat": rng.uniform(38.82, 38.99, n),
            "dropoff_lon": rng.uniform(-77.11, -76.92, n),
            "distance_miles": dur / 3600 * rng.uniform(8, 25, n),
            "duration_s": dur,
            "fare_usd": rng.uniform(-1, 60, n),
            "payment_type": rng.integers(1, 6, n).astype("int16"),
            "trip_type": rng.integers(1, 3, n).astype("int16"),
            "airport": rng.random(n) < 0.03,
            "pickup_in_dc": pl.Series([None] * n, dtype=pl.Boolean),
            "dropoff_in_dc": pl.Series([None] * n, dtype=pl.Boolean),
            "_line": pl.int_range(2, n + 2, eager=True),
        }
    ).with_columns(
        pl.when(gone).then(None).otherwise(pl.col("pickup_lat")).alias("pickup_lat"),
        pl.when(gone).then(None).otherwise(pl.col("pickup_lon")).alias("pickup_lon"),
        pl.when(pl.col("_line") % 50 == 0)
        .then(None)
        .otherwise(pl.col("fare_usd"))
        .alias("fare_usd"),
        pl.when(pl.col("_line") % 1000 == 0)
        .then(pl.lit(["unparseable:fare_usd"]))
        .otherwise(pl.lit([], pl.List(pl.Utf8)))
        .alias("_parse_errors"),
    )
    spec = load_row_spec(DC_TAXI)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = check_rows(df, spec)
        times.append(time.perf_counter() - t0)
    assert result.staged.height + result.rejected.height == n
    print(f"\ncheck_rows on {n:,} rows: best {min(times):.2f} s of {[round(t, 2) for t in times]}")

"""A fourth trip source added by a sources.yaml entry alone: a third company's monthly Parquet
files, with its own column names and units (local times, metres, cents, minutes).

The project is a temp folder holding only `sources.yaml` (the default one plus the new entry
and a match pair) and `schemas/`: no SQL model and no Python is written for the new source. Its
rows must reach curated.trips through the generated intermediate view, its bad rows reach
quarantine with their reasons and row ordinals, the control totals reconcile, and the match
pair finds exactly the trips planted from the sample's dispatch trips.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import polars as pl
import pytest
import yaml
from conftest import DEFAULT_CONFIG, Warehouse

from etl.sample import write_sample

SEED, SCALE = 5, 0.05
ZONE = "America/New_York"

FLEET = {
    "format": "parquet",
    "files": ["company/cityfleet/cityfleet_*.parquet"],
    "row_checks": "schemas/trip_rows.yaml",
    "suite": "schemas/suites/trip.json",
    "columns": {
        "source_record_id": {"from": "ride_id"},
        "vehicle_id": {"from": "cab", "required": False},
        "pickup_at": {"from": "started_local", "type": "timestamp", "timezone": ZONE},
        "dropoff_at": {"from": "ended_local", "type": "timestamp", "timezone": ZONE},
        "pickup_lat": {"from": "start_latitude", "type": "float"},
        "pickup_lon": {"from": "start_longitude", "type": "float"},
        "dropoff_lat": {"from": "end_latitude", "type": "float"},
        "dropoff_lon": {"from": "end_longitude", "type": "float"},
        # Text in the file: parsed like a delimited file's text, a bad value is a reason.
        "distance_miles": {"from": "metres", "type": "float", "unit": "meters"},
        "duration_s": {"from": "ride_minutes", "type": "float", "unit": "minutes"},
        "fare_usd": {"from": "fare_cents", "type": "money", "unit": "cents"},
    },
}
PAIR = {"left": "dispatch", "right": "cityfleet", "max_time_gap_s": 120, "max_distance_m": 100}


def _fleet_rows(trips: pl.DataFrame, ids: list[str], shift: timedelta) -> pl.DataFrame:
    """The fleet's log of these dispatch trips: its clock `shift` apart, its GPS ~20 m off."""
    local = [
        pl.col(c).dt.replace_time_zone("UTC").dt.convert_time_zone(ZONE).dt.replace_time_zone(None)
        + shift
        for c in ("pickup_at", "dropoff_at")
    ]
    return trips.select(
        pl.Series("ride_id", ids),
        pl.format("CAB-{}", pl.int_range(pl.len())).alias("cab"),
        local[0].alias("started_local"),
        local[1].alias("ended_local"),
        (pl.col("pickup_lat") + 0.00015).alias("start_latitude"),
        (pl.col("pickup_lon") - 0.0001).alias("start_longitude"),
        (pl.col("dropoff_lat") - 0.0001).alias("end_latitude"),
        pl.col("dropoff_lon").alias("end_longitude"),
        (pl.col("distance_miles") / 0.000621371192237334).round(1).cast(pl.Utf8).alias("metres"),
        (pl.col("duration_s") / 60).alias("ride_minutes"),
        (pl.col("fare_usd") * 100).round(0).cast(pl.Int64).alias("fare_cents"),
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The sample loaded with the default config, then again with the fourth source added."""
    root = tmp_path_factory.mktemp("fourth")
    wh = Warehouse(root)
    write_sample(wh.data, seed=SEED, scale=SCALE, sources=("dc_boundary", "dispatch", "courier"))
    project = root / "project"
    project.mkdir()
    shutil.copytree(DEFAULT_CONFIG.parent / "schemas", project / "schemas")
    shutil.copy(DEFAULT_CONFIG, project / "sources.yaml")
    wh.config = project / "sources.yaml"
    assert wh.run().published

    dispatch = pl.DataFrame(
        wh.query(
            "SELECT source_record_id, timezone('UTC', pickup_at), timezone('UTC', dropoff_at), "
            "pickup_lat, pickup_lon, dropoff_lat, "
            "dropoff_lon, distance_miles, duration_s, fare_usd, len(seen_by) > 1 AS with_courier "
            "FROM curated.trips WHERE source = 'dispatch' AND month(pickup_at) BETWEEN 3 AND 10 "
            "AND pickup_lat IS NOT NULL AND dropoff_lat IS NOT NULL AND fare_usd < 150 "
            "AND distance_miles < 100 ORDER BY with_courier DESC, source_record_id"
        ),
        schema=["id", "pickup_at", "dropoff_at", "pickup_lat", "pickup_lon", "dropoff_lat",
                "dropoff_lon", "distance_miles", "duration_s", "fare_usd", "with_courier"],
        orient="row",
    )  # fmt: skip
    planted, apart = dispatch.head(8), dispatch.slice(8, 4)
    assert planted["with_courier"].sum() >= 2, "some planted trips are courier matches too"
    rows = pl.concat(
        [
            _fleet_rows(planted, [f"CF-{i:04d}" for i in range(8)], timedelta(seconds=45)),
            # Three hours apart: the same places, but not the same trips.
            _fleet_rows(apart, [f"CF-{i:04d}" for i in range(8, 12)], timedelta(hours=3)),
        ]
    )
    bad = rows.head(3).with_columns(pl.Series("ride_id", ["CF-BAD1", "CF-BAD2", "CF-BAD3"]))
    bad = bad.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("started_local"))
        .alias("started_local"),
        pl.when(pl.int_range(pl.len()) == 1).then(9_999_999).otherwise(pl.col("fare_cents"))
        .alias("fare_cents"),
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("n/a")).otherwise(pl.col("metres"))
        .alias("metres"),
    )  # fmt: skip
    folder = wh.data / "company" / "cityfleet"
    folder.mkdir()
    # Monthly files; the bad rows are rows 2, 4 and 6 of a file of their own.
    good = rows.with_columns(pl.col("started_local").dt.strftime("%Y%m").alias("month"))
    for (month,), part in good.group_by("month"):
        part.drop("month").write_parquet(folder / f"cityfleet_{month}.parquet")
    mixed = pl.concat([rows.slice(8, 1), bad[0], rows.slice(9, 1), bad[1], rows.slice(10, 1),
                       bad[2]])  # fmt: skip
    mixed = mixed.with_columns(
        pl.when(pl.col("ride_id").str.starts_with("CF-BAD"))
        .then(pl.col("ride_id"))
        .otherwise(pl.col("ride_id") + "-R")
        .alias("ride_id"),
        pl.col("started_local") + timedelta(days=1),
        pl.col("ended_local") + timedelta(days=1),
    )
    mixed.write_parquet(folder / "cityfleet_resent.parquet")

    config = yaml.safe_load(wh.config.read_text())
    config["sources"]["cityfleet"] = FLEET
    config["integrate"]["matches"].append(PAIR)
    wh.config.write_text(yaml.safe_dump(config, sort_keys=False))
    result = wh.run()
    return wh, result, planted, rows, mixed


def test_the_fourth_source_loads_and_publishes(fleet):
    wh, result, *_ = fleet
    assert result.published, result.message
    loaded = {f.path for f in result.files if f.source == "cityfleet" and f.status == "loaded"}
    assert "company/cityfleet/cityfleet_resent.parquet" in loaded and len(loaded) >= 2
    assert not (wh.config.parent / "warehouse").exists()  # no SQL model of its own


def test_its_rows_reach_curated_trips_in_canonical_units(fleet):
    wh, _, _, rows, _ = fleet
    curated = dict(
        ((rid, (fare, round(miles, 3), round(duration), precision)))
        for rid, fare, miles, duration, precision in wh.query(
            "SELECT source_record_id, fare_usd, distance_miles, duration_s, "
            "time_precision || '/' || location_precision FROM curated.trips "
            "WHERE source = 'cityfleet'"
        )
    )
    # The unplanted rows of the monthly files and the resent file's three good rows; the
    # planted ones are kept once, as dispatch's records.
    expected = {f"CF-{i:04d}" for i in range(8, 12)} | {f"CF-{i:04d}-R" for i in range(8, 11)}
    assert set(curated) == expected
    row = rows.filter(pl.col("ride_id") == "CF-0008").row(0, named=True)
    fare, miles, duration, precision = curated["CF-0008"]
    assert fare == pytest.approx(row["fare_cents"] / 100)
    assert miles == pytest.approx(float(row["metres"]) * 0.000621371192237334, abs=1e-3)
    assert duration == round(row["ride_minutes"] * 60)
    assert precision == "second/exact"
    pickup = wh.scalar(
        "SELECT timezone($zone, pickup_at) FROM curated.trips WHERE source_record_id = 'CF-0008'",
        {"zone": ZONE},
    )
    assert pickup == row["started_local"]  # a local time, now UTC in the warehouse


def test_bad_rows_are_quarantined_with_reasons_and_row_ordinals(fleet):
    wh, *_ = fleet
    quarantined = {
        (line, tuple(reasons), raw_id)
        for line, reasons, raw_id in wh.query(
            "SELECT line, reasons, json_extract_string(raw, '$.ride_id') FROM quality.quarantine "
            "WHERE source = 'cityfleet' AND file = 'company/cityfleet/cityfleet_resent.parquet'"
        )
    }
    assert quarantined == {
        (2, ("pickup_at_missing",), "CF-BAD1"),
        (4, ("fare_out_of_range",), "CF-BAD2"),
        (6, ("unparseable:distance_miles",), "CF-BAD3"),
    }
    lines = wh.query(
        "SELECT _line FROM staging.cityfleet WHERE _file LIKE '%resent%' ORDER BY _line"
    )
    assert [line for (line,) in lines] == [1, 3, 5]


def test_control_totals_reconcile_with_the_fourth_source(fleet):
    wh, result, *_ = fleet
    totals = wh.query(
        "SELECT rows_read, rows_quarantined, rows_merged, rows_curated, unexplained_read, "
        "unexplained_staging, unexplained_quarantine, unexplained_rows, unexplained_fare_usd "
        "FROM quality.control_totals WHERE run_id = ? AND source = 'cityfleet'",
        [result.run_id],
    )
    assert totals == [(18, 3, 8, 7, 0, 0, 0, 0, 0.0)]


def test_the_match_pair_finds_exactly_the_planted_trips(fleet):
    wh, result, planted, *_ = fleet
    found = set(
        wh.query(
            "SELECT left_id, right_id FROM quality.matches "
            "WHERE run_id = ? AND left_source = 'dispatch' AND right_source = 'cityfleet'",
            [result.run_id],
        )
    )
    assert found == {(pid, f"CF-{i:04d}") for i, pid in enumerate(planted["id"])}


def test_a_trip_three_silos_logged_is_kept_once_and_seen_by_all(fleet):
    wh, _, planted, *_ = fleet
    both = planted.filter(pl.col("with_courier"))["id"].to_list()
    rows = wh.query(
        "SELECT source_record_id, seen_by FROM curated.trips WHERE source_record_id IN "
        "(SELECT unnest(?::VARCHAR[]))",
        [both],
    )
    # The kept source first, then the others by name.
    assert sorted(rows) == sorted((pid, ["dispatch", "cityfleet", "courier"]) for pid in both)

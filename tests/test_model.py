"""`etl train` and `etl predict`: the training table, the time split, the models against the
naive baseline, the saved files and one estimate, on a small sample warehouse."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import Warehouse
from typer.testing import CliRunner

from etl.cli.main import app
from etl.ml.features import (
    CATEGORICAL,
    FEATURES,
    TripRequest,
    request_features,
    training_table,
)
from etl.ml.train import import_lightgbm, time_split

WHITE_HOUSE = "38.8977,-77.0365"
UNION_STATION = "38.8973,-77.0063"
FIT = """
    pickup_lat IS NOT NULL AND pickup_lon IS NOT NULL
    AND dropoff_lat IS NOT NULL AND dropoff_lon IS NOT NULL
    AND duration_s > 0 AND distance_miles > 0
    AND NOT list_has_any(coalesce(flags, []), ['speed_implausible', 'not_a_trip'])
"""

if importlib.util.find_spec("lightgbm") is None:  # found, not imported: collection stays fast
    pytest.skip("the model extra is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def loaded(sample_warehouse) -> Warehouse:
    """The session's sample warehouse (conftest): read only; tests that change it copy it."""
    return sample_warehouse.wh


@pytest.fixture(scope="module")
def trained(loaded, tmp_path_factory) -> tuple[Warehouse, Path, dict]:
    """`etl train --json` once, through the command line."""
    out = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(
        app, ["train", "--warehouse", str(loaded.path), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    return loaded, out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def table(trained) -> pl.DataFrame:
    _, out, _ = trained
    return pl.read_parquet(out / "training_table.parquet")


def test_training_table_holds_exactly_the_fit_trips(trained) -> None:
    wh, out, summary = trained
    training = f"read_parquet('{out / 'training_table.parquet'}')"
    in_table = f"trip_id IN (SELECT trip_id FROM {training})"
    with duckdb.connect(str(wh.path), read_only=True) as con:
        [(unfit, fit, kept, excluded, missing_fare)] = con.execute(
            f"""SELECT count(*) FILTER ({in_table} AND NOT ({FIT})),
                       count(*) FILTER ({FIT}),
                       count(*) FILTER ({in_table}),
                       count(*) FILTER (NOT ({FIT})),
                       count(*) FILTER ({in_table} AND list_contains(flags, 'fare_missing'))
                FROM curated.trips"""
        ).fetchall()
        [(without_fare,)] = con.execute(
            f"SELECT count(*) FROM {training} WHERE NOT fare_fit"
        ).fetchall()
    assert unfit == 0
    assert kept == fit == summary["rows"]["training_table"]
    assert excluded > 0, "the sample has trips without both points geocoded"
    assert missing_fare > 0, "a trip without a fare still teaches duration"
    assert without_fare == missing_fare


def test_unfit_flags_are_dropped_and_swapped_coordinates_kept(loaded, tmp_path) -> None:
    """Plant one trip per reason in a copy of the warehouse (the sample publishes none with
    these flags) and see which ones the training table keeps."""
    copy = tmp_path / "planted.duckdb"
    shutil.copy(loaded.path, copy)
    plants = {
        "speed": "flags = ['speed_implausible']",
        "not_a_trip": "flags = ['not_a_trip']",
        "no_dropoff": "dropoff_lat = NULL, dropoff_lon = NULL",
        "zero_duration": "duration_s = 0",
        "zero_distance": "distance_miles = 0",
        "fare_missing": "fare_usd = NULL, flags = ['fare_missing']",
        "swapped": "flags = ['swapped_coordinates:pickup']",
    }
    with duckdb.connect(str(copy)) as con:
        template = con.execute(
            f"SELECT source_record_id FROM curated.trips WHERE source = 'dispatch' AND {FIT} "
            "LIMIT 1"
        ).fetchone()[0]
        for name, change in plants.items():
            # trip_id and seen_by are computed on read: a new record id makes a new trip. A
            # dispatch trip is a stored row of the view curated.trips (trips_view.py).
            con.execute(
                "INSERT INTO intermediate.stored_trips BY NAME SELECT * EXCLUDE (trip_id, seen_by) "
                "REPLACE ('plant:' || ? AS source_record_id) "
                "FROM curated.trips WHERE source = 'dispatch' AND source_record_id = ?",
                [name, template],
            )
            con.execute(
                f"UPDATE intermediate.stored_trips SET {change} "
                f"WHERE source_record_id = 'plant:{name}'"
            )
    frame = training_table(copy).filter(pl.col("trip_id").str.starts_with("dispatch:plant:"))
    kept = {row["trip_id"].removeprefix("dispatch:"): row for row in frame.iter_rows(named=True)}
    assert set(kept) == {"plant:fare_missing", "plant:swapped"}
    assert kept["plant:fare_missing"]["fare_usd"] is None
    assert kept["plant:fare_missing"]["fare_fit"] is False
    assert kept["plant:swapped"]["fare_fit"] is True


def test_features_have_no_nulls_and_sensible_ranges(table) -> None:
    assert table.select(pl.col(FEATURES).null_count()).sum_horizontal().item() == 0
    assert table.select(pl.col("duration_s").null_count()).item() == 0
    assert (table["fare_usd"].is_null() == ~table["fare_fit"]).all()
    assert table["hour_of_day"].is_between(0, 23).all()
    assert table["day_of_week"].is_between(1, 7).all()
    assert table["bearing_deg"].is_between(0, 360, closed="left").all()
    assert table["straight_miles"].is_between(0, 60).all()
    assert set(table["source"]) == {"dc_taxi", "dispatch", "courier"}
    weekend = table.filter(pl.col("is_weekend"))
    assert weekend["day_of_week"].is_in([6, 7]).all()


def test_time_split_has_no_overlap(table, trained) -> None:
    _, _, summary = trained
    train, test = time_split(table)
    assert train["pickup_at"].max() < test["pickup_at"].min()
    assert train.height + test.height == table.height
    assert not set(train["trip_id"]) & set(test["trip_id"])
    assert 0.15 < test.height / table.height < 0.25
    assert summary["rows"]["train"] == train.height
    assert summary["split"]["train"]["last_pickup"] < summary["split"]["test"]["first_pickup"]


def test_models_beat_the_naive_baseline_on_the_test_split(trained) -> None:
    _, _, summary = trained
    duration = summary["metrics"]["duration_s"]
    assert duration["model"]["mae"] < 0.85 * duration["baseline"]["mae"]
    assert duration["model"]["mape"] < duration["baseline"]["mape"]
    fare = summary["metrics"]["fare_usd"]
    assert fare["model"]["mape"] < fare["baseline"]["mape"]


def test_models_metrics_and_card_are_written(trained) -> None:
    _, out, summary = trained
    lightgbm = import_lightgbm()
    meta = json.loads((out / "model.json").read_text())
    for name in ("duration_model.txt", "fare_model.txt"):
        booster = lightgbm.Booster(model_file=str(out / name))  # LightGBM's text format
        assert booster.feature_name() == meta["features"]
    assert set(FEATURES) - set(meta["features"]) <= {"month"}  # the sample covers one year
    assert json.loads((out / "metrics.json").read_text())["metrics"] == summary["metrics"]
    assert set(meta["levels"]) == set(CATEGORICAL)
    card = (out / "model_card.md").read_text()
    assert "straight_miles" in card and "rounded to the hour" in card
    assert f"{summary['rows']['training_table']:,}" in card
    assert not list(out.glob(".train-*")), "no scratch folder left behind"


def test_training_is_deterministic(trained, tmp_path) -> None:
    wh, out, _ = trained
    again = CliRunner().invoke(
        app, ["train", "--warehouse", str(wh.path), "--out", str(tmp_path), "--json"]
    )
    assert again.exit_code == 0, again.output
    for name in ("duration_model.txt", "fare_model.txt", "model.json", "model_card.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_a_request_gets_the_features_its_trip_had_in_training(table) -> None:
    """One feature definition for both: a trip asked as a request gets its training row."""
    trips = table.filter(pl.col("source") == "dispatch").head(5)
    for row in trips.iter_rows(named=True):
        request = TripRequest(
            row["pickup_lat"],
            row["pickup_lon"],
            row["dropoff_lat"],
            row["dropoff_lon"],
            row["pickup_at"],
            row["source"],
            row["time_precision"],
        )
        asked = request_features(request).row(0, named=True)
        assert {k: asked[k] for k in FEATURES} == {k: row[k] for k in FEATURES}


def test_predict_white_house_to_union_station(trained) -> None:
    _, out, _ = trained
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--from", WHITE_HOUSE,
            "--to", UNION_STATION,
            "--at", "2023-10-10T08:30",
            "--models", str(out),
            "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    assert 1.4 < estimate["straight_miles"] < 1.8
    assert 5 <= estimate["duration_min"] <= 30
    assert 8 <= estimate["fare_usd"] <= 20
    assert estimate["at"] == "2023-10-10T08:30:00-04:00"  # DC local time, daylight saving
    assert estimate["features"]["hour_of_day"] == 8
    night = CliRunner().invoke(
        app,
        ["predict", "--from", WHITE_HOUSE, "--to", UNION_STATION, "--at", "2023-10-15T03:00Z",
         "--models", str(out), "--json"],
    )  # fmt: skip
    assert json.loads(night.stdout)["duration_min"] < estimate["duration_min"]  # 23:00 Saturday


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "38.9,abc"], "expected LAT,LON"),
        (["--from", "38.9"], "expected LAT,LON"),
        (["--from", "-77.03,38.9"], "swapped"),
        (["--from", "40.71,-74.0"], "outside the Washington region"),
        (["--at", "next tuesday"], "ISO date"),
        (["--source", "uber"], "the models know"),
    ],
)
def test_predict_fails_cleanly_on_bad_input(trained, args, message) -> None:
    _, out, _ = trained
    defaults = {"--from": WHITE_HOUSE, "--to": UNION_STATION, "--models": str(out)}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = [part for option, value in {**defaults, **given}.items() for part in (option, value)]
    result = CliRunner().invoke(app, ["predict", *argv])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_predict_without_models_and_train_without_warehouse_exit_2(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["predict", "--from", WHITE_HOUSE, "--to", UNION_STATION, "--models", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no models yet" in result.stderr
    result = runner.invoke(app, ["train", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "no warehouse yet" in result.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_train_without_lightgbm_says_how_to_install(trained, monkeypatch, tmp_path) -> None:
    wh, _, _ = trained
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm -> ImportError
    result = CliRunner().invoke(
        app, ["train", "--warehouse", str(wh.path), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: lightgbm is not installed: pip install -e '.[model]'"
    assert not (tmp_path / "m").exists()


def test_pickup_time_is_dc_local_unless_an_offset_is_given() -> None:
    from etl.ml.predict import parse_time

    assert parse_time("2024-01-15T08:00").utcoffset().total_seconds() == -5 * 3600
    assert parse_time("2024-07-15T08:00").utcoffset().total_seconds() == -4 * 3600
    assert parse_time("2024-07-15T12:00Z") == datetime.fromisoformat("2024-07-15T08:00-04:00")


def test_batch_prediction_carries_ids_and_flags_bad_rows(trained, tmp_path) -> None:
    """A CSV of planned trips: ids come back as written, a bad row gets an error in its row,
    a point outside the region a warning, and a good row the single-trip estimate."""
    _, out, _ = trained
    trips = tmp_path / "trips.csv"
    trips.write_text(
        "id,pickup_lat,pickup_lon,dropoff_lat,dropoff_lon,pickup_at,source\n"
        "007,38.8977,-77.0365,38.8973,-77.0063,2023-10-10T08:30,\n"
        "008,38.8977,-77.0365,38.8973,-77.0063,2023-10-10T12:30Z,dispatch\n"
        "009,abc,-77.0365,38.8973,-77.0063,2023-10-10T08:30,\n"
        "010,38.8977,-77.0365,38.8973,-77.0063,next tuesday,uber\n"
        "011,39.2900,-76.6100,38.8973,-77.0063,2023-10-10T08:30,\n"
    )
    answers = tmp_path / "answers.parquet"
    result = CliRunner().invoke(
        app, ["predict", "--in", str(trips), "--out", str(answers), "--models", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"in": None, "out": None} == {
        "in": None,
        "out": None,
        "models_version": json.loads((out / "model.json").read_text())["version"],
        "rows": 5,
        "estimated": 3,
        "errors": 2,
        "warnings": 1,
    }
    frame = pl.read_parquet(answers)
    assert frame["id"].to_list() == ["007", "008", "009", "010", "011"]
    assert frame.columns[:7] == pl.read_csv(trips, infer_schema=False).columns
    errors = frame["error"].to_list()
    assert errors[:2] == [None, None] and errors[4] is None
    assert errors[2] == "pickup_lat: not a number"
    assert (
        errors[3].startswith("pickup_at: not an ISO 8601") and "source: unknown uber" in errors[3]
    )
    assert frame["duration_s"][2] is None
    assert frame["warning"].to_list()[:4] == [None] * 4
    assert frame["warning"][4] == "pickup outside the region the models know: extrapolated"
    first = frame.row(0, named=True)
    assert first["duration_s_p10"] < first["duration_s"] < first["duration_s_p90"]
    assert first["fare_usd_p10"] < first["fare_usd"] < first["fare_usd_p90"]
    assert frame["duration_s"][0] == frame["duration_s"][1]  # 08:30 EDT is 12:30 UTC
    single = CliRunner().invoke(
        app,
        ["predict", "--from", WHITE_HOUSE, "--to", UNION_STATION, "--at", "2023-10-10T08:30",
         "--models", str(out), "--json"],
    )  # fmt: skip
    estimate = json.loads(single.stdout)
    assert estimate["fare_usd"] == first["fare_usd"]
    assert estimate["duration_min"] == round(first["duration_s"] / 60, 1)
    assert estimate["interval_80"]["fare_usd"] == [first["fare_usd_p10"], first["fare_usd_p90"]]


def test_batch_prediction_csv_out_and_bad_usage(trained, tmp_path) -> None:
    _, out, _ = trained
    trips = tmp_path / "trips.parquet"
    pl.DataFrame(
        {
            "trip": [1, 2],
            "pickup_lat": [38.8977, 38.9],
            "pickup_lon": [-77.0365, -77.02],
            "dropoff_lat": [38.8973, 38.91],
            "dropoff_lon": [-77.0063, -77.01],
            "pickup_at": ["2023-10-10T08:30", "2023-10-10 18:00:00"],
        }
    ).write_parquet(trips)
    answers = tmp_path / "out" / "answers.csv"
    runner = CliRunner()
    args = ["predict", "--in", str(trips), "--out", str(answers), "--models", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 estimated, 0 with an error" in result.stdout
    written = pl.read_csv(answers)
    assert written["trip"].to_list() == [1, 2] and written["error"].null_count() == 2
    assert not list(answers.parent.glob(".*.partial"))
    for argv, message in [
        (["predict", "--in", str(trips), "--models", str(out)], "--in and --out go together"),
        (["predict", "--in", str(trips), "--out", "x.json"], "expected a .csv or .parquet"),
        (["predict", "--in", str(tmp_path / "no.csv"), "--out", "x.csv", "--models", str(out)],
         "no such file"),
        (["predict", "--models", str(out)], "give --from and --to"),
    ]:  # fmt: skip
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, argv
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    pl.DataFrame({"pickup_lat": [38.9]}).write_csv(tmp_path / "short.csv")
    result = runner.invoke(
        app, ["predict", "--in", str(tmp_path / "short.csv"), "--out", str(tmp_path / "o.csv"),
              "--models", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2 and "missing required column(s): pickup_lon" in result.stderr


def test_report_shows_the_model_metrics(trained, tmp_path) -> None:
    wh, out, summary = trained
    page = tmp_path / "report.html"
    args = ["report", "--warehouse", str(wh.path), "--out", str(page)]
    result = CliRunner().invoke(app, [*args, "--models", str(out)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    section = html[html.index('<section id="model">') :]
    assert summary["version"] in section and "80% coverage" in section
    coverage = summary["metrics"]["fare_usd"]["by_source"]["courier"]["model"]["coverage_80"]
    assert f'<td data-label="80% coverage">{coverage:.1%}</td>' in section
    assert "morning peak 07-09" in section
    result = CliRunner().invoke(app, [*args, "--models", str(tmp_path / "none")])
    assert result.exit_code == 0 and "No models with metrics yet" in page.read_text()


def test_request_times_read_as_dc_local_time_unless_an_offset_is_given() -> None:
    """The batch and service reading of `pickup_at` agrees with `etl predict --at`, across both
    daylight-saving changes, in the fast forms and the general one alike."""
    from etl.ml.predict import parse_time
    from etl.ml.requests import parse_requests

    meta = {
        "levels": {"source": ["dispatch"]},
        "default_source": "dispatch",
        "source_time_precision": {"dispatch": "second"},
    }
    texts = [
        "2024-05-14T08:30",
        "2024-05-14T08:30:15",
        "2024-11-03T01:30",  # repeated hour: the first (daylight) reading
        "2024-03-10T02:30",  # skipped hour: read with the offset before the change
        "2024-05-14 08:30:15.5",
        "2024-05-14T08:30-04:00",
        "2024-05-14T12:30:00Z",
    ]
    frame = pl.DataFrame({"pickup_at": [*texts, "14/05/2024 08:30", None]}).with_columns(
        pickup_lat=38.9, pickup_lon=-77.0, dropoff_lat=38.91, dropoff_lon=-77.01
    )
    parsed = parse_requests(frame, meta)
    # (in UTC: Python never equates an ambiguous local time with a time in another zone)
    expected = [parse_time(text).astimezone(UTC) for text in texts]
    assert parsed["pickup_at"].to_list()[: len(texts)] == expected
    assert parsed["error"].to_list() == [None] * len(texts) + [
        "pickup_at: not an ISO 8601 date and time, e.g. 2024-05-14T08:30",
        "pickup_at: missing",
    ]

"""Readers by format: the registry, `format:` checked against it, and Parquet's typed columns."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pytest

from etl.config.load import ConfigError, load_config
from etl.config.spec import Source
from etl.engine.duckdb import sql_models
from etl.readers import READERS, formats
from etl.sources.files import FileRef, SourceError
from etl.stage.batch import FileReader, reject_unparseable, stage_files

ZONE = "America/New_York"


def test_every_format_declares_what_it_reads():
    declared = {
        name: (r.entity, r.by_lines, r.typed, r.open is not None) for name, r in READERS.items()
    }
    assert declared == {
        "delimited": ("trip", True, False, True),
        "jsonl": ("trip", True, False, True),
        "geojson": ("boundary", False, True, False),
        "parquet": ("trip", False, True, True),
    }


def _config(tmp_path, source: str) -> ConfigError:
    path = tmp_path / "sources.yaml"
    path.write_text(f"version: 1\nsources:\n  fleet:\n{source}")
    with pytest.raises(ConfigError) as caught:
        load_config(path, formats())
    return caught.value


def test_a_misspelt_format_names_the_key_and_the_closest_reader(tmp_path):
    error = _config(
        tmp_path, "    format: parqet\n    files: [a.parquet]\n    columns: {x: {from: X}}\n"
    )
    assert str(error).endswith(
        "sources.yaml:4: sources.fleet.format: unknown format 'parqet' "
        "(did you mean 'parquet'? known: delimited, geojson, jsonl, parquet)"
    )


def test_a_format_that_reads_no_trips_is_not_a_trip_source(tmp_path):
    error = _config(
        tmp_path, "    format: geojson\n    files: [a.json]\n    columns: {x: {from: X}}\n"
    )
    assert "format 'geojson' reads boundary rows, not trip" in str(error)


def test_latest_version_is_a_field_of_the_key(tmp_path):
    error = _config(
        tmp_path,
        "    format: jsonl\n    files: [a.jsonl]\n    latest_version: updated_at\n"
        "    columns: {source_record_id: {from: id}}\n",
    )
    assert "latest_version 'updated_at' is one field of the key" in str(error)


SOURCE = Source.model_validate(
    {
        "format": "parquet",
        "files": ["fleet/*.parquet"],
        "columns": {
            "source_record_id": {"from": "ride"},
            "pickup_at": {"from": "start", "type": "timestamp", "timezone": ZONE},
            "dropoff_at": {"from": "end", "type": "timestamp"},
            "distance_miles": {"from": "metres", "type": "float", "unit": "meters"},
            "fare_usd": {"from": "cents", "type": "money", "unit": "cents"},
            "passengers": {"from": "seats", "type": "integer"},
        },
    }
)


def _parquet(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out)
    return out.getvalue()


def _ref(tmp_path, name: str = "fleet_202303.parquet") -> FileRef:
    return FileRef("fleet", f"fleet/{name}", tmp_path / name, None, 0, "x")


FRAME = pl.DataFrame(
    {
        "ride": [101, 102, 103],  # a number in the file, a string field: cast
        "start": [datetime(2023, 3, 12, 1, 30), datetime(2023, 3, 12, 2, 30), None],
        "end": pl.Series(
            [datetime(2023, 3, 12, 7, 0), datetime(2023, 3, 12, 8, 0), None]
        ).dt.replace_time_zone("UTC"),
        "metres": [1609.344, None, 100.0],
        "cents": pl.Series([1250, 99, 7], dtype=pl.Int32),
        "seats": [1.0, 2.0, 1e30],  # the last does not fit an integer
    }
)


def test_a_parquet_file_is_read_whole_with_its_types_and_row_ordinals(tmp_path):
    data = _parquet(FRAME)
    reader = FileReader(_ref(tmp_path), SOURCE)
    assert reader.read(data[:100], last=False) is None  # gathered, not parsed
    read = reader.read(data[100:], last=True)
    assert read.raw.frame["_line"].to_list() == [1, 2, 3]
    assert read.raw.frame.schema["cents"] == pl.Int32  # kept as typed

    batch = stage_files([read], SOURCE, "r1", reject_unparseable)
    staged = batch.staged.sort("_line")
    assert staged["source_record_id"].to_list() == ["101", "102"]
    # 01:30 EST is 06:30 UTC; 02:30 does not exist that day: shifted forward, as for text.
    assert staged["pickup_at"].to_list() == [
        datetime(2023, 3, 12, 6, 30, tzinfo=UTC),
        datetime(2023, 3, 12, 7, 30, tzinfo=UTC),
    ]
    assert staged["dropoff_at"].to_list()[0] == datetime(2023, 3, 12, 7, 0, tzinfo=UTC)
    assert staged["distance_miles"].to_list() == pytest.approx([1.0, None], nan_ok=True)
    assert staged["fare_usd"].to_list() == [12.5, 0.99]
    assert staged["passengers"].to_list() == [1, 2]
    assert batch.quarantine.select("line", "reasons").rows() == [(3, ["unparseable:passengers"])]
    assert batch.counts["fleet/fleet_202303.parquet"].rows_read == 3


def test_a_typed_column_of_the_wrong_kind_fails_its_file_naming_it(tmp_path):
    data = _parquet(FRAME.with_columns(pl.lit(date(2023, 1, 1)).alias("cents")))
    with pytest.raises(SourceError, match=r"wrong type: cents \(Date, mapped as money\)"):
        FileReader(_ref(tmp_path), SOURCE).read(data, last=True)


def test_a_file_that_is_not_parquet_fails_with_one_line(tmp_path):
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        FileReader(_ref(tmp_path), SOURCE).read(b"ride,start\n1,2\n", last=True)


def test_a_trip_source_gets_a_generated_view_and_a_model_file_replaces_it(tmp_path):
    config = load_config(_write_config(tmp_path), formats())
    generated = sql_models.discover(tmp_path / "models", config)
    names = {m.name for m in generated}
    assert {"intermediate.fleet_trips", "intermediate.all_trips"} <= names
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA curated")
    con.execute("CREATE TYPE curated.time_precision AS ENUM ('hour', 'second')")
    con.execute("CREATE TYPE curated.location_precision AS ENUM ('block', 'exact')")
    con.execute(
        "CREATE TABLE staging.fleet AS SELECT 7 AS source_record_id, 'f/fleet_2023.p' AS _file, "
        "1::BIGINT AS _line, ['x'] AS _flags, 2.5 AS fare_usd"
    )
    sql_models.build(con, generated)
    row = con.execute(
        "SELECT source, source_record_id, fare_usd, total_usd, time_precision, airport, "
        "pickup_at, excluded_by FROM intermediate.all_trips"
    ).fetchall()
    assert row == [("fleet", "2023-7", 2.5, 2.5, "hour", False, None, None)]

    (tmp_path / "models" / "intermediate").mkdir(parents=True)
    (tmp_path / "models" / "intermediate" / "fleet_trips.sql").write_text(
        "-- materialized: view\nSELECT 'mine' AS source\n"
    )
    replaced = sql_models.discover(tmp_path / "models", config)
    sql_models.build(con, replaced)
    assert con.execute("SELECT source FROM intermediate.all_trips").fetchall() == [("mine",)]


def _write_config(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "version: 1\nsources:\n  fleet:\n    format: parquet\n    files: [f/*.p]\n"
        "    key_scope: 'fleet_(\\d{4})'\n    time_precision: hour\n"
        "    columns:\n      source_record_id: {from: id, type: integer}\n"
        "      fare_usd: {from: fare, type: money}\n"
    )
    return path

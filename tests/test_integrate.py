"""The company silos, cross-silo matching and control totals, on `etl sample` data."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Warehouse

from etl.sample import write_sample

SEED = 11


@pytest.fixture(scope="module")
def sample_root(sample_data) -> Path:
    """The session's sample data (conftest): copy it to change it."""
    return sample_data


@pytest.fixture(scope="module")
def loaded(sample_warehouse):
    """The session's sample warehouse, loaded once (conftest): (warehouse, run result, truth)."""
    return sample_warehouse.wh, sample_warehouse.result, sample_warehouse.truth


def test_the_sample_loads_and_publishes(loaded):
    _, result, _ = loaded
    assert result.exit_code == 0, result.message
    assert result.published
    assert {f.source for f in result.files} == {"dc_taxi", "dc_boundary", "dispatch", "courier"}


def test_matches_are_exactly_the_planted_duplicates(loaded):
    wh, _, truth = loaded
    found = set(wh.query("SELECT left_id, right_id FROM quality.matches"))
    planted = {tuple(pair) for pair in truth["matches"]}
    near_misses = {(d, c) for d, c, _ in truth["near_misses"]}
    assert planted, "the sample plants cross-silo duplicates"
    assert found == planted
    assert not found & near_misses


def test_curated_keeps_a_matched_trip_once_and_says_who_saw_it(loaded):
    wh, _, truth = loaded
    dispatch_id, courier_id = truth["matches"][0]
    rows = wh.query(
        "SELECT source, seen_by, matched_record_id FROM curated.trips "
        "WHERE source_record_id IN (?, ?)",
        [dispatch_id, courier_id],
    )
    assert rows == [("dispatch", ["dispatch", "courier"], courier_id)]


def test_unique_record_ids_are_stored_uncompressed_and_the_rest_is_not(loaded):
    """Text keys (the company silos'), curated.trips' stored record id and DC taxi's staged
    text id skip DuckDB's costly dictionary analysis; a column of few values keeps its
    compression."""
    wh, _, _ = loaded

    def compression(table: str, column: str) -> set[str]:
        rows = wh.query(
            "SELECT DISTINCT compression FROM pragma_storage_info(?) "
            "WHERE column_name = ? AND segment_type = 'VARCHAR'",
            [table, column],
        )
        return {row[0] for row in rows}

    for table in ("staging.dispatch", "staging.courier", "intermediate.stored_trips"):
        assert compression(table, "source_record_id") == {"Uncompressed"}, table
    assert compression("staging.dc_taxi", "_record_id") == {"Uncompressed"}
    assert compression("intermediate.stored_trips", "_file") != {"Uncompressed"}


def test_control_totals_reconcile_for_every_source(loaded):
    wh, result, _ = loaded
    totals = wh.query(
        "SELECT source, unexplained_read, unexplained_staging, unexplained_rows, "
        "unexplained_fare_usd FROM quality.control_totals WHERE run_id = ?",
        [result.run_id],
    )
    assert {row[0] for row in totals} == {"dc_taxi", "dispatch", "courier"}
    assert all(row[1:] == (0, 0, 0, 0.0) for row in totals)


def test_only_completed_dispatch_jobs_are_trips_and_the_newest_version_wins(loaded):
    wh, _, truth = loaded
    curated = wh.scalar("SELECT count(*) FROM curated.trips WHERE source = 'dispatch'")
    merged = wh.scalar("SELECT count(*) FROM quality.matches")
    kept_dispatch = curated  # dispatch is the kept side: matches do not remove its trips
    assert kept_dispatch == truth["dispatch"]["completed"]
    assert merged == len(truth["matches"])
    versions = wh.scalar(
        "SELECT count(*) FROM (SELECT source_record_id FROM curated.trips "
        "WHERE source = 'dispatch' GROUP BY 1 HAVING count(*) > 1)"
    )
    assert versions == 0


def test_superseded_versions_are_a_table_the_build_computes_once(loaded):
    # Matching, curated.trips and the control totals each read all_trips: the window over
    # every staged version is kept in a table, not computed again by each read of the view.
    wh, _, _ = loaded
    kind = wh.scalar(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = 'intermediate' AND table_name = 'dispatch_superseded'"
    )
    assert kind == "BASE TABLE"
    newest = (
        "SELECT _file, _line, row_number() OVER (PARTITION BY source_record_id "
        "ORDER BY updated_at DESC, _file DESC, _line DESC) > 1 AS older FROM staging.dispatch"
    )
    expected = set(wh.query(f"SELECT _file, _line FROM ({newest}) WHERE older"))
    stored = set(wh.query("SELECT * FROM intermediate.dispatch_superseded"))
    excluded = set(wh.query(
        "SELECT _file, _line FROM intermediate.all_trips "
        "WHERE source = 'dispatch' AND excluded_by = 'superseded_version'"
    ))  # fmt: skip
    assert expected and stored == expected
    # A superseded row that is not a completed job is excluded as not_a_trip first.
    assert excluded <= expected
    assert len(excluded) == wh.scalar(
        "SELECT count(*) FROM intermediate.all_trips AS t JOIN ("
        + newest
        + ") AS v USING (_file, _line) WHERE v.older AND NOT list_contains(t.flags, 'not_a_trip')"
    )


def test_broken_dispatch_lines_are_quarantined_with_their_reason(loaded):
    wh, _, truth = loaded
    quarantined = {
        (file, line): reasons
        for file, line, reasons in wh.query(
            "SELECT file, line, reasons FROM quality.quarantine WHERE source = 'dispatch'"
        )
    }
    broken = {(b["file"], b["line"]): b["kind"] for b in truth["dispatch"]["broken_lines"]}
    assert set(quarantined) == set(broken)
    expected_prefix = {
        "truncated": "invalid_json",
        "unknown_field": "unknown_field:",
        "string_number": "wrong_type:",
    }
    for where, kind in broken.items():
        assert any(r.startswith(expected_prefix[kind]) for r in quarantined[where]), where


def test_courier_defects_are_counted(loaded):
    wh, _, truth = loaded
    per_file = truth["courier"]
    files = {k: v for k, v in per_file.items() if k.endswith(".csv")}
    reasons = Counter(
        dict(
            wh.query(
                "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM quality.quarantine "
                "WHERE source = 'courier') GROUP BY r"
            )
        )
    )
    assert reasons["duplicate_key"] == sum(f["duplicates"] for f in files.values())
    assert reasons["dropoff_before_pickup"] == sum(f["end_before_start"] for f in files.values())
    swapped = wh.scalar(
        "SELECT count(*) FROM staging.courier WHERE len(list_filter(_flags, "
        "lambda f: f LIKE 'swapped_coordinates:%')) > 0"
    )
    assert swapped == sum(f["swapped"] for f in files.values())
    blank = dict(
        wh.query("SELECT path, blank_lines FROM quality.manifest WHERE source = 'courier'")
    )
    assert {Path(p).name: n for p, n in blank.items()} == {
        name: f["blank_lines"] for name, f in files.items()
    }


def test_every_trip_knows_whether_it_is_in_dc(loaded):
    wh, _, _ = loaded
    unknown = wh.scalar(
        "SELECT count(*) FROM curated.trips WHERE pickup_lat IS NOT NULL AND pickup_in_dc IS NULL"
    )
    assert unknown == 0
    airport_outside = wh.scalar(
        "SELECT count(*) FROM curated.trips WHERE airport AND NOT dropoff_in_dc"
    )
    assert airport_outside > 0  # airport trips end outside DC and are kept


def test_dim_date_marks_dc_holidays(loaded):
    wh, _, _ = loaded
    rows = dict(
        wh.query(
            "SELECT date::VARCHAR, holiday_name FROM curated.dim_date "
            "WHERE date IN ('2023-04-17', '2023-07-04', '2023-07-05')"
        )
    )
    assert "Emancipation Day" in rows["2023-04-17"]
    assert rows["2023-07-04"] == "Independence Day"
    assert rows["2023-07-05"] is None


def test_analyst_views_answer(loaded):
    wh, _, _ = loaded
    assert wh.scalar("SELECT count(DISTINCT source) FROM curated.daily_by_source") == 3
    speed = wh.query("SELECT day_of_week, hour_of_day, median_speed_mph FROM curated.speed_by_hour")
    assert {d for d, _, _ in speed} == set(range(1, 8))
    assert all(0 < s < 60 for *_, s in speed)
    assert wh.scalar("SELECT sum(trips) FROM curated.od_grid") == wh.scalar(
        "SELECT count(*) FROM curated.trips WHERE pickup_lat IS NOT NULL "
        "AND dropoff_lat IS NOT NULL"
    )


def test_tampered_courier_trailer_fails_that_file_and_the_rest_loads(sample_root, tmp_path):
    wh = Warehouse(tmp_path)
    wh.data.rmdir()
    shutil.copytree(sample_root, wh.data)
    target = sorted((wh.data / "company" / "courier").glob("*.csv"))[2]
    text = target.read_bytes()
    body, trailer = text.rstrip(b"\r\n").rsplit(b"\r\n", 1)
    declared = int(trailer.split(b":")[1])
    target.write_bytes(body + f"\r\nTOTAL ROWS: {declared + 5}\r\n".encode())

    result = wh.run()
    assert result.exit_code == 2
    failed = [f for f in result.files if f.status == "failed"]
    assert [f.path for f in failed] == [f"company/courier/{target.name}"]
    assert failed[0].reason == (
        f"control total mismatch: the trailer says {declared + 5} rows, the file holds {declared}"
    )
    assert (failed[0].rows_read, failed[0].control_total) == (declared, declared + 5)
    loaded_courier = [f for f in result.files if f.source == "courier" and f.status == "loaded"]
    assert len(loaded_courier) == 11
    assert result.published


COURIER_HEADER = "TripRef,Vehicle,Start Time,End Time,From Lat,From Lng,To Lat,To Lng,Miles,Cost"


def courier_file(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [COURIER_HEADER, *rows, f"TOTAL ROWS: {len(rows)}"]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def test_daylight_saving_outcomes_on_both_transitions(wh):
    point = '38.9,-77.03,38.91,-77.02,1.2,"$1,012.50"'
    courier_file(
        wh.data / "company" / "courier" / "courier_trips_202303.csv",
        [
            f"CT-1,V1,03/12/2023 01:30:00 AM,03/12/2023 01:50:00 AM,{point}",  # EST
            f"CT-2,V1,03/12/2023 02:30:00 AM,03/12/2023 03:40:00 AM,{point}",  # skipped hour
            f"CT-3,V1,03/12/2023 03:30:00 AM,03/12/2023 03:50:00 AM,{point}",  # EDT
        ],
    )
    courier_file(
        wh.data / "company" / "courier" / "courier_trips_202311.csv",
        [
            f"CT-4,V1,11/05/2023 12:30:00 AM,11/05/2023 12:50:00 AM,{point}",  # EDT
            f"CT-5,V1,11/05/2023 01:30:00 AM,11/05/2023 01:50:00 AM,{point}",  # repeated hour
            f"CT-6,V1,11/05/2023 02:30:00 AM,11/05/2023 02:50:00 AM,{point}",  # EST
        ],
    )
    result = wh.run()
    assert result.exit_code == 0
    got = dict(wh.query("SELECT source_record_id, pickup_at FROM staging.courier"))
    assert got == {
        "CT-1": datetime(2023, 3, 12, 6, 30, tzinfo=UTC),
        "CT-2": datetime(2023, 3, 12, 7, 30, tzinfo=UTC),  # read as 03:30 daylight time
        "CT-3": datetime(2023, 3, 12, 7, 30, tzinfo=UTC),
        "CT-4": datetime(2023, 11, 5, 4, 30, tzinfo=UTC),
        "CT-5": datetime(2023, 11, 5, 5, 30, tzinfo=UTC),  # the first (daylight) 01:30
        "CT-6": datetime(2023, 11, 5, 7, 30, tzinfo=UTC),
    }
    assert wh.scalar("SELECT fare_usd FROM staging.courier WHERE source_record_id = 'CT-1'") == (
        1012.50
    )


def curated_rows(wh: Warehouse) -> list[tuple]:
    return wh.query(
        "SELECT trip_id, seen_by, matched_record_id, fare_usd, pickup_at FROM curated.trips "
        "ORDER BY trip_id"
    )


def test_incremental_publish_equals_a_full_rebuild(loaded, sample_root, tmp_path):
    """New files update curated.trips in place; the result is what a rebuild gives (the shared
    warehouse: the same files loaded in one run)."""
    wh = Warehouse(tmp_path / "incremental")
    wh.data.rmdir()
    shutil.copytree(sample_root, wh.data)
    held = tmp_path / "held"
    held.mkdir()
    later = [wh.data / "dc_taxi" / "taxi_2023.zip"]
    later += sorted((wh.data / "company" / "dispatch").glob("dispatch_2023-06-*"))
    for path in later:
        shutil.move(path, held / path.name)
    assert wh.run().exit_code == 0
    for path in later:
        shutil.move(held / path.name, path)
    assert wh.run().exit_code == 0

    full, _, _ = loaded
    assert curated_rows(wh) == curated_rows(full)
    assert wh.scalar("SELECT count(*) FROM quality.control_totals WHERE unexplained_rows <> 0") == 0


def test_dc_taxi_quarantine_is_exactly_the_planted_defects(loaded):
    wh, _, truth = loaded
    members = truth["dc_taxi"].values()
    reasons = Counter(
        dict(
            wh.query(
                "SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM quality.quarantine "
                "WHERE source = 'dc_taxi') GROUP BY r"
            )
        )
    )
    assert reasons == {
        "fare_out_of_range": sum(m["fare_out_of_range"] for m in members),
        "mileage_out_of_range": sum(m["mileage_outlier"] for m in members),
    }
    flags = dict(
        wh.query(
            "SELECT f, count(*) FROM (SELECT unnest(_flags) AS f FROM staging.dc_taxi) GROUP BY f"
        )
    )
    planted_pickups = sum(m["missing_pickup_coords"] for m in members)
    quarantined_without_pickup = wh.scalar(
        "SELECT count(*) FROM quality.quarantine WHERE source = 'dc_taxi' "
        "AND (raw->>'ORIGIN_BLOCK_LATITUDE') IS NULL"
    )
    assert flags["pickup_not_geocoded"] + quarantined_without_pickup == planted_pickups


@pytest.mark.parametrize(
    ("data", "lines", "blank"),
    [
        (b"", [], 0),  # a day without jobs
        (b'{"a":1}', [(1, '{"a":1}')], 0),  # no newline at the end
        (b'{"a":1}\r\n\r\n{"b":2}\r\n', [(1, '{"a":1}'), (3, '{"b":2}')], 1),
        (b'\n  \n{"a":1}\n', [(3, '{"a":1}')], 2),
        # A control character a CSV reader would take for its separator: one line all the same,
        # for the JSON check to reject.
        (b'{"a":"x\x1fy"}\n{"b":2}\n', [(1, '{"a":"x\x1fy"}'), (2, '{"b":2}')], 0),
    ],
)
def test_json_lines_are_split_and_numbered_as_the_file_has_them(data, lines, blank):
    from etl.readers.jsonl import parse_jsonl

    raw = parse_jsonl(data, {})
    assert raw.frame.rows() == lines
    assert raw.blank_lines == blank


def test_reading_in_small_pieces_changes_nothing(loaded, sample_root, tmp_path):
    """Every source read in pieces of a few kB (many to a batch, and batches that end in the
    middle of a file) gives the same rows, reasons, counts and curated trips as files read
    whole: pieces bound memory and must change nothing else."""
    from etl.run.load import LoadSizes

    wh = Warehouse(tmp_path)
    wh.data.rmdir()
    shutil.copytree(sample_root, wh.data)
    result = wh.run(sizes=LoadSizes(piece_bytes=4_000, batch_rows=500))
    whole, whole_result, _ = loaded
    assert result.reason_counts == whole_result.reason_counts
    queries = [
        "SELECT * EXCLUDE (_run_id) FROM staging.dc_taxi ORDER BY _file, _line",
        "SELECT * EXCLUDE (_run_id) FROM staging.dispatch ORDER BY _file, _line",
        "SELECT * EXCLUDE (_run_id) FROM staging.courier ORDER BY _file, _line",
        "SELECT * EXCLUDE (run_id) FROM quality.quarantine ORDER BY file, line",
        "SELECT * EXCLUDE (run_id, recorded_at) FROM quality.files ORDER BY path",
        "SELECT * FROM curated.trips ORDER BY trip_id",
    ]
    for sql in queries:
        assert wh.query(sql) == whole.query(sql), sql


def test_rerun_hashes_only_the_plain_files_whose_size_or_mtime_moved(tmp_path, monkeypatch):
    """A nightly rerun over years of daily files must not read them all again to learn that
    nothing changed; a file rewritten in place is still found, even at the same size."""
    import os

    import etl.sources.files

    wh = Warehouse(tmp_path)
    write_sample(wh.data, seed=SEED, scale=0.02, sources=("dispatch", "courier"))
    assert wh.run().exit_code in (0, 2)
    hashed = []
    real = etl.sources.files._plain_fingerprint
    monkeypatch.setattr(
        etl.sources.files, "_plain_fingerprint", lambda path: hashed.append(path.name) or real(path)
    )
    rerun = wh.run()
    assert hashed == []
    assert [f for f in rerun.files if f.status == "loaded"] == []

    touched = sorted((wh.data / "company" / "courier").glob("*.csv"))[0]
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes
    edited = max((wh.data / "company" / "dispatch").glob("*.jsonl"), key=lambda p: p.stat().st_size)
    text = edited.read_bytes()
    at = text.index(b'"charge_cents": ') + len(b'"charge_cents": ')
    digit = b"1" if text[at : at + 1] != b"1" else b"2"
    edited.write_bytes(text[:at] + digit + text[at + 1 :])  # same size, one fare changed
    third = wh.run()
    assert sorted(hashed) == sorted([touched.name, edited.name])
    assert [f.path for f in third.files if f.status == "loaded"] == [
        edited.relative_to(wh.data).as_posix()
    ]
    hashed.clear()
    wh.run()
    assert hashed == []  # the touched file's new mtime was remembered

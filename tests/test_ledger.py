"""The run ledger cannot lie: a run is published exactly when its publish committed; what a run
leaves behind is undone only if it never published; the DC boundary changes only with a publish;
an empty day does not block the night; a record sent twice under two file names is kept once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import Warehouse
from dfhv import member_text, trip, write_zip

from etl.run import publish
from etl.sample import write_sample

SEED, SCALE = 5, 0.02
HUGE = "99999999999999999999999999"  # more than a BIGINT holds


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_sample(root, seed=SEED, scale=SCALE)
    # A month of daily dispatch files is history enough, and a year costs minutes here.
    for path in (root / "company" / "dispatch").glob("dispatch_*"):
        if not path.name.startswith("dispatch_2023-01-"):
            path.unlink()
    return root


@pytest.fixture
def sampled(sample_root, tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path)
    wh.data.rmdir()
    shutil.copytree(sample_root, wh.data)
    return wh


def courier_files(wh: Warehouse) -> list[Path]:
    return sorted((wh.data / "company" / "courier").glob("*.csv"))


def set_trailer(path: Path, count: str) -> None:
    body = path.read_bytes().rstrip(b"\r\n").rsplit(b"\r\n", 1)[0]
    path.write_bytes(body + f"\r\nTOTAL ROWS: {count}\r\n".encode())


def touch_content(path: Path) -> None:
    """A new version of a courier file with the same rows: a space after its trailer's count."""
    body, trailer = path.read_bytes().rstrip(b"\r\n").rsplit(b"\r\n", 1)
    path.write_bytes(body + b"\r\n" + trailer + b" \r\n")


def quarantine_per_run(wh: Warehouse) -> dict[str, int]:
    return dict(wh.query("SELECT run_id, count(*) FROM quality.quarantine GROUP BY run_id"))


def files_not_adding_up(wh: Warehouse) -> list[tuple]:
    """Current files whose read != staged + rows really in quality.quarantine."""
    return wh.query(
        """
        SELECT m.path, m.rows_read, m.rows_staged, count(q.file) AS in_quarantine
        FROM quality.manifest AS m
        LEFT JOIN quality.quarantine AS q ON q.file = m.path AND q.run_id = m.run_id
        WHERE m.source <> 'dc_boundary'
        GROUP BY ALL
        HAVING m.rows_read <> m.rows_staged + count(q.file)
        """
    )


# -- a published run stays published (issue 16, item 2) -------------------------------------


def test_a_trailer_beyond_bigint_fails_its_file_and_the_published_run_keeps_its_quarantine(
    sampled,
):
    target = courier_files(sampled)[4]
    rows = int(target.read_bytes().rstrip().rsplit(b":", 1)[1])  # what its trailer says
    set_trailer(target, HUGE)

    first = sampled.run()
    assert (first.exit_code, first.status, first.published) == (2, "partial", True)
    failed = [f for f in first.files if f.status == "failed"]
    assert [(f.path, f.reason, f.control_total) for f in failed] == [
        (
            f"company/courier/{target.name}",
            f"control total mismatch: the trailer says {HUGE} rows, the file holds {rows}",
            None,
        )
    ]
    ledger = sampled.query("SELECT status, exit_code, published FROM quality.runs")
    assert ledger == [("partial", 2, True)]
    quarantined = quarantine_per_run(sampled)
    assert quarantined[first.run_id] > 0

    second = sampled.run()  # the broken file is retried, and fails again
    assert (second.exit_code, second.published) == (2, True)
    assert quarantine_per_run(sampled) == quarantined
    assert files_not_adding_up(sampled) == []


def raise_at(step: str):
    """A crash point that raises (a bug, a lost disk) at `step` instead of killing the run."""

    def crash_point(at: str) -> None:
        if at == step:
            raise RuntimeError(f"an unexpected error at {step}")

    return crash_point


def test_an_error_after_the_publish_commit_leaves_the_run_published(sampled, monkeypatch):
    monkeypatch.setattr(publish, "crash_point", raise_at("published"))
    with pytest.raises(RuntimeError):
        sampled.run()
    [(run_id, status, exit_code, published)] = sampled.query(
        "SELECT run_id, status, exit_code, published FROM quality.runs"
    )
    assert (status, exit_code, published) == ("error", 3, True)
    assert sampled.scalar("SELECT message FROM quality.runs") == (
        "published, then RuntimeError: an unexpected error at published"
    )
    quarantined = quarantine_per_run(sampled)
    trips = sampled.scalar("SELECT count(*) FROM curated.trips")
    assert quarantined[run_id] > 0 and trips > 0

    monkeypatch.undo()
    again = sampled.run()
    assert (again.exit_code, again.published, len(again.files)) == (0, True, 0)
    assert quarantine_per_run(sampled) == quarantined
    assert sampled.scalar("SELECT count(*) FROM curated.trips") == trips
    assert files_not_adding_up(sampled) == []


def test_an_error_before_the_commit_publishes_nothing_and_the_next_run_loads_it_all(
    sampled, monkeypatch
):
    monkeypatch.setattr(publish, "crash_point", raise_at("recorded"))
    with pytest.raises(RuntimeError):
        sampled.run()
    assert sampled.query("SELECT status, exit_code, published FROM quality.runs") == [
        ("error", 3, False)
    ]
    assert sampled.scalar("SELECT count(*) FROM quality.files") == 0
    curated = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'curated'"
    assert sampled.scalar(curated) == 0  # never built: the first publish rolled back

    monkeypatch.undo()
    again = sampled.run()
    assert (again.exit_code, again.published) == (0, True)
    assert sampled.scalar("SELECT count(*) FROM quality.quarantine") == again.total(
        "rows_quarantined"
    )
    assert files_not_adding_up(sampled) == []


def test_control_totals_notice_quarantined_rows_that_are_gone(sampled):
    assert sampled.run().exit_code == 0
    [(path, rows)] = sampled.query(
        "SELECT file, count(*) FROM quality.quarantine WHERE source = 'courier' "
        "GROUP BY file ORDER BY file LIMIT 1"
    )
    with duckdb.connect(str(sampled.path)) as con:  # what a wrong recovery used to do
        con.execute("DELETE FROM quality.quarantine WHERE file = ?", [path])
    # Another file changes, so that the next run loads and reconciles.
    touch_content(next(p for p in courier_files(sampled) if not path.endswith(p.name)))
    trips = sampled.scalar("SELECT count(*) FROM curated.trips")

    result = sampled.run()
    assert (result.exit_code, result.published) == (1, False)
    assert f"({rows} unlike quality.quarantine)" in result.message
    assert (
        sampled.scalar(
            "SELECT unexplained_quarantine FROM quality.control_totals "
            "WHERE run_id = ? AND source = 'courier'",
            [result.run_id],
        )
        == rows
    )
    assert sampled.scalar("SELECT count(*) FROM curated.trips") == trips


# -- the DC boundary changes only with a publish (item 3) --------------------------------------


def shifted_boundary(path: Path) -> None:
    """The same polygon moved 0.001 degrees east: a new file, nearly the same city."""
    doc = json.loads(path.read_text())

    def shift(value):
        if isinstance(value, list) and value and isinstance(value[0], (int, float)):
            return [value[0] + 0.001, *value[1:]]
        return [shift(v) for v in value] if isinstance(value, list) else value

    features = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
    for feature in features:
        geometry = feature.get("geometry", feature)
        geometry["coordinates"] = shift(geometry["coordinates"])
    path.write_text(json.dumps(doc))


def test_a_failed_audit_keeps_the_old_boundary_and_the_new_one_loads_next(sampled):
    assert sampled.run().exit_code == 0
    boundary = sampled.data / "dc_reference" / "dc_boundary.geojson"
    old = sampled.scalar("SELECT wkt FROM staging.dc_boundary")
    shifted_boundary(boundary)
    # DURATION read in minutes: speeds 60 times too high fail the median-speed audit.
    bad = sampled.data / "dc_taxi" / "taxi_2019.zip"
    write_zip(bad, {"taxi_2019_01.txt": member_text([trip(k, DURATION="13") for k in range(50)])})

    failed = sampled.run()
    assert (failed.exit_code, failed.published) == (1, False)
    assert sampled.query("SELECT wkt FROM staging.dc_boundary") == [(old,)]
    assert sampled.scalar("SELECT count(*) FROM curated.trips WHERE pickup_in_dc IS NULL") == (
        sampled.scalar(
            "SELECT count(*) FROM curated.trips WHERE pickup_lat IS NULL OR pickup_lon IS NULL"
        )
    )

    bad.unlink()
    fixed = sampled.run()
    assert (fixed.exit_code, fixed.published) == (0, True)
    assert "dc_reference/dc_boundary.geojson" in [f.path for f in fixed.files]
    [(new,)] = sampled.query("SELECT wkt FROM staging.dc_boundary")
    assert new != old


# -- an empty day does not block the night (item 5) --------------------------------------------


def test_an_empty_dispatch_export_among_other_new_files_publishes(sampled):
    assert sampled.run().exit_code == 0
    (sampled.data / "company" / "dispatch" / "dispatch_2024-01-01.jsonl").write_bytes(b"")
    touch_content(courier_files(sampled)[0])  # another new file the same night

    result = sampled.run()
    assert (result.exit_code, result.published) == (0, True), result.message
    empty = [f for f in result.files if f.path.endswith("dispatch_2024-01-01.jsonl")]
    assert [(f.status, f.rows_read) for f in empty] == [("loaded", 0)]
    checks = sampled.query(
        "SELECT expectation, success, observed_value, details->>'skipped' FROM quality.checks "
        "WHERE run_id = ? AND source = 'dispatch'",
        [result.run_id],
    )
    assert checks and all(success for _, success, _, _ in checks)
    speed = [c for c in checks if c[0].startswith("median implied speed")]
    assert speed == [(speed[0][0], True, None, "empty batch")]
    row_count = [c for c in checks if c[0].startswith("row count")]
    assert row_count[0][3] != "empty batch"  # the table's row count is still checked


# -- a record sent twice under two file names is kept once (item 10) ---------------------------


def duplicated_ids(wh: Warehouse) -> int:
    return wh.scalar(
        "SELECT count(*) FROM (SELECT source_record_id FROM curated.trips "
        "GROUP BY source, source_record_id HAVING count(*) > 1)"
    )


def assert_resent_file_is_all_duplicates(wh: Warehouse, result, original: str, resent: str):
    """Every row the original staged, and every repeat of one in it, is a duplicate_key row
    of the re-sent file naming the original; its other rows are quarantined for their own
    reasons, as in the original."""
    [outcome] = [f for f in result.files if f.path == resent]
    staged = wh.scalar("SELECT rows_staged FROM quality.manifest WHERE path = ?", [original])
    repeats = wh.scalar(
        "SELECT count(*) FROM quality.quarantine WHERE file = ? AND reasons = ['duplicate_key']",
        [original],
    )
    assert (outcome.rows_staged, outcome.rows_quarantined) == (0, outcome.rows_read)
    assert (
        wh.scalar(
            "SELECT count(*) FROM quality.quarantine WHERE file = ? AND duplicate_of = ? "
            "AND list_contains(reasons, 'duplicate_key')",
            [resent, original],
        )
        == staged + repeats
    )
    assert duplicated_ids(wh) == 0
    assert files_not_adding_up(wh) == []


def test_a_courier_csv_sent_again_under_another_name_is_not_curated_twice(sampled):
    assert sampled.run().exit_code == 0
    trips = sampled.scalar("SELECT count(*) FROM curated.trips")
    original = courier_files(sampled)[2]
    resent = original.with_name(original.stem + "_resent.csv")
    shutil.copy(original, resent)

    result = sampled.run()
    assert (result.exit_code, result.published) == (0, True), result.message
    assert_resent_file_is_all_duplicates(
        sampled, result, f"company/courier/{original.name}", f"company/courier/{resent.name}"
    )
    assert sampled.scalar("SELECT count(*) FROM curated.trips") == trips

    # A new version of the original still replaces it: its keys are its own, not duplicates.
    touch_content(original)
    replaced = sampled.run()
    assert [f.path for f in replaced.files] == [f"company/courier/{original.name}"]
    assert (
        sampled.scalar(
            "SELECT count(*) FROM quality.quarantine WHERE file = ? AND duplicate_of IS NOT NULL",
            [f"company/courier/{original.name}"],
        )
        == 0
    )
    assert sampled.scalar("SELECT count(*) FROM curated.trips") == trips


def test_a_taxi_zip_sent_again_under_another_name_is_not_curated_twice(sampled):
    assert sampled.run().exit_code == 0
    trips = sampled.scalar("SELECT count(*) FROM curated.trips")
    taxi = sampled.data / "dc_taxi"
    shutil.copy(taxi / "taxi_2016.zip", taxi / "taxi_2016 (1).zip")

    result = sampled.run()
    assert (result.exit_code, result.published) == (0, True), result.message
    member = "taxi_2016_03.txt"
    assert_resent_file_is_all_duplicates(
        sampled, result, f"dc_taxi/taxi_2016.zip!{member}", f"dc_taxi/taxi_2016 (1).zip!{member}"
    )
    assert sampled.scalar("SELECT count(*) FROM curated.trips") == trips


def test_the_same_objectid_in_two_release_years_is_two_trips(wh):
    taxi = wh.data / "dc_taxi"
    when = "01/15/2017 08:00"
    later = [trip(k, ORIGINDATETIME_TR=when, DESTINATIONDATETIME_TR=when) for k in range(5)]
    write_zip(
        taxi / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(k) for k in range(5)])}
    )
    write_zip(taxi / "taxi_2017.zip", {"taxi_2017_01.txt": member_text(later)})
    result = wh.run()
    assert result.exit_code == 0, result.message
    assert wh.scalar("SELECT count(*) FROM curated.trips") == 10
    assert wh.scalar("SELECT count(*) FROM quality.quarantine") == 0


def test_records_repeated_across_two_new_files_of_one_run_are_kept_once(sampled):
    original = courier_files(sampled)[2]
    shutil.copy(original, original.with_name(original.stem + "_resent.csv"))
    result = sampled.run()
    assert (result.exit_code, result.published) == (0, True), result.message
    assert duplicated_ids(sampled) == 0
    assert files_not_adding_up(sampled) == []
    resent = f"company/courier/{original.stem}_resent.csv"
    assert (
        sampled.scalar(
            "SELECT count(DISTINCT duplicate_of) FROM quality.quarantine WHERE file = ?", [resent]
        )
        == 1
    )


def test_a_file_whose_new_version_fails_keeps_its_keys_from_a_copy_of_the_same_night(sampled):
    assert sampled.run().exit_code == 0
    original = courier_files(sampled)[2]
    shutil.copy(original, original.with_name(original.stem + "_resent.csv"))
    set_trailer(original, "1")  # its new version fails: the version loaded before stays
    result = sampled.run()
    assert [f.status for f in result.files if f.path.endswith(original.name)] == ["failed"]
    assert result.published
    assert duplicated_ids(sampled) == 0
    assert files_not_adding_up(sampled) == []

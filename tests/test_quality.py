"""Row checks, quarantine and write-audit-publish, end to end through `etl run`."""

from __future__ import annotations

import gc
import hashlib
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

from dfhv import member_text, trip, write_zip
from typer.testing import CliRunner

from etl.cli.main import app
from etl.quality import preload

MEMBER = "dc_taxi/taxi_2016.zip!taxi_2016_01.txt"


def planted_rows() -> tuple[list[dict], Counter, Counter]:
    """Clean rows plus defects of known counts: (rows, reject reasons, flags)."""
    rows = [trip(k) for k in range(1, 21)]
    reasons: Counter = Counter()
    flags: Counter = Counter()
    next_id = 100

    def plant(count: int, rejects: list[str], flagged: list[str], **changes: str) -> None:
        nonlocal next_id
        for _ in range(count):
            next_id += 1
            rows.append(trip(next_id, **changes))
        for reason in rejects:
            reasons[reason] += count
        for flag in flagged:
            flags[flag] += count

    plant(3, ["fare_out_of_range"], [], FAREAMOUNT="-5.00")
    plant(4, [], ["fare_missing"], FAREAMOUNT="NULL")
    plant(2, ["unparseable:pickup_at", "pickup_at_missing"], [], ORIGINDATETIME_TR="13/45/2016")
    plant(
        2,
        ["pickup_outside_area"],
        [],
        ORIGIN_BLOCK_LATITUDE="40.7128",
        ORIGIN_BLOCK_LONGITUDE="-74.0060",
    )
    plant(1, ["mileage_out_of_range"], [], MILEAGE="2591.82")  # its speed flag is not staged
    plant(5, [], ["pickup_not_geocoded"], ORIGIN_BLOCK_LATITUDE="", ORIGIN_BLOCK_LONGITUDE="")
    # Two rows repeat the OBJECTIDs of clean rows 1 and 2: the repeats are rejected.
    rows += [trip(1), trip(2)]
    reasons["duplicate_key"] += 2
    return rows, reasons, flags


def test_quarantine_counts_equal_planted_defects(wh):
    rows, reasons, flags = planted_rows()
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(rows)})
    result = wh.run()
    assert result.exit_code == 0

    quarantined = Counter(
        dict(
            wh.query(
                "SELECT reason, count(*) FROM "
                "(SELECT unnest(reasons) AS reason FROM quality.quarantine) GROUP BY reason"
            )
        )
    )
    assert quarantined == reasons
    flagged = Counter(
        dict(
            wh.query(
                "SELECT flag, count(*) FROM "
                "(SELECT unnest(_flags) AS flag FROM staging.dc_taxi) GROUP BY flag"
            )
        )
    )
    assert flagged == flags
    rejected_rows = 3 + 2 + 2 + 1 + 2
    assert wh.query(
        "SELECT rows_read, rows_staged, rows_quarantined FROM quality.files WHERE path = ?",
        [MEMBER],
    ) == [(len(rows), len(rows) - rejected_rows, rejected_rows)]


def test_quarantined_row_keeps_raw_values_and_every_reason(wh):
    bad = trip(7, FAREAMOUNT="-2064.71", MILEAGE="2591.82", PAYMENTTYPE="9")
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([bad])})
    wh.run()
    line, reasons, fare, payment = wh.query(
        "SELECT line, reasons, raw->>'FAREAMOUNT', raw->>'PAYMENTTYPE' FROM quality.quarantine"
    )[0]
    assert (line, fare, payment) == (2, "-2064.71", "9")
    assert sorted(reasons) == ["fare_out_of_range", "mileage_out_of_range", "payment_type_unknown"]


def curated_checksum(wh) -> str:
    rows = wh.query("SELECT * FROM curated.trips ORDER BY trip_id")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_duration_in_the_wrong_unit_fails_the_audit_and_publishes_nothing(wh):
    good = [trip(k, DURATION=str(600 + k * 30)) for k in range(1, 41)]
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(good)})
    assert wh.run().exit_code == 0
    before = curated_checksum(wh)
    staged_before = wh.scalar("SELECT count(*) FROM staging.dc_taxi")

    # February arrives with DURATION in minutes: 10-29 "seconds" for 2.1-mile trips.
    durations = [10 + k % 20 for k in range(1, 41)]
    minutes = [trip(k, DURATION=str(d)) for k, d in zip(range(1, 41), durations, strict=True)]
    write_zip(
        wh.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_02.txt": member_text(minutes)},
    )
    result = wh.run()

    assert result.exit_code == 1
    assert result.status == "audit_failed" and not result.published
    assert curated_checksum(wh) == before
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == staged_before
    failed = wh.query(
        "SELECT source, expectation, severity, observed_value FROM quality.checks "
        "WHERE NOT success AND severity = 'error'"
    )
    assert len(failed) == 1
    source, expectation, severity, observed = failed[0]
    assert (source, severity) == ("dc_taxi", "error")
    assert "speed" in expectation
    assert float(observed) == statistics.median(2.10 * 3600 / d for d in durations)  # ~390 mph
    assert (
        wh.scalar("SELECT status FROM quality.files WHERE path LIKE '%taxi_2017_02.txt'")
        == "audit_failed"
    )

    status = CliRunner().invoke(app, ["status", "--warehouse", str(wh.path), "--json"])
    assert status.exit_code == 0
    assert '"audit_failed"' in status.output and "speed" in status.output


def test_a_key_repeated_across_members_of_one_release_is_quarantined_once(wh):
    """OBJECTID is unique within a release (`key_scope`): the same ids in another year's zip are
    other trips; in another month of the same zip, the later month's rows are duplicates,
    quarantined as `duplicate_key` naming the month that holds the key, and the rest publishes."""
    january = [trip(k) for k in range(1, 31)]
    february = [trip(k) for k in range(21, 51)]  # ids 21-30 again
    write_zip(
        wh.data / "dc_taxi" / "taxi_2016.zip",
        {"taxi_2016_01.txt": member_text(january), "taxi_2016_02.txt": member_text(february)},
    )
    write_zip(wh.data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_01.txt": member_text(january)})
    result = wh.run()

    assert (result.status, result.published) == ("published", True)
    quarantined = wh.query(
        "SELECT file, reasons, duplicate_of, count(*) FROM quality.quarantine GROUP BY ALL"
    )
    assert quarantined == [
        (
            "dc_taxi/taxi_2016.zip!taxi_2016_02.txt",
            ["duplicate_key"],
            "dc_taxi/taxi_2016.zip!taxi_2016_01.txt",
            10,
        )
    ]
    assert wh.scalar("SELECT count(DISTINCT trip_id) FROM curated.trips") == 80

    february = [trip(k) for k in range(31, 61)]  # corrected: a new version replaces the old
    write_zip(
        wh.data / "dc_taxi" / "taxi_2016.zip",
        {"taxi_2016_01.txt": member_text(january), "taxi_2016_02.txt": member_text(february)},
    )
    assert wh.run().exit_code == 0
    assert wh.scalar("SELECT count(*) FROM quality.quarantine") == 0
    assert wh.scalar("SELECT count(DISTINCT trip_id) FROM curated.trips") == 90


def test_failed_audit_is_retried_and_publishes_once_the_file_is_fixed(wh):
    good = [trip(k, DURATION=str(600 + k * 30)) for k in range(1, 41)]
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(good)})
    wh.run()
    bad = [trip(k, DURATION="12") for k in range(1, 41)]
    bad.append(trip(41, FAREAMOUNT="abc"))  # quarantined by each attempt
    write_zip(wh.data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_02.txt": member_text(bad)})
    assert wh.run().exit_code == 1
    assert wh.run().exit_code == 1  # not loaded, so tried (and refused) again
    assert wh.scalar("SELECT count(*) FROM quality.quarantine") == 2  # each failed run's record
    fixed = [*good, trip(41, FAREAMOUNT="abc")]
    write_zip(wh.data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_02.txt": member_text(fixed)})
    assert wh.run().exit_code == 0
    assert wh.scalar("SELECT count(*) FROM curated.trips") == 80
    assert wh.scalar("SELECT count(*) FROM quality.quarantine") == 1  # the loaded version's


def test_run_summary_and_quarantine_are_queryable_by_reason(wh):
    rows, reasons, _ = planted_rows()
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(rows)})
    result = wh.run()
    assert result.reason_counts["fare_out_of_range"] == reasons["fare_out_of_range"]
    out = CliRunner().invoke(
        app,
        [
            "sql",
            "SELECT count(*) AS n FROM quality.quarantine WHERE list_contains(reasons, "
            "'duplicate_key')",
            "--warehouse",
            str(wh.path),
            "--format",
            "csv",
        ],
    )
    assert out.output.splitlines() == ["n", "2"]


def test_the_background_import_gives_back_the_switch_interval_it_lowered():
    seen = []
    before = sys.getswitchinterval()
    preload.import_in_background([lambda: seen.append(sys.getswitchinterval())] * 2)
    assert seen == [preload.IMPORT_SWITCH_INTERVAL_S] * 2
    assert sys.getswitchinterval() == before


def test_the_background_import_pauses_the_cyclic_collector_and_freezes_what_it_imported():
    collections = []

    def make_cycles():  # as an import does: many new objects, some of them in cycles
        for _ in range(100_000):
            cycle = []
            cycle.append(cycle)

    def seen(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        preload.import_in_background([make_cycles])
        frozen = gc.get_freeze_count()
    finally:
        gc.callbacks.remove(seen)
        gc.unfreeze()  # this process's objects go back to the collector
    # One full collection, after the imports, of what they left; none while they ran.
    assert collections == [2]
    assert frozen > 0
    assert gc.isenabled()


# A fresh interpreter: this one may have imported pandera or Great Expectations already.
PRELOAD = """
import sys
from pathlib import Path
from etl.config.load import load_config
from etl.quality.preload import preload_checks
config = load_config(Path(sys.argv[1]))
preload_checks(config, rows_here=sys.argv[2] == "yes").join()
names = ("pandera", "pandera.backends.polars.builtin_checks", "great_expectations")
print(*(name in sys.modules for name in names))
"""


def test_the_row_checks_and_suites_libraries_are_imported_before_the_rows_come():
    config = str(Path(preload.__file__).parents[2] / "sources.yaml")
    found = [
        subprocess.run(
            [sys.executable, "-c", PRELOAD, config, rows_here],
            capture_output=True, text=True, check=True, timeout=300,
        ).stdout.split()
        for rows_here in ("yes", "no")
    ]  # fmt: skip
    # pandera only where the rows are checked: an engine's workers import it themselves. Its
    # polars backends too, which it would otherwise import at the first batch's row checks.
    assert found == [["True", "True", "True"], ["False", "False", "True"]]

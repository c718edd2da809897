"""The load from DFHV zips to staging: layouts, types, time zones, lineage and reruns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dfhv import HEADER_2015, member_text, trip, write_zip

from etl.run.load import LoadSizes


def zip_2016(wh, rows, name="taxi_2016_01.txt"):
    return write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {name: member_text(rows)})


def staged(wh, columns="*", where="true"):
    return wh.query(f"SELECT {columns} FROM staging.dc_taxi WHERE {where} ORDER BY _file, _line")


def test_both_layouts_map_by_header_name(wh):
    rows = [trip(1), trip(2, FAREAMOUNT="33.10", MILEAGE="7.25", DURATION="1500")]
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text(rows)})
    reordered = list(reversed(HEADER_2015))  # the 2023 release orders its columns differently
    write_zip(
        wh.data / "dc_taxi" / "taxi_2023.zip",
        {"taxi_202301.csv": member_text(rows, delimiter=",", header=reordered)},
    )
    result = wh.run()
    assert result.exit_code == 0
    assert {f.layout for f in result.files} == {"release_2015_2019", "yearly_2020_on"}
    fields = "source_record_id, fare_usd, distance_miles, duration_s, pickup_lat, airport"
    by_file = {}
    for path in ("taxi_2016.zip", "taxi_2023.zip"):
        by_file[path] = staged(wh, fields, f"_file LIKE 'dc_taxi/{path}!%'")
    assert by_file["taxi_2016.zip"] == by_file["taxi_2023.zip"]
    assert by_file["taxi_2016.zip"][1] == (2, 33.10, 7.25, 1500.0, 38.902, False)


def test_readme_member_is_skipped(wh):
    zip_2016(wh, [trip(1)])
    result = wh.run()
    assert [f.path for f in result.files] == ["dc_taxi/taxi_2016.zip!taxi_2016_01.txt"]


def test_null_tokens_are_nulls_not_errors(wh):
    zip_2016(wh, [trip(1, FAREAMOUNT="NULL"), trip(2, FAREAMOUNT=""), trip(3, FAREAMOUNT=" NULL ")])
    result = wh.run()
    assert result.total("rows_quarantined") == 0
    assert staged(wh, "fare_usd") == [(None,), (None,), (None,)]


def test_unparseable_value_is_quarantined_with_reason_and_raw_text(wh):
    zip_2016(wh, [trip(1), trip(2, FAREAMOUNT="12,5O", ORIGINDATETIME_TR="13/45/2016 08:00")])
    wh.run()
    reasons, raw, line = wh.query(
        "SELECT reasons, raw->>'FAREAMOUNT', line FROM quality.quarantine"
    )[0]
    assert sorted(reasons) == [
        "pickup_at_missing",
        "unparseable:fare_usd",
        "unparseable:pickup_at",
    ]
    assert raw == "12,5O"
    assert line == 3


def test_object_id_that_is_not_a_number_is_quarantined(wh):
    # sources.yaml declares OBJECTID an integer (it is stored as one): anything else is wrong.
    zip_2016(wh, [trip(1), trip(2, OBJECTID="2A")])
    wh.run()
    assert wh.query("SELECT reasons, raw->>'OBJECTID' FROM quality.quarantine") == [
        (["unparseable:source_record_id"], "2A")
    ]
    assert wh.query("SELECT source_record_id FROM curated.trips") == [("2016-1",)]


@pytest.mark.parametrize("copies", [1, 3])  # 3: times repeat, converted once per distinct text
def test_local_time_to_utc_on_both_sides_of_daylight_saving(wh, copies):
    times = {
        1: "03/12/2023 01:00",  # EST, before the spring change
        2: "03/12/2023 02:00",  # skipped: read with the offset before the change
        3: "03/12/2023 03:00",  # EDT
        4: "11/05/2023 00:00",  # EDT
        5: "11/05/2023 01:00",  # repeated: the first (daylight) one
        6: "11/05/2023 02:00",  # EST
    }
    rows = [
        trip(k + 10 * copy, ORIGINDATETIME_TR=t, DESTINATIONDATETIME_TR=t)
        for copy in range(copies)
        for k, t in times.items()
    ]
    zip_2016(wh, rows)
    wh.run()
    got = [row[0] for row in staged(wh, "pickup_at")]
    expected = [
        datetime(2023, 3, 12, 6, tzinfo=UTC),
        datetime(2023, 3, 12, 7, tzinfo=UTC),
        datetime(2023, 3, 12, 7, tzinfo=UTC),
        datetime(2023, 11, 5, 4, tzinfo=UTC),
        datetime(2023, 11, 5, 5, tzinfo=UTC),
        datetime(2023, 11, 5, 7, tzinfo=UTC),
    ]
    assert got == expected * copies


def test_lineage_line_is_the_line_of_the_member(wh):
    rows = [trip(k, FAREAMOUNT=f"{10 + k}.00") for k in range(1, 51)]
    rows[29]["DURATION"] = "soon"  # line 31 goes to quarantine
    zip_2016(wh, rows)
    wh.run()
    text = member_text(rows).splitlines()
    for line, fare in staged(wh, "_line, fare_usd"):
        fields = text[line - 1].split("|")
        assert float(fields[HEADER_2015.index("FAREAMOUNT")]) == fare
    assert wh.scalar("SELECT line FROM quality.quarantine") == 31
    assert text[30].split("|")[HEADER_2015.index("DURATION")] == "soon"


def test_rerun_loads_nothing_and_changes_no_count(wh):
    zip_2016(wh, [trip(k) for k in range(1, 21)])
    first = wh.run()
    counts = "SELECT (SELECT count(*) FROM staging.dc_taxi), (SELECT count(*) FROM quality.files)"
    before = wh.query(counts)
    second = wh.run()
    assert first.total("rows_staged") == 20
    assert second.files == [] and second.files_skipped == 1
    assert wh.query(counts) == before


def test_changed_file_replaces_its_rows_and_nothing_else(wh):
    write_zip(
        wh.data / "dc_taxi" / "taxi_2016.zip",
        {
            "taxi_2016_01.txt": member_text([trip(k) for k in range(1, 11)]),
            "taxi_2016_02.txt": member_text([trip(k) for k in range(11, 16)]),
        },
    )
    wh.run()
    february_before = staged(wh, "*", "_file LIKE '%taxi_2016_02.txt'")
    write_zip(
        wh.data / "dc_taxi" / "taxi_2016.zip",
        {
            "taxi_2016_01.txt": member_text([trip(k, FAREAMOUNT="9.99") for k in range(1, 8)]),
            "taxi_2016_02.txt": member_text([trip(k) for k in range(11, 16)]),
        },
    )
    result = wh.run()
    assert [f.path for f in result.files] == ["dc_taxi/taxi_2016.zip!taxi_2016_01.txt"]
    january = staged(wh, "fare_usd", "_file LIKE '%taxi_2016_01.txt'")
    assert january == [(9.99,)] * 7
    assert staged(wh, "*", "_file LIKE '%taxi_2016_02.txt'") == february_before


def test_changed_file_replaces_its_quarantined_rows_too(wh):
    """A file's staged and quarantined rows are its current version's, and add up to it."""
    member = "taxi_2016_01.txt"
    zip_2016(wh, [trip(1), trip(2, FAREAMOUNT="abc"), trip(3, FAREAMOUNT="xyz")], member)
    wh.run()
    zip_2016(wh, [trip(1), trip(2), trip(3, FAREAMOUNT="xyz"), trip(4)], member)
    wh.run()
    quarantined = wh.query("SELECT line, raw->>'FAREAMOUNT' FROM quality.quarantine")
    assert quarantined == [(4, "xyz")]
    read, in_staging, in_quarantine = wh.query(
        "SELECT m.rows_read, (SELECT count(*) FROM staging.dc_taxi WHERE _file = m.path), "
        "(SELECT count(*) FROM quality.quarantine WHERE file = m.path) FROM quality.manifest m"
    )[0]
    assert (read, in_staging, in_quarantine) == (4, 3, 1)


def test_full_refresh_reloads_everything_once(wh):
    zip_2016(wh, [trip(k) for k in range(1, 6)])
    wh.run()
    result = wh.run(full_refresh=True)
    assert len(result.files) == 1
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == 5
    assert wh.scalar("SELECT count(DISTINCT _run_id) FROM staging.dc_taxi") == 1


def test_manifest_records_size_checksum_and_counts(wh):
    import hashlib

    text = member_text([trip(1), trip(2, MILEAGE="lots")])
    zip_2016(wh, [trip(1), trip(2, MILEAGE="lots")])
    wh.run()
    row = wh.query(
        "SELECT path, size_bytes, sha256, rows_read, rows_staged, rows_quarantined, status "
        "FROM quality.manifest"
    )[0]
    assert row == (
        "dc_taxi/taxi_2016.zip!taxi_2016_01.txt",
        len(text.encode()),
        hashlib.sha256(text.encode()).hexdigest(),
        2,
        1,
        1,
        "loaded",
    )


def test_models_fingerprint_is_stable_across_processes():
    import subprocess
    import sys

    code = "from etl.engine.duckdb import sql_models as m; print(m.fingerprint(m.discover()))"
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(prints) == 1


def test_values_padded_with_spaces_are_trimmed(wh):
    zip_2016(wh, [trip(1, MILEAGE=" 2.10 ", PAYMENTTYPE="\t2"), trip(2)])
    result = wh.run()
    assert result.total("rows_quarantined") == 0
    assert staged(wh, "distance_miles, payment_type") == [(2.10, 2), (2.10, 1)]


@pytest.mark.parametrize("piece_bytes, batch_rows", [(1_000, 30), (5_000, 10), (1_000, 3)])
def test_large_file_read_in_pieces_equals_it_read_whole(
    tmp_path, monkeypatch, piece_bytes, batch_rows
):
    """Memory follows the piece, not the file: a member over `LoadSizes.piece_bytes` is parsed
    and staged in pieces (several to a batch, or one). Pieces must not change a count, a line
    number or a reason; a key repeated across two pieces is still a duplicate; a blank line in a
    later piece is still counted."""
    from conftest import Warehouse

    import etl.run.load

    batches = []  # the rows of each piece staged, per batch

    def stage_files(reads, *args):
        batches.append([read.raw.frame.height for read in reads])
        return real_stage_files(reads, *args)

    real_stage_files = etl.run.load.stage_files
    monkeypatch.setattr(etl.run.load, "stage_files", stage_files)
    rows = [trip(k, FAREAMOUNT=f"{10 + k % 7}.00") for k in range(1, 101)]
    rows[10]["FAREAMOUNT"] = "-4.00"  # piece 1: quarantined
    rows[75]["OBJECTID"] = "5"  # a later piece repeats a key of piece 1
    rows[90]["OBJECTID"] = "77"  # ... and one of its own piece
    text = member_text(rows).replace("\n80|", "\n\n80|")  # a blank line before OBJECTID 80
    outcomes, tables, pieces = [], [], []
    for case, (size, batch) in {
        "whole": (1 << 20, 1_000),
        "pieces": (piece_bytes, batch_rows),
    }.items():
        wh = Warehouse(tmp_path / case)
        write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": text})
        result = wh.run(sizes=LoadSizes(piece_bytes=size, batch_rows=batch))
        pieces.append(batches[:])
        batches.clear()
        outcomes.append([(f.rows_read, f.rows_staged, f.rows_quarantined, f.blank_lines,
                          dict(f.reasons)) for f in result.files])  # fmt: skip
        tables.append(
            (
                staged(wh, "_line, source_record_id, fare_usd, _flags"),
                wh.query("SELECT line, reasons, raw FROM quality.quarantine ORDER BY line"),
                wh.query(
                    "SELECT rows_read, rows_staged, rows_quarantined, blank_lines, sha256 "
                    "FROM quality.files"
                ),
            )
        )
    reasons = {"fare_out_of_range": 1, "duplicate_key": 2}
    assert outcomes[0] == outcomes[1] == [(100, 97, 3, 1, reasons)]
    assert tables[0] == tables[1]
    # The blank line is line 81: the rows after it are one line further down.
    assert [line for line, *_ in tables[1][1]] == [12, 77, 93]
    assert tables[1][0][-1][0] == 102
    # The sizes given are the sizes used: one piece in one batch when the file fits, else many
    # pieces, and batches of at most `batch_rows` rows (or of a single larger piece).
    assert pieces[0] == [[100]]
    assert len([piece for batch in pieces[1] for piece in batch]) > 1
    assert all(sum(batch) <= batch_rows or len(batch) == 1 for batch in pieces[1])
    assert len(pieces[1]) > 1


@pytest.mark.parametrize(
    "defect, reason",
    [
        (
            "bad byte",
            "not valid UTF-8: byte 0xc9 on line 92 (declare the source's encoding in sources.yaml)",
        ),
        ("extra field", "a row has more fields than the header"),
        ("corrupt member", "corrupt zip member: size or CRC-32 does not match the zip directory"),
    ],
)
def test_file_failing_in_a_later_piece_leaves_nothing_behind(wh, defect, reason):
    """A defect found after earlier pieces of a file were staged fails the whole file: none of
    its rows stay in staging or quarantine, and the other files load."""
    import zipfile

    rows = [trip(k, FAREAMOUNT="-1.00" if k == 3 else "12.50") for k in range(1, 101)]
    text = member_text(rows).encode()
    if defect == "bad byte":
        text = text.replace(b"\n91|", b"\n91|\xc9")
    elif defect == "extra field":
        text = text.replace(b"\n91|", b"\n91|x|")
    path = write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": text})
    if defect == "corrupt member":
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("taxi_2016_01.txt")
        data = bytearray(path.read_bytes())
        data[info.header_offset + 30 + len(info.filename) + info.compress_size - 8] ^= 0xFF
        path.write_bytes(bytes(data))
    write_zip(wh.data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_01.txt": member_text([trip(1)])})
    result = wh.run(sizes=LoadSizes(piece_bytes=2_000, batch_rows=20))
    failed = [(f.path, f.reason, f.rows_read, f.rows_staged, dict(f.reasons))
              for f in result.files if f.status == "failed"]  # fmt: skip
    assert failed == [("dc_taxi/taxi_2016.zip!taxi_2016_01.txt", reason, 0, 0, {})]
    assert staged(wh, "_file") == [("dc_taxi/taxi_2017.zip!taxi_2017_01.txt",)]
    assert wh.scalar("SELECT count(*) FROM quality.quarantine") == 0
    assert result.reason_counts.total() == 0
    assert result.exit_code == 2


@pytest.mark.parametrize("copies", [1, 4])
def test_daylight_saving_reject_policies_give_reasons_however_often_times_repeat(copies):
    """Conversions run once per distinct time text when times repeat (DFHV rounds to the
    hour): the outcome of every row, reasons included, must not depend on that."""
    import polars as pl

    from etl.config.spec import Column
    from etl.stage.mapping import PARSE_ERRORS, stage_frame

    column = Column.model_validate(
        {"from": "T", "type": "timestamp", "format": "%m/%d/%Y %H:%M",
         "timezone": "America/New_York", "ambiguous": "reject", "nonexistent": "reject"}
    )  # fmt: skip
    texts = ["03/12/2023 02:30", "11/05/2023 01:30", "11/05/2023 03:00", "13/45/2023 00:00", None]
    raw = pl.DataFrame({"_line": range(2, 2 + 5 * copies), "T": texts * copies})
    staged = stage_frame(raw, {"at": column}, null_tokens=("", "NULL"))
    assert staged["at"].to_list() == [None, None, datetime(2023, 11, 5, 8, tzinfo=UTC), None,
                                      None] * copies  # fmt: skip
    assert staged[PARSE_ERRORS].to_list() == [
        ["nonexistent_local_time:at"], ["ambiguous_local_time:at"], [], ["unparseable:at"], [],
    ] * copies  # fmt: skip


@pytest.mark.parametrize("plain_only", [True, False])
def test_money_texts_are_cleaned_of_symbols_only_where_a_plain_cast_fails(plain_only):
    """A column of plain numbers skips the symbol cleaning; one with `$1,234.50` among them
    gets it on those texts, and a text that is not money either way keeps its reason."""
    import polars as pl

    from etl.config.spec import Column
    from etl.stage.mapping import PARSE_ERRORS, stage_frame

    column = Column.model_validate({"from": "COST", "type": "money", "unit": "cents"})
    texts = ["1250", "NULL", "7.5"] + ([] if plain_only else ["$1,234", " $7 ", "12.3.4"])
    raw = pl.DataFrame({"_line": range(2, 2 + len(texts)), "COST": texts})
    staged = stage_frame(raw, {"fare_usd": column}, null_tokens=("", "NULL"))
    expected = [12.5, None, 0.075] + ([] if plain_only else [12.34, 0.07, None])
    assert [v if v is None else round(v, 6) for v in staged["fare_usd"]] == expected
    reasons = [[]] * 3 + ([] if plain_only else [[], [], ["unparseable:fare_usd"]])
    assert staged[PARSE_ERRORS].to_list() == reasons


def test_iso_times_with_z_or_an_offset_parse_alike_and_garbage_keeps_its_reason():
    """`%#z` times are parsed as a literal Z first; the others by the declared format."""
    import polars as pl

    from etl.config.spec import Column
    from etl.stage.mapping import PARSE_ERRORS, stage_frame

    column = Column.model_validate(
        {"from": "AT", "type": "timestamp", "format": "%Y-%m-%dT%H:%M:%S%#z"}
    )
    texts = ["2023-03-12T07:30:00Z", "2023-03-12T03:30:00-04:00", "2023-03-12T07:30:00+00:00",
             "2023-03-12 07:30", None]  # fmt: skip
    raw = pl.DataFrame({"_line": range(2, 7), "AT": texts})
    staged = stage_frame(raw, {"at": column}, null_tokens=("",))
    utc = datetime(2023, 3, 12, 7, 30, tzinfo=UTC)
    assert staged["at"].to_list() == [utc, utc, utc, None, None]
    assert staged[PARSE_ERRORS].to_list() == [[], [], [], ["unparseable:at"], []]


def test_a_config_without_the_company_silos_still_publishes(wh):
    """The intermediate views are generated from the config alone: a user who loads only the DC
    taxi trips edits no SQL, and the sources the config leaves out get no tables."""

    def taxi_only(config):
        del config["sources"]["dispatch"], config["sources"]["courier"]
        del config["integrate"]["matches"]

    wh.change_config(taxi_only)
    zip_2016(wh, [trip(1), trip(2)])
    result = wh.run()
    assert (result.exit_code, result.published) == (0, True)
    assert wh.query("SELECT source, count(*) FROM curated.trips GROUP BY source") == [
        ("dc_taxi", 2)
    ]
    tables = wh.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging'")
    assert tables == [("dc_taxi",)]

"""Bad files are recorded as failed with one-line reasons; the other files still load."""

from __future__ import annotations

import pytest
from dfhv import HEADER_2015, member_text, trip, write_zip

GOOD = "dc_taxi/taxi_2016.zip!taxi_2016_01.txt"


@pytest.fixture
def good(wh):
    write_zip(wh.data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    return wh


def failures(result):
    return {f.path: f.reason for f in result.files if f.status == "failed"}


def assert_only_good_loaded(wh, result):
    assert result.exit_code == 2
    assert result.status == "partial"
    assert [f.path for f in result.files if f.status == "loaded"] == [GOOD]
    assert wh.scalar("SELECT count(*) FROM staging.dc_taxi") == 1
    recorded = wh.query("SELECT path, reason FROM quality.files WHERE status = 'failed'")
    assert dict(recorded) == failures(result)


def test_file_that_is_not_a_zip(good):
    (good.data / "dc_taxi" / "taxi_2017.zip").write_bytes(b"<html>404 Not Found</html>")
    result = good.run()
    assert failures(result) == {"dc_taxi/taxi_2017.zip": "not a valid zip archive"}
    assert_only_good_loaded(good, result)


def test_truncated_zip(good, tmp_path):
    whole = write_zip(
        tmp_path / "whole.zip", {"taxi_2017_01.txt": member_text([trip(k) for k in range(500)])}
    ).read_bytes()
    (good.data / "dc_taxi" / "taxi_2017.zip").write_bytes(whole[: len(whole) // 2])
    result = good.run()
    assert list(failures(result)) == ["dc_taxi/taxi_2017.zip"]
    assert "zip" in failures(result)["dc_taxi/taxi_2017.zip"]
    assert_only_good_loaded(good, result)


def test_corrupted_member_fails_its_crc(good, tmp_path):
    path = write_zip(
        good.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_01.txt": member_text([trip(k) for k in range(200)])},
    )
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the compressed stream of the first member
    path.write_bytes(bytes(data))
    result = good.run()
    reason = failures(result)["dc_taxi/taxi_2017.zip!taxi_2017_01.txt"]
    assert "corrupt" in reason
    assert_only_good_loaded(good, result)


def test_member_missing_a_required_column_names_it(good):
    header = [c for c in HEADER_2015 if c != "FAREAMOUNT"]
    renamed = ["DURATION_SEC" if c == "DURATION" else c for c in header]
    write_zip(
        good.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_01.txt": member_text([trip(1)], header=renamed)},
    )
    result = good.run()
    assert failures(result) == {
        "dc_taxi/taxi_2017.zip!taxi_2017_01.txt": (
            "missing required columns: DURATION (renamed to DURATION_SEC?), FAREAMOUNT"
        )
    }
    assert_only_good_loaded(good, result)


def test_file_in_another_encoding(good):
    text = member_text([trip(1, ORIGIN_BLOCKNAME="100 BLOCK OF CAFÉ ST NW")])
    write_zip(
        good.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_01.txt": text.encode("latin-1")},
    )
    result = good.run()
    reason = failures(result)["dc_taxi/taxi_2017.zip!taxi_2017_01.txt"]
    assert reason.startswith("not valid UTF-8: byte 0xc9 on line 2")
    assert_only_good_loaded(good, result)


def test_byte_undefined_in_the_declared_encoding_is_named(good):
    """cp1252 leaves five bytes undefined: a file holding one is not cp1252, whatever it says."""
    good.change_config(lambda config: config["sources"]["dc_taxi"].update(encoding="cp1252"))
    text = member_text([trip(1), trip(2, ORIGIN_BLOCKNAME="100 BLOCK OF CAFÉ ST NW")])
    write_zip(
        good.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_01.txt": text.encode("cp1252").replace(b"\xc9", b"\x81")},
    )
    result = good.run()
    assert failures(result) == {
        "dc_taxi/taxi_2017.zip!taxi_2017_01.txt": "not valid cp1252: byte 0x81 on line 3"
    }
    assert_only_good_loaded(good, result)


def test_empty_member(good):
    write_zip(good.data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_01.txt": b""})
    result = good.run()
    assert failures(result) == {"dc_taxi/taxi_2017.zip!taxi_2017_01.txt": "empty file"}
    assert_only_good_loaded(good, result)


def test_wrong_delimiter_is_named(good):
    write_zip(
        good.data / "dc_taxi" / "taxi_2017.zip",
        {"taxi_2017_01.txt": member_text([trip(1)], delimiter=",")},
    )
    result = good.run()
    assert failures(result)["dc_taxi/taxi_2017.zip!taxi_2017_01.txt"].startswith(
        "header is not delimited by '|'"
    )
    assert_only_good_loaded(good, result)


def test_failed_file_is_retried_and_loads_once_fixed(good):
    bad = good.data / "dc_taxi" / "taxi_2017.zip"
    bad.write_bytes(b"garbage")
    assert good.run().exit_code == 2
    write_zip(bad, {"taxi_2017_01.txt": member_text([trip(7)])})
    result = good.run()
    assert result.exit_code == 0
    assert good.scalar("SELECT count(*) FROM staging.dc_taxi") == 2

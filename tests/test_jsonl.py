"""JSON Lines into raw text values: what each kind of line yields and which read errors."""

from __future__ import annotations

import pytest

from etl.config.spec import Column
from etl.errors import ConfigError
from etl.readers.jsonl import RAW_JSON, extract_fields, parse_jsonl
from etl.stage.mapping import READ_ERRORS

COLUMNS = {
    "source_record_id": Column(source="job_id"),
    "status": Column(source="status", required=False),
    "distance_km": Column(source="distance_km", type="float", required=False),
    "pickup_lat": Column(source="pickup.lat", type="float", required=False),
}


def extracted(*lines: bytes) -> list[dict]:
    raw = parse_jsonl(b"\n".join(lines) + b"\n", COLUMNS).frame
    return extract_fields(raw, COLUMNS).to_dicts()


def test_values_come_as_the_text_of_each_type():
    (row,) = extracted(
        b'{"job_id": "J\\u00e91", "status": true, "distance_km": 1e3, "pickup": {"lat": -0.50}}'
    )
    assert (row["job_id"], row["status"], row["distance_km"], row["pickup.lat"]) == (
        "J\u00e91",  # a string unescaped
        "true",
        "1000.0",
        "-0.5",
    )
    assert row[READ_ERRORS] == []


def test_null_and_missing_values_are_null():
    (row,) = extracted(b'{"job_id": null, "pickup": null}')
    assert (row["job_id"], row["status"], row["pickup.lat"]) == (None, None, None)
    assert row[READ_ERRORS] == []


def test_each_read_error_is_named():
    rows = extracted(
        b'{"job_id": "J1", "distance_km": "4.2", "pickup": {"lat": "38.9"}}',  # text for numbers
        b'{"job_id": "J2", "driver": "D-7"}',  # a field the source does not declare
        b"[1, 2]",
        b"42",
        b'{"job_id": "J3",',  # broken
        b'\t{"job_id": "J4"}',  # whitespace before the object is still an object
    )
    assert [r[READ_ERRORS] for r in rows] == [
        ["wrong_type:distance_km", "wrong_type:pickup.lat"],
        ["unknown_field:driver"],
        ["not_an_object"],
        ["not_an_object"],
        ["invalid_json"],
        [],
    ]
    assert rows[0]["distance_km"] == "4.2"  # kept, so the quarantine shows what came
    assert rows[4][RAW_JSON] == '"{\\"job_id\\": \\"J3\\","'  # a broken line kept as a string


def test_text_in_a_numeric_field_is_kept_unescaped_whatever_it_holds():
    rows = extracted(
        b'{"job_id": "J1", "distance_km": ""}',
        b'{"job_id": "J2", "distance_km": "four \\"km\\""}',
    )
    assert [(r["distance_km"], r[READ_ERRORS]) for r in rows] == [
        ("", ["wrong_type:distance_km"]),
        ('four "km"', ["wrong_type:distance_km"]),
    ]


def test_a_value_mapped_whole_and_by_its_fields_is_a_config_error():
    columns = COLUMNS | {"pickup_block": Column(source="pickup", required=False)}
    raw = parse_jsonl(b'{"job_id": "J1", "pickup": {"lat": 38.9}}\n', columns).frame
    with pytest.raises(ConfigError, match=r"'pickup' and 'pickup\.lat' are both mapped"):
        extract_fields(raw, columns)

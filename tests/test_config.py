"""A bad sources.yaml fails with one line naming the key and its line; nothing runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.config.load import ConfigError, load_config
from etl.paths import PROJECT_ROOT

VALID = """\
version: 1
sources:
  taxi:
    format: delimited
    files: ["dc_taxi/*.zip"]
    delimiter: "|"
    columns:
      fare_usd: {from: FAREAMOUNT, type: money, unit: dollars}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message.split("sources.yaml:", 1)[1]


def test_the_project_config_is_valid():
    config = load_config(PROJECT_ROOT / "sources.yaml")
    assert "dc_taxi" in config.sources


def test_valid_config_parses_to_typed_objects(tmp_path):
    config = load_config(write(tmp_path, VALID))
    column = config.sources["taxi"].columns["fare_usd"]
    assert (column.source, column.type, column.unit) == ("FAREAMOUNT", "money", "dollars")


def test_unknown_key(tmp_path):
    text = VALID.replace('delimiter: "|"', 'delimeter: "|"')
    assert error_of(tmp_path, text) == "6: sources.taxi.delimeter: unknown key"


def test_wrong_type(tmp_path):
    text = VALID.replace("type: money", "type: currency")
    message = error_of(tmp_path, text)
    assert message.startswith("8: sources.taxi.columns.fare_usd.type: Input should be")


def test_bad_unit(tmp_path):
    text = VALID.replace("unit: dollars", "unit: euros")
    assert error_of(tmp_path, text).startswith("8: sources.taxi.columns.fare_usd.unit:")


def test_missing_required_key(tmp_path):
    text = VALID.replace('    files: ["dc_taxi/*.zip"]\n', "")
    assert error_of(tmp_path, text) == "3: sources.taxi.files: required key is missing"


def test_source_name_must_be_an_identifier(tmp_path):
    text = VALID.replace("  taxi:", "  dc-taxi:")
    assert "'dc-taxi' is not a plain identifier" in error_of(tmp_path, text)


def test_invalid_yaml(tmp_path):
    assert error_of(tmp_path, VALID + "  bad: [unclosed\n").startswith("10: invalid YAML")


def test_layout_overriding_an_unknown_column(tmp_path):
    text = VALID + (
        "    layouts:\n      - name: x\n        match: ['*']\n"
        "        columns: {duration_s: {unit: minutes}}\n"
    )
    assert "overrides unknown column(s) ['duration_s']" in error_of(tmp_path, text)


def test_cli_reports_config_error_in_one_line_with_exit_2(tmp_path):
    config = write(tmp_path, VALID.replace("format: delimited", "format: xml"))
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--config",
            str(config),
            "--data-root",
            str(tmp_path / "data"),
            "--warehouse",
            str(tmp_path / "w.duckdb"),
        ],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "sources.taxi.format" in lines[0]
    assert not (tmp_path / "w.duckdb").exists()


def test_row_checks_that_do_not_fit_the_mapping_fail_in_one_line(tmp_path):
    from dfhv import member_text, trip, write_zip

    shutil.copytree(PROJECT_ROOT / "schemas", tmp_path / "schemas")
    text = (PROJECT_ROOT / "sources.yaml").read_text()
    config = write(tmp_path, text.replace("      airport: {from: AIRPORT, type: boolean}\n", ""))
    data = tmp_path / "data"
    write_zip(data / "dc_taxi" / "taxi_2016.zip", {"taxi_2016_01.txt": member_text([trip(1)])})
    warehouse = tmp_path / "w.duckdb"
    result = CliRunner().invoke(
        app,
        ["run", "--config", str(config), "--data-root", str(data), "--warehouse", str(warehouse)],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert "missing column 'airport'" in lines[-1] and "Traceback" not in result.output
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT status FROM quality.runs").fetchall() == [("error",)]

"""What a new user meets first: help, `etl sql` output, an empty data root, a typo'd key."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.config.load import ConfigError, load_config
from etl.paths import DEFAULTS_DIR


def etl(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("command", [[], ["run"], ["sql"], ["status"], ["report"], ["sample"]])
def test_help_shows_flags_without_a_value(command: list[str]) -> None:
    result = etl(*command, "--help")
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    assert re.search(r"--help\s+Show this message", result.output)
    if command == ["run"]:
        assert re.search(r"--json\s+Machine-readable", result.output)
        assert re.search(r"--warehouse\s+<path>", result.output)  # options that take one do


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        wide = ", ".join(f"'value_{i:02d}_long' AS column_{i:02d}" for i in range(12))
        con.execute(f"CREATE TABLE wide AS SELECT {wide}")
        con.execute(
            "CREATE TABLE t AS SELECT ['dc_taxi', 'dispatch'] AS seen_by, false AS airport, "
            "NULL::DOUBLE AS fare_usd, 'x' AS source"
        )
    return path


def test_sql_table_shows_values_as_sql_does(warehouse: Path) -> None:
    result = etl("sql", "SELECT * FROM t", "--warehouse", str(warehouse))
    assert result.exit_code == 0
    assert '["dc_taxi", "dispatch"]' in result.output
    assert "false" in result.output and "False" not in result.output
    assert "NULL" in result.output
    assert "['dc_taxi'" not in result.output


def test_sql_csv_writes_json_lists_and_lowercase_booleans(warehouse: Path) -> None:
    result = etl("sql", "SELECT * FROM t", "--warehouse", str(warehouse), "--format", "csv")
    assert result.output.splitlines() == [
        "seen_by,airport,fare_usd,source",
        '"[""dc_taxi"", ""dispatch""]",false,,x',
    ]


def test_sql_rows_too_wide_for_the_screen_are_not_squeezed(warehouse: Path) -> None:
    result = etl("sql", "SELECT * FROM wide", "--warehouse", str(warehouse))
    assert result.exit_code == 0
    for i in range(12):  # every column name and value whole, one per line
        assert re.search(rf"^column_{i:02d}\s+\| value_{i:02d}_long$", result.output, re.M)


def test_an_empty_data_root_warns(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = etl(
        "run",
        "--config", str(DEFAULTS_DIR / "sources.yaml"),
        "--data-root", str(tmp_path / "data"),
        "--warehouse", str(tmp_path / "w.duckdb"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"warning: no source found a file under {tmp_path / 'data'}" in result.output


def test_a_typoed_key_is_reported_before_the_key_it_hides(tmp_path: Path) -> None:
    text = (DEFAULTS_DIR / "sources.yaml").read_text()
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t == "    format: delimited")
    config = tmp_path / "sources.yaml"
    config.write_text(text.replace("    format: delimited", "    fromat: delimited", 1))
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert str(raised.value).startswith(
        f"{config}:{line}: sources.dc_taxi.fromat: unknown key (did you mean 'format'?)"
    )


WHITE_HOUSE, BALTIMORE, DULLES = "38.8977,-77.0365", "39.2904,-76.6122", "38.9531,-77.4565"


@pytest.fixture
def fixed_estimate(monkeypatch):
    """The models' answer, fixed: these tests are about what the command prints around it."""
    import etl.ml.predict

    def estimate(models, origin, destination, at, source):
        return {
            "duration_min": 20.0, "fare_usd": 30.0, "straight_miles": 3.0,
            "at": "2023-10-10T08:30:41.123456-04:00", "source": "dispatch",
            "baseline": {"duration_min": 18.0, "fare_usd": 28.0},
        }  # fmt: skip

    monkeypatch.setattr(etl.ml.predict, "predict", estimate)


def test_predict_prints_the_time_to_the_minute(fixed_estimate) -> None:
    result = etl("predict", "--from", WHITE_HOUSE, "--to", DULLES)
    assert result.exit_code == 0, result.output
    assert "2023-10-10 08:30 EDT" in result.output and ":41" not in result.output
    assert "warning" not in result.output  # Dulles is one of DC's airports


def test_predict_warns_about_a_point_far_outside_dc(fixed_estimate) -> None:
    result = etl("predict", "--from", WHITE_HOUSE, "--to", BALTIMORE)
    assert result.exit_code == 0, result.output
    assert "warning: --to 39.2904,-76.6122 is 32 miles outside DC" in result.stderr
    assert "--from" not in result.stderr

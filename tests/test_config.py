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


# --- issue 16 item 11 and issue 14 item 7: config that passed and failed later -------------


def with_key(line: str) -> str:
    """VALID with one more line in the taxi source, as its line 7."""
    return VALID.replace('    delimiter: "|"\n', f'    delimiter: "|"\n    {line}\n')


def test_a_typo_names_the_unknown_key_before_the_key_it_hides(tmp_path):
    text = VALID.replace("format: delimited", "fromat: delimited")
    assert error_of(tmp_path, text) == (
        "4: sources.taxi.fromat: unknown key (did you mean 'format'?) (+1 more)"
    )


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("../outside/*.csv", "leaves the data root"),
        ("dc_taxi/../../outside/*.csv", "leaves the data root"),
        ("dc_taxi\\\\..\\\\..\\\\x.csv", "leaves the data root"),
        ("~/x.csv", "leaves the data root"),
        ("/etc/*.csv", "is absolute"),
        ("C:/data/*.csv", "is absolute"),
        ("", "names no file"),
        ("./.", "names no file"),
        ("dc_taxi/**x.zip", "is not a valid glob"),
    ],
)
def test_a_glob_must_stay_inside_the_data_root(tmp_path, glob, problem):
    text = VALID.replace('["dc_taxi/*.zip"]', f'["dc_taxi/*.zip", "{glob}"]')
    message = error_of(tmp_path, text)
    assert message.startswith("5: sources.taxi.files: ") and problem in message


def test_a_url_is_still_a_file_of_a_source(tmp_path):
    text = VALID.replace('["dc_taxi/*.zip"]', '["https://example.org/a/../taxi.zip"]')
    assert load_config(write(tmp_path, text)).sources["taxi"].files


@pytest.mark.parametrize(
    ("trailer", "problem"),
    [("'^TOTAL ROWS: \\d+$'", "needs a group"), ("'^TOTAL (\\d+$'", "not a valid regular")],
)
def test_a_trailer_is_a_regex_with_a_group(tmp_path, trailer, problem):
    message = error_of(tmp_path, with_key(f"trailer: {trailer}"))
    assert message.startswith("7: sources.taxi.trailer: ") and problem in message


def test_a_time_zone_must_exist(tmp_path):
    column = '      at: {from: T, type: timestamp, format: "%H", timezone: America/New_Yrok}\n'
    message = error_of(tmp_path, VALID + column)
    assert message.startswith("9: sources.taxi.columns.at.timezone: unknown time zone")
    layout = "    layouts:\n      - {name: x, match: ['*'], columns: {fare_usd: {timezone: X/Y}}}\n"
    assert "unknown time zone 'X/Y'" in error_of(tmp_path, VALID + layout)


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ("stauts = 'completed'", "names unknown column(s) ['stauts']"),
        ("status = 'completed'; DROP TABLE x", "is not a SQL condition"),
        ("status =", "is not a SQL condition"),
    ],
)
def test_trips_where_names_mapped_columns_only(tmp_path, condition, problem):
    text = with_key(f'trips_where: "{condition}"') + "      status: {from: STATUS}\n"
    message = error_of(tmp_path, text)
    assert message.startswith("7: sources.taxi.trips_where: ") and problem in message


@pytest.mark.parametrize("key", ["row_checks", "suite"])
def test_row_check_and_suite_files_must_exist(tmp_path, key):
    text = with_key(f"{key}: schemas/nope.json")
    message = error_of(tmp_path, text)
    assert message.startswith(f"7: sources.taxi.{key}: no such file: ")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "nope.json").write_text("{}")
    if key == "suite":  # the row spec must also parse; the suite is read by the audit
        load_config(write(tmp_path, text))


def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path):
    text = with_key('delimiter: ","')
    assert error_of(tmp_path, text) == "7: sources.taxi.delimiter: duplicate key (first on line 6)"
    text = VALID + "  taxi:\n    format: jsonl\n"
    assert error_of(tmp_path, text) == "9: sources.taxi: duplicate key (first on line 3)"


BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_aliases_beyond_the_limit_are_refused(tmp_path, monkeypatch):
    text = VALID.replace("fare_usd: {", "fare_usd: &x {")
    text += "".join(f"      c{i}: *x\n" for i in range(5))
    assert load_config(write(tmp_path, text)).sources["taxi"].columns["c4"].source == "FAREAMOUNT"
    monkeypatch.setenv("ETL_CONFIG_MAX_ALIASES", "3")
    assert error_of(tmp_path, text) == "12: too many aliases (ETL_CONFIG_MAX_ALIASES to change)"


def test_a_recursive_alias_is_refused(tmp_path):
    assert "refers to a node that contains it" in error_of(tmp_path, "a: &a [x, *a]\nsources: {}\n")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_CONFIG_MAX_BYTES", "100")
    with pytest.raises(ConfigError, match="larger than the limit of 100 bytes"):
        load_config(write(tmp_path, VALID))
    monkeypatch.setenv("ETL_CONFIG_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="ETL_CONFIG_MAX_BYTES='lots' is not a whole number"):
        load_config(write(tmp_path, VALID))


def test_the_alias_bomb_stays_under_1_gb_in_a_process_capped_at_1_gb(tmp_path):
    """In a child capped at 1 GB of address space (b234fa5 passed 6 GB on this file)."""
    import resource
    import subprocess
    import sys

    bomb = write(tmp_path, BOMB + "sources: *i\n")
    probe = (
        "import resource, sys; from pathlib import Path\n"
        "from etl.config.load import ConfigError, load_config\n"
        "try:\n    load_config(Path(sys.argv[1]))\nexcept ConfigError as exc:\n    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run(
        [sys.executable, "-c", probe, str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    message, peak_kb = done.stdout.strip().splitlines()
    assert "values with aliases expanded, more than the limit of 100,000" in message
    assert int(peak_kb) < 1 << 20  # KB: under 1 GB


def test_a_bad_glob_stops_the_run_before_anything_is_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "outside.csv").write_text("FAREAMOUNT\n1\n")
    config = write(tmp_path, VALID.replace('["dc_taxi/*.zip"]', '["../outside.csv"]'))
    warehouse = tmp_path / "w.duckdb"
    args = ["run", "--config", str(config), "--data-root", str(data), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "leaves the data root" in result.output
    assert not warehouse.exists()


def test_a_suite_that_does_not_parse_stops_the_run_before_anything_is_read(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "suite.json").write_text('{"name": "trip", "expectations": [')
    config = write(tmp_path, with_key("suite: suite.json"))
    warehouse = tmp_path / "w.duckdb"
    args = ["--data-root", str(tmp_path / "data"), "--warehouse", str(warehouse)]
    result = CliRunner().invoke(app, ["run", "--config", str(config), *args])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "sources.taxi.suite: " in result.output
    assert not warehouse.exists()

"""A project folder: `etl init`, `--project-dir` / `ETL_PROJECT_DIR`, and a run outside one."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from etl.cli.main import app
from etl.paths import DEFAULTS_DIR, MODELS_DIR, project_models


def etl(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_init_writes_a_project_to_edit(tmp_path: Path) -> None:
    result = etl("init", str(tmp_path / "proj"))
    assert result.exit_code == 0, result.output
    proj = tmp_path / "proj"
    assert (proj / "sources.yaml").read_text() == (DEFAULTS_DIR / "sources.yaml").read_text()
    assert (proj / "schemas" / "suites" / "trip.json").is_file()
    assert (proj / "warehouse" / "models" / "curated" / "trips.sql").is_file()
    assert project_models(proj) == proj / "warehouse" / "models"


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text("mine\n")
    result = etl("init", str(tmp_path))
    assert result.exit_code == 2
    assert "already holds sources.yaml" in result.output
    assert (tmp_path / "sources.yaml").read_text() == "mine\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_outside_a_project_says_how_to_make_one(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = etl("run", env={"ETL_PROJECT_DIR": ""})
    assert result.exit_code == 2
    assert "not an etl project folder" in result.output
    assert "etl init" in result.output
    assert not (tmp_path / "warehouse").exists()  # nothing left behind


def test_project_dir_sets_where_the_warehouse_is(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    etl("init", "proj")
    result = etl("--project-dir", "proj", "status")
    assert result.exit_code == 2
    assert "proj/warehouse/warehouse.duckdb: no warehouse yet" in result.output
    result = etl("status", env={"ETL_PROJECT_DIR": "proj"})
    assert "proj/warehouse/warehouse.duckdb: no warehouse yet" in result.output
    # An explicit path still wins, relative to the working directory.
    result = etl("--project-dir", "proj", "status", "--warehouse", "other.duckdb")
    assert "error: other.duckdb: no warehouse yet" in result.output


def test_project_dir_must_exist(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = etl("--project-dir", "nowhere", "run")
    assert result.exit_code == 2
    assert "nowhere: no such project folder" in result.output


@pytest.mark.parametrize("own_models", [False, True])
def test_a_config_alone_builds_the_default_models(tmp_path: Path, own_models: bool) -> None:
    if own_models:
        (tmp_path / "warehouse" / "models").mkdir(parents=True)
    expected = tmp_path / "warehouse" / "models" if own_models else MODELS_DIR
    assert project_models(tmp_path) == expected

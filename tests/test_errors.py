"""One error tree: every error for the user is an `EtlError` that says its exit code, and the
command line turns any of them, raised from any command, into one line and that code."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etl import errors
from etl.cli.main import app
from etl.errors import EtlError

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, Exception)
]


def test_every_error_is_under_the_root_with_a_contract_exit_code() -> None:
    assert {cls.__name__ for cls in ERROR_CLASSES} >= {
        "ConfigError", "ProjectError", "YamlError", "SourceError", "RowSpecError",
        "RowCheckError", "WarehouseError", "SqlModelError", "ReconciliationError",
        "QueryError", "MlModelError",
    }  # fmt: skip
    for cls in ERROR_CLASSES:
        assert issubclass(cls, EtlError), cls
        assert cls.exit_code in (1, 2), cls  # the CLI contract: 1 failed audit, 2 bad input
    assert errors.ReconciliationError.exit_code == 1  # nothing published: a failed audit


def test_the_two_model_errors_have_distinct_names() -> None:
    from etl.engine.duckdb import sql_models
    from etl.ml import predict

    assert sql_models.SqlModelError is errors.SqlModelError
    assert predict.MlModelError is errors.MlModelError
    assert not issubclass(errors.SqlModelError, errors.MlModelError)
    assert not issubclass(errors.MlModelError, errors.SqlModelError)


def test_the_errors_are_the_ones_the_layers_raise() -> None:
    """The layers' own names for their errors are the tree's classes, not copies of them."""
    from etl.config.load import ConfigError
    from etl.engine.duckdb.warehouse import WarehouseError
    from etl.quality.rows import RowCheckError, RowSpecError
    from etl.report.query import QueryError
    from etl.sources.files import SourceError

    assert (ConfigError, WarehouseError, RowCheckError, RowSpecError, QueryError, SourceError) == (
        errors.ConfigError, errors.WarehouseError, errors.RowCheckError, errors.RowSpecError,
        errors.QueryError, errors.SourceError,
    )  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [
        errors.QueryError("warehouse.duckdb: no warehouse yet (run `etl run` first)"),
        errors.SqlModelError("trips.sql: Binder Error: no column fare"),
        errors.ReconciliationError("control totals do not add up", totals=None),
        errors.YamlError(3, "too many aliases"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_any_command_ends_an_etl_error_in_one_line_and_its_code(
    error: EtlError, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("etl.report.status.last_runs", fail)
    result = CliRunner().invoke(app, ["status", "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == error.exit_code
    assert result.stderr == f"error: {error}\n"
    assert result.stdout == ""


def test_an_error_that_is_not_for_the_user_is_not_caught_as_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug stays a bug: it reaches `etl.cli.errors` (exit 3 and a log), not a usage line."""

    def fail(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr("etl.report.status.last_runs", fail)
    result = CliRunner().invoke(app, ["status", "--warehouse", str(tmp_path / "w.duckdb")])
    assert isinstance(result.exception, KeyError)
    assert result.stderr == ""


def test_a_real_error_from_a_layer_reaches_the_user_as_before(tmp_path: Path) -> None:
    """`etl sql` on a warehouse that does not exist: the message and code as they always were."""
    missing = tmp_path / "none.duckdb"
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--warehouse", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no warehouse yet (run `etl run` first)\n"

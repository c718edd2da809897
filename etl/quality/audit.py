"""Batch audits of a run: each source's suite on the rows this run staged, results recorded.

The row-count band comes from history: a batch of N files is expected to hold N times the
median rows per file of earlier loads, and a batch outside a quarter to four times that is
suspect (a month that arrives with a tenth of its rows). With no history the check is skipped.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb

from etl.config.spec import Config
from etl.paths import WAREHOUSE_DIR
from etl.quality.batch import SKIPPED_EMPTY_BATCH, CheckResult, Suite, load_suite

AUDIT_SQL = WAREHOUSE_DIR / "audit"
ROW_COUNT_BAND = (0.25, 4.0)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# The audit of each Great Expectations datasource an engine validates on (`SuiteAudit.run`).
AUDITS = {"duckdb": "etl.quality.audit", "spark": "etl.quality.gx_spark"}


@dataclass(frozen=True)
class SourceCheck:
    """A check result with the source it ran on."""

    source: str
    result: CheckResult

    @property
    def blocks_publish(self) -> bool:
        return self.result.severity == "error" and not self.result.success


@dataclass(frozen=True)
class SuiteAudit:
    """A run's batch suites, for an engine to run on its own handle (`Engine.run_suites`): the
    suite of every source that loaded files this run, on the rows it staged."""

    config: Config
    config_dir: Path
    run_id: str
    files_loaded: Mapping[str, int]

    def run(self, native: Any, datasource: str) -> list[SourceCheck]:
        """The checks, through Great Expectations' `datasource` on `native`: `duckdb` on a
        connection, `spark` on a SparkSession (its module, and pyspark, imported only then)."""
        module = importlib.import_module(AUDITS[datasource])
        return module.audit_run(native, self.config, self.config_dir, self.run_id,
                                self.files_loaded)  # fmt: skip

    def rows(self, checks: Sequence[SourceCheck]) -> list[tuple]:
        """The `quality.checks` rows of the checks, in its column order."""
        return check_rows(self.run_id, checks)


def audit_run(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    config_dir: Path,
    run_id: str,
    files_loaded: Mapping[str, int],
) -> list[SourceCheck]:
    """Run the suite of every source that loaded files this run, on DuckDB; the results (the
    engine records them: `SuiteAudit.rows`)."""
    checks: list[SourceCheck] = []
    for name, source in config.sources.items():
        if not source.suite or not files_loaded.get(name):
            continue
        suite = load_suite(config_dir / source.suite)
        relation = _batch_view(con, name, source.key, run_id)
        params = _row_count_params(con, name, run_id, files_loaded[name])
        for result in _run_suite(con, relation, suite, params):
            checks.append(SourceCheck(name, result))
        con.execute(f"DROP VIEW {relation}")
    return checks


def _run_suite(
    con: duckdb.DuckDBPyConnection, relation: str, suite: Suite, params: dict[str, float]
) -> list[CheckResult]:
    from etl.quality.batch import run_suite  # imports Great Expectations: only when needed

    # EXISTS stops at the first row; a count(*) scanned the whole batch (0.15 CPU s at 5 M).
    has_rows = bool(con.execute(f"SELECT EXISTS (FROM {relation})").fetchall()[0][0])
    return suite_results(suite, has_rows, lambda run: run_suite(con, relation, run, params))


def suite_results(
    suite: Suite, has_rows: bool, run: Callable[[Suite], list[CheckResult]]
) -> list[CheckResult]:
    """The suite's results on a batch (`run` runs a suite on it). A batch without rows (a day
    without jobs is a normal day) has no values to check: only the expectations on the table
    as a whole (its row count) run; the others pass as skipped, with no observed value."""
    if has_rows:
        return run(suite)
    on_table = tuple(e for e in suite.expectations if e.type.startswith("expect_table_"))
    ran = iter(run(replace(suite, expectations=on_table)))
    return [
        next(ran)
        if e in on_table
        else CheckResult(suite.name, e.name, e.severity, True, None, dict(SKIPPED_EMPTY_BATCH))
        for e in suite.expectations
    ]


def _batch_view(
    con: duckdb.DuckDBPyConnection, source: str, key: tuple[str, ...], run_id: str
) -> str:
    for name in (source, *key):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain identifier: {name!r}")
    if not re.fullmatch(r"[0-9A-Za-z-]+", run_id):
        raise ValueError(f"unexpected run id {run_id!r}")
    sql = (
        (AUDIT_SQL / "batch_view.sql")
        .read_text()
        .format(source=source, key_columns=", ".join(key), run_id=run_id)
    )
    con.execute("CREATE SCHEMA IF NOT EXISTS audit")
    con.execute(sql)
    return f"audit.{source}"


def _row_count_params(
    con: duckdb.DuckDBPyConnection, source: str, run_id: str, files: int
) -> dict[str, float]:
    sql = (AUDIT_SQL / "row_count_history.sql").read_text()
    rows_per_file, history = con.execute(sql, {"source": source, "run_id": run_id}).fetchall()[0]
    return row_count_band(rows_per_file, history, files)


def row_count_band(rows_per_file: float | None, history: int, files: int) -> dict[str, float]:
    """The row-count band of a batch of `files` files, from the rows per file of earlier runs;
    none without history."""
    if not history or rows_per_file is None:
        return {}
    expected = float(rows_per_file) * files
    low, high = ROW_COUNT_BAND
    return {"min_rows": expected * low, "max_rows": expected * high}


def check_rows(run_id: str, checks: Sequence[SourceCheck]) -> list[tuple]:
    """The `quality.checks` rows of the results, in its column order."""
    return [
        (
            run_id,
            c.source,
            c.result.suite,
            c.result.expectation,
            c.result.severity,
            c.result.success,
            c.result.observed_value,
            json.dumps(c.result.details, default=str),
        )
        for c in checks
    ]

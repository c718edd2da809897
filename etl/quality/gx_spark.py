"""Batch suites on Spark (design step 6): the same suite files, through Great Expectations'
Spark datasource, giving the same checks as on DuckDB (`etl.quality.gx_duckdb` is DuckDB's
datasource); the engine records their rows (`SuiteAudit.rows`). pyspark is imported only here,
and this module only when the Spark engine runs the suites (`etl.quality.audit.AUDITS`).

The batch is the one DuckDB checks (`warehouse/audit/batch_view.sql`, twinned in
`warehouse/spark/audit/`): this run's rows of one source that are trips, with the key the suite
tests for uniqueness. A suite's `derived_columns` are written in DuckDB's SQL; they are
transpiled to Spark's with sqlglot. Suites, parameters, severities and the translation of GX's
results into `CheckResult` are `etl.quality`'s own, so both engines record the same rows and
the same failed-audit decision (`SourceCheck.blocks_publish`).

GX is imported on first use (5-7 s), as on DuckDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from etl.config.spec import Config
from etl.paths import WAREHOUSE_DIR
from etl.quality.audit import SourceCheck, row_count_band, suite_results
from etl.quality.batch import (
    DEFAULT_RESULT_FORMAT,
    CheckResult,
    Suite,
    build_gx_suite,
    gx_context,
    load_suite,
    place_results,
    results_by_index,
    skip_without_params,
)

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch
    from pyspark.sql import DataFrame, SparkSession

SPARK_AUDIT_SQL = WAREHOUSE_DIR / "spark" / "audit"


def quote(name: str) -> str:
    """A Spark SQL identifier, backquoted: any name is safe inside SQL text."""
    return "`" + name.replace("`", "``") + "`"


def batch_frame(
    spark: SparkSession, source: str, key: Sequence[str], run_id: str, schema: str = "staging"
) -> DataFrame:
    """The rows of `source` that run `run_id` staged and that are trips, with `_record_key`."""
    sql = (SPARK_AUDIT_SQL / "batch_view.sql").read_text().format(
        table=f"{quote(schema)}.{quote(source)}",
        key_columns=", ".join(quote(k) for k in key),
    )  # fmt: skip
    return spark.sql(sql, args={"run_id": run_id})


def with_derived(frame: DataFrame, derived: Mapping[str, str]) -> DataFrame:
    """`frame` plus the suite's derived columns (DuckDB SQL, transpiled to Spark's), except
    those the frame already has: its own column is used then, as on DuckDB."""
    import sqlglot
    from pyspark.sql import functions as F

    extra = {}
    for name, expression in derived.items():
        if name not in frame.columns:
            (spark_sql,) = sqlglot.transpile(expression, read="duckdb", write="spark")
            extra[name] = F.expr(spark_sql)
    return frame.withColumns(extra) if extra else frame


def run_suite(
    frame: DataFrame,
    suite: Suite,
    params: Mapping[str, float],
    *,
    context: AbstractDataContext | None = None,
    result_format: str | dict = DEFAULT_RESULT_FORMAT,
) -> list[CheckResult]:
    """`etl.quality.batch.run_suite` on a Spark DataFrame: one CheckResult per expectation, in
    suite order, with the suite's derived columns added to `frame`."""
    results, to_run = skip_without_params(suite, params)
    if not to_run:
        return results  # type: ignore[return-value]
    gx_suite = build_gx_suite(suite, to_run)
    ctx = context if context is not None else gx_context()
    with spark_batch(ctx, with_derived(frame, suite.derived_columns)) as batch:
        fmt = dict(result_format) if isinstance(result_format, Mapping) else result_format
        validation = batch.validate(gx_suite, result_format=fmt)
    return place_results(results, to_run, suite, results_by_index(validation.results))


@contextmanager
def spark_batch(context: AbstractDataContext, frame: DataFrame) -> Iterator[Batch]:
    """A GX batch over `frame`, through a Spark datasource registered under a fresh name and
    removed on exit; the frame is cached while the suite's metrics read it (one scan of the
    staging table, not one per metric) and uncached after."""
    name = f"etl_spark_{uuid.uuid4().hex[:12]}"
    datasource = context.data_sources.add_spark(name=name, persist=False)
    cached = frame.cache()
    try:
        asset = datasource.add_dataframe_asset(name="batch")
        definition = asset.add_batch_definition_whole_dataframe("whole")
        yield definition.get_batch(batch_parameters={"dataframe": cached})
    finally:
        cached.unpersist()
        context.data_sources.delete(name)


def audit_run(
    spark: SparkSession,
    config: Config,
    config_dir: Path,
    run_id: str,
    files_loaded: Mapping[str, int],
    staging: str = "staging",
    quality: str = "quality",
) -> list[SourceCheck]:
    """Run the suite of every source that loaded files this run, on its batch in the schema
    `staging`, with the row-count band from the manifest in `quality`: the results, as
    `etl.quality.audit.audit_run` gives them on DuckDB."""
    checks: list[SourceCheck] = []
    suited = {n: s for n, s in config.sources.items() if s.suite and files_loaded.get(n)}
    bands = row_count_params(spark, run_id, {n: files_loaded[n] for n in suited}, quality)
    for name, source in suited.items():
        suite = load_suite(config_dir / source.suite)
        frame = batch_frame(spark, name, source.key, run_id, staging)
        run = partial(run_suite, frame, params=bands[name])
        results = suite_results(suite, not frame.isEmpty(), run)
        checks.extend(SourceCheck(name, r) for r in results)
    return checks


def row_count_params(
    spark: SparkSession, run_id: str, files: Mapping[str, int], quality: str = "quality"
) -> dict[str, dict[str, float]]:
    """The row-count band of each source's batch of `files[source]` files, from the files
    earlier runs loaded (the manifest in the schema `quality`; one query for all sources);
    none without history."""
    sql = (SPARK_AUDIT_SQL / "row_count_history.sql").read_text().format(schema=quote(quality))
    history = {row.source: row for row in spark.sql(sql, args={"run_id": run_id}).collect()}
    return {
        name: row_count_band(*history[name][1:], n) if name in history else {}
        for name, n in files.items()
    }

"""Build the curated layer on Spark: the steps and results of etl/engine/duckdb/build.py.

1. the intermediate models, generated from the config as for DuckDB and transpiled
   (etl.engine.spark.sql), as views over the `staging.<source>` tables;
2. the calendar with DC holidays as `intermediate.calendar`;
3. cross-silo matching (etl.engine.spark.match, from the Spark twin of match_trips.sql) as
   `intermediate.trip_matches`, and the pairs appended to `quality.matches`;
4. the curated models, each transpiled or from its Spark twin under warehouse/spark/;
5. the control totals, from the Spark twin of control_totals.sql, reconciled as for DuckDB
   (ReconciliationError) before they are appended to `quality.control_totals`.

Every table is named by its schema in the DuckDB warehouse (`curated.trips`); `databases` maps
a schema to the Spark database that holds it, so that the engine can build a run's tables
beside the published ones and switch them in when it publishes. An `incremental` model is
rebuilt whole: Parquet tables have no DELETE, and the build writes a new table anyway. Columns
DuckDB declares `generated` (computed on read) are stored; `uncompressed` has no meaning in
Parquet and is left out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from etl.config.spec import Config, Match
from etl.engine.duckdb.build import BuildSummary, calendar_years, reconcile
from etl.engine.duckdb.match import MatchTolerance
from etl.engine.duckdb.sql_models import Model
from etl.engine.spark import sql
from etl.engine.spark.catalog import list_tables
from etl.engine.spark.match import checkpoint, match_trips, statements
from etl.errors import SqlModelError
from etl.paths import DDL_DIR, WAREHOUSE_DIR

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

TRIP_MATCHES = "intermediate.trip_matches"
MANIFEST = "quality.manifest"
CONTROL_TOTALS = sql.SPARK_DIR / "audit" / "control_totals.sql"
# The table property of a view that holds a checksum of the SQL it was made of.
SIGNATURE = "etl.sql_sha"


def build_curated(
    spark: SparkSession,
    config: Config,
    run_id: str,
    models: list[Model],
    calendar: Callable[[date, date], pl.DataFrame],
    loaded: list[tuple[str, str]] | None = None,
    stage: Callable[[str], None] = lambda name: None,
    *,
    databases: Mapping[str, str] | None = None,
    listings: dict[str, dict[str, str]] | None = None,
) -> BuildSummary:
    """Rebuild everything downstream of staging, as build_curated of the DuckDB engine does
    (the same arguments; `loaded` is not needed: every model is rebuilt whole); `listings`:
    the caller's listing of the catalog (Tables), kept true by the build. Raises
    ReconciliationError (nothing of the totals written) or SqlModelError."""
    del loaded  # the files this run loaded: an incremental build would start from them
    where = Tables(spark, dict(databases or {}), listings)
    stage("matching")
    first = [m for m in models if m.name.startswith("intermediate.")]
    columns: dict[str, list[str]] = {}
    for model in first:
        build_model(where, model, columns)
    # Every later step reads all_trips, a view over the staging tables: computed once, kept
    # in memory for the build (a view is otherwise computed again by each query of it).
    all_trips = where.name("intermediate.all_trips")
    spark.catalog.cacheTable(all_trips)
    try:
        _write_calendar(where, calendar)
        matches = _write_matches(where, config, run_id)
        stage("publish")
        for model in models:
            if model not in first:
                build_model(where, model, columns)
        return BuildSummary(matches, control_totals(where, run_id))
    finally:
        spark.catalog.uncacheTable(all_trips)


class Tables:
    """Where the build reads and writes: a table's name in DuckDB's terms (`curated.trips`)
    as the Spark table that holds it, and a DuckDB statement as Spark SQL over those tables.

    Which tables and views exist is listed once per database (or taken from `listed`, a
    listing the caller keeps, such as the engine's Catalog: then nobody lists again after the
    build), and kept true by the build's own statements."""

    def __init__(
        self,
        spark: SparkSession,
        databases: dict[str, str],
        listed: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.spark = spark
        self.databases = databases
        # database: {table: TABLE or VIEW}
        self._listed: dict[str, dict[str, str]] = {} if listed is None else listed
        self._signatures: dict[str, dict[str, str]] = {}  # database: {view: its SQL's sha}

    def create_database(self, table: str) -> None:
        """The database of a table (by its Spark name), once a build (each costs a catalog call);
        its tables and views listed once (list_tables), then kept by `made` and `kind`."""
        database = table.split(".")[0]
        if database not in self._listed:
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
            self._listed[database] = list_tables(self.spark, database)

    def kind(self, table: str) -> str | None:
        """TABLE or VIEW, if the Spark table `table` exists."""
        self.create_database(table)
        database, name = table.split(".")
        return self._listed[database].get(name)

    def made(self, table: str, kind: str | None) -> None:
        """The Spark table `table` is now of `kind` (None: dropped)."""
        self.create_database(table)
        database, name = table.split(".")
        self._listed[database].pop(name, None)
        if kind is not None:
            self._listed[database][name] = kind

    def view(self, target: str, select: str) -> None:
        """The view `target` (a Spark name) of `select`: made, unless the view there was made
        of the same SQL (a statement of 21-24 metastore calls saved; each run would otherwise
        make every view again)."""
        signature = hashlib.sha256(select.encode()).hexdigest()[:16]
        if self.kind(target) == "VIEW" and self._view_signature(target) == signature:
            return
        self.spark.sql(
            f"CREATE OR REPLACE VIEW {target} TBLPROPERTIES ('{SIGNATURE}' = '{signature}') "
            f"AS\n{select}"
        )
        self.made(target, "VIEW")
        database, name = target.split(".")
        if database in self._signatures:  # else read with the others', when first asked
            self._signatures[database][name] = signature

    def _view_signature(self, view: str) -> str | None:
        """The signature a view was made with: the database's views' properties read by one
        statement (3 calls a view), once a build."""
        database, name = view.split(".")
        if database not in self._signatures:
            views = [t for t, kind in self._listed[database].items() if kind == "VIEW"]
            like = "|".join(views)
            shown = self.spark.sql(f"SHOW TABLE EXTENDED IN {database} LIKE '{like}'").collect()
            self._signatures[database] = {
                row.tableName: found.group(1)
                for row in shown
                if (found := re.search(rf"\b{re.escape(SIGNATURE)}=(\w+)", row.information))
            }
        return self._signatures[database].get(name)

    def name(self, table: str) -> str:
        schema, name = table.split(".")
        return f"{self.databases.get(schema, schema)}.{name}"

    def to_spark(self, duckdb_sql: str, columns: Mapping[str, list[str]] | None = None) -> str:
        return sql.to_spark(duckdb_sql, columns=columns, databases=self.databases)

    def query(self, duckdb_sql: str) -> DataFrame:
        return self.spark.sql(self.to_spark(duckdb_sql))

    def write(self, frame: DataFrame, table: str, mode: str = "overwrite") -> None:
        """`frame` as the table (or appended to it, by column name), stored as Parquet."""
        target = self.name(table)
        self.create_database(target)
        frame.write.mode(mode).format("parquet").saveAsTable(target)
        self.made(target, "TABLE")


def build_model(where: Tables, model: Model, columns: dict[str, list[str]]) -> None:
    """Create or replace one model as a view or a Parquet table; `columns` holds the columns
    of the views built so far (a `UNION ALL BY NAME` over them lists them)."""
    from pyspark.errors import PySparkException

    spark, target = where.spark, where.name(model.name)
    try:
        select = model_sql(where, model, columns)
        kind = "VIEW" if model.materialized == "view" else "TABLE"
        existing = where.kind(target)
        if existing is not None and (existing != kind or kind == "TABLE"):
            spark.sql(f"DROP {existing} {target}")
            where.made(target, None)
        if kind == "VIEW":
            where.view(target, select)
            if model.name.startswith("intermediate."):  # what all_trips' union lists
                columns[model.name] = spark.table(target).columns
        else:
            spark.sql(f"CREATE TABLE {target} USING parquet AS\n{select}")
            where.made(target, kind)
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0]
        raise SqlModelError(f"{model.path.name} on Spark: {first}") from None


def model_sql(where: Tables, model: Model, columns: Mapping[str, list[str]]) -> str:
    """The model's SELECT in Spark SQL: its Spark twin if it has one, else transpiled; with
    its generated columns first, computed here and stored (as DuckDB lists them)."""
    relative = f"models/{model.name.replace('.', '/')}.sql"
    twin = sql.twin(relative) if model.path == WAREHOUSE_DIR / relative else None
    if twin is not None:
        select = sql.rename_databases(twin.read_text(), where.databases)
    else:
        select = where.to_spark(model.sql, columns)
    if not model.generated:
        return select
    generated = [where.to_spark(f"SELECT {expr} AS {name}") for name, expr in model.generated]
    listed = ", ".join(text.removeprefix("SELECT ") for text in generated)
    return f"SELECT {listed}, * FROM (\n{select}\n) AS _model"


def _write_calendar(where: Tables, build_dim_date: Callable[[date, date], pl.DataFrame]) -> None:
    first, last = where.query(
        "SELECT min(pickup_at)::DATE, max(pickup_at)::DATE FROM intermediate.all_trips"
    ).collect()[0]
    calendar = build_dim_date(*calendar_years(first, last))
    where.write(where.spark.createDataFrame(calendar.to_pandas()), "intermediate.calendar")


def _write_matches(where: Tables, config: Config, run_id: str) -> int:
    """Each configured pair of sources, in order, as etl/engine/duckdb/build.py matches them:
    a pair does not see the records an earlier pair dropped, and a record kept by one pair and
    dropped by a later one passes what it kept on to its own keeper."""
    spark = where.spark
    trip_matches = spark.createDataFrame(
        [],
        "kept_source STRING, kept_id STRING, dropped_source STRING, dropped_id STRING, "
        "time_gap_s DOUBLE, distance_gap_m DOUBLE, score DOUBLE",
    )
    total = 0
    for match in config.integrate.matches:
        pairs, found = _match_pair(where, match, trip_matches)
        # A union of checkpointed rounds: cheap to read again, no checkpoint (a job) needed.
        trip_matches = trip_matches.unionByName(_kept_and_dropped(pairs, match))
        where.write(_quality_rows(pairs, match, run_id), "quality.matches", mode="append")
        total += found
    # A record is dropped by one pair at most, and its keeper only by a later pair: a chain of
    # keepers takes one step a repoint, at most one fewer than the pairs.
    for _ in config.integrate.matches[1:]:
        trip_matches.createOrReplaceTempView("_match_trip_matches")
        repointed, changed = checkpoint(spark.sql(statements()["repoint"]), "repointed")
        trip_matches = repointed.drop("repointed")
        if not changed:
            break
    where.write(trip_matches, TRIP_MATCHES)
    spark.catalog.dropTempView("_match_trip_matches")
    return total


def _match_pair(where: Tables, match: Match, trip_matches: DataFrame) -> tuple[DataFrame, int]:
    trip_matches.createOrReplaceTempView("_match_dropped")
    for side, source in (("left", match.left), ("right", match.right)):
        args = {"all_trips": where.name("intermediate.all_trips"), "source": source}
        rows = where.spark.sql(statements()["side"], args=args)
        rows.createOrReplaceTempView(f"_match_{side}")
    tolerance = MatchTolerance(match.max_time_gap_s, match.max_distance_m)
    found = match_trips(where.spark, "_match_left", "_match_right", tolerance)
    for view in ("_match_dropped", "_match_left", "_match_right"):
        where.spark.catalog.dropTempView(view)
    return found


def _kept_and_dropped(pairs: DataFrame, match: Match) -> DataFrame:
    from pyspark.sql import functions as F

    kept, dropped = ("left", "right") if match.keep == "left" else ("right", "left")
    return pairs.select(
        F.lit(getattr(match, kept)).alias("kept_source"),
        F.col(f"{kept}_id").alias("kept_id"),
        F.lit(getattr(match, dropped)).alias("dropped_source"),
        F.col(f"{dropped}_id").alias("dropped_id"),
        "time_gap_s",
        "distance_gap_m",
        "score",
    )


def _quality_rows(pairs: DataFrame, match: Match, run_id: str) -> DataFrame:
    from pyspark.sql import functions as F

    return pairs.select(
        F.lit(run_id).alias("run_id"),
        F.lit(match.left).alias("left_source"),
        "left_id",
        F.lit(match.right).alias("right_source"),
        "right_id",
        "time_gap_s",
        "distance_gap_m",
        "score",
    )


def control_totals(where: Tables, run_id: str) -> pl.DataFrame:
    """The control totals of this run from the Spark twin of warehouse/audit/control_totals.sql
    (one aggregate: a few Spark jobs, not one per step); appended to quality.control_totals
    when they reconcile."""
    where.view(where.name(MANIFEST), where.to_spark(manifest_view()))
    text = sql.rename_databases(CONTROL_TOTALS.read_text(), where.databases)
    totals = pl.from_arrow(where.spark.sql(text).toArrow()).select(
        pl.lit(run_id).alias("run_id"), pl.all()
    )
    reconcile(totals)
    where.write(where.spark.createDataFrame(totals.to_pandas()), "quality.control_totals", "append")
    return totals


def manifest_view() -> str:
    """The SELECT of the view quality.manifest (each file's current version) in
    warehouse/ddl/quality.sql, which the control totals read."""
    import sqlglot

    for statement in sqlglot.parse((DDL_DIR / "quality.sql").read_text(), read="duckdb"):
        if isinstance(statement, sqlglot.exp.Create) and statement.this.sql() == MANIFEST:
            return statement.expression.sql(dialect="duckdb")
    raise SqlModelError(f"warehouse/ddl/quality.sql: no view {MANIFEST}")

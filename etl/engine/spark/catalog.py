"""Write-audit-publish in Spark's catalog: working tables, published versions, one switch.

A run works on the tables under their usual names (`staging.*`, `quality.*`, `intermediate.*`,
`curated.*`): Parquet tables in the catalog, which the build and the suites read and write.
What is published is not those tables but a version of each: a snapshot in `etl_versions`,
named after the commit that wrote it. One catalog object says which versions are published, the
view `etl.published` (table name, version, signature); a commit snapshots the tables that
changed and then replaces that view, one metastore statement that is there or not: the
catalog's atomic switch. On a local disk a snapshot copies no rows: its files are hard links to
the working table's (Spark never changes a Parquet file it wrote; it writes new ones and deletes
old ones, so a link keeps the file as it was); elsewhere the rows are copied. A run killed
before it leaves the old versions published; the next run restores the working tables from
them (`restore`), and drops versions nothing points at.

A version is plain Parquet written by Spark (no table format of ours); readers outside Spark
see the published versions through a DuckDB file of views (etl.engine.spark.readers).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

WORKING = ("staging", "quality", "intermediate", "curated")
VERSIONS, POINTER, DIRTY = "etl_versions", "etl.published", "etl.dirty"


class Catalog:
    """The working tables and their published versions in one Spark session's catalog.

    Each metastore statement costs about a quarter of a second of the driver's CPU (Hive's
    client on Derby, in local mode): which tables and views exist is listed once per database,
    kept up to date by this class's own statements, and listed again after `forget` (when
    something else created or dropped tables: the build, the staging)."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.root = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
        self._listed: dict[str, dict[str, str]] = {}  # database: {table: TABLE or VIEW}
        self._pointer: dict[str, tuple[str, str]] | None = None  # what `published` read
        existing = {row[0] for row in spark.sql("SHOW DATABASES").collect()}
        for name in (*WORKING, VERSIONS, "etl"):
            if name not in existing:
                spark.sql(f"CREATE DATABASE IF NOT EXISTS {name}")

    # -- what is published ---------------------------------------------------------------------

    def published(self) -> dict[str, tuple[str, str]]:
        """Each published table's version and signature."""
        if self._pointer is None:
            rows = self.spark.table(POINTER).collect() if self.exists(POINTER) else []
            self._pointer = {r[0]: (r[1], r[2]) for r in rows}
        return dict(self._pointer)

    def commit(self, tag: str, names: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Publish the working tables `names` as they are (those unchanged since their version
        keep it), by one switch of the pointer; the versions published now."""
        current = self.published()
        mapping = dict(current)
        for name in names:
            if not self.exists(name):
                mapping.pop(name, None)
                continue
            signature = self._signature(name)
            if name in current and current[name][1] == signature:
                continue
            version = f"{VERSIONS}.{name.replace('.', '__')}__{tag}"
            self.drop(version)  # a dead run's copy
            self.snapshot(name, version)
            self._listing(VERSIONS)[version.split(".")[1]] = "TABLE"
            mapping[name] = (version, signature)
        if mapping != current:
            self._switch(mapping)
        return mapping

    def snapshot(self, name: str, version: str) -> None:
        """The table `version` holds the working table's rows as they are now: on a local
        disk an external table over hard links to its files (no job, no rows written), else
        a copy."""
        source, folder = self.location(name), self.location(version)
        if not source.is_dir():
            self.spark.table(name).write.saveAsTable(version)
            return
        shutil.rmtree(folder, ignore_errors=True)  # a dead run's links
        shutil.copytree(source, folder, copy_function=os.link)
        schema = self.spark.table(name).schema
        self.spark.catalog.createTable(version, path=str(folder), source="parquet", schema=schema)

    def _switch(self, mapping: dict[str, tuple[str, str]]) -> None:
        """Replace the pointer: the one statement that publishes."""
        rows = ", ".join(f"('{n}', '{v}', '{s}')" for n, (v, s) in sorted(mapping.items()))
        self.spark.sql(
            f"CREATE OR REPLACE VIEW {POINTER} AS "
            f"SELECT * FROM VALUES {rows} AS t(name, version, signature)"
        )
        self._listing("etl")[POINTER.split(".")[1]] = "VIEW"
        self._pointer = dict(mapping)

    def drop_unpublished_versions(self) -> None:
        """Versions nothing points at: replaced ones, and a dead run's copies."""
        keep = {version.split(".")[1] for version, _ in self.published().values()}
        for table in list(self._listing(VERSIONS)):
            if table not in keep:
                self.drop(f"{VERSIONS}.{table}")
        # Links a driver killed before it made their table left behind.
        folder = Path(self.root) / f"{VERSIONS}.db"
        for left in folder.iterdir() if folder.is_dir() else ():
            if left.name not in keep:
                shutil.rmtree(left, ignore_errors=True)

    # -- the working tables --------------------------------------------------------------------

    def mark_dirty(self, run_id: str) -> None:
        """The working tables are about to differ from what is published."""
        if not self.exists(DIRTY):
            self.spark.sql(f"CREATE TABLE {DIRTY} USING parquet AS SELECT '{run_id}' AS run_id")
            self._listing("etl")[DIRTY.split(".")[1]] = "TABLE"

    def mark_clean(self) -> None:
        self.drop(DIRTY)

    def is_dirty(self) -> bool:
        return self.exists(DIRTY)

    def restore(self, run_id: str | None = None, keep: dict[str, str] | None = None) -> None:
        """Every working table as published (one that is not, dropped), except that the tables
        in `keep` (table: its run column) keep the rows of run `run_id` they have."""
        kept = {}
        for name, column in (keep or {}).items():
            if self.exists(name):
                kept[name] = f"etl.kept__{name.replace('.', '__')}"
                self.drop(kept[name])
                rows = self.spark.table(name).where(f"{column} = '{run_id}'")
                rows.write.saveAsTable(kept[name])
                self._listing("etl")[kept[name].split(".")[1]] = "TABLE"
        published = self.published()
        for name in self.tables():
            if name not in published:
                self.drop(name)
        for name, (version, _) in published.items():
            self.replace(name, self.spark.table(version))
        for name, copy in kept.items():
            self.append(name, self.spark.table(copy))
            self.drop(copy)

    def tables(self) -> list[str]:
        """The working tables (views left out: the build makes them again)."""
        return [
            f"{database}.{table}"
            for database in WORKING
            for table, kind in self._listing(database).items()
            if kind == "TABLE"
        ]

    def replace(self, name: str, rows: DataFrame) -> None:
        """The table `name` holds `rows` from now on (which may be read from it): written
        beside it first, then swapped in by name."""
        database, table = name.split(".")
        beside = f"{database}.{table}__replacing"
        self.drop(beside)
        rows.write.saveAsTable(beside)
        self.drop(name)
        self.spark.sql(f"ALTER TABLE {beside} RENAME TO {name}")
        self._listing(database)[table] = "TABLE"

    def overwrite(self, name: str, rows: DataFrame) -> None:
        """The existing table `name` holds `rows` (not read from it, and of its columns in its
        order) from now on: its files replaced, with no statement that creates or renames."""
        rows.write.insertInto(name, overwrite=True)

    def append(self, name: str, rows: DataFrame) -> None:
        """Rows added to a table, by column name; a column it lacks is added (a new field)."""
        if not self.exists(name):
            rows.write.saveAsTable(name)
            self._listing(name.split(".")[0])[name.split(".")[1]] = "TABLE"
            return
        columns = self.spark.table(name).columns
        if set(rows.columns) - set(columns):
            self.replace(name, self.spark.table(name).unionByName(rows, allowMissingColumns=True))
            return
        aligned = self.spark.table(name).limit(0).unionByName(rows, allowMissingColumns=True)
        aligned.write.insertInto(name)

    def exists(self, name: str) -> bool:
        database, table = name.split(".")
        return table in self._listing(database)

    def drop(self, name: str) -> None:
        """Drop the table `name` if it is there (a statement only if it is)."""
        database, table = name.split(".")
        if self._listing(database).pop(table, None) is not None:
            self.spark.sql(f"DROP TABLE IF EXISTS {name}")
        if database == VERSIONS:  # a snapshot is an external table: its links stay
            shutil.rmtree(self.location(name), ignore_errors=True)

    def forget(self) -> None:
        """Tables were created or dropped by statements other than this class's: list again."""
        self._listed.clear()

    @property
    def listings(self) -> dict[str, dict[str, str]]:
        """The listing itself ({database: {table: TABLE or VIEW}}), for a builder that keeps it
        true through its own statements (etl.engine.spark.build.Tables): no `forget` after."""
        return self._listed

    def _listing(self, database: str) -> dict[str, str]:
        if database not in self._listed:
            self._listed[database] = list_tables(self.spark, database)
        return self._listed[database]

    def location(self, name: str) -> Path:
        """Where a managed table's Parquet files are (`<warehouse>/<db>.db/<table>`)."""
        database, table = name.split(".")
        return Path(self.root) / f"{database}.db" / table

    def _signature(self, name: str) -> str:
        """Changes when the table is written: its files' names, sizes and times. A table not on
        a local disk always counts as changed."""
        folder = self.location(name)
        if not folder.is_dir():
            return os.urandom(8).hex()
        digest = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            stat = path.stat()
            digest.update(
                f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()
            )
        return digest.hexdigest()[:16]


def list_tables(spark: SparkSession, database: str) -> dict[str, str]:
    """The tables and views of `database`, each as TABLE or VIEW: two statements, where asking
    each table's kind (`getTable`) costs several."""
    views = {row.viewName for row in spark.sql(f"SHOW VIEWS IN {database}").collect()}
    return {
        row.tableName: "VIEW" if row.tableName in views else "TABLE"
        for row in spark.sql(f"SHOW TABLES IN {database}").collect()
        if not row.isTemporary
    }


def version_tag(run_id: str, step: int) -> str:
    """A run id as part of a table name, and the commit's number within the run."""
    return re.sub(r"[^a-z0-9]", "_", run_id.lower()) + f"_{step}"

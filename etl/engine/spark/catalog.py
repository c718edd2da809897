"""Write-audit-publish in Spark's catalog: working tables, published versions, one switch.

A run works on the tables under their usual names (`staging.*`, `quality.*`, `intermediate.*`,
`curated.*`): Parquet tables in the catalog, which the build and the suites read and write.
What is published is not those tables but a version of each: a copy in `etl_versions`, named
after the commit that wrote it. One catalog object says which versions are published, the view
`etl.published` (table name, version, signature); a commit copies the tables that changed and
then replaces that view, one metastore statement that is there or not: the catalog's atomic
switch. A run killed before it leaves the old versions published; the next run restores the
working tables from them (`restore`), and drops versions nothing points at.

A version is plain Parquet written by Spark (no table format of ours); readers outside Spark
see the published versions through a DuckDB file of views (etl.engine.spark.readers).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

WORKING = ("staging", "quality", "intermediate", "curated")
VERSIONS, POINTER, DIRTY = "etl_versions", "etl.published", "etl.dirty"


class Catalog:
    """The working tables and their published versions in one Spark session's catalog."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self.root = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
        for name in (*WORKING, VERSIONS, "etl"):
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {name}")

    # -- what is published ---------------------------------------------------------------------

    def published(self) -> dict[str, tuple[str, str]]:
        """Each published table's version and signature."""
        if not self.exists(POINTER):
            return {}
        return {r[0]: (r[1], r[2]) for r in self.spark.table(POINTER).collect()}

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
            self.spark.sql(f"DROP TABLE IF EXISTS {version}")  # a dead run's copy
            self.spark.table(name).write.saveAsTable(version)
            mapping[name] = (version, signature)
        if mapping != current:
            self._switch(mapping)
        return mapping

    def _switch(self, mapping: dict[str, tuple[str, str]]) -> None:
        """Replace the pointer: the one statement that publishes."""
        rows = ", ".join(f"('{n}', '{v}', '{s}')" for n, (v, s) in sorted(mapping.items()))
        self.spark.sql(
            f"CREATE OR REPLACE VIEW {POINTER} AS "
            f"SELECT * FROM VALUES {rows} AS t(name, version, signature)"
        )

    def drop_unpublished_versions(self) -> None:
        """Versions nothing points at: replaced ones, and a dead run's copies."""
        keep = {version.split(".")[1] for version, _ in self.published().values()}
        for row in self.spark.sql(f"SHOW TABLES IN {VERSIONS}").collect():
            if row.tableName not in keep:
                self.spark.sql(f"DROP TABLE IF EXISTS {VERSIONS}.{row.tableName}")

    # -- the working tables --------------------------------------------------------------------

    def mark_dirty(self, run_id: str) -> None:
        """The working tables are about to differ from what is published."""
        if not self.exists(DIRTY):
            self.spark.sql(f"CREATE TABLE {DIRTY} USING parquet AS SELECT '{run_id}' AS run_id")

    def mark_clean(self) -> None:
        self.spark.sql(f"DROP TABLE IF EXISTS {DIRTY}")

    def is_dirty(self) -> bool:
        return self.exists(DIRTY)

    def restore(self, run_id: str | None = None, keep: dict[str, str] | None = None) -> None:
        """Every working table as published (one that is not, dropped), except that the tables
        in `keep` (table: its run column) keep the rows of run `run_id` they have."""
        kept = {}
        for name, column in (keep or {}).items():
            if self.exists(name):
                kept[name] = f"etl.kept__{name.replace('.', '__')}"
                self.spark.sql(f"DROP TABLE IF EXISTS {kept[name]}")
                rows = self.spark.table(name).where(f"{column} = '{run_id}'")
                rows.write.saveAsTable(kept[name])
        published = self.published()
        for name in self.tables():
            if name not in published:
                self.spark.sql(f"DROP TABLE IF EXISTS {name}")
        for name, (version, _) in published.items():
            self.replace(name, self.spark.table(version))
        for name, copy in kept.items():
            self.append(name, self.spark.table(copy))
            self.spark.sql(f"DROP TABLE {copy}")

    def tables(self) -> list[str]:
        """The working tables (views left out: the build makes them again)."""
        names = []
        for database in WORKING:
            for row in self.spark.sql(f"SHOW TABLES IN {database}").collect():
                if not row.isTemporary and self._kind(f"{database}.{row.tableName}") != "VIEW":
                    names.append(f"{database}.{row.tableName}")
        return names

    def replace(self, name: str, rows: DataFrame) -> None:
        """The table `name` holds `rows` from now on (which may be read from it): written
        beside it first, then swapped in by name."""
        database, table = name.split(".")
        beside = f"{database}.{table}__replacing"
        self.spark.sql(f"DROP TABLE IF EXISTS {beside}")
        rows.write.saveAsTable(beside)
        self.spark.sql(f"DROP TABLE IF EXISTS {name}")
        self.spark.sql(f"ALTER TABLE {beside} RENAME TO {name}")

    def append(self, name: str, rows: DataFrame) -> None:
        """Rows added to a table, by column name; a column it lacks is added (a new field)."""
        if not self.exists(name):
            rows.write.saveAsTable(name)
            return
        columns = self.spark.table(name).columns
        if set(rows.columns) - set(columns):
            self.replace(name, self.spark.table(name).unionByName(rows, allowMissingColumns=True))
            return
        aligned = self.spark.table(name).limit(0).unionByName(rows, allowMissingColumns=True)
        aligned.write.insertInto(name)

    def exists(self, name: str) -> bool:
        return self.spark.catalog.tableExists(name)

    def _kind(self, name: str) -> str:
        return self.spark.catalog.getTable(name).tableType.upper()

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


def version_tag(run_id: str, step: int) -> str:
    """A run id as part of a table name, and the commit's number within the run."""
    return re.sub(r"[^a-z0-9]", "_", run_id.lower()) + f"_{step}"

"""The published state of a Spark-built warehouse for readers outside Spark: a DuckDB file of
views, one per published table, over the Parquet files of its version.

`etl status`, `sql`, `report` and `train` open it as they open a DuckDB warehouse, read-only:
no JVM, no Spark session. It is written next to itself and renamed over the old one after each
commit, so a reader sees one published state or the next, never a mix.

The models materialized as views (the analyst views: `curated.daily_by_source`, ...) are made
in it too, from the same SQL files, over the published tables' views: in Spark's catalog they
would be views over the working tables, which no reader outside Spark sees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from etl.engine.duckdb import sql_models
from etl.engine.duckdb.warehouse import named_statements
from etl.engine.spark.catalog import WORKING
from etl.paths import WAREHOUSE_DIR

STATEMENTS = WAREHOUSE_DIR / "spark" / "engine" / "reader.sql"


def write_reader(
    path: Path, tables: dict[str, Path], models: Sequence[sql_models.Model] = ()
) -> None:
    """The DuckDB file at `path`: a view of each published table (name: its Parquet folder),
    and the view models of `models` whose models are all there. Raises SqlModelError."""
    sql = named_statements(STATEMENTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    nearby = path.with_name(path.name + ".next")
    nearby.unlink(missing_ok=True)
    con = duckdb.connect(str(nearby))
    try:
        for schema in WORKING:
            con.execute(f"CREATE SCHEMA {schema}")
        # Where the views read: a read-only query may read there (etl.report.query).
        folders = sorted({str(folder.parent) for folder in tables.values()})
        con.execute(
            "CREATE TABLE main.spark_tables AS SELECT unnest(?::VARCHAR[]) AS folder", [folders]
        )
        for name, folder in sorted(tables.items()):
            files = str(folder / "*.parquet").replace("'", "''")
            con.execute(sql["table_view"].format(name=name, files=files))
        if "quality.files" in tables:
            con.execute(sql["manifest"])
        sql_models.build(con, readable_views(models, set(tables)))
    finally:
        con.close()
    os.replace(nearby, path)


def readable_views(models: Sequence[sql_models.Model], tables: set[str]) -> list[sql_models.Model]:
    """The view models (in build order) that a reader can read: not the intermediate layer,
    whose views read the working tables, and only those whose models are published (none
    before the first publish)."""
    views, there = [], set(tables)
    for model in models:
        readable = not model.name.startswith("intermediate.") and model.depends_on <= there
        if model.materialized == "view" and readable:
            views.append(model)
            there.add(model.name)
    return views


def tables_folder(reader: Path) -> Path:
    """The Spark warehouse folder beside a reader file: `warehouse.duckdb` -> `warehouse.spark`."""
    return reader.with_suffix(".spark")

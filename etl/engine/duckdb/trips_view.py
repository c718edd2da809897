"""curated.trips as a view over staging, for the sources that pass through (issue 17).

A trip source that is neither matched nor versioned (DC taxi) has staged rows that are
curated.trips rows as they are. Copying them into a table cost ~17 CPU s at 5 M DC taxi and
2.1 M company rows on 2 cores, almost all of it DuckDB compressing every column a second time
(~0.5 CPU s a column per 7 M rows, compressed or not). So the model `curated.trips` is built
in two objects (`warehouse/integrate/trips_view.sql`): `intermediate.stored_trips`, the model's
rows of the other sources, stored and updated as the model says, and the view `curated.trips`:
those rows, and each pass-through source's staged rows of published runs.

What a view pays on every read, measured on the 5 M four-source bench warehouse: the cast of
DC taxi's integer ids to text (0.36 CPU s a scan; the key scope's regex runs once per distinct
`_file`, 0.03). With that cast, a point lookup by trip_id took 1.3-1.5x the table's CPU. A
pass-through source whose record id is not its staged column as it is (a number, or scoped by
`key_scope`) therefore stages its record id as text too, `_record_id`, uncompressed (unique
texts have nothing for a dictionary to share): ~0.8 CPU s more at load against the copy's ~8,
and the lookup then reads faster than the table's (0.39-0.47 against 0.68-0.72 CPU s) and a
daily aggregate as fast (2.20 against 2.16).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache

import duckdb
import polars as pl

from etl.config.spec import Config, Source
from etl.engine.duckdb import sql_models, warehouse
from etl.paths import INTEGRATE_SQL_DIR

TRIPS = "curated.trips"
STORED = "intermediate.stored_trips"
TEXT_ID = "_record_id"


def pass_through(config: Config) -> dict[str, Source]:
    """The trip sources whose staged rows are trips as they are: neither matched (a match may
    merge a row into another source's) nor versioned (a newer version excludes a row)."""
    matched = {side for m in config.integrate.matches for side in (m.left, m.right)}
    return {
        name: source
        for name, source in config.sources.items()
        if source.entity == "trip" and source.latest_version is None and name not in matched
    }


def text_ids(config: Config) -> dict[str, Source]:
    """The pass-through sources that stage their record id as text (`_record_id`): those whose
    id is not a text column read as it is."""
    plain = warehouse.quote_identifier("source_record_id")
    return {
        name: source
        for name, source in pass_through(config).items()
        if "source_record_id" in source.columns and sql_models.record_id(source) != plain
    }


def with_text_id(staged: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Staged rows with their record id as text, equal to `sql_models.record_id`'s SQL."""
    text = pl.col("source_record_id").cast(pl.Utf8)
    if source.key_scope is not None:
        # The scope is a regex on the file's path: matched once a file, not once a row (a
        # batch is a piece of one file, mostly). No match is '', as DuckDB's regexp_extract.
        files = staged["_file"].unique()
        scopes = files.str.extract(source.key_scope, 1).fill_null("")
        prefix = (
            pl.lit(scopes[0])
            if len(files) == 1
            else pl.col("_file").replace_strict(files, scopes, return_dtype=pl.Utf8)
        )
        text = prefix + "-" + text
    return staged.with_columns(text.alias(TEXT_ID))


def add_text_id(con: duckdb.DuckDBPyConnection, table: str, source: Source) -> None:
    """Give a staging table from before text ids its `_record_id`, filled in (one transaction)."""
    if TEXT_ID in con.sql(f"SELECT * FROM {table} LIMIT 0").columns:
        return
    with warehouse.transaction(con):
        fill = sql_models.record_id(source)
        con.execute(_parts()["add_text_id"].format(table=table, record_id=fill))


def as_view(models: list[sql_models.Model], config: Config) -> list[sql_models.Model]:
    """The models with `curated.trips` replaced by its stored part and the view over it."""
    trips = next((m for m in models if m.name == TRIPS), None)
    if trips is None:
        return models
    sources = pass_through(config)
    parts = _parts()
    stored_sql = trips.sql
    if sources:
        names = ", ".join(sql_models.literal(name) for name in sources)
        stored_sql = parts["stored"].format(model=trips.sql, pass_through=names)
    stored = replace(trips, name=STORED, sql=stored_sql, generated=())
    text = text_ids(config)
    branches = "".join(
        "\n" + parts["branch"].format(source_view=_source_view(name, source, name in text))
        for name, source in sources.items()
    )
    generated = "".join(f"{expr} AS {column}, " for column, expr in trips.generated)
    view = replace(
        trips,
        sql=parts["view"].format(generated=generated, branches=branches),
        materialized="view",
        depends_on=trips.depends_on | {STORED},
        generated=(),
        uncompressed=(),
    )
    at = models.index(trips)
    return [*models[:at], stored, view, *models[at + 1 :]]


def _source_view(name: str, source: Source, text_id: bool) -> str:
    published = "\n" + _parts()["published"]
    return sql_models.source_view(name, source, text_id, where=published)


@cache
def _parts() -> dict[str, str]:
    """The named parts of `trips_view.sql`, their comments left out."""
    return {
        name: re.sub(r"(?m)^--[^\n]*\n?", "", body)
        for name, body in warehouse.named_statements(INTEGRATE_SQL_DIR / "trips_view.sql").items()
    }

"""The SQL models of the curated layer: files under `warehouse/models/<schema>/<name>.sql`.

Each file is one SELECT. Its first lines may hold settings as comments:

    -- materialized: view        (default: table; `incremental`: see `build`)
    -- generated: trip_id = source || ':' || source_record_id
    -- uncompressed: source_record_id

A `generated` column of a table is computed from the row's other columns when it is read, not
stored: a key derived from two columns would otherwise be the widest column to write and keep
(a unique text a row; at 5 M trips it was a quarter of the cost of building curated.trips). The
SELECT leaves it out; there may be several such lines.

`uncompressed` names a table's text columns (comma-separated) stored as they are: a column of
unique texts, such as a record id, has nothing for a dictionary to share, and DuckDB spends
three times the CPU finding that out (1.0 against 0.37 CPU s at 5 M ids) to save 2.5x on its
disk space.

The intermediate models are generated from the config, not written (`generate`): one view a
trip source, `intermediate.<source>_trips`, from the template `warehouse/integrate/
source_trips.sql` filled in from the source's mapping and keys, `intermediate.all_trips`,
their union, and a table a versioned source, `intermediate.<source>_superseded` (its rows a
newer version supersedes, which its view reads). A model file of the same name replaces a
generated one.

A model depends on the models it names (`curated.trips` in another model's SQL), and models are
built in that order. Building happens inside the caller's transaction with CREATE OR REPLACE,
so readers see the old tables until the caller commits, and a rollback leaves them as they were.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from itertools import takewhile
from pathlib import Path

import duckdb

from etl.config.spec import Config, Source
from etl.engine.duckdb.warehouse import (
    create_table,
    named_statements,
    object_kind,
    quote_identifier,
    table_exists,
)
from etl.errors import SqlModelError, WarehouseError
from etl.paths import INTEGRATE_SQL_DIR, MODELS_DIR

_SETTING = re.compile(r"^--\s*(\w+)\s*:\s*(\S+)\s*$")
_GENERATED = re.compile(r"^--\s*generated\s*:\s*(\w+)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Model:
    name: str  # schema.table, from the file's folder and name
    path: Path
    sql: str
    materialized: str  # table, incremental or view
    depends_on: frozenset[str]
    generated: tuple[tuple[str, str], ...] = ()  # (column, SQL expression), computed on read
    uncompressed: tuple[str, ...] = ()  # columns stored without compression


def discover(
    models_dir: Path = MODELS_DIR, config: Config | None = None, text_ids: Collection[str] = ()
) -> list[Model]:
    """Every model under the folder, and those `generate`d for the config, in build order
    (`text_ids`: the sources whose record id is staged as text, as `generate` says)."""
    paths = sorted(models_dir.glob("*/*.sql"))
    written = {f"{p.parent.name}.{p.stem}": (p, p.read_text()) for p in paths}
    sources = generate(config, text_ids) if config is not None else {}
    names = set(written) | set(sources)
    models = {}
    for name, (path, sql) in (sources | written).items():
        settings = _settings(sql)
        generated = _generated(sql)
        materialized = settings.get("materialized", "table")
        uncompressed = tuple(c for c in settings.get("uncompressed", "").split(",") if c)
        if generated and materialized == "view":
            raise SqlModelError(f"{path.name}: a view has no generated columns: select them")
        if uncompressed and materialized == "view":
            raise SqlModelError(f"{path.name}: a view stores no columns to leave uncompressed")
        code = re.sub(r"--[^\n]*", "", sql)  # a name in a comment is not a dependency
        mentioned = set(re.findall(r"\b([a-z_]+\.[a-z_0-9]+)\b", code))
        models[name] = Model(
            name=name,
            path=path,
            sql=sql.strip().rstrip(";"),
            materialized=materialized,
            depends_on=frozenset((mentioned & names) - {name}),
            generated=generated,
            uncompressed=uncompressed,
        )
    try:
        order = TopologicalSorter({n: m.depends_on for n, m in models.items()}).static_order()
        return [models[name] for name in order]
    except CycleError as exc:
        raise SqlModelError(f"models depend on each other in a cycle: {exc.args[1]}") from None


@dataclass(frozen=True)
class Changes:
    """What changed in staging this run: the files loaded, and the sources whose rows must all
    be rebuilt (a source matched against another: a new file can change any of its matches)."""

    files: tuple[str, ...]
    sources: tuple[str, ...]


def build(
    con: duckdb.DuckDBPyConnection, models: list[Model], changes: Changes | None = None
) -> None:
    """Build every model, in order, in the caller's transaction.

    Tables and views are created or replaced. An `incremental` table (its rows carry `_file`
    and `source`) that exists already is brought up to date when `changes` is given: the rows
    of the changed files and sources are deleted and selected again, so one new month costs
    what that month costs, not what the whole table does.
    """
    for model in models:
        schema = model.name.split(".")[0]
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        try:
            if model.materialized == "incremental" and changes and table_exists(con, model.name):
                _update(con, model, changes)
            else:
                kind = "VIEW" if model.materialized == "view" else "TABLE"
                existing = object_kind(con, model.name)
                if existing not in (None, kind):  # its materialization was changed since
                    con.execute(f"DROP {existing} {model.name}")
                if model.generated or model.uncompressed:
                    create_table(con, model.name, model.sql, model.generated, model.uncompressed)
                else:
                    con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{model.sql}")
        except (duckdb.Error, WarehouseError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise SqlModelError(f"{model.path.name}: {first}") from None


def _update(con: duckdb.DuckDBPyConnection, model: Model, changes: Changes) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE _changed_files (_file VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _changed_sources (source VARCHAR)")
    for table, values in (("_changed_files", changes.files), ("_changed_sources", changes.sources)):
        if values:
            con.executemany(f"INSERT INTO {table} VALUES (?)", [[v] for v in values])
    changed = (
        "_file IN (SELECT _file FROM _changed_files) "
        "OR source IN (SELECT source FROM _changed_sources)"
    )
    con.execute(f"DELETE FROM {model.name} WHERE {changed}")
    con.execute(f"INSERT INTO {model.name} BY NAME SELECT * FROM ({model.sql}) WHERE {changed}")


def fingerprint(models: list[Model]) -> str:
    """A checksum of every model's SQL: tells a run whether the curated layer needs a rebuild."""
    digest = hashlib.sha256()
    # By name: the build order of independent models varies from process to process.
    for model in sorted(models, key=lambda m: m.name):
        digest.update(f"{model.name}\0{model.sql}\0".encode())
    return digest.hexdigest()


def _generated(sql: str) -> tuple[tuple[str, str], ...]:
    matches = (_GENERATED.match(line) for line in _header(sql))
    return tuple((m.group(1), m.group(2)) for m in matches if m)


def _settings(sql: str) -> dict[str, str]:
    matches = (_SETTING.match(line) for line in _header(sql))
    return {m.group(1): m.group(2) for m in matches if m}


def _header(sql: str) -> list[str]:
    """The comment lines a model starts with, where its settings are."""
    return list(takewhile(lambda line: line.startswith("--"), sql.splitlines()))


# The curated fields a source's view selects, with the type of the NULL that stands in for a
# field the source does not stage; the precisions come between the two groups.
_MEASURES = (
    ("pickup_at", "TIMESTAMPTZ"),
    ("dropoff_at", "TIMESTAMPTZ"),
    ("pickup_lat", "DOUBLE"),
    ("pickup_lon", "DOUBLE"),
    ("dropoff_lat", "DOUBLE"),
    ("dropoff_lon", "DOUBLE"),
    ("distance_miles", "DOUBLE"),
    ("duration_s", "DOUBLE"),
    ("fare_usd", "DOUBLE"),
    ("total_usd", "DOUBLE"),
)
_PLACES = (("airport", "BOOLEAN"), ("pickup_in_dc", "BOOLEAN"), ("dropoff_in_dc", "BOOLEAN"))
_TEMPLATE = INTEGRATE_SQL_DIR / "source_trips.sql"


def generate(config: Config, text_ids: Collection[str] = ()) -> dict[str, tuple[Path, str]]:
    """The intermediate models of the config's trip sources: one view each, and their union
    `intermediate.all_trips`, by name, each with the template it came from and its SQL.

    A source of `text_ids` has its record id (`record_id`) staged as the text column
    `_record_id` (DuckDB: etl/engine/duckdb/trips_view.py); its view reads that column."""
    trips = {name: s for name, s in config.sources.items() if s.entity == "trip"}
    views = {
        f"intermediate.{name}_trips": source_view(name, s, name in text_ids)
        for name, s in trips.items()
    }
    parts = _template()
    union = "\nUNION ALL BY NAME\n".join(f"SELECT * FROM {view}" for view in views)
    views["intermediate.all_trips"] = parts["all_trips"].format(union=union or parts["no_trips"])
    models = {name: (_TEMPLATE, "-- materialized: view\n" + sql) for name, sql in views.items()}
    for name, source in trips.items():
        if source.latest_version is not None:
            sql = _superseded_sql(name, source)
            models[superseded(name)] = (_TEMPLATE, "-- materialized: table\n" + sql)
    return models


def superseded(name: str) -> str:
    """The table of a versioned source's staged rows that a newer version supersedes."""
    return f"intermediate.{name}_superseded"


def _superseded_sql(name: str, source: Source) -> str:
    version = source.latest_version
    record = [quote_identifier(k) for k in source.key if k != version]
    if source.key_scope is not None:
        record.append(f"regexp_extract(_file, {literal(source.key_scope)}, 1)")
    return _template()["superseded"].format(
        record=", ".join(record), version=quote_identifier(version), source=name
    )


def source_view(name: str, source: Source, text_id: bool = False, where: str = "") -> str:
    """The SELECT of `intermediate.<name>_trips` from its staging table (`where`: a WHERE
    clause on that table, or nothing); with `text_id`, its record id is read as staged."""
    parts = _template()
    staged = _staged_fields(source)
    return parts["view"].format(
        source_literal=literal(name),
        record_id=quote_identifier("_record_id") if text_id else record_id(source),
        measures=_select(_MEASURES, staged),
        time_precision=literal(source.time_precision),
        location_precision=literal(source.location_precision),
        places=_select(_PLACES, staged),
        excluded_by=_excluded_by(source, parts),
        source=name,
        versions=(
            "\n" + parts["versions"].format(superseded=superseded(name))
            if source.latest_version is not None
            else ""
        ),
        where=where,
    )


def record_id(source: Source) -> str:
    """The SQL of a staged row's record id as text (over its staging table's columns)."""
    id_column = source.columns.get("source_record_id")
    text = quote_identifier("source_record_id") if id_column else "NULL"
    if id_column is None or id_column.type != "string":
        text = f"CAST({text} AS VARCHAR)"
    if source.key_scope is None:
        return text
    return _template()["scoped_record_id"].format(scope=literal(source.key_scope), record_id=text)


def _staged_fields(source: Source) -> dict[str, str]:
    """Each curated field the source's staging table has, as the SQL that selects it."""
    fields = {field: quote_identifier(field) for field in source.columns}
    if {"pickup_at", "dropoff_at"} <= set(fields):
        fields.setdefault("duration_s", quote_identifier("duration_s"))  # derived at staging
    if {"pickup_lat", "dropoff_lat"} <= set(fields):
        fields["pickup_in_dc"], fields["dropoff_in_dc"] = "pickup_in_dc", "dropoff_in_dc"
    if "fare_usd" in fields:
        fields.setdefault("total_usd", fields["fare_usd"])  # a fare is the whole charge
    fields.setdefault("airport", "false")
    return fields


def _select(shape: tuple[tuple[str, str], ...], staged: dict[str, str]) -> str:
    return ",\n    ".join(
        f"{staged[f]} AS {f}" if f in staged else f"NULL::{kind} AS {f}" for f, kind in shape
    )


def _excluded_by(source: Source, parts: dict[str, str]) -> str:
    cases = [parts["not_a_trip"]] if source.trips_where else []
    if source.latest_version is not None:
        cases.append(parts["superseded_version"])
    if not cases:
        return "NULL::VARCHAR"
    return "CASE\n        " + "\n        ".join(cases) + "\n    END"


def literal(text: str) -> str:
    """A text as a quoted SQL literal."""
    return "'" + text.replace("'", "''") + "'"


@cache
def _template() -> dict[str, str]:
    """The named parts of the template (`-- name: x` lines), their comments left out."""
    return {
        name: "\n".join(line for line in body.splitlines() if not line.startswith("--"))
        for name, body in named_statements(_TEMPLATE).items()
    }

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

A model depends on the models it names (`curated.trips` in another model's SQL), and models are
built in that order. Building happens inside the caller's transaction with CREATE OR REPLACE,
so readers see the old tables until the caller commits, and a rollback leaves them as they were.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from itertools import takewhile
from pathlib import Path

import duckdb

from etl.engine.duckdb.warehouse import create_table, object_kind, table_exists
from etl.errors import SqlModelError, WarehouseError
from etl.paths import MODELS_DIR

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


def discover(models_dir: Path = MODELS_DIR) -> list[Model]:
    """Every model under the folder, in build order."""
    paths = sorted(models_dir.glob("*/*.sql"))
    names = {f"{p.parent.name}.{p.stem}" for p in paths}
    models = {}
    for path in paths:
        name = f"{path.parent.name}.{path.stem}"
        sql = path.read_text()
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

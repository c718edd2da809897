"""The SQL models of the curated layer: files under `warehouse/models/<schema>/<name>.sql`.

Each file is one SELECT. Its first lines may hold settings as comments:

    -- materialized: view        (default: table; `incremental`: see `build`)

A model depends on the models it names (`curated.trips` in another model's SQL), and models are
built in that order. Building happens inside the caller's transaction with CREATE OR REPLACE,
so readers see the old tables until the caller commits, and a rollback leaves them as they were.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from etl.paths import MODELS_DIR
from etl.publish.warehouse import object_kind, table_exists

_SETTING = re.compile(r"^--\s*(\w+)\s*:\s*(\S+)\s*$")


class ModelError(Exception):
    """A model that cannot be built; one line naming the model."""


@dataclass(frozen=True)
class Model:
    name: str  # schema.table, from the file's folder and name
    path: Path
    sql: str
    materialized: str  # table or view
    depends_on: frozenset[str]


def discover(models_dir: Path = MODELS_DIR) -> list[Model]:
    """Every model under the folder, in build order."""
    paths = sorted(models_dir.glob("*/*.sql"))
    names = {f"{p.parent.name}.{p.stem}" for p in paths}
    models = {}
    for path in paths:
        name = f"{path.parent.name}.{path.stem}"
        sql = path.read_text()
        settings = _settings(sql)
        code = re.sub(r"--[^\n]*", "", sql)  # a name in a comment is not a dependency
        mentioned = set(re.findall(r"\b([a-z_]+\.[a-z_0-9]+)\b", code))
        models[name] = Model(
            name=name,
            path=path,
            sql=sql.strip().rstrip(";"),
            materialized=settings.get("materialized", "table"),
            depends_on=frozenset((mentioned & names) - {name}),
        )
    try:
        order = TopologicalSorter({n: m.depends_on for n, m in models.items()}).static_order()
        return [models[name] for name in order]
    except CycleError as exc:
        raise ModelError(f"models depend on each other in a cycle: {exc.args[1]}") from None


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
                con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{model.sql}")
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"{model.path.name}: {first}") from None


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


def _settings(sql: str) -> dict[str, str]:
    settings = {}
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        match = _SETTING.match(line)
        if match:
            settings[match.group(1)] = match.group(2)
    return settings

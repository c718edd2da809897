"""The project's SQL, written in DuckDB's dialect, as Spark SQL: sqlglot plus the project's rules.

sqlglot (read="duckdb", write="spark") raises on none of the project's SQL files, but some of
what it writes does not run on Spark and some runs and answers wrong. `REWRITES` is the
project's table of corrections, applied to sqlglot's tree of the DuckDB text before Spark SQL is
written from it; each names the DuckDB construct (a sqlglot expression class or a function
name sqlglot leaves anonymous), the Spark SQL it becomes (a template over the node's
arguments) and why. The rules that need more than one node's parts are functions:

- a cast to one of the project's ENUM types (warehouse/ddl/types.sql) is a cast to text;
- `UNION ALL BY NAME` lists the columns of each side, a missing one as NULL, from the
  `columns` it is given (Spark has no BY NAME);
- `list[i]` and `list[i:j]` are try_element_at() and slice(): Spark's `list[i]` fails the job
  out of range in ANSI mode where DuckDB gives NULL, and Spark has no slices;
- `list(x ORDER BY k)` sorts what it collects (sqlglot drops the ORDER BY);
- `len()` is size(): the project's SQL takes len() of lists only (`_ProjectDuckDB`).

What no rule covers is refused with a TranspileError (a QUALIFY over `SELECT *`, whose Spark
rewrite would return the window's column too; an ordered list with a descending key): such a
file gets a Spark twin under warehouse/spark/ at the same relative path, held to its original
by tests/spark/test_spark_sql.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from etl.errors import SqlModelError
from etl.paths import DDL_DIR, WAREHOUSE_DIR

SPARK_DIR = WAREHOUSE_DIR / "spark"


class TranspileError(SqlModelError):
    """A DuckDB statement the rules cannot write as Spark SQL: it needs a Spark twin."""


class _ProjectDuckDB(DuckDB):
    """DuckDB as the project writes it: `len()` is a list's length (text has `length()`), which
    DuckDB's `len` and `length` share and sqlglot writes as Spark's `length()`, of text only."""

    class Parser(DuckDB.Parser):
        FUNCTIONS: ClassVar = {
            **DuckDB.Parser.FUNCTIONS,
            "LEN": lambda args: exp.ArraySize(this=args[0]),
        }


@dataclass(frozen=True)
class Rewrite:
    """A DuckDB construct and the Spark SQL it becomes: `spark` is a template in which
    `:this`, `:expression` (sqlglot's names of a node's arguments) or `:0`, `:1`... (a function's
    arguments, in order) stand for the node's own parts."""

    duckdb: type[exp.Expression] | str  # an expression class, or an anonymous function's name
    spark: str | Callable[[exp.Expression], exp.Expression]  # a template, or a function
    why: str


REWRITES: tuple[Rewrite, ...] = (
    Rewrite(exp.TimeToUnix, "unix_micros(:this) / 1e6",
            "epoch(): sqlglot's unix_timestamp() drops the sub-second part"),
    Rewrite(exp.DayOfWeekIso, "weekday(:this) + 1",
            "isodow(): sqlglot's (dayofweek(x) % 7) + 1 is a day off (Monday gives 3)"),
    Rewrite("timezone", "from_utc_timestamp(:1, :0)",
            "timezone(zone, instant): the wall-clock time in the zone; Spark has no timezone()"),
    Rewrite("row", "struct(:*)", "row(a, b): Spark's struct(); Spark has no row()"),
    Rewrite(exp.ArrayOverlaps, "arrays_overlap(:this, :expression)",
            "list_has_any(): sqlglot writes the operator &&, which Spark does not parse"),
    Rewrite(exp.PercentileCont, "percentile(:this, :expression)",
            "quantile_cont(x, p): Spark's percentile_cont(x, p) takes one argument"),
    Rewrite(exp.Div, "try_divide(:this, :expression)",
            "x / 0: Spark's ANSI mode fails the whole job; try_divide gives NULL where DuckDB "
            "gives an infinity"),
    Rewrite(exp.CTE, lambda cte: _without(cte, "materialized"),
            "WITH x AS MATERIALIZED: DuckDB's hint to compute x once; Spark has no such keyword "
            "and plans a CTE read twice itself"),
    Rewrite(exp.Cast, lambda cast: exp.TryCast(this=cast.this, to=cast.to, safe=True),
            "a cast of a bad value, such as the text 'NULL', fails a whole Spark job in ANSI "
            "mode; DuckDB fails the statement, so the rows it would keep are the same"),
)  # fmt: skip


def to_spark(
    sql: str,
    columns: Mapping[str, Sequence[str]] | None = None,
    databases: Mapping[str, str] | None = None,
) -> str:
    """One DuckDB statement as Spark SQL. `columns` gives the columns of the tables a
    `UNION ALL BY NAME` reads (by qualified name); `databases` renames databases (schemas),
    so that a build can write beside the published tables. Raises TranspileError."""
    try:
        tree = sqlglot.parse_one(sql, read=_ProjectDuckDB)
    except sqlglot.errors.ParseError as exc:
        raise TranspileError(f"not DuckDB SQL: {str(exc).splitlines()[0]}") from None
    _refuse_unsupported(tree)
    tree = tree.transform(lambda node: _union_by_name(node, columns or {}))
    for rule in (_enum_cast, _rewrite, _bracket, _ordered_list):
        tree = _bottom_up(tree, rule)
    if databases:
        tree = tree.transform(lambda node: _rename_database(node, databases))
    return tree.sql(dialect="spark")


def _bottom_up(tree: exp.Expression, rule: Callable[[exp.Expression], exp.Expression]):
    """`rule` applied to every node, a node's arguments before the node (so that a rewrite's
    template receives arguments already rewritten). Reversed pre-order puts each node after
    everything under it."""
    for node in reversed(list(tree.walk(bfs=False))):
        new = rule(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def twin(relative: str) -> Path | None:
    """The Spark twin of a SQL file (its path relative to warehouse/), if it has one."""
    path = SPARK_DIR / relative
    return path if path.is_file() else None


@cache
def enum_types() -> frozenset[str]:
    """The ENUM types warehouse/ddl/types.sql creates, as schema.name."""
    text = "\n".join(p.read_text() for p in sorted(DDL_DIR.glob("*.sql")))
    return frozenset(re.findall(r"CREATE TYPE (?:IF NOT EXISTS )?([\w.]+) AS ENUM", text, re.I))


def _refuse_unsupported(tree: exp.Expression) -> None:
    for select in tree.find_all(exp.Select):
        if select.args.get("qualify") and select.is_star:
            raise TranspileError("QUALIFY over SELECT *: Spark's rewrite would add the window")


def _union_by_name(node: exp.Expression, columns: Mapping[str, Sequence[str]]) -> exp.Expression:
    """`SELECT * FROM a UNION ALL BY NAME SELECT * FROM b`: each side lists every column of
    both, in the order they first occur, NULL where it has none (as DuckDB fills them)."""
    if not (isinstance(node, exp.Union) and node.args.get("by_name")):
        return node
    sides = _union_sides(node)
    tables = [_star_table(side) for side in sides]
    for table in tables:
        if table not in columns:
            raise TranspileError(f"UNION BY NAME over {table}: its columns are not known")
    names = list(dict.fromkeys(c for table in tables for c in columns[table]))
    selects = [
        exp.select(*(c if c in columns[table] else exp.alias_(exp.null(), c) for c in names)).from_(
            table
        )
        for table in tables
    ]
    union = selects[0]
    for select in selects[1:]:
        union = exp.union(union, select, distinct=False)
    return union


def _union_sides(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Union) and node.args.get("by_name"):
        return _union_sides(node.this) + _union_sides(node.expression)
    return [node]


def _star_table(side: exp.Expression) -> str:
    source = side.args.get("from_") if isinstance(side, exp.Select) else None
    if not (source and side.is_star and isinstance(source.this, exp.Table)):
        raise TranspileError("UNION BY NAME: each side must be SELECT * FROM a table")
    table = source.this
    return ".".join(part for part in (table.db, table.name) if part)


def _enum_cast(node: exp.Expression) -> exp.Expression:
    """A cast to one of the project's ENUM types is a cast to text: Spark has no ENUM."""
    if (
        isinstance(node, exp.Cast | exp.TryCast)
        and node.to.this == exp.DType.USERDEFINED
        and node.to.args.get("kind") in enum_types()
    ):
        node.set("to", exp.DataType.build("text"))
    return node


def _without(node: exp.Expression, arg: str) -> exp.Expression:
    """`node` without its argument `arg` (a keyword Spark does not parse)."""
    node.set(arg, None)
    return node


def _rewrite(node: exp.Expression) -> exp.Expression:
    for rule in REWRITES:
        if _matches(rule.duckdb, node):
            return rule.spark(node) if callable(rule.spark) else _fill(rule.spark, node)
    return node


def _matches(construct: type[exp.Expression] | str, node: exp.Expression) -> bool:
    if isinstance(construct, str):
        return isinstance(node, exp.Anonymous) and node.name.lower() == construct
    return type(node) is construct


def _fill(template: str, node: exp.Expression) -> exp.Expression:
    """The template parsed as Spark SQL, its placeholders replaced by the node's parts."""
    arguments = node.expressions if isinstance(node, exp.Anonymous) else []
    text = template.replace(":*", ", ".join(f":{i}" for i in range(len(arguments))))
    text = re.sub(r":(\d+)", r":_\1", text)  # a placeholder's name must not start with a digit
    filled = sqlglot.parse_one(text, read="spark")
    parts = {f"_{i}": argument for i, argument in enumerate(arguments)}
    parts |= {key: value for key, value in node.args.items() if isinstance(value, exp.Expression)}
    return filled.transform(lambda n: parts[n.name].copy() if isinstance(n, exp.Placeholder) else n)


def _bracket(node: exp.Expression) -> exp.Expression:
    """`list[i]` and `list[i:j]`: NULL or a shorter list out of range, as in DuckDB; Spark's
    `list[i]` fails the job in ANSI mode, and it has no slices."""
    if not isinstance(node, exp.Bracket) or len(node.expressions) != 1:
        return node
    (index,) = node.expressions
    if isinstance(index, exp.Literal) and index.is_string:  # a struct's field
        return node
    if isinstance(index, exp.Slice):
        start = index.this or exp.Literal.number(1)
        end = index.expression or exp.func("size", node.this.copy())
        length = exp.func("greatest", exp.Sub(this=end.copy(), expression=start.copy()) + 1, 0)
        return exp.func("slice", node.this, start, length)
    # sqlglot holds a DuckDB index 0-based; try_element_at counts from 1.
    if index.is_int:
        return exp.func("try_element_at", node.this, exp.Literal.number(index.to_py() + 1))
    one = exp.Literal.number(1)
    return exp.func("try_element_at", node.this, exp.Add(this=index, expression=one))


def _ordered_list(node: exp.Expression) -> exp.Expression:
    """`list(x ORDER BY k1, k2)`: Spark's collect_list has no order (sqlglot drops it), so
    the values are collected with their keys, sorted, and taken out again. A struct is never
    NULL, so a NULL value stays in the list as DuckDB keeps it."""
    if not (isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order)):
        return node
    keys = node.this.expressions
    if any(key.args.get("desc") for key in keys):
        raise TranspileError("list(... ORDER BY ... DESC): Spark sorts the list ascending")
    fields = [exp.alias_(key.this, f"_k{i}") for i, key in enumerate(keys)]
    pairs = exp.func(
        "collect_list", exp.Struct(expressions=[*fields, exp.alias_(node.this.this, "_v")])
    )
    return sqlglot.parse_one("transform(array_sort(:pairs), _s -> _s._v)", read="spark").transform(
        lambda n: pairs if isinstance(n, exp.Placeholder) else n
    )


def _rename_database(node: exp.Expression, databases: Mapping[str, str]) -> exp.Expression:
    if isinstance(node, exp.Table) and node.db in databases:
        node.set("db", exp.to_identifier(databases[node.db]))
    return node


def rename_databases(spark_sql: str, databases: Mapping[str, str]) -> str:
    """Spark SQL (a twin's) with its databases renamed as `to_spark` renames them."""
    if not databases:
        return spark_sql
    tree = sqlglot.parse_one(spark_sql, read="spark")
    return tree.transform(lambda node: _rename_database(node, databases)).sql(dialect="spark")

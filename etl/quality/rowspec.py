"""Row-check specs: the YAML files under `schemas/` that say which rows are wrong or incomplete.

A spec is a list of named checks. Each check has a `kind`:

- `reject`: the row is wrong; it goes to quarantine with the check's name among its reasons;
- `flag`: the row is incomplete but true; it is staged, with the check's name in `_flags`.

and exactly one test, written so that the common ones take one line:

```yaml
extends: trip_rows.yaml            # optional: start from another spec (path relative to this one)
columns:                           # the columns checks may use, by type family
  fare_usd: float
checks:
  - {name: fare_out_of_range, kind: reject, column: fare_usd, between: [3.25, 180]}
  - {name: fare_missing, kind: flag, not_null: fare_usd}
  - {name: payment_type_unknown, kind: reject, column: payment_type, isin: [1, 2, 3, 4, 5]}
  - name: pickup_outside_area
    kind: reject
    between: {pickup_lat: [38.79, 39.0], pickup_lon: [-77.12, -76.90]}
    when: NOT coalesce(airport, false)
  - {name: dropoff_before_pickup, kind: reject, expr: "dropoff_at >= pickup_at"}
```

Tests (each says what a *good* row looks like):

- `between: [lo, hi]` with `column:` (inclusive; `null` for an open end), or
  `between: {col: [lo, hi], ...}` for several columns at once (a bounding box);
- `isin: [values]` with `column:`;
- `not_null: true` with `column:`, or `not_null: col` / `not_null: [col, ...]` (all must be set);
- `expr: "..."`: any polars SQL boolean expression (`pl.sql_expr`).

Modifiers:

- `when: "..."` (polars SQL): the check applies only to rows where this is true; other rows pass;
- `ignore_null` (default true): a test that comes out null because an input is null passes; a
  missing value is the business of its own `not_null` check, not of every range check on it;
- `enabled: false` switches an inherited check off; `description:` is free text for reports.

A spec that `extends:` another inherits its columns and checks in order. An entry whose name is
already inherited overrides only the keys it gives (a new test replaces the old test), so
`- {name: fare_out_of_range, between: [3.25, 180]}` narrows a bound and keeps the kind.

Every mistake is a `RowSpecError` that names the file, the line and the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml

from etl.errors import RowSpecError
from etl.stage.mapping import DTYPES

Kind = Literal["reject", "flag"]
KINDS: tuple[str, ...] = ("reject", "flag")
TESTS: tuple[str, ...] = ("between", "isin", "not_null", "expr")
CHECK_KEYS: frozenset[str] = frozenset(
    {"name", "kind", "column", "when", "ignore_null", "enabled", "description", *TESTS}
)
SPEC_KEYS: frozenset[str] = frozenset({"extends", "description", "columns", "checks"})
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Type families, in the vocabulary of `sources.yaml` (`money` is a float in dollars). A family
# rather than an exact dtype, so that a staging change from Int64 to Int16 is not a spec change.
FAMILIES: tuple[str, ...] = ("string", "integer", "float", "money", "boolean", "timestamp")
NUMERIC = frozenset({"integer", "float", "money"})
# The dtypes staging gives each family: a spec's expressions are tried on them at load time.
SAMPLE_DTYPES: dict[str, pl.DataType] = DTYPES


@dataclass(frozen=True)
class RowCheck:
    """One compiled check. `test` is true for a good row; `when` limits the rows it applies to."""

    name: str
    kind: Kind
    test: pl.Expr
    when: pl.Expr | None = None
    ignore_null: bool = True
    column: str | None = None  # the one column the test is about, when there is one
    columns: tuple[str, ...] = ()  # every column the check reads
    description: str = ""
    where: str = ""  # file:line it was (last) defined at

    def expr(self) -> pl.Expr:
        """The pass/fail expression: true = passes; null = the test saw a null."""
        if self.when is None:
            return self.test
        return pl.when(self.when).then(self.test).otherwise(pl.lit(True))


@dataclass(frozen=True)
class RowSpec:
    """A resolved spec: `extends` applied, disabled checks dropped, expressions compiled."""

    path: Path
    columns: dict[str, str]
    checks: tuple[RowCheck, ...]
    description: str = ""
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.path.stem

    def kind_of(self, check: str) -> Kind:
        return next(c.kind for c in self.checks if c.name == check)

    @property
    def required_columns(self) -> set[str]:
        """The columns a frame must have: every declared one and every one a check reads."""
        return set(self.columns) | {c for check in self.checks for c in check.columns}


def load_row_spec(path: str | Path) -> RowSpec:
    """Read a spec, resolve its `extends` chain, validate and compile every check."""
    path = Path(path)
    raw = _resolve(path, ())
    columns: dict[str, str] = raw["columns"]
    checks = tuple(
        _compile(entry, columns) for entry in raw["checks"] if entry.get("enabled", True)
    )
    if columns:
        _dry_run(checks, columns)
    return RowSpec(path=path, columns=columns, checks=checks, description=raw["description"])


# --------------------------------------------------------------------------- reading and merging


def _resolve(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The merged raw spec of `path`: its base's columns and checks with its own applied."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise RowSpecError(f"{path}: `extends` makes a cycle: {chain}")
    doc, lines = _read(path)
    base = _base(path, doc, (*seen, resolved))
    return {
        "columns": _merge_columns(path, base["columns"], doc.get("columns") or {}),
        "checks": _merge_checks(path, doc, lines, base["checks"]),
        "description": doc.get("description") or base["description"],
    }


def _base(path: Path, doc: dict[str, Any], seen: tuple[Path, ...]) -> dict[str, Any]:
    """The resolved spec `doc` extends, or an empty one."""
    if doc.get("extends") is None:
        return {"columns": {}, "checks": [], "description": ""}
    if not isinstance(doc["extends"], str):
        raise RowSpecError(f"{path}: `extends` must be the path of another spec")
    base_path = path.parent / doc["extends"]
    if not base_path.is_file():
        raise RowSpecError(f"{path}: `extends: {doc['extends']}`: no such file {base_path}")
    return _resolve(base_path, seen)


def _merge_columns(path: Path, inherited: dict[str, str], own: dict[Any, Any]) -> dict[str, str]:
    columns = dict(inherited)
    for col, family in own.items():
        if family not in FAMILIES:
            raise RowSpecError(
                f"{path}: column {col!r} has type {family!r}; expected one of {', '.join(FAMILIES)}"
            )
        columns[str(col)] = family
    return columns


def _merge_checks(
    path: Path, doc: dict[str, Any], lines: dict[int, int], inherited: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The inherited checks, overridden by this file's of the same name, then its new ones."""
    checks: list[dict[str, Any]] = [dict(entry) for entry in inherited]
    index = {entry["name"]: i for i, entry in enumerate(checks)}
    own: set[str] = set()
    entries = doc.get("checks") or []
    if not isinstance(entries, list):
        raise RowSpecError(f"{path}: `checks` must be a list of checks")
    for i, entry in enumerate(entries):
        where = f"{path}:{lines.get(i, '?')}"
        name = _check_name(where, i, entry, own)
        own.add(name)
        entry = {**entry, "_where": where}
        if name not in index and "kind" not in entry:
            inherited_from = f" inherited from {doc['extends']}" if doc.get("extends") else ""
            raise RowSpecError(
                f"{where}: check {name!r} needs `kind: reject` or `kind: flag`: "
                f"it overrides no check{inherited_from}"
            )
        if name in index:  # an override of an inherited check: only the keys it gives
            merged = checks[index[name]]
            if any(t in entry for t in TESTS):
                merged = {k: v for k, v in merged.items() if k not in TESTS}
            checks[index[name]] = {**merged, **entry}
        else:
            index[name] = len(checks)
            checks.append(entry)
    return checks


def _check_name(where: str, i: int, entry: Any, own: set[str]) -> str:
    """The name of the file's `i`th check, once its keys are known to be usable."""
    if not isinstance(entry, dict):
        raise RowSpecError(f"{where}: checks[{i}] must be a mapping, not {entry!r}")
    name = entry.get("name")
    if not name:
        hint = ", ".join(f"{k}: {v}" for k, v in entry.items())
        raise RowSpecError(f"{where}: checks[{i}] ({hint}) has no `name`")
    if not isinstance(name, str) or not NAME.match(name):
        raise RowSpecError(f"{where}: check {name!r}: a name is lower case letters, digits and _")
    if name in own:
        raise RowSpecError(f"{where}: check {name!r} is defined twice in this file")
    unknown = sorted(set(entry) - CHECK_KEYS)
    if unknown:
        raise RowSpecError(
            f"{where}: check {name!r}: unknown key(s) {', '.join(unknown)}; a test is one "
            f"of {', '.join(TESTS)}, and other keys are "
            f"{', '.join(sorted(CHECK_KEYS - set(TESTS)))}"
        )
    if not isinstance(entry.get("enabled", True), bool):
        raise RowSpecError(f"{where}: check {name!r}: `enabled` is true or false")
    return name


def _read(path: Path) -> tuple[dict[str, Any], dict[int, int]]:
    """The YAML document and the line number of each entry of its `checks` list."""
    try:
        text = path.read_text()
        doc = yaml.safe_load(text)
        node = yaml.compose(text)
    except OSError as exc:
        raise RowSpecError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RowSpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RowSpecError(f"{path}: a row-check spec is a mapping with a `checks` list")
    unknown = sorted(set(doc) - SPEC_KEYS)
    if unknown:
        raise RowSpecError(
            f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(SPEC_KEYS))}"
        )
    lines: dict[int, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "checks" and isinstance(value, yaml.SequenceNode):
                lines = {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return doc, lines


# --------------------------------------------------------------------------------- compiling


def _compile(entry: dict[str, Any], declared: dict[str, str]) -> RowCheck:
    name, where = entry["name"], entry["_where"]

    def fail(message: str) -> RowSpecError:
        return RowSpecError(f"{where}: check {name!r}: {message}")

    kind = entry.get("kind")
    if kind is None:
        raise fail("needs `kind: reject` or `kind: flag` (it overrides no inherited check)")
    if kind not in KINDS:
        raise fail(f"kind {kind!r} is unknown; expected reject or flag")
    tests = [t for t in TESTS if t in entry]
    if len(tests) != 1:
        found = ", ".join(tests) if tests else "none"
        raise fail(f"needs exactly one test of {', '.join(TESTS)} (found {found})")
    ignore_null = entry.get("ignore_null", True)
    if not isinstance(ignore_null, bool):
        raise fail("`ignore_null` is true or false")
    column = entry.get("column")
    if column is not None and not isinstance(column, str):
        raise fail("`column` names one column")

    test, reads, column = _test(tests[0], entry[tests[0]], column, declared, fail)

    when = None
    if entry.get("when") is not None:
        when, when_reads = _sql(entry["when"], "when", fail)
        reads = [*reads, *when_reads]

    reads = list(dict.fromkeys(reads))
    if declared:
        unknown = [c for c in reads if c not in declared]
        if unknown:
            raise fail(
                f"uses column(s) {', '.join(unknown)} that the spec does not declare "
                f"under `columns:` (declared: {', '.join(declared)})"
            )
    return RowCheck(
        name=name,
        kind=kind,
        test=test,
        when=when,
        ignore_null=ignore_null,
        column=column,
        columns=tuple(reads),
        description=str(entry.get("description") or ""),
        where=where,
    )


def _test(
    test_name: str, arg: Any, column: str | None, declared: dict[str, str], fail
) -> tuple[pl.Expr, list[str], str | None]:
    """A check's test as an expression, the columns it reads, and the column it is about."""
    if test_name == "between":
        test, reads = _between(arg, column, declared, fail)
    elif test_name == "isin":
        if column is None or not isinstance(arg, list) or not arg:
            raise fail("`isin` needs `column:` and a non-empty list of values")
        test, reads = pl.col(column).is_in(arg), [column]
    elif test_name == "not_null":
        reads = _not_null_columns(arg, column, fail)
        test = pl.all_horizontal([pl.col(c).is_not_null() for c in reads])
        if len(reads) == 1 and column is None:
            column = reads[0]
    else:
        test, reads = _sql(arg, "expr", fail)
        if column is not None:
            reads = [*reads, column]
    return test, reads, column


def _not_null_columns(arg: Any, column: str | None, fail) -> list[str]:
    if arg is True:
        if column is None:
            raise fail("`not_null: true` needs `column:`")
        return [column]
    if isinstance(arg, str):
        return [arg]
    if isinstance(arg, list) and arg and all(isinstance(c, str) for c in arg):
        return arg
    raise fail("`not_null` is true (with `column:`), a column, or a list of columns")


def _dry_run(checks: tuple[RowCheck, ...], columns: dict[str, str]) -> None:
    """Evaluate every check on an empty frame of the declared types, so that a type error in an
    expression (`pickup_at > 5`) is found when the spec is loaded, not in the middle of a run."""
    empty = pl.DataFrame(schema={c: SAMPLE_DTYPES[f] for c, f in columns.items()})
    for check in checks:
        try:
            out = empty.select(check.expr().alias("ok"))
        except Exception as exc:  # polars raises several error types
            first = str(exc).strip().splitlines()[0]
            raise RowSpecError(f"{check.where}: check {check.name!r}: {first}") from exc
        if out.schema["ok"] != pl.Boolean:
            raise RowSpecError(
                f"{check.where}: check {check.name!r}: the test gives {out.schema['ok']}, "
                "not true/false"
            )


def _between(arg: Any, column: str | None, declared: dict[str, str], fail) -> tuple[pl.Expr, list]:
    if isinstance(arg, list):
        if column is None:
            raise fail("`between: [lo, hi]` needs `column:` (or use `between: {column: [lo, hi]}`)")
        ranges = {column: arg}
    elif isinstance(arg, dict) and arg:
        if column is not None:
            raise fail("give either `column:` with `between: [lo, hi]` or a mapping, not both")
        ranges = arg
    else:
        raise fail("`between` is [lo, hi] with `column:`, or a mapping {column: [lo, hi]}")

    parts = []
    for col, bounds in ranges.items():
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(b is None or _is_number(b) for b in bounds)
            or bounds == [None, None]
        ):
            raise fail(f"bounds of {col} must be [lo, hi], numbers or null for an open end")
        lo, hi = bounds
        if lo is not None and hi is not None and lo > hi:
            raise fail(f"bounds of {col} are reversed: [{lo}, {hi}]")
        if declared.get(col, "float") not in NUMERIC:
            raise fail(f"`between` needs a numeric column; {col} is {declared[col]} (use `expr`)")
        c = pl.col(col)
        if lo is None:
            parts.append(c <= hi)
        elif hi is None:
            parts.append(c >= lo)
        else:
            parts.append(c.is_between(lo, hi))
    return pl.all_horizontal(parts) if len(parts) > 1 else parts[0], list(ranges)


def _sql(text: Any, key: str, fail) -> tuple[pl.Expr, list[str]]:
    if not isinstance(text, str) or not text.strip():
        raise fail(f"`{key}` is a polars SQL expression in a string")
    try:
        expr = pl.sql_expr(text)
        reads = expr.meta.root_names()
    except Exception as exc:  # polars raises several error types for bad SQL
        raise fail(f"`{key}: {text}` is not a valid polars SQL expression: {exc}") from exc
    return expr, reads


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def family_of(dtype: pl.DataType) -> set[str]:
    """The type families a polars dtype satisfies (an all-null column satisfies every one)."""
    if dtype == pl.Null:
        return set(FAMILIES)
    if dtype.is_integer():
        return {"integer", "float", "money"}
    if dtype.is_float() or dtype.is_decimal():
        return {"float", "money"}
    if dtype == pl.Boolean:
        return {"boolean"}
    if isinstance(dtype, pl.Datetime):
        return {"timestamp"}
    if dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum):
        return {"string"}
    return set()

"""Row checks: split a staged batch into staged rows (maybe flagged) and rejected rows.

The spec (`etl.quality.rowspec`, YAML under `schemas/`) is turned into a
`pandera.polars.DataFrameSchema`, one `pa.Check` per spec check, named after it, attached to its
column when it is about one column and to the frame otherwise. pandera validates the batch with
`lazy=True`, so every failing check is collected, and the per-row pass/fail vectors pandera
computed become the rows' `_reasons` (reject checks) and `_flags` (flag checks).

Why the per-row reasons come from pandera's check outputs and not from its failure cases:
pandera's polars backend keeps, for every failing check, the full boolean output it computed
(`SchemaError.check_output`, with `ignore_na` already applied) beside a table of failure cases.
Materialising that table is what costs: for a frame-wide check every failing row becomes a
Python dict and then JSON (`DataFrame.rows(named=True)` in `failure_cases_metadata`). With the
DC taxi spec, a third of the rows flagged, `check_rows` took 4.4 s for 1 M rows and 28 s for
5 M that way. With `n_failure_cases` set on each check, pandera keeps only a few examples (for
its own message) and validating 5 M rows takes ~0.15 s; the check outputs are still complete,
so grouping failure cases by row index would only rebuild, more slowly, the boolean vectors we
already hold. They become reason lists with polars over whole columns, never a loop over rows
(`_label_lists`). The whole of `check_rows` takes 0.3-0.6 s for 5 M rows on 2 cores.

pandera's polars backend validates a LazyFrame for its schema only unless told otherwise, and
obeys `PANDERA_VALIDATION_ENABLED` / `PANDERA_VALIDATION_DEPTH` from the environment; either
could silently pass every row, so validation runs on a DataFrame inside an explicit
`config_context(validation_enabled=True, validation_depth=SCHEMA_AND_DATA)`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.config import ValidationDepth, config_context
from pandera.constants import CHECK_OUTPUT_KEY
from pandera.errors import SchemaErrorReason, SchemaErrors

from etl.errors import RowCheckError, RowSpecError
from etl.names import FLAGS, PARSE_ERRORS, REASONS
from etl.quality.rowspec import RowCheck, RowSpec, family_of, load_row_spec
from etl.stage.labels import label_lists

__all__ = [
    "FLAGS",
    "PARSE_ERRORS",
    "REASONS",
    "RowCheckError",
    "RowCheckResult",
    "RowSpec",
    "RowSpecError",
    "check_rows",
    "load_row_spec",
    "pandera_schema",
]

# Examples pandera keeps per failing check, for its own message; see the module docstring.
N_FAILURE_CASES = 5

# pandera registers its polars backends at the first validate, importing its data strategies
# and hypothesis with them: done there, on the staging thread at the first batch, it cost that
# thread 0.2 CPU s alone and seconds beside the suites' background import. Done here, it is
# part of the import that `etl.quality.preload` runs in the background.
pa.DataFrameSchema.register_default_backends(pl.DataFrame)


@dataclass
class RowCheckResult:
    """The split of one batch. `staged.height + rejected.height` is the input's height."""

    staged: pl.DataFrame  # rows with no reject reason, plus `_flags: List(Utf8)`
    rejected: pl.DataFrame  # rows with a reason, plus `_reasons` (all of them) and `_flags`
    reason_counts: dict[str, int]  # rows failing each check (reject and flag), and each
    # `unparseable:<field>` reason of `_parse_errors`


def pandera_schema(spec: RowSpec) -> pa.DataFrameSchema:
    """The pandera schema of a spec: every column it uses, one named `pa.Check` per check."""
    cached = spec._cache.get("pandera")
    if cached is not None:
        return cached
    by_column: dict[str, list[pa.Check]] = defaultdict(list)
    frame_checks: list[pa.Check] = []
    for check in spec.checks:
        pa_check = _pandera_check(check)
        if check.column is not None:
            by_column[check.column].append(pa_check)
        else:
            frame_checks.append(pa_check)
    names = sorted(spec.required_columns | set(by_column))
    columns = {
        name: pa.Column(None, checks=by_column.get(name, []), nullable=True, required=True)
        for name in names
    }
    schema = pa.DataFrameSchema(columns, checks=frame_checks, name=spec.name)
    spec._cache["pandera"] = schema
    return schema


def _pandera_check(check: RowCheck) -> pa.Check:
    return pa.Check(
        partial(_evaluate, check.expr()),
        name=check.name,
        ignore_na=check.ignore_null,
        n_failure_cases=N_FAILURE_CASES,
        description=check.description or None,
    )


def _evaluate(expr: pl.Expr, data: PolarsData) -> pl.LazyFrame:
    """A vectorised pandera check: one boolean column, true where the row passes."""
    return data.lazyframe.select(expr.alias(CHECK_OUTPUT_KEY))


def check_rows(df: pl.DataFrame | pl.LazyFrame, spec: RowSpec | str | Path) -> RowCheckResult:
    """Run a spec's checks on a staged batch and split it; row order is kept in both parts."""
    if not isinstance(spec, RowSpec):
        spec = load_row_spec(spec)
    if isinstance(df, pl.LazyFrame):
        df = df.collect()  # a LazyFrame would be validated for its schema only
    _require_columns(df, spec)
    failed = _failures(df, spec)
    parsed = _parse_failures(df)

    kinds = {check.name: check.kind for check in spec.checks}
    flags = [name for name in failed if kinds[name] == "flag"]
    # `_parse_errors` reasons first (the cause), then the failed reject checks in spec order.
    reasons = [*parsed, *(name for name in failed if kinds[name] == "reject")]
    bits = pl.DataFrame([s.alias(name) for name, s in {**parsed, **failed}.items()])

    if reasons:
        rejected_mask = bits.select(pl.any_horizontal(reasons)).to_series()
    else:
        rejected_mask = pl.repeat(False, df.height, eager=True)
    n_rejected = int(rejected_mask.sum())
    # Lists are built per part rather than filtered: filtering a list column costs more.
    staged_bits = bits.filter(~rejected_mask) if bits.width else bits
    rejected_bits = bits.filter(rejected_mask) if bits.width else bits
    staged = (df if n_rejected == 0 else df.filter(~rejected_mask)).with_columns(
        label_lists(staged_bits, flags, df.height - n_rejected).alias(FLAGS)
    )
    rejected = df.filter(rejected_mask).with_columns(
        label_lists(rejected_bits, reasons, n_rejected).alias(REASONS),
        label_lists(rejected_bits, flags, n_rejected).alias(FLAGS),
    )

    counts = {check.name: 0 for check in spec.checks}
    counts.update({name: int(s.sum()) for name, s in {**failed, **parsed}.items()})
    return RowCheckResult(staged=staged, rejected=rejected, reason_counts=counts)


def _parse_failures(df: pl.DataFrame) -> dict[str, pl.Series]:
    """Per reason in `_parse_errors`, a boolean Series true on the rows that carry it.

    Entries are reasons as staging writes them (`unparseable:fare_usd`,
    `ambiguous_local_time:pickup_at`, `duplicate_key`) and are kept as they are. Sorted by
    reason, so that a row's reasons come in a stable order.
    """
    if PARSE_ERRORS not in df.columns:
        return {}
    errors = df.get_column(PARSE_ERRORS)
    rows = (errors.list.len().fill_null(0) > 0).arg_true()  # few: work on those rows only
    if rows.len() == 0:
        return {}
    errors = errors.gather(rows)
    out: dict[str, pl.Series] = {}
    for value in errors.explode().drop_nulls().unique().to_list():
        label = value
        has = pl.repeat(False, df.height, eager=True).scatter(
            rows.filter(errors.list.contains(value).fill_null(False)), True
        )
        out[label] = out[label] | has if label in out else has
    return dict(sorted(out.items()))


def _failures(df: pl.DataFrame, spec: RowSpec) -> dict[str, pl.Series]:
    """Validate with pandera; per failing check, a boolean Series that is true on failing rows.

    Checks that pass on every row are absent. Anything other than a data check failing (a
    check that raised, a missing column) is a `RowCheckError`: the batch was not checked.
    """
    schema = pandera_schema(spec)
    # Only the columns the checks read: for a frame-wide check that fails, pandera gathers the
    # failing rows, every column of them, to pick its few examples. Given all 28 columns of a
    # 211,000-row DFHV month it took 0.086 CPU s, 0.061 given the 14 the checks read.
    checked = df.select(list(schema.columns))
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(checked, lazy=True)
            return {}
        except SchemaErrors as exc:
            errors = exc.schema_errors

    failed: dict[str, pl.Series] = {}
    problems: list[str] = []
    for err in errors:
        check = err.check
        name = getattr(check, "name", None) or str(check)
        if (
            err.reason_code == SchemaErrorReason.DATAFRAME_CHECK
            and isinstance(check, pa.Check)
            and isinstance(err.check_output, pl.DataFrame)
        ):
            ok = err.check_output.get_column(CHECK_OUTPUT_KEY)
            if ok.len() != df.height:  # pragma: no cover - pandera contract
                raise RowCheckError(f"check {name!r}: pandera returned {ok.len()} results")
            failed[name] = ~ok.fill_null(False)
        else:
            problems.append(f"check {name!r}: {err}")
    if problems:
        raise RowCheckError(f"row checks of {spec.path} could not run:\n  " + "\n  ".join(problems))
    # spec order, whatever order pandera reported in (column checks come first)
    return {c.name: failed[c.name] for c in spec.checks if c.name in failed}


def _require_columns(df: pl.DataFrame, spec: RowSpec) -> None:
    """Every column the spec uses is present, of its declared type family."""
    problems = []
    for col in sorted(spec.required_columns):
        users = [c.name for c in spec.checks if col in c.columns]
        if col not in df.columns:
            problems.append(f"missing column {col!r} (used by {', '.join(users) or 'columns:'})")
            continue
        family = spec.columns.get(col)
        if family and family not in family_of(df.schema[col]):
            problems.append(f"column {col!r} is {df.schema[col]}, expected {family}")
    if problems:
        raise RowCheckError(f"batch does not fit {spec.path}: " + "; ".join(problems))

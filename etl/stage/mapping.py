"""Turn a source's raw text columns into canonical typed fields, as `sources.yaml` maps them.

Renames, casts, unit conversions and local-time-to-UTC all happen here as polars expressions
over whole columns. A value that does not parse becomes a null, and the row's `_parse_errors`
lists why (`unparseable:fare_usd`), so row checks can quarantine it with its reason instead of
the load failing.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from etl.config.models import UNIT_FACTORS, Column
from etl.sources.delimited import LINE
from etl.sources.files import SourceError

FILE = "_file"  # lineage: the file a row came from (`ZIP!MEMBER` for a zip member)

PARSE_ERRORS = "_parse_errors"
READ_ERRORS = "_read_errors"  # what a reader found wrong with a row before mapping
FALSE_VALUES = ("N", "n", "false", "False", "0")

DTYPES: dict[str, pl.DataType] = {
    "string": pl.Utf8(),
    "integer": pl.Int64(),
    "float": pl.Float64(),
    "money": pl.Float64(),
    "boolean": pl.Boolean(),
    "timestamp": pl.Datetime("us", "UTC"),
}


def stage_frame(
    raw: pl.DataFrame, columns: dict[str, Column], null_tokens: tuple[str, ...]
) -> pl.DataFrame:
    """The canonical frame: lineage (`_file` if present, `_line`), one column per mapped field,
    and `_parse_errors`."""
    require_columns(raw.columns, columns)
    fields, errors = [], []
    for field, column in columns.items():
        if column.source not in raw.columns:  # an optional column this file lacks
            fields.append(pl.lit(None, DTYPES[column.type]).alias(field))
            continue
        text = pl.col(column.source).str.strip_chars()
        text = pl.when(text.is_in(list(null_tokens))).then(None).otherwise(text)
        value, field_errors = _convert(text, column, field)
        fields.append(value.alias(field))
        errors.extend(field_errors)
    if READ_ERRORS in raw.columns:
        errors.append(pl.col(READ_ERRORS))
    reasons = pl.concat_list(errors).list.drop_nulls() if errors else pl.lit([], pl.List(pl.Utf8))
    # Lazy, so that the cast shared by a field and its error test is computed once.
    lineage = [c for c in (FILE, LINE) if c in raw.columns]
    return raw.lazy().select(*lineage, *fields, reasons.alias(PARSE_ERRORS)).collect()


def require_columns(present: Sequence[str], columns: dict[str, Column]) -> None:
    """Raise SourceError naming each required source column the file lacks."""
    missing = [c.source for c in columns.values() if c.required and c.source not in present]
    if not missing:
        return
    # A column the file has but no field maps is the likely new name of a missing one.
    unclaimed = sorted(set(present) - {c.source for c in columns.values()})
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, unclaimed, n=1, cutoff=0.75)
        hints.append(f"{name} (renamed to {close[0]}?)" if close else name)
    plural = "s" if len(missing) > 1 else ""
    raise SourceError(f"missing required column{plural}: {', '.join(hints)}")


def _convert(text: pl.Expr, column: Column, field: str) -> tuple[pl.Expr, list[pl.Expr]]:
    """The typed value of one field, and the expressions naming its failures."""
    if column.type == "timestamp":
        return _timestamp(text, column, field)
    if column.type == "string":
        return text, []
    if column.type == "boolean":
        value = (
            pl.when(text.is_in(list(column.true_values)))
            .then(True)
            .when(text.is_in(list(FALSE_VALUES)))
            .then(False)
        )
    else:
        number = text.str.replace_all(r"[$,\s]", "") if column.type == "money" else text
        value = number.cast(DTYPES[column.type], strict=False)
        if column.unit and UNIT_FACTORS[column.unit] != 1.0:
            value = value * UNIT_FACTORS[column.unit]
    return value, [_failed(text, value, f"unparseable:{field}")]


def _timestamp(text: pl.Expr, column: Column, field: str) -> tuple[pl.Expr, list[pl.Expr]]:
    if column.timezone is None:
        # The text carries its own offset (ISO 8601 with Z or +hh:mm).
        value = text.str.to_datetime(column.format, time_unit="us", time_zone="UTC", strict=False)
        return value, [_failed(text, value, f"unparseable:{field}")]

    naive = text.str.strptime(pl.Datetime("us"), column.format, strict=False)
    zone = column.timezone
    ambiguous = "null" if column.ambiguous == "reject" else column.ambiguous
    local = naive.dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null")
    # A null `local` from a parsed `naive` is a wall-clock time the DST change skipped or
    # repeated. shift_forward reads a skipped time with the offset in force before the change
    # (02:30 on the March day becomes 03:30 daylight time), as the clocks that wrote it did.
    shifted = (naive + timedelta(hours=1)).dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null"
    )
    dst_gap = naive.is_not_null() & local.is_null() & shifted.is_not_null()
    if column.nonexistent == "shift_forward":
        local = pl.when(dst_gap).then(shifted).otherwise(local)
    value = local.dt.convert_time_zone("UTC")
    errors = [
        pl.when(text.is_not_null() & naive.is_null()).then(pl.lit(f"unparseable:{field}")),
        pl.when(naive.is_not_null() & value.is_null() & dst_gap).then(
            pl.lit(f"nonexistent_local_time:{field}")
        ),
        pl.when(naive.is_not_null() & value.is_null() & ~dst_gap).then(
            pl.lit(f"ambiguous_local_time:{field}")
        ),
    ]
    return value, errors


def _failed(text: pl.Expr, value: pl.Expr, reason: str) -> pl.Expr:
    return pl.when(text.is_not_null() & value.is_null()).then(pl.lit(reason))

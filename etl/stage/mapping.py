"""Turn a source's raw text columns into canonical typed fields, as `sources.yaml` maps them.

Renames, casts, unit conversions and local-time-to-UTC all happen here as polars expressions
over whole columns. A value that does not parse becomes a null, and the row's `_parse_errors`
lists why (`unparseable:fare_usd`), so row checks can quarantine it with its reason instead of
the load failing.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from etl.config.spec import UNIT_FACTORS, Column
from etl.errors import SourceError
from etl.names import DUPLICATE_KEY, FILE, LINE, PARSE_ERRORS, READ_ERRORS

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
    raw: pl.DataFrame,
    columns: dict[str, Column],
    null_tokens: tuple[str, ...],
    key: tuple[str, ...] = (),
    seen_keys: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The canonical frame: lineage (`_file` if present, `_line`), one column per mapped field,
    and `_parse_errors`. A row whose `key` fields repeat an earlier row of the same file gets
    the reason `duplicate_key`; `seen_keys` (`_file` and the key fields) holds the keys of the
    earlier pieces of a file staged a piece at a time.

    Values are parsed as they are; only the rows where some value failed are parsed again with
    the spaces around their values trimmed (` 12.50 `, ` NULL `). Trimming every value of every
    column cost more than parsing the file, and padding is rare.
    """
    require_columns(raw.columns, columns)
    present = {f: c for f, c in columns.items() if c.source in raw.columns}
    lineage = [c for c in (FILE, LINE) if c in raw.columns]
    steps = [
        _Conversion.of(field, column, raw.schema[column.source])
        for field, column in present.items()
    ]
    failures = _failures(steps)
    flags = [f"__fail_{i}" for i in range(len(failures))]

    frame = _parse(raw, present, null_tokens, steps, failures, strip=False)
    failed = frame.select(pl.any_horizontal(flags).fill_null(False) if flags else pl.lit(False))
    rows = failed.to_series().arg_true()
    if rows.len():
        retried = _parse(raw[rows], present, null_tokens, steps, failures, strip=True)
        # Only the fields that failed change: each failure's reason names its field.
        hit = frame[rows].select(pl.col(flags).any()).row(0)
        fields = {
            reason.split(":", 1)[1] for (reason, _), h in zip(failures, hit, strict=True) if h
        }
        frame = frame.with_columns(
            frame[name].scatter(rows, retried[name]) for name in [*sorted(fields), *flags]
        )
    reasons = [reason for reason, _ in failures]
    keys = [k for k in key if k in present]
    if keys:
        frame = frame.with_columns(
            _repeated_keys(raw, keys, seen_keys).alias(f"__fail_{len(reasons)}")
        )
        reasons.append(DUPLICATE_KEY)
    absent = [pl.lit(None, DTYPES[c.type]).alias(f) for f, c in columns.items() if f not in present]
    frame = frame.with_columns(absent)
    return frame.select(*lineage, *columns).with_columns(
        _reason_lists(frame, reasons).alias(PARSE_ERRORS)
    )


def _repeated_keys(raw: pl.DataFrame, keys: list[str], seen_keys: pl.DataFrame | None) -> pl.Expr:
    """Whether a row's key repeats an earlier row of its file, here or in `seen_keys`."""
    within_file = [FILE, *keys] if FILE in raw.columns else keys
    if FILE in raw.columns and raw.height and raw[FILE][0] == raw[FILE][-1]:
        # The rows of one file (a file's rows are contiguous), and `seen_keys` can only be
        # that file's: its key alone, which hashes in a third of the time.
        within_file = keys
    key = pl.col(keys[0]) if len(within_file) == 1 else pl.struct(within_file)
    repeated = ~key.is_first_distinct()
    if seen_keys is not None and seen_keys.height:
        repeated = repeated | key.is_in(seen_keys.select(key).to_series().implode())
    return repeated


def _parse(
    raw: pl.DataFrame,
    present: dict[str, Column],
    null_tokens: tuple[str, ...],
    steps: list[_Conversion],
    failures: list[tuple[str, pl.Expr]],
    strip: bool,
) -> pl.DataFrame:
    """Lineage, the typed fields and one boolean column a failure, in eager steps (a lazy plan
    would fold them back into one nested expression and recompute the shared parts)."""
    tokens = list(null_tokens)
    texts = []
    for field, column in present.items():
        text = pl.col(column.source)
        if raw.schema[column.source] != pl.Utf8:  # a typed value: its nulls are nulls already
            texts.append(text.alias(_text(field)))
            continue
        text = text.str.strip_chars() if strip else text
        nulled = pl.when(_is_token(text, tokens)).then(None).otherwise(text)
        texts.append(nulled.alias(_text(field)))
    lineage = [c for c in (FILE, LINE) if c in raw.columns]
    frame = raw.select(*lineage, *_passthrough(raw), *texts)
    per_row = []
    for step in steps:
        looked_up = _once_per_text(frame, step) if step.once_per_text else None
        if looked_up is None:
            per_row.append(step)
        else:
            frame = looked_up
    frame = frame.with_columns(expr for step in per_row for expr in step.parse)
    frame = frame.with_columns(expr for step in per_row for expr in step.derive)
    frame = frame.with_columns(step.value.alias(step.field) for step in per_row)
    frame = _fall_back(frame, [step for step in per_row if step.fallback is not None])
    return frame.with_columns(cond.alias(f"__fail_{i}") for i, (_, cond) in enumerate(failures))


def _is_token(text: pl.Expr, tokens: list[str]) -> pl.Expr:
    """Whether a text is a null token: compared with each token, not `is_in`, which hashes
    every value (a 211,000-row DFHV month's 24 columns: 0.032 against 0.048 CPU s)."""
    return functools.reduce(operator.or_, (text == token for token in tokens), pl.lit(False))


def _once_per_text(frame: pl.DataFrame, step: _Conversion) -> pl.DataFrame | None:
    """The step's helpers and value computed once per distinct text and joined back, or None
    when most texts are distinct. DFHV rounds its times to the hour: a month of a million rows
    holds ~750 distinct times, and the time-zone rules cost far more than the join."""
    text = _text(step.field)
    distinct = frame.select(text).unique()
    if distinct.height * 2 > frame.height:
        return None
    done = (
        distinct.with_columns(step.parse)
        .with_columns(step.derive)
        .with_columns(step.value.alias(step.field))
    )
    # Joined on the text column alone: joining the whole frame would copy its every column.
    looked_up = frame.select(text).join(
        done, on=text, how="left", nulls_equal=True, maintain_order="left"
    )
    return frame.with_columns(looked_up.drop(text))


def _fall_back(frame: pl.DataFrame, steps: list[_Conversion]) -> pl.DataFrame:
    """Each step's costlier fallback value, where its plain value failed, for the steps where
    any did: a column of plain numbers, like every DFHV fare, never pays for it."""
    failed = [pl.col(_text(s.field)).is_not_null() & pl.col(s.field).is_null() for s in steps]
    if not steps or not any(frame.select(f.any() for f in failed).row(0)):
        return frame
    return frame.with_columns(
        pl.when(f).then(s.fallback).otherwise(pl.col(s.field)).alias(s.field)
        for s, f in zip(steps, failed, strict=True)
    )


def _passthrough(raw: pl.DataFrame) -> list[str]:
    return [READ_ERRORS] if READ_ERRORS in raw.columns else []


def _text(field: str) -> str:
    return f"__text_{field}"


def _failures(steps: list[_Conversion]) -> list[tuple[str, pl.Expr]]:
    return [failure for step in steps for failure in step.failures]


def _reason_lists(frame: pl.DataFrame, reasons: list[str]) -> pl.Series:
    """Each row's list of failure reasons, built only for the (few) rows that have any."""
    flags = [f"__fail_{i}" for i in range(len(reasons))]
    sources = [*flags, READ_ERRORS] if READ_ERRORS in frame.columns else flags
    empty = pl.repeat(pl.lit([], pl.List(pl.Utf8)), frame.height, eager=True).alias(PARSE_ERRORS)
    if not sources:
        return empty
    conditions = [pl.col(f) for f in flags]
    if READ_ERRORS in frame.columns:
        conditions.append(pl.col(READ_ERRORS).list.len() > 0)
    failing = frame.select(pl.any_horizontal(conditions).fill_null(False)).to_series()
    if not failing.any():
        return empty
    parts = [pl.when(pl.col(f)).then(pl.lit(r)) for f, r in zip(flags, reasons, strict=True)]
    if READ_ERRORS in frame.columns:
        parts.append(pl.col(READ_ERRORS))
    indexed = frame.with_row_index("__row")
    lists = indexed.filter(failing).select(
        "__row", pl.concat_list(parts).list.drop_nulls().alias(PARSE_ERRORS)
    )
    joined = indexed.select("__row").join(lists, on="__row", how="left", maintain_order="left")
    return joined[PARSE_ERRORS].fill_null(pl.lit([], pl.List(pl.Utf8)))


@dataclass(frozen=True)
class _Conversion:
    """How one field is parsed: helper columns, the value, and its failure conditions.

    Expressions refer to the field's cleaned text column and to helper columns by name, so that
    every step is computed once.
    """

    field: str
    parse: list[pl.Expr]  # helper columns computed from the text
    value: pl.Expr  # the typed value, from the text and helpers
    failures: list[tuple[str, pl.Expr]]  # (reason, condition on the value and helpers)
    derive: list[pl.Expr] = dataclasses.field(default_factory=list)  # helpers computed from helpers
    once_per_text: bool = False  # costly enough to compute once per distinct text
    fallback: pl.Expr | None = None  # a costlier value for texts `value` fails on

    @classmethod
    def of(cls, field: str, column: Column, dtype: pl.DataType = pl.Utf8()) -> _Conversion:
        if dtype != pl.Utf8:
            return _typed(field, column, dtype)
        text = pl.col(_text(field))
        parsed_badly = text.is_not_null() & pl.col(field).is_null()
        unparseable = [(f"unparseable:{field}", parsed_badly)]
        if column.type == "timestamp":
            return _timestamp(field, column)
        if column.type == "string":
            return cls(field, [], text, [])
        if column.type == "boolean":
            value = (
                pl.when(text.is_in(list(column.true_values)))
                .then(True)
                .when(text.is_in(list(FALSE_VALUES)))
                .then(False)
            )
            return cls(field, [], value, unparseable)
        value, fallback = _number(text, column), None
        if column.type == "money":
            # `$1,234.50`: only a text that is not a plain number is cleaned of its symbols.
            fallback = _number(text.str.replace_all(r"[$,\s]", ""), column)
        return cls(field, [], value, unparseable, fallback=fallback)


def _typed(field: str, column: Column, dtype: pl.DataType) -> _Conversion:
    """A column that came typed (Parquet), of a kind `check_types` accepted: cast to the
    field's type and unit. A value the cast loses (an integer out of range) is a null with the
    reason `unparseable:<field>`."""
    value = pl.col(_text(field))
    lost = [(f"unparseable:{field}", value.is_not_null() & pl.col(field).is_null())]
    if dtype == pl.Null or column.type in ("string", "boolean"):
        return _Conversion(field, [], value.cast(DTYPES[column.type]), [])
    if column.type != "timestamp":
        return _Conversion(field, [], _number(value, column), lost)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        utc = value.dt.convert_time_zone("UTC").cast(DTYPES["timestamp"])
        return _Conversion(field, [], utc, [])
    naive = value.cast(pl.Datetime("us"))
    if column.timezone is None:  # a naive time with no zone declared is UTC
        return _Conversion(field, [], naive.dt.replace_time_zone("UTC"), [])
    return _timestamp(field, column, naive)


def check_types(schema: pl.Schema, columns: dict[str, Column]) -> None:
    """Raise SourceError naming each typed column whose kind its field cannot be read from
    (a date mapped to a fare); a text column is parsed value by value instead."""

    def numeric(t: pl.DataType) -> bool:
        return t.is_numeric()

    kinds = {
        "integer": numeric,
        "float": numeric,
        "money": numeric,
        "boolean": lambda t: t == pl.Boolean,
        "timestamp": lambda t: isinstance(t, (pl.Datetime, pl.Date)),
    }
    wrong = [
        f"{c.source} ({schema[c.source]}, mapped as {c.type})"
        for c in columns.values()
        if c.source in schema
        and schema[c.source] not in (pl.Utf8, pl.Null)
        and c.type in kinds
        and not kinds[c.type](schema[c.source])
    ]
    if wrong:
        raise SourceError(f"column of the wrong type: {', '.join(wrong)}")


def _number(text: pl.Expr, column: Column) -> pl.Expr:
    value = text.cast(DTYPES[column.type], strict=False)
    if column.unit and UNIT_FACTORS[column.unit] != 1.0:
        value = value * UNIT_FACTORS[column.unit]
    return value


def _timestamp(field: str, column: Column, naive_value: pl.Expr | None = None) -> _Conversion:
    """A timestamp from text, or from a typed naive time (`naive_value`) in a local zone."""
    text = pl.col(_text(field))
    if column.timezone is None:
        # The text carries its own offset (ISO 8601 with Z or +hh:mm).
        value = text.str.to_datetime(column.format, time_unit="us", time_zone="UTC", strict=False)
        failed = text.is_not_null() & pl.col(field).is_null()
        if not column.format.endswith("%#z"):
            return _Conversion(field, [], value, [(f"unparseable:{field}", failed)])
        # `%#z` reads Z as +00:00, but polars parses any offset five times slower than a
        # literal Z, which is what UTC exports write: the offset is parsed only where Z is not.
        utc = text.str.to_datetime(
            column.format.removesuffix("%#z") + "Z", time_unit="us", time_zone="UTC", strict=False
        )
        return _Conversion(field, [], utc, [(f"unparseable:{field}", failed)], fallback=value)

    naive, local, shifted = (pl.col(f"__{part}_{field}") for part in ("naive", "local", "shifted"))
    zone = column.timezone
    ambiguous = "null" if column.ambiguous == "reject" else column.ambiguous
    if naive_value is None:
        naive_value = text.str.strptime(pl.Datetime("us"), column.format, strict=False)
    parse = [naive_value.alias(f"__naive_{field}")]
    # A null `local` from a parsed `naive` is a wall-clock time the DST change skipped or
    # repeated. shift_forward reads a skipped time with the offset in force before the change
    # (02:30 on the March day becomes 03:30 daylight time), as the clocks that wrote it did.
    helpers = [
        naive.dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null").alias(
            f"__local_{field}"
        ),
        (naive + timedelta(hours=1))
        .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        .alias(f"__shifted_{field}"),
    ]
    # Skipped, not repeated: null even when a repeated time may take its first reading. When
    # the policy is that reading already, `local` says it; otherwise it is asked separately.
    exists = local
    if ambiguous != "earliest":
        exists = pl.col(f"__exists_{field}")
        helpers.append(
            naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null").alias(
                f"__exists_{field}"
            )
        )
    dst_gap = naive.is_not_null() & exists.is_null()
    chosen = local
    if column.nonexistent == "shift_forward":
        chosen = pl.when(dst_gap).then(shifted).otherwise(local)
    value = chosen.dt.convert_time_zone("UTC")
    lost = naive.is_not_null() & pl.col(field).is_null()
    failures = [
        (f"unparseable:{field}", text.is_not_null() & naive.is_null()),
        (f"nonexistent_local_time:{field}", lost & dst_gap),
        (f"ambiguous_local_time:{field}", lost & ~dst_gap),
    ]
    return _Conversion(field, parse, value, failures, derive=helpers, once_per_text=True)


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

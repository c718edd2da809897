"""Vectorized number-to-text formatting with a fixed number of decimals.

Source systems write money as "12.50", not "12.5"; polars' float casts print the shortest form,
so numbers are scaled to integers and assembled as text instead.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl

_TABLE_SIZE = 100_000  # 0.00 to 999.99: nearly every amount and mileage


@cache
def _text_table(decimals: int) -> pl.Series:
    """Text of 0 .. _TABLE_SIZE-1 scaled by 10**-decimals ("0.00", "0.01", ...)."""
    return _assemble(np.arange(_TABLE_SIZE, dtype=np.int64), decimals)


@cache
def _fraction_table(decimals: int) -> pl.Series:
    """Zero-padded fractional digits, "00" .. "99" for two decimals."""
    return pl.Series(np.arange(10**decimals, dtype=np.int64)).cast(pl.String).str.zfill(decimals)


def _assemble(scaled: np.ndarray, decimals: int) -> pl.Series:
    unit = 10**decimals
    magnitude = np.abs(scaled)
    frame = pl.DataFrame({"negative": scaled < 0, "whole": magnitude // unit})
    parts = [
        pl.when(pl.col("negative")).then(pl.lit("-")).otherwise(pl.lit("")),
        pl.col("whole").cast(pl.String),
    ]
    if decimals:
        frame = frame.with_columns(fraction=_fraction_table(decimals).gather(magnitude % unit))
        parts += [pl.lit("."), pl.col("fraction")]
    return frame.select(pl.concat_str(parts)).to_series()


def scaled_int_text(scaled: np.ndarray, decimals: int) -> pl.Series:
    """Integers holding value * 10**decimals, as "-123.45"-style text.

    Batches of small non-negative values (money, miles) are one gather from a cached table;
    the rest is assembled from the whole part and a cached table of fractions.
    """
    scaled = np.asarray(scaled, dtype=np.int64)
    if len(scaled) and scaled.min() >= 0 and scaled.max() < _TABLE_SIZE:
        return _text_table(decimals).gather(scaled)
    return _assemble(scaled, decimals)


def decimal_text(values: np.ndarray, decimals: int) -> pl.Series:
    """Floats rounded to `decimals` places, always printed with that many decimals."""
    return scaled_int_text(np.rint(np.asarray(values) * 10**decimals), decimals)


def cents_to_dollars_text(cents: np.ndarray) -> pl.Series:
    return scaled_int_text(cents, 2)


def thousands_dollar_text(cents: np.ndarray) -> pl.Series:
    """Cents as "$1,012.50" (thousands separators, non-negative amounts below $1M)."""
    s = pl.Series("c", np.asarray(cents, dtype=np.int64))
    dollars = pl.col("c") // 100
    frac = (pl.col("c") % 100).cast(pl.String).str.zfill(2)
    thousands = pl.concat_str(
        [
            (dollars // 1000).cast(pl.String),
            pl.lit(","),
            (dollars % 1000).cast(pl.String).str.zfill(3),
        ]
    )
    whole = pl.when(dollars >= 1000).then(thousands).otherwise(dollars.cast(pl.String))
    return s.to_frame().select(pl.concat_str([pl.lit("$"), whole, pl.lit("."), frac])).to_series()


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """ "D-000184223"-style identifiers."""
    s = pl.Series("n", np.asarray(numbers, dtype=np.int64))
    return (
        s.to_frame()
        .select(pl.concat_str([pl.lit(prefix), pl.col("n").cast(pl.String).str.zfill(width)]))
        .to_series()
    )

"""How good the estimates are: RMSE, MAE, mean bias and 80% interval coverage, overall, per
source and per hour band, for the models and the naive baselines alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

#: Local hour bands, (name, first hour, last hour): the city's traffic regimes.
HOUR_BANDS = (
    ("night 00-06", 0, 6),
    ("morning peak 07-09", 7, 9),
    ("midday 10-15", 10, 15),
    ("evening peak 16-19", 16, 19),
    ("evening 20-23", 20, 23),
)


def scores(
    actual: np.ndarray,
    predicted: np.ndarray,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> dict[str, float]:
    """RMSE, MAE and mean bias (predicted - actual) in the target's unit; bias_pct is the mean
    bias over the mean actual (the error of a sum of estimates); MAPE a fraction; coverage the
    share of actuals inside [low, high]."""
    error = predicted - actual
    result = {
        "rows": len(actual),
        "rmse": round(float(np.sqrt(np.mean(error**2))), 4),
        "mae": round(float(np.abs(error).mean()), 4),
        "bias": round(float(error.mean()), 4),
        "bias_pct": round(float(error.mean() / actual.mean()), 5),
        "mape": round(float((np.abs(error) / actual).mean()), 4),
    }
    if low is not None and high is not None:
        result["coverage_80"] = round(float(((actual >= low) & (actual <= high)).mean()), 4)
    return result


def hour_band(hour: pl.Expr) -> pl.Expr:
    """The HOUR_BANDS name of a local hour of day."""
    expr = pl.when(False).then(None)
    for name, first, last in HOUR_BANDS:
        expr = expr.when(hour.is_between(first, last)).then(pl.lit(name))
    return expr


def score_test(
    scored: pl.DataFrame,
    target: str,
    estimate: dict[str, np.ndarray],
    naive: Callable[[pl.DataFrame], np.ndarray],
) -> dict[str, Any]:
    """Model (point and interval) and baseline scores on the test rows: overall, per source and
    per hour band."""
    frame = scored.with_columns(
        pl.Series("_point", estimate["point"]),
        pl.Series("_p10", estimate["p10"]),
        pl.Series("_p90", estimate["p90"]),
        hour_band(pl.col("hour_of_day")).alias("_band"),
    )
    result: dict[str, Any] = {"test_rows": frame.height, **_pair(frame, target, naive)}
    for key, column in (("by_source", "source"), ("by_hour_band", "_band")):
        groups = sorted(frame[column].unique().to_list())
        result[key] = {
            group: _pair(frame.filter(pl.col(column) == group), target, naive) for group in groups
        }
    return result


def _pair(
    part: pl.DataFrame, target: str, naive: Callable[[pl.DataFrame], np.ndarray]
) -> dict[str, Any]:
    actual = part[target].to_numpy()
    return {
        "model": scores(
            actual, part["_point"].to_numpy(), part["_p10"].to_numpy(), part["_p90"].to_numpy()
        ),
        "baseline": scores(actual, naive(part)),
    }

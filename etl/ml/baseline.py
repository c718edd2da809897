"""The naive baseline a model must beat, from what is known before the trip.

Duration: the straight-line distance over the median straight-line speed of the pickup's local
hour (learned on the training split). Fare: DC's taxi meter rule, $3.50 on entry plus $2.16 a
mile, on the straight-line distance times 1.3 (a typical road detour in a grid city).
"""

from __future__ import annotations

import numpy as np
import polars as pl

FLAG_DROP_USD = 3.50
PER_MILE_USD = 2.16
DETOUR_FACTOR = 1.3
# A trip whose straight-line distance rounds to nothing still takes and costs something.
MIN_STRAIGHT_MILES = 0.05


def speed_by_hour(train: pl.DataFrame) -> list[float]:
    """Median straight-line speed (mph) for each local hour 0-23; the overall median for an
    hour without trips."""
    speed = pl.col("straight_miles") / (pl.col("duration_s") / 3600.0)
    overall = float(train.select(speed.median()).item())
    by_hour = dict(train.group_by("hour_of_day").agg(speed.median().alias("mph")).iter_rows())
    return [float(by_hour.get(hour) or overall) for hour in range(24)]


def duration_s(frame: pl.DataFrame, speeds: list[float]) -> np.ndarray:
    miles = np.maximum(frame["straight_miles"].to_numpy(), MIN_STRAIGHT_MILES)
    mph = np.asarray(speeds)[frame["hour_of_day"].to_numpy().astype(np.int64)]
    return miles / mph * 3600.0


def fare_usd(frame: pl.DataFrame) -> np.ndarray:
    miles = frame["straight_miles"].to_numpy()
    return FLAG_DROP_USD + PER_MILE_USD * miles * DETOUR_FACTOR

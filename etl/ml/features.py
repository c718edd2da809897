"""The model's features: one definition, used to train and to predict.

`training_table.sql` selects the trips fit to learn from (and their targets) from
`curated.trips`; :func:`add_features` derives every feature from a trip's points, pickup time,
source and airport flag, in polars expressions over whole columns. Training, `etl predict`,
batch prediction and `etl serve` all call it, so a request gets exactly the features its trip
had in training; a million requests take about a second, one request a fraction of a
millisecond (the same SQL run per request in DuckDB took 20-30 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl

from etl.engine.duckdb.warehouse import WarehouseError, connect, object_kind
from etl.errors import MlModelError
from etl.paths import QUERIES_DIR

TRAINING_SQL = QUERIES_DIR / "training_table.sql"
DC_TZ = ZoneInfo("America/New_York")

#: Model inputs, in the column order of the matrix the models see.
FEATURES = (
    "pickup_lat",
    "pickup_lon",
    "dropoff_lat",
    "dropoff_lon",
    "straight_miles",
    "bearing_deg",
    "hour_of_day",
    "day_of_week",
    "month",
    "is_holiday",
    "is_weekend",
    "airport",
    "source",
    "time_precision",
)
#: Text features, given to LightGBM as categories (codes are positions in the saved levels).
CATEGORICAL = ("source", "time_precision")
MONTHS = 12


def model_features(train: pl.DataFrame) -> list[str]:
    """FEATURES, less `month` unless the training trips cover every calendar month: a month
    the trees never saw takes the level of a neighbouring month, noise included (measured on a
    year of generated trips with no seasonality: the two months after the window came out 1.2%
    low), so the models are then asked about the rest of the year as if it had no season."""
    if train["month"].n_unique() == MONTHS:
        return list(FEATURES)
    return [name for name in FEATURES if name != "month"]


TARGETS = ("duration_s", "fare_usd")


def trip_features(con: duckdb.DuckDBPyConnection, for_training: bool) -> pl.DataFrame:
    """The features (and targets) of the trips in `con`'s curated.trips."""
    try:
        trips = con.sql(TRAINING_SQL.read_text(), params={"for_training": for_training}).pl()
    except duckdb.Error as exc:
        raise MlModelError(f"training table: {str(exc).strip().splitlines()[0]}") from None
    return add_features(trips)


def training_table(warehouse: Path) -> pl.DataFrame:
    """The clean training table, read from the curated warehouse (read-only)."""
    try:
        con = connect(warehouse, read_only=True)
    except WarehouseError as exc:
        raise MlModelError(str(exc)) from None
    try:
        with con.cursor() as cursor:  # a cursor, so that no result stays open on `con`
            # A table here, a view over the published Parquet in a Spark-built warehouse.
            found = object_kind(cursor, "curated.trips") is not None
        if not found:
            raise MlModelError(f"{warehouse}: no curated.trips yet (run `etl run` first)")
        return trip_features(con, for_training=True)
    finally:
        con.close()


@dataclass(frozen=True)
class TripRequest:
    """One trip to estimate: two points, a pickup time and the silo it is asked as."""

    pickup_lat: float
    pickup_lon: float
    dropoff_lat: float
    dropoff_lon: float
    pickup_at: datetime  # timezone-aware
    source: str
    time_precision: str


def request_features(request: TripRequest) -> pl.DataFrame:
    """The feature row of one request."""
    frame = pl.DataFrame(
        {
            "source": [request.source],
            "time_precision": [request.time_precision],
            "pickup_at": [request.pickup_at],
            "pickup_lat": [request.pickup_lat],
            "pickup_lon": [request.pickup_lon],
            "dropoff_lat": [request.dropoff_lat],
            "dropoff_lon": [request.dropoff_lon],
        },
        schema_overrides={"pickup_at": pl.Datetime("us", "UTC")},
    )
    return add_features(frame)


# The three airports the DFHV AIRPORT flag names. A point within 1.5 km of a terminal counts as
# an airport trip too, so that a request (and a silo without the flag) gets it from its points.
AIRPORTS = ((38.8512, -77.0377), (38.9531, -77.4565), (39.1774, -76.6684))  # DCA, IAD, BWI
AIRPORT_KM = 1.5
# Equirectangular distance near 38.9 N: km per degree of latitude and of longitude.
KM_PER_LAT, KM_PER_LON = 111.2, 86.6
EARTH_RADIUS_MILES = 3958.7613


def add_features(trips: pl.DataFrame) -> pl.DataFrame:
    """`trips` with FEATURES added. Needs the four coordinates, `pickup_at` (a time zone aware
    Datetime), `source`, `time_precision` and optionally `airport_reported` (DFHV's flag).

    Every feature is known before the trip starts: the two points, the great-circle distance
    and initial bearing between them, the local (DC) hour, ISO day of week and month of the
    pickup, DC public holiday and weekend, the airport flag, the source and its time precision.
    DFHV rounds its timestamps to the hour: its hour of day is the rounded one.
    """
    first, last = trips.select(
        _local_year.min().fill_null(2000).alias("first"),
        _local_year.max().fill_null(2000).alias("last"),
    ).row(0)
    return trips.with_columns(**_feature_exprs("airport_reported" in trips.columns, first, last))


_local_year = pl.col("pickup_at").dt.convert_time_zone(DC_TZ.key).dt.year()


@lru_cache(maxsize=32)
def _feature_exprs(reported: bool, first_year: int, last_year: int) -> dict[str, pl.Expr]:
    """The feature expressions, built once: a one-trip request would otherwise spend more
    time building them than polars spends computing them."""
    local = pl.col("pickup_at").dt.convert_time_zone(DC_TZ.key)
    phi1, phi2 = pl.col("pickup_lat").radians(), pl.col("dropoff_lat").radians()
    d_phi = (pl.col("dropoff_lat") - pl.col("pickup_lat")).radians()
    d_lambda = (pl.col("dropoff_lon") - pl.col("pickup_lon")).radians()
    haversine = (d_phi / 2).sin().pow(2) + phi1.cos() * phi2.cos() * (d_lambda / 2).sin().pow(2)
    bearing = pl.arctan2(
        d_lambda.sin() * phi2.cos(),
        phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * d_lambda.cos(),
    ).degrees()
    airport = pl.col("airport_reported").fill_null(False) if reported else pl.lit(False)
    holidays = pl.Series(_holidays((first_year, last_year)), dtype=pl.Date).implode()
    return {
        "straight_miles": 2 * EARTH_RADIUS_MILES * haversine.sqrt().arcsin(),
        "bearing_deg": (bearing + 360) % 360,
        "hour_of_day": local.dt.hour().cast(pl.Int64),
        "day_of_week": local.dt.weekday().cast(pl.Int64),
        "month": local.dt.month().cast(pl.Int64),
        "is_holiday": local.dt.date().is_in(holidays).fill_null(False),
        "is_weekend": local.dt.weekday() >= 6,
        "airport": airport | pl.any_horizontal(_near_airport(end) for end in ("pickup", "dropoff")),
    }


def _near_airport(end: str) -> pl.Expr:
    lat, lon = pl.col(f"{end}_lat"), pl.col(f"{end}_lon")
    near = [
        (((lat - a_lat) * KM_PER_LAT).pow(2) + ((lon - a_lon) * KM_PER_LON).pow(2)).sqrt()
        < AIRPORT_KM
        for a_lat, a_lon in AIRPORTS
    ]
    return pl.any_horizontal(near).fill_null(False)


@lru_cache(maxsize=16)
def _holidays(years: tuple[int, int]) -> list[date]:
    """DC public holiday dates (observed ones included), from the warehouse's calendar code."""
    from etl.reference.calendar import dc_holidays

    return sorted(dc_holidays(range(years[0], years[1] + 1)))


def _codes(column: pl.Expr, levels: list[str]) -> pl.Expr:
    # An Enum cast: a third of the cost of a mapping, which counts for a single request.
    return column.cast(pl.String).cast(_enum(tuple(levels)), strict=False).to_physical()


@lru_cache(maxsize=16)
def _enum(levels: tuple[str, ...]) -> pl.Enum:
    return pl.Enum(levels)


def feature_matrix(
    frame: pl.DataFrame, levels: dict[str, list[str]], features: Sequence[str] = FEATURES
) -> np.ndarray:
    """The model input: `features` as float64 columns, categories as codes into `levels`
    (a level the model never saw becomes NaN, which LightGBM treats as missing)."""
    # One select: a request of one trip pays polars' fixed cost per call, not per column.
    columns = [
        _codes(pl.col(name), levels[name]) if name in CATEGORICAL else pl.col(name)
        for name in features
    ]
    matrix = frame.select(column.cast(pl.Float64).fill_null(np.nan) for column in columns)
    return matrix.to_numpy(order="c")

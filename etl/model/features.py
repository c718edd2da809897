"""The model's features: one SQL query, used to train and to predict.

`training_table.sql` reads `curated.trips` and `curated.dim_date`. Training runs it on the
warehouse (`for_training` true: only the trips fit to learn from). Prediction runs the very same
query on an in-memory database whose `curated.trips` holds one row, the request, and whose
`curated.dim_date` is built by the code that builds the warehouse's calendar; so a request
gets exactly the features the model learned from, computed by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl

from etl.model import ModelError
from etl.paths import QUERIES_DIR
from etl.publish.warehouse import WarehouseError, connect, table_exists

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
TARGETS = ("duration_s", "fare_usd")


def trip_features(con: duckdb.DuckDBPyConnection, for_training: bool) -> pl.DataFrame:
    """The features (and targets) of the trips in `con`'s curated.trips: the one definition."""
    try:
        return con.sql(TRAINING_SQL.read_text(), params={"for_training": for_training}).pl()
    except duckdb.Error as exc:
        raise ModelError(f"training table: {str(exc).strip().splitlines()[0]}") from None


def training_table(warehouse: Path) -> pl.DataFrame:
    """The clean training table, read from the curated warehouse (read-only)."""
    try:
        con = connect(warehouse, read_only=True)
    except WarehouseError as exc:
        raise ModelError(str(exc)) from None
    try:
        for table in ("curated.trips", "curated.dim_date"):
            with con.cursor() as cursor:  # a cursor, so that no result stays open on `con`
                found = table_exists(cursor, table)
            if not found:
                raise ModelError(f"{warehouse}: no {table} yet (run `etl run` first)")
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
    """The feature row of one request, by the training query on an in-memory warehouse."""
    from etl.integrate.calendar import build_dim_date

    local_day = request.pickup_at.astimezone(DC_TZ).date()
    calendar = build_dim_date(local_day - timedelta(days=1), local_day + timedelta(days=1))
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA curated")
        con.execute(
            "CREATE TABLE curated.trips AS SELECT 'request' AS trip_id, "
            "$source AS source, $time_precision AS time_precision, "
            "$pickup_at::TIMESTAMPTZ AS pickup_at, "
            "$pickup_lat::DOUBLE AS pickup_lat, $pickup_lon::DOUBLE AS pickup_lon, "
            "$dropoff_lat::DOUBLE AS dropoff_lat, $dropoff_lon::DOUBLE AS dropoff_lon, "
            "NULL::BOOLEAN AS airport, []::VARCHAR[] AS flags, NULL::DOUBLE AS distance_miles, "
            "NULL::DOUBLE AS duration_s, NULL::DOUBLE AS fare_usd",
            {
                "source": request.source,
                "time_precision": request.time_precision,
                "pickup_at": request.pickup_at,
                "pickup_lat": request.pickup_lat,
                "pickup_lon": request.pickup_lon,
                "dropoff_lat": request.dropoff_lat,
                "dropoff_lon": request.dropoff_lon,
            },
        )
        con.register("_calendar", calendar)
        con.execute("CREATE TABLE curated.dim_date AS SELECT * FROM _calendar")
        return trip_features(con, for_training=False)
    finally:
        con.close()


def feature_matrix(frame: pl.DataFrame, levels: dict[str, list[str]]) -> np.ndarray:
    """The model input: FEATURES as float64 columns, categories as codes into `levels`
    (a level the model never saw becomes NaN, which LightGBM treats as missing)."""
    columns = []
    for name in FEATURES:
        column = frame[name]
        if name in CATEGORICAL:
            codes = {level: float(i) for i, level in enumerate(levels[name])}
            column = column.replace_strict(codes, default=None, return_dtype=pl.Float64)
        columns.append(column.cast(pl.Float64).fill_null(np.nan).to_numpy())
    return np.column_stack(columns)

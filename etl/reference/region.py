"""The region the models know: where a requested point is an estimate, not a guess.

`WASHINGTON` is the box of the trip row checks (schemas/trip_rows.yaml, `*_outside_area`): no
trip outside it reaches training. `etl train` also saves the box its training trips actually
cover (both ends, with a small margin) in model.json; a request with a point outside it is still
estimated, with a warning, because the models only extrapolate there.

:func:`point_warning` checks one point (the single-trip `etl predict`); :func:`warnings_expr`
checks whole columns (batch prediction and `etl serve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import polars as pl

# Margin around the training trips' extent, degrees (about 1 km): a block-snapped DFHV point
# and the real one beside it are the same place.
MARGIN_DEG = 0.01


@dataclass(frozen=True)
class Region:
    """A latitude/longitude box, degrees WGS84, bounds included."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.lat_min <= lat <= self.lat_max and self.lon_min <= lon <= self.lon_max

    def describe(self) -> str:
        return (
            f"latitude {self.lat_min:g}..{self.lat_max:g}, "
            f"longitude {self.lon_min:g}..{self.lon_max:g}"
        )

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in self.__dict__.items()}


WASHINGTON = Region(38.3, 39.5, -78.0, -76.3)


def training_region(trips: pl.DataFrame) -> Region:
    """The box the training trips cover, both ends, widened by MARGIN_DEG."""
    lat = pl.concat([trips["pickup_lat"], trips["dropoff_lat"]])
    lon = pl.concat([trips["pickup_lon"], trips["dropoff_lon"]])
    return Region(
        lat.min() - MARGIN_DEG,
        lat.max() + MARGIN_DEG,
        lon.min() - MARGIN_DEG,
        lon.max() + MARGIN_DEG,
    )


def models_region(meta: dict[str, Any]) -> Region:
    """The region saved with the models; WASHINGTON for models trained before it was saved."""
    saved = meta.get("region")
    return Region(**saved) if saved else WASHINGTON


def point_warning(
    lat: float, lon: float, region: Region = WASHINGTON, what: str = "point"
) -> str | None:
    """None when (lat, lon) is inside `region`, else one line saying so (and whether the two
    look swapped)."""
    if region.contains(lat, lon):
        return None
    if region.contains(lon, lat):
        return f"{what} {lat},{lon}: latitude and longitude swapped? give LAT,LON"
    return f"{what} {lat},{lon} is outside the region the models know ({region.describe()})"


@lru_cache(maxsize=16)
def warnings_expr(region: Region) -> pl.Expr:
    """Per row: null when both points are inside `region`, else which end is outside (the
    estimate is extrapolated there). Needs the four coordinate columns as floats."""
    messages = []
    for end in ("pickup", "dropoff"):
        lat, lon = pl.col(f"{end}_lat"), pl.col(f"{end}_lon")
        inside = lat.is_between(region.lat_min, region.lat_max) & lon.is_between(
            region.lon_min, region.lon_max
        )
        swapped = lon.is_between(region.lat_min, region.lat_max) & lat.is_between(
            region.lon_min, region.lon_max
        )
        messages.append(
            pl.when(inside)
            .then(None)
            .when(swapped)
            .then(pl.lit(f"{end}: latitude and longitude swapped?"))
            .otherwise(pl.lit(f"{end} outside the region the models know: extrapolated"))
        )
    return pl.concat_str(messages, separator="; ", ignore_nulls=True).replace("", None)

"""`etl predict`: the duration and fare of one trip (`--from --to`) or of a file of trips
(`--in --out`, :mod:`etl.ml.batch`), from the models `etl train` saved."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from etl.errors import MlModelError
from etl.ml import baseline
from etl.ml.estimate import estimate_features, load_models
from etl.ml.features import DC_TZ, TripRequest, request_features
from etl.reference.region import WASHINGTON, models_region, point_warning

EXAMPLE = "38.8977,-77.0365"


def parse_point(text: str, option: str = "point") -> tuple[float, float]:
    """`LAT,LON` in decimal degrees, inside the Washington region (a single trip outside it is
    refused; batch and service requests get a warning instead)."""
    parts = text.split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise MlModelError(f"{option} {text!r}: expected LAT,LON, e.g. {EXAMPLE}") from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise MlModelError(f"{option} {text!r}: expected LAT,LON, e.g. {EXAMPLE}")
    if point_warning(lat, lon) is not None:
        if WASHINGTON.contains(lon, lat):
            raise MlModelError(f"{option} {text!r}: latitude and longitude swapped? give LAT,LON")
        raise MlModelError(
            f"{option} {text!r}: outside the Washington region the models know "
            f"({WASHINGTON.describe()})"
        )
    return lat, lon


def parse_time(text: str | None) -> datetime:
    """An ISO 8601 date and time; without an offset it is DC local time. None: now."""
    if text is None:
        return datetime.now(DC_TZ)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MlModelError(
            f"--at {text!r}: expected an ISO date and time, e.g. 2024-05-14T08:30 (DC time) "
            "or 2024-05-14T12:30Z"
        ) from None
    return when.replace(tzinfo=DC_TZ) if when.tzinfo is None else when


def predict(
    models: Path,
    origin: tuple[float, float],
    destination: tuple[float, float],
    at: datetime,
    source: str | None = None,
) -> dict[str, Any]:
    """Estimated duration (minutes) and fare (USD) of a trip, their 80% intervals and the naive
    baseline's; `warning` says when a point is outside the area the training trips covered."""
    loaded = load_models(models)
    meta = loaded.meta
    source = source or meta["default_source"]
    if source not in meta["levels"]["source"]:
        known = ", ".join(meta["levels"]["source"])
        raise MlModelError(f"--source {source!r}: the models know {known}")
    request = TripRequest(*origin, *destination, at, source, meta["source_time_precision"][source])
    frame = request_features(request)
    answer = {name: column[0] for name, column in estimate_features(loaded, frame).items()}
    region = models_region(meta)
    warnings = [
        point_warning(*point, region, end) for end, point in (("from", origin), ("to", destination))
    ]
    row = frame.row(0, named=True)
    return {
        "from": list(origin),
        "to": list(destination),
        "at": at.astimezone(DC_TZ).isoformat(),
        "source": source,
        "straight_miles": round(row["straight_miles"], 3),
        "duration_min": round(answer["duration_s"] / 60, 1),
        "fare_usd": round(answer["fare_usd"], 2),
        "interval_80": {
            "duration_min": [round(answer[f"duration_s_{p}"] / 60, 1) for p in ("p10", "p90")],
            "fare_usd": [answer["fare_usd_p10"], answer["fare_usd_p90"]],
        },
        "warning": "; ".join(w for w in warnings if w) or None,
        "models_version": loaded.version,
        "baseline": {
            "duration_min": round(
                float(baseline.duration_s(frame, meta["baseline_speed_mph_by_hour"])[0]) / 60, 1
            ),
            "fare_usd": round(float(baseline.fare_usd(frame)[0]), 2),
        },
        "features": {name: row[name] for name in meta["features"]},
    }

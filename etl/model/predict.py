"""`etl predict`: the duration and fare of one trip, from the models `etl train` saved."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from etl.model import ModelError, baseline
from etl.model.features import DC_TZ, TripRequest, feature_matrix, request_features
from etl.model.train import META_FILE, import_lightgbm

# The Washington region of the trip row checks (schemas/trip_rows.yaml, *_outside_area): the
# models know no trip outside it.
REGION_LAT = (38.3, 39.5)
REGION_LON = (-78.0, -76.3)
EXAMPLE = "38.8977,-77.0365"


def parse_point(text: str, option: str = "point") -> tuple[float, float]:
    """`LAT,LON` in decimal degrees, inside the Washington region."""
    parts = text.split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise ModelError(f"{option} {text!r}: expected LAT,LON, e.g. {EXAMPLE}") from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ModelError(f"{option} {text!r}: expected LAT,LON, e.g. {EXAMPLE}")
    if not (_in(lat, REGION_LAT) and _in(lon, REGION_LON)):
        if _in(lon, REGION_LAT) and _in(lat, REGION_LON):
            raise ModelError(f"{option} {text!r}: latitude and longitude swapped? give LAT,LON")
        raise ModelError(
            f"{option} {text!r}: outside the Washington region the models know "
            f"(latitude {REGION_LAT[0]}..{REGION_LAT[1]}, "
            f"longitude {REGION_LON[0]}..{REGION_LON[1]})"
        )
    return lat, lon


def parse_time(text: str | None) -> datetime:
    """An ISO 8601 date and time; without an offset it is DC local time. None: now."""
    if text is None:
        return datetime.now(DC_TZ)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ModelError(
            f"--at {text!r}: expected an ISO date and time, e.g. 2024-05-14T08:30 (DC time) "
            "or 2024-05-14T12:30Z"
        ) from None
    return when.replace(tzinfo=DC_TZ) if when.tzinfo is None else when


def load_meta(models: Path) -> dict[str, Any]:
    path = models / META_FILE
    if not path.is_file():
        raise ModelError(f"{models}: no models yet (run `etl train` first)")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from None


def predict(
    models: Path,
    origin: tuple[float, float],
    destination: tuple[float, float],
    at: datetime,
    source: str | None = None,
) -> dict[str, Any]:
    """Estimated duration (minutes) and fare (USD) of a trip, with the naive baseline's."""
    meta = load_meta(models)
    source = source or meta["default_source"]
    if source not in meta["levels"]["source"]:
        known = ", ".join(meta["levels"]["source"])
        raise ModelError(f"--source {source!r}: the models know {known}")
    lgb = import_lightgbm()
    request = TripRequest(*origin, *destination, at, source, meta["source_time_precision"][source])
    frame = request_features(request)
    matrix = feature_matrix(frame, meta["levels"])
    estimate = {}
    for target, spec in meta["models"].items():
        path = models / spec["file"]
        if not path.is_file():
            raise ModelError(f"{path}: missing (run `etl train` again)")
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, OSError) as exc:
            raise ModelError(f"{path}: cannot load the model: {exc}") from None
        estimate[target] = float(np.exp(booster.predict(matrix)[0]))
    row = frame.row(0, named=True)
    return {
        "from": list(origin),
        "to": list(destination),
        "at": at.astimezone(DC_TZ).isoformat(),
        "source": source,
        "straight_miles": round(row["straight_miles"], 3),
        "duration_min": round(estimate["duration_s"] / 60, 1),
        "fare_usd": round(estimate["fare_usd"], 2),
        "baseline": {
            "duration_min": round(
                float(baseline.duration_s(frame, meta["baseline_speed_mph_by_hour"])[0]) / 60, 1
            ),
            "fare_usd": round(float(baseline.fare_usd(frame)[0]), 2),
        },
        "features": {name: row[name] for name in meta["features"]},
    }


def _in(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]

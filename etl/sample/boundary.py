"""dc_reference/dc_boundary.geojson: the DC boundary polygon as a GeoJSON FeatureCollection."""

from __future__ import annotations

import json
from pathlib import Path

from etl.sample import files, geo


def boundary_geojson() -> dict:
    """One Feature, a Polygon in WGS84 (RFC 7946: lon, lat; exterior ring counterclockwise)."""
    ring = [[lon, lat] for lon, lat in geo.DC_BOUNDARY_LONLAT]
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "NAME": "District of Columbia",
                    "STATEFP": "11",
                    "SOURCE": "etl sample (approximation)",
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }


def write_boundary(root: Path) -> str:
    path = root / "dc_reference" / "dc_boundary.geojson"
    files.write_text(path, (json.dumps(boundary_geojson(), indent=1) + "\n").encode())
    return str(path.relative_to(root))

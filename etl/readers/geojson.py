"""The DC boundary source: a GeoJSON polygon kept as one WKT row in `staging.<source>`."""

from __future__ import annotations

import polars as pl
import shapely

from etl.readers.base import Reader
from etl.reference.boundary import load_boundary
from etl.sources.files import FileRef, SourceError


def read_boundary(ref: FileRef, run_id: str) -> tuple[shapely.Geometry, pl.DataFrame]:
    """The polygon and the staging row that stores it. Raises SourceError for a bad file."""
    try:
        polygon = load_boundary(ref.container)
    except (ValueError, shapely.errors.GEOSException) as exc:
        raise SourceError(str(exc).removeprefix(f"{ref.container}: ")) from None
    except RecursionError:  # `[[[[...]]]]` thousands deep, in the parser or in shapely
        raise SourceError("GeoJSON nested too deeply to read") from None
    row = pl.DataFrame(
        {
            "_run_id": [run_id],
            "_file": [ref.path],
            "_line": pl.Series([None], dtype=pl.Int64),
            "wkt": [shapely.to_wkt(polygon)],
            "vertices": [shapely.get_num_coordinates(polygon)],
            "bounds": [list(polygon.bounds)],
        }
    )
    return polygon, row


def prepared_boundary(wkts: list[str]) -> shapely.Geometry | None:
    """The polygon an earlier run stored (its WKT rows), prepared for point tests; None if
    there is none."""
    if not wkts:
        return None
    polygon = shapely.union_all([shapely.from_wkt(wkt) for wkt in wkts])
    shapely.prepare(polygon)
    return polygon


# A GeoJSON file is one JSON text, read whole by `read_boundary`; its rows are not mapped.
READER = Reader("geojson", "boundary", by_lines=False, typed=True, open=None)

"""Is a trip's pickup or drop-off inside Washington, DC? Vectorised point-in-polygon.

The DC boundary comes from DC's open data as GeoJSON (``dc_reference/dc_boundary.geojson``,
a Polygon or MultiPolygon in WGS84 longitude/latitude). DuckDB's spatial extension cannot be
installed here, so the test runs in shapely, which wraps GEOS:

* :func:`load_boundary` reads and validates the file once and returns one polygonal geometry;
* :func:`points_in_polygon` tests whole NumPy arrays of coordinates in one call
  (``shapely.contains_xy`` on a *prepared* geometry: GEOS builds a spatial index of the
  polygon's edges once, then each point costs about log(edges) instead of a scan of every
  edge; a million points take tens of milliseconds);
* :func:`add_in_dc_columns` adds ``pickup_in_dc`` / ``dropoff_in_dc`` to a polars DataFrame.

Conventions worth knowing:

* GeoJSON puts **longitude first** (x, y) = (lon, lat). The functions here take ``lat`` and
  ``lon`` by name, so the order is only a concern inside this module.
* "Inside" means strictly inside (``contains``): a point exactly on the border is outside.
  Trip coordinates are GPS fixes or block centroids, never exactly on the border line, so this
  choice does not change real results; it is stated so nobody has to guess.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import shapely
from shapely.geometry import shape

log = logging.getLogger(__name__)

_POLYGONAL = ("Polygon", "MultiPolygon")
# GeoJSON (RFC 7946) is always WGS84 lon/lat; older files may still carry a "crs" member.
# These names all mean WGS84 lon/lat; anything else (a projected CRS) is rejected.
_WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:epsg::4326",
    "epsg:4326",
    "crs84",
}


def load_boundary(path: Path | str) -> shapely.Geometry:
    """Read a boundary polygon from a GeoJSON file and return it prepared for fast tests.

    Accepted shapes of the file: a ``FeatureCollection`` (all its features' geometries are
    unioned, so a boundary split into several features works), a single ``Feature``, or a
    bare geometry; the geometry must be a ``Polygon`` or ``MultiPolygon`` (a
    ``GeometryCollection`` of those is accepted too) in WGS84 longitude/latitude.

    An invalid polygon (a self-intersecting ring, as hand-edited or simplified boundaries
    sometimes have) is repaired with ``shapely.make_valid`` and a warning is logged, because
    refusing a nightly load over a bow-tie in the Potomac would help no one; a file that is
    not polygonal at all is an error.

    Raises:
        ValueError: the file is missing, is not JSON, is not GeoJSON, holds no polygon, holds a
            non-polygonal geometry, declares a non-WGS84 CRS, or has coordinates outside
            longitude [-180, 180] / latitude [-90, 90] (typically a projected file). The
            message names the file and what was wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read boundary file: {exc}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc

    geometry = _polygonal(obj, path)
    if geometry.is_empty:
        raise ValueError(f"{path}: the boundary polygon is empty")

    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ValueError(
            f"{path}: coordinates outside WGS84 longitude/latitude "
            f"(bounds {minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}); "
            "is the file in a projected CRS? GeoJSON must be lon/lat in degrees"
        )

    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        repaired = _keep_polygonal(shapely.make_valid(geometry))
        if repaired.is_empty:
            raise ValueError(f"{path}: invalid boundary polygon ({reason}) that cannot be repaired")
        log.warning("%s: invalid boundary polygon (%s); repaired with make_valid", path, reason)
        geometry = repaired

    shapely.prepare(geometry)
    return geometry


def _polygonal(obj: Any, path: Path) -> shapely.Geometry:
    """Turn a parsed GeoJSON object into one Polygon/MultiPolygon, or raise ValueError."""
    if not isinstance(obj, dict) or "type" not in obj:
        raise ValueError(f"{path}: not a GeoJSON object (expected a JSON object with a 'type')")
    _check_crs(obj, path)
    kind = obj["type"]

    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError(f"{path}: FeatureCollection has no features")
        parts = [_polygonal(feature, path) for feature in features]
        # One part is the common case; union only when the boundary is split into features.
        return parts[0] if len(parts) == 1 else shapely.union_all(parts)

    if kind == "Feature":
        geometry = obj.get("geometry")
        if geometry is None:
            raise ValueError(f"{path}: Feature has a null geometry")
        return _polygonal(geometry, path)

    if kind == "GeometryCollection":
        members = obj.get("geometries") or []
        if not members:
            raise ValueError(f"{path}: GeometryCollection has no geometries")
        return shapely.union_all([_polygonal(member, path) for member in members])

    if kind not in _POLYGONAL:
        raise ValueError(f"{path}: geometry type {kind!r} is not a Polygon or MultiPolygon")
    try:
        return shape(obj)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # shapely's own messages ("A linearring requires at least 4 coordinates") are clear
        # but do not say which file; add it.
        raise ValueError(f"{path}: malformed {kind} coordinates: {exc}") from exc


def _check_crs(obj: dict[str, Any], path: Path) -> None:
    crs = obj.get("crs")
    if crs is None:
        return
    name = str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else ""
    if name.lower() not in _WGS84_CRS_NAMES:
        raise ValueError(f"{path}: CRS {name or crs!r} is not WGS84 longitude/latitude")


def _keep_polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """make_valid may return a GeometryCollection with stray lines/points: keep the areas."""
    if geometry.geom_type in _POLYGONAL:
        return geometry
    parts: Iterable[shapely.Geometry] = getattr(geometry, "geoms", [])
    polygons = [part for part in parts if part.geom_type in _POLYGONAL]
    return shapely.union_all(polygons) if polygons else shapely.Polygon()


def points_in_polygon(
    lat: npt.ArrayLike, lon: npt.ArrayLike, polygon: shapely.Geometry
) -> npt.NDArray[np.bool_]:
    """Which points lie strictly inside ``polygon``? One vectorised call, no Python loop.

    Args:
        lat: latitudes in degrees (any array-like; ``None`` becomes NaN).
        lon: longitudes in degrees, same shape as ``lat``.
        polygon: a Polygon or MultiPolygon in lon/lat, e.g. from :func:`load_boundary`.

    Returns:
        A boolean array of the same shape. A point with a NaN (or missing, or infinite)
        coordinate is ``False``: it is not known to be inside. Callers that need to tell
        "unknown" from "outside" keep their own null mask (as :func:`add_in_dc_columns` does).
    """
    lat_arr = np.asarray(lat, dtype=np.float64)
    lon_arr = np.asarray(lon, dtype=np.float64)
    if lat_arr.shape != lon_arr.shape:
        raise ValueError(f"lat and lon differ in shape: {lat_arr.shape} vs {lon_arr.shape}")
    # A prepared geometry carries an index of its edges, so each point costs ~log(edges)
    # instead of a scan of every edge. (shapely also prepares a temporary copy inside one
    # contains_xy call when given an unprepared polygon; preparing the object itself means the
    # index is built once for all the batches of a run, not once per call.) prepare() mutates
    # the geometry in place and is a no-op when already done.
    if not shapely.is_prepared(polygon):
        shapely.prepare(polygon)
    # contains_xy takes x then y, i.e. lon then lat. GEOS answers False for NaN coordinates.
    return np.asarray(shapely.contains_xy(polygon, lon_arr, lat_arr), dtype=bool)


def add_in_dc_columns(
    df: pl.DataFrame,
    polygon: shapely.Geometry,
    ends: Sequence[str] = ("pickup", "dropoff"),
) -> pl.DataFrame:
    """Add ``<end>_in_dc`` booleans (``pickup_in_dc``, ``dropoff_in_dc``) to a trips frame.

    For each ``end`` the frame must have ``<end>_lat`` and ``<end>_lon``. The new column is
    True inside ``polygon``, False outside (or for NaN coordinates), and **null when either
    coordinate is null**: a missing location is unknown, and reporting it as "outside DC" would
    bias any downstream "share of trips in DC" statistic.
    """
    columns = []
    for end in ends:
        lat_col, lon_col = f"{end}_lat", f"{end}_lon"
        missing = [c for c in (lat_col, lon_col) if c not in df.columns]
        if missing:
            raise ValueError(f"add_in_dc_columns: frame has no column(s) {missing}")
        inside = _inside(df.select(lat=pl.col(lat_col), lon=pl.col(lon_col)), polygon)
        columns.append(
            pl.when(pl.col(lat_col).is_null() | pl.col(lon_col).is_null())
            .then(pl.lit(None, dtype=pl.Boolean))
            .otherwise(pl.lit(inside))
            .alias(f"{end}_in_dc")
        )
    return df.with_columns(columns)


def _inside(points: pl.DataFrame, polygon: shapely.Geometry) -> pl.Series:
    """``points_in_polygon`` for a frame of ``lat``, ``lon``: a lookup in the polygon's grid
    (:func:`_grid`), with the exact test only for the points in cells the border crosses.

    Most trips start and end far from the border, so a cell's answer is the answer: two
    arithmetic columns and a gather per row instead of a GEOS call (or a hash of every point).
    """
    points = points.cast(pl.Float64)
    grid = _grid(polygon)
    cells = points.select(grid.cell(pl.col("lon"), pl.col("lat"))).to_series()
    inside = cells == _INSIDE
    on_edge = cells == _EDGE
    if on_edge.any():
        exact = _exactly_inside(points.filter(on_edge), polygon)
        inside = inside.scatter(on_edge.arg_true(), exact)
    return inside


def _exactly_inside(points: pl.DataFrame, polygon: shapely.Geometry) -> pl.Series:
    """``points_in_polygon`` for a frame of ``lat``, ``lon``, testing each distinct point once.

    DFHV snaps every point to its block, so many rows share a point: testing the distinct ones
    and joining back costs less than testing every row. Exact GPS points (the company silos)
    are nearly all distinct and are tested directly.
    """
    distinct = points.unique()
    if distinct.height * 2 > points.height:
        distinct = points
    # to_numpy turns nulls into NaN, which the test maps to False; the caller restores nulls.
    tested = distinct.with_columns(
        inside=points_in_polygon(distinct["lat"].to_numpy(), distinct["lon"].to_numpy(), polygon)
    )
    if distinct is points:
        return tested["inside"]
    joined = points.join(
        tested, on=["lat", "lon"], how="left", nulls_equal=True, maintain_order="left"
    )
    return joined["inside"].fill_null(False)


# A grid cell's code: every point in it is outside, inside, or it must be tested exactly.
_OUTSIDE, _INSIDE, _EDGE = 0, 1, 2
GRID_CELLS = 512  # per side: ~2% of the cells are near DC's border


@dataclass(frozen=True)
class _Grid:
    """The polygon's bounding box cut into GRID_CELLS x GRID_CELLS cells, each coded."""

    x0: float
    y0: float
    dx: float
    dy: float
    codes: pl.Series  # UInt8, row-major: cell (ix, iy) at iy * GRID_CELLS + ix

    def cell(self, x: pl.Expr, y: pl.Expr) -> pl.Expr:
        """A point's cell code; outside the box (or NaN, or null) is `_OUTSIDE`."""
        last = GRID_CELLS - 1
        in_box = (x >= self.x0) & (x <= self.x0 + self.dx * GRID_CELLS)
        in_box &= (y >= self.y0) & (y <= self.y0 + self.dy * GRID_CELLS)
        # The box's far edge belongs to the last cell, whose tested box includes it.
        ix = ((x - self.x0) / self.dx).floor().clip(0, last).cast(pl.Int64, strict=False)
        iy = ((y - self.y0) / self.dy).floor().clip(0, last).cast(pl.Int64, strict=False)
        index = pl.when(in_box).then(iy * GRID_CELLS + ix)
        return pl.lit(self.codes).gather(index).fill_null(_OUTSIDE)


@functools.lru_cache(maxsize=4)
def _grid(polygon: shapely.Geometry) -> _Grid:
    """Code every cell once per boundary (~0.05 s for DC's).

    The border, with points added every half cell, marks the cells its points fall in and
    their eight neighbours `_EDGE`: a stretch of border between two points crosses only cells
    next to theirs. A cell the border does not touch lies wholly inside or wholly outside, so
    its centre decides it. The neighbours also cover a point that rounds into the cell next
    to the one it lies in.
    """
    x0, y0, x1, y1 = polygon.bounds
    # A degenerate (zero-width) box still gets cells of a positive size.
    dx, dy = max(x1 - x0, 1e-9) / GRID_CELLS, max(y1 - y0, 1e-9) / GRID_CELLS
    # In cell units (a cell is 1 x 1), so that half a cell is half a cell along either axis.
    in_cells = shapely.transform(polygon.boundary, lambda xy: (xy - (x0, y0)) / (dx, dy))
    border = shapely.get_coordinates(shapely.segmentize(in_cells, 0.5))
    ix, iy = np.clip(np.floor(border).astype(np.int64), 0, GRID_CELLS - 1).T
    edge = np.zeros((GRID_CELLS + 2, GRID_CELLS + 2), dtype=bool)  # a margin for neighbours
    for shift_x, shift_y in itertools.product(range(3), range(3)):
        edge[iy + shift_y, ix + shift_x] = True
    centre_x, centre_y = np.meshgrid(
        x0 + (np.arange(GRID_CELLS) + 0.5) * dx, y0 + (np.arange(GRID_CELLS) + 0.5) * dy
    )
    inside = points_in_polygon(centre_y.ravel(), centre_x.ravel(), polygon)
    codes = np.where(edge[1:-1, 1:-1].ravel(), _EDGE, np.where(inside, _INSIDE, _OUTSIDE))
    return _Grid(x0, y0, dx, dy, pl.Series("code", codes, dtype=pl.UInt8))

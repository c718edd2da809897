"""Point in the DC polygon: loading GeoJSON boundaries and vectorised tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import shapely

from etl.reference.boundary import add_in_dc_columns, load_boundary, points_in_polygon

# A rough outline of the District in (lon, lat), GeoJSON order: the straight NW, NE and SE
# sides of the original ten-mile square, and the Potomac's Virginia shore on the SW side (the
# river belongs to DC, the shore to Virginia). Good to a few hundred metres: enough to put the
# landmarks below clearly on the right side, not for real data.
APPROX_DC_RING = [
    (-77.0410, 38.9955),  # northern tip (Silver Spring border)
    (-76.9094, 38.8929),  # eastern corner
    (-77.0390, 38.7916),  # southern tip, Jones Point
    (-77.0380, 38.8200),  # Potomac shore, Old Town Alexandria
    (-77.0400, 38.8550),  # Reagan airport (in Virginia, just west of the line)
    (-77.0450, 38.8700),  # 14th Street bridges
    (-77.0700, 38.9010),  # Key Bridge / Rosslyn
    (-77.1160, 38.9290),  # Chain Bridge
    (-77.1197, 38.9342),  # western corner
    (-77.0410, 38.9955),
]
INSIDE_DC = {  # name: (lat, lon)
    "White House": (38.8977, -77.0365),
    "Capitol": (38.8899, -77.0091),
    "Union Station": (38.8973, -77.0063),
    "Anacostia": (38.8623, -76.9953),
    "Tenleytown": (38.9478, -77.0795),
}
OUTSIDE_DC = {
    "Arlington courthouse": (38.8904, -77.0842),
    "Pentagon": (38.8719, -77.0563),
    "Rosslyn": (38.8960, -77.0720),
    "Silver Spring": (38.9907, -77.0261),
    "Bethesda": (38.9847, -77.0947),
    "Old Town Alexandria": (38.8048, -77.0469),
}


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def polygon_geometry(ring: list[tuple[float, float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


@pytest.fixture
def dc_boundary_file(tmp_path: Path) -> Path:
    """The approximate DC outline as DC's open data ships it: a one-feature collection."""
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"NAME": "Washington, DC (approximate test outline)"},
                "geometry": polygon_geometry(APPROX_DC_RING),
            }
        ],
    }
    return write_json(tmp_path / "dc_boundary.geojson", collection)


@pytest.fixture
def dc(dc_boundary_file: Path) -> shapely.Geometry:
    return load_boundary(dc_boundary_file)


UNIT_SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]


def square(x0: float, y0: float, size: float) -> list[tuple[float, float]]:
    return [(x0 + x * size, y0 + y * size) for x, y in UNIT_SQUARE]


# --- points_in_polygon -----------------------------------------------------------------------


def test_points_inside_and_outside_a_simple_polygon() -> None:
    poly = shapely.Polygon(square(0, 0, 10))
    lat = np.array([5.0, 5.0, 11.0, -0.1, 9.99])
    lon = np.array([5.0, 12.0, 5.0, 5.0, 0.01])
    assert points_in_polygon(lat, lon, poly).tolist() == [True, False, False, False, True]


def test_lat_and_lon_are_not_swapped() -> None:
    """A tall thin polygon: x (lon) in [0, 1], y (lat) in [0, 10]."""
    poly = shapely.Polygon([(0, 0), (1, 0), (1, 10), (0, 10)])
    assert points_in_polygon([5.0], [0.5], poly).tolist() == [True]  # lat 5, lon 0.5
    assert points_in_polygon([0.5], [5.0], poly).tolist() == [False]  # lat 0.5, lon 5


def test_multipolygon_and_its_hole() -> None:
    outer_with_hole = shapely.Polygon(square(0, 0, 10), holes=[square(4, 4, 2)])
    island = shapely.Polygon(square(20, 20, 5))
    multi = shapely.MultiPolygon([outer_with_hole, island])
    lat = np.array([1.0, 5.0, 22.0, 15.0])  # in part 1, in the hole, in part 2, between
    lon = np.array([1.0, 5.0, 22.0, 15.0])
    assert points_in_polygon(lat, lon, multi).tolist() == [True, False, True, False]


def test_nan_and_missing_coordinates_are_false() -> None:
    poly = shapely.Polygon(square(0, 0, 10))
    lat = np.array([5.0, np.nan, 5.0, np.nan, np.inf])
    lon = np.array([5.0, 5.0, np.nan, np.nan, 5.0])
    assert points_in_polygon(lat, lon, poly).tolist() == [True, False, False, False, False]
    # Python None in a list becomes NaN.
    assert points_in_polygon([None, 5.0], [5.0, 5.0], poly).tolist() == [False, True]


def test_empty_input_and_shape_mismatch() -> None:
    poly = shapely.Polygon(square(0, 0, 10))
    assert points_in_polygon(np.array([]), np.array([]), poly).shape == (0,)
    with pytest.raises(ValueError, match="differ in shape"):
        points_in_polygon([1.0, 2.0], [1.0], poly)


def test_landmarks_against_the_approximate_dc_outline(dc: shapely.Geometry) -> None:
    names = list(INSIDE_DC) + list(OUTSIDE_DC)
    points = np.array([*INSIDE_DC.values(), *OUTSIDE_DC.values()])
    inside = points_in_polygon(points[:, 0], points[:, 1], dc)
    got = dict(zip(names, inside.tolist(), strict=True))
    assert got == {name: name in INSIDE_DC for name in names}
    assert got["White House"] is True
    assert got["Arlington courthouse"] is False


def test_a_million_points_in_one_call(dc: shapely.Geometry) -> None:
    """How long it takes is bench/geo_bench.py's (a budget of 0.5 s), not a test's."""
    rng = np.random.default_rng(0)
    lat = rng.uniform(38.78, 39.00, 1_000_000)
    lon = rng.uniform(-77.13, -76.90, 1_000_000)
    inside = points_in_polygon(lat, lon, dc)
    assert inside.shape == (1_000_000,)
    # About half of the bounding box is DC: a sanity check that the test did real work.
    assert 0.3 < inside.mean() < 0.7


# --- load_boundary ---------------------------------------------------------------------------


def test_load_feature_collection_returns_a_prepared_polygon(dc_boundary_file: Path) -> None:
    boundary = load_boundary(dc_boundary_file)
    assert boundary.geom_type == "Polygon"
    assert shapely.is_prepared(boundary)


@pytest.mark.parametrize("wrap", ["geometry", "feature", "collection"])
def test_load_multipolygon_in_every_geojson_wrapping(tmp_path: Path, wrap: str) -> None:
    geometry: dict[str, Any] = {
        "type": "MultiPolygon",
        "coordinates": [[[list(p) for p in square(0, 0, 1)]], [[list(p) for p in square(5, 5, 1)]]],
    }
    obj: dict[str, Any] = geometry
    if wrap in ("feature", "collection"):
        obj = {"type": "Feature", "properties": {}, "geometry": geometry}
    if wrap == "collection":
        obj = {"type": "FeatureCollection", "features": [obj]}
    boundary = load_boundary(write_json(tmp_path / "b.geojson", obj))
    assert boundary.geom_type == "MultiPolygon"
    assert points_in_polygon([0.5, 5.5, 3.0], [0.5, 5.5, 3.0], boundary).tolist() == [
        True,
        True,
        False,
    ]


def test_a_boundary_split_into_features_is_unioned(tmp_path: Path) -> None:
    features = [
        {"type": "Feature", "properties": {}, "geometry": polygon_geometry(square(0, 0, 1))},
        {"type": "Feature", "properties": {}, "geometry": polygon_geometry(square(1, 0, 1))},
    ]
    path = write_json(tmp_path / "b.geojson", {"type": "FeatureCollection", "features": features})
    boundary = load_boundary(path)
    assert boundary.area == pytest.approx(2.0)
    assert points_in_polygon([0.5], [1.0], boundary).tolist() == [True]  # on the shared edge


def test_a_self_intersecting_polygon_is_repaired(tmp_path: Path) -> None:
    bow_tie = [(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)]
    boundary = load_boundary(write_json(tmp_path / "b.geojson", polygon_geometry(bow_tie)))
    assert boundary.is_valid
    assert points_in_polygon([1.0, 1.0], [0.3, 1.7], boundary).tolist() == [True, True]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a GeoJSON object"),
        ('{"type": "FeatureCollection", "features": []}', "has no features"),
        ('{"type": "Feature", "properties": {}, "geometry": null}', "null geometry"),
        ('{"type": "Point", "coordinates": [-77.0, 38.9]}', "'Point' is not a Polygon"),
        ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}', "malformed Polygon"),
        (
            json.dumps(polygon_geometry(square(325000, 4300000, 1000))),
            "outside WGS84",
        ),
        (
            json.dumps(
                {
                    **polygon_geometry(square(0, 0, 1)),
                    "crs": {"type": "name", "properties": {"name": "EPSG:26985"}},
                }
            ),
            "not WGS84",
        ),
    ],
)
def test_bad_input_raises_a_clear_value_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as excinfo:
        load_boundary(path)
    assert str(path) in str(excinfo.value)


def test_missing_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_boundary(tmp_path / "nope.geojson")


def test_legacy_wgs84_crs_member_is_accepted(tmp_path: Path) -> None:
    obj = {
        **polygon_geometry(APPROX_DC_RING),
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    }
    assert load_boundary(write_json(tmp_path / "b.geojson", obj)).geom_type == "Polygon"


# --- polars ------------------------------------------------------------------------------------


def test_add_in_dc_columns_to_a_trips_frame(dc: shapely.Geometry) -> None:
    white_house, arlington = INSIDE_DC["White House"], OUTSIDE_DC["Arlington courthouse"]
    trips = pl.DataFrame(
        {
            "trip_id": [1, 2, 3, 4],
            "pickup_lat": [white_house[0], arlington[0], None, float("nan")],
            "pickup_lon": [white_house[1], arlington[1], -77.0, -77.0],
            "dropoff_lat": [arlington[0], white_house[0], white_house[0], white_house[0]],
            "dropoff_lon": [arlington[1], white_house[1], white_house[1], None],
        }
    )
    out = add_in_dc_columns(trips, dc)
    assert out.columns == [*trips.columns, "pickup_in_dc", "dropoff_in_dc"]
    assert out.schema["pickup_in_dc"] == pl.Boolean
    # Null coordinate => null (unknown); NaN coordinate => False (not known to be inside).
    assert out["pickup_in_dc"].to_list() == [True, False, None, False]
    assert out["dropoff_in_dc"].to_list() == [False, True, True, None]


def test_add_in_dc_columns_names_missing_columns(dc: shapely.Geometry) -> None:
    with pytest.raises(ValueError, match="dropoff_lat"):
        add_in_dc_columns(pl.DataFrame({"pickup_lat": [1.0], "pickup_lon": [1.0]}), dc)


def _awkward_points(polygon: shapely.Geometry, seed: int) -> pl.DataFrame:
    """Points around and inside `polygon`, with those a grid gets wrong first: its vertices,
    points on its edges, on the bounding box's sides and far corner, NaN and infinite ones."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = polygon.bounds
    lon = rng.uniform(x0 - 0.1, x1 + 0.1, 20_000)
    lat = rng.uniform(y0 - 0.1, y1 + 0.1, 20_000)
    edges = shapely.get_coordinates(shapely.segmentize(polygon.boundary, 0.01))
    inner = polygon.representative_point()
    special = np.array(
        [(x0, y0), (x1, y1), (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y0), (inner.x, inner.y)]
    )
    odd = np.array([(np.nan, y0), (x0, np.nan), (np.inf, y0), (x0, -np.inf)])
    points = np.vstack([np.column_stack([lon, lat]), edges, special, odd])
    return pl.DataFrame({"pickup_lon": points[:, 0], "pickup_lat": points[:, 1]})


@pytest.mark.parametrize(
    "polygon",
    [
        shapely.Polygon(APPROX_DC_RING),
        shapely.MultiPolygon(
            [
                shapely.Polygon(square(0, 0, 1), holes=[square(0.4, 0.4, 0.2)]),
                shapely.Polygon(square(1.5, 1.5, 0.3)),  # an island beyond the first square
            ]
        ),
        shapely.Polygon([(0, 0), (1e-6, 0), (1e-6, 1), (0, 1)]),  # thinner than a cell
    ],
    ids=["dc", "hole-and-island", "sliver"],
)
def test_the_grid_answers_as_the_exact_test(polygon: shapely.Geometry) -> None:
    """add_in_dc_columns looks most points up in a grid of the polygon's cells: every answer
    must be the exact test's (strictly inside; on the border is outside)."""
    points = _awkward_points(polygon, seed=7)
    out = add_in_dc_columns(points, polygon, ends=("pickup",))
    exact = points_in_polygon(points["pickup_lat"], points["pickup_lon"], polygon)
    assert out["pickup_in_dc"].to_list() == exact.tolist()
    assert out["pickup_in_dc"].sum() > 0  # the points were not all outside


def test_only_points_near_the_border_are_tested_exactly(
    dc: shapely.Geometry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact test costs a GEOS call per distinct point: a trip far from the border is
    answered by its grid cell."""
    points = _awkward_points(dc, seed=8)
    add_in_dc_columns(points, dc, ends=("pickup",))  # the boundary's grid, built once
    tested = []

    def counted(lat: Any, lon: Any, polygon: shapely.Geometry) -> np.ndarray:
        tested.append(len(lat))
        return points_in_polygon(lat, lon, polygon)

    monkeypatch.setattr("etl.reference.boundary.points_in_polygon", counted)
    out = add_in_dc_columns(points, dc, ends=("pickup",))
    assert (
        out["pickup_in_dc"].to_list()
        == points_in_polygon(points["pickup_lat"], points["pickup_lon"], dc).tolist()
    )
    assert 0 < sum(tested) < points.height / 10

"""DC geography for the sample data: boundary, hotspots, airports and block snapping.

Everything here is synthetic but shaped like the real city: the boundary follows the diamond and
the Virginia shore of the Potomac, the hotspots are real neighbourhoods, and the block grid is
laid out from the Capitol the way DC's street grid is (lettered streets east-west, numbered
streets north-south, four quadrants), so block names read like the Master Address Repository's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl
import shapely

from etl.sample import text

EARTH_RADIUS_M = 6_371_008.8
METERS_PER_MILE = 1_609.344

# Exterior ring, (lon, lat), counterclockwise as RFC 7946 asks: the north corner of the diamond,
# down its north-west side to the Potomac at Little Falls, along the Virginia shore to Jones
# Point, up the south-east side to the east corner and back along the north-east side.
DC_BOUNDARY_LONLAT: tuple[tuple[float, float], ...] = (
    (-77.04102, 38.99591),  # north corner (Silver Spring)
    (-77.08210, 38.96360),  # Western Ave NW / Chevy Chase
    (-77.11970, 38.93410),  # Potomac at Little Falls
    (-77.11600, 38.92900),  # Chain Bridge
    (-77.10500, 38.92050),
    (-77.09300, 38.91250),
    (-77.08000, 38.90550),  # Three Sisters
    (-77.07100, 38.90150),  # Key Bridge, Virginia end
    (-77.06800, 38.89900),  # Theodore Roosevelt Island
    (-77.06400, 38.89200),
    (-77.05800, 38.88500),  # Memorial Bridge, Virginia end
    (-77.05000, 38.87800),
    (-77.04400, 38.87200),  # 14th St bridges, Virginia end
    (-77.04200, 38.86400),
    (-77.03800, 38.85600),  # Reagan National stays on the Virginia side
    (-77.03700, 38.84600),
    (-77.03900, 38.83500),
    (-77.04000, 38.82000),  # Old Town Alexandria waterfront
    (-77.04000, 38.80500),
    (-77.04010, 38.79040),  # Jones Point (south corner)
    (-76.97500, 38.84150),  # south-east side, Oxon Hill / Congress Heights
    (-76.90940, 38.89293),  # east corner
    (-76.97500, 38.94450),  # north-east side, Chillum / Fort Totten
    (-77.04102, 38.99591),  # closes the ring
)


@dataclass(frozen=True)
class Hotspot:
    name: str
    lat: float
    lon: float
    weight: float  # share of trip ends drawn around this point
    sigma_m: float  # spread of the cloud around it
    zip_code: str  # the zip its neighbourhood is in (used for ORIGINZIP/DESTINATIONZIP)


HOTSPOTS: tuple[Hotspot, ...] = (
    Hotspot("Downtown / K St", 38.9025, -77.0390, 0.13, 450, "20006"),
    Hotspot("Metro Center / Chinatown", 38.8990, -77.0230, 0.09, 400, "20001"),
    Hotspot("Union Station", 38.8973, -77.0063, 0.08, 300, "20002"),
    Hotspot("Capitol Hill", 38.8860, -76.9960, 0.06, 500, "20003"),
    Hotspot("Georgetown", 38.9050, -77.0630, 0.07, 400, "20007"),
    Hotspot("Navy Yard", 38.8765, -77.0030, 0.05, 350, "20003"),
    Hotspot("U Street", 38.9170, -77.0290, 0.05, 350, "20009"),
    Hotspot("Dupont Circle", 38.9096, -77.0434, 0.07, 350, "20036"),
    Hotspot("Adams Morgan", 38.9215, -77.0425, 0.04, 350, "20009"),
    Hotspot("Foggy Bottom", 38.9000, -77.0500, 0.04, 350, "20037"),
    Hotspot("The Wharf / SW", 38.8790, -77.0230, 0.03, 400, "20024"),
    Hotspot("Logan Circle / Shaw", 38.9090, -77.0300, 0.04, 400, "20005"),
    Hotspot("Columbia Heights", 38.9285, -77.0325, 0.03, 450, "20010"),
    Hotspot("NoMa", 38.9070, -77.0030, 0.03, 400, "20002"),
    Hotspot("H St NE", 38.9000, -76.9890, 0.02, 450, "20002"),
    Hotspot("Tenleytown", 38.9480, -77.0800, 0.015, 600, "20016"),
    Hotspot("Woodley Park", 38.9250, -77.0520, 0.015, 500, "20008"),
    Hotspot("Brookland", 38.9330, -76.9940, 0.01, 600, "20017"),
    Hotspot("Petworth", 38.9410, -77.0240, 0.01, 600, "20011"),
    Hotspot("Anacostia", 38.8630, -76.9950, 0.01, 600, "20020"),
    Hotspot("Congress Heights", 38.8450, -76.9950, 0.005, 700, "20032"),
    Hotspot("Deanwood", 38.9050, -76.9400, 0.005, 800, "20019"),
    Hotspot("Friendship Heights", 38.9600, -77.0860, 0.01, 600, "20015"),
)

# Share of trip ends drawn uniformly over the city instead of around a hotspot.
BACKGROUND_WEIGHT = 0.12


@dataclass(frozen=True)
class Airport:
    code: str
    lat: float
    lon: float
    block_name: str
    city: str
    state: str
    zip_code: str
    weight: float  # share of airport trips going there


AIRPORTS: tuple[Airport, ...] = (
    Airport(
        "DCA",
        38.853100,
        -77.043900,
        "RONALD REAGAN WASHINGTON NATIONAL AIRPORT",
        "ARLINGTON",
        "VA",
        "22202",
        0.65,
    ),
    Airport(
        "IAD",
        38.953100,
        -77.456500,
        "WASHINGTON DULLES INTERNATIONAL AIRPORT",
        "DULLES",
        "VA",
        "20166",
        0.22,
    ),
    Airport(
        "BWI",
        39.177400,
        -76.668400,
        "BALTIMORE WASHINGTON INTERNATIONAL AIRPORT",
        "BALTIMORE",
        "MD",
        "21240",
        0.13,
    ),
)


@cache
def dc_polygon() -> shapely.Polygon:
    """The boundary as a prepared shapely polygon (x = lon, y = lat)."""
    poly = shapely.Polygon(DC_BOUNDARY_LONLAT)
    shapely.prepare(poly)
    return poly


def haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres, elementwise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def offset_m(
    lat: np.ndarray, lon: np.ndarray, dist_m: np.ndarray, bearing_rad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Move points by dist_m along a bearing (flat-earth: fine for the few km used here)."""
    dlat = dist_m * np.cos(bearing_rad) / EARTH_RADIUS_M
    dlon = dist_m * np.sin(bearing_rad) / (EARTH_RADIUS_M * np.cos(np.radians(lat)))
    return lat + np.degrees(dlat), lon + np.degrees(dlon)


def jitter_m(
    rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray, low_m: float, high_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Move each point by a distance drawn uniformly in [low_m, high_m), random direction."""
    n = len(lat)
    return offset_m(lat, lon, rng.uniform(low_m, high_m, n), rng.uniform(0, 2 * np.pi, n))


def inside_dc(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return shapely.contains_xy(dc_polygon(), lon, lat)


def _draw_mixture(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    weights = np.array([h.weight for h in HOTSPOTS] + [BACKGROUND_WEIGHT])
    comp = rng.choice(len(weights), size=n, p=weights / weights.sum())
    centre_lat = np.array([h.lat for h in HOTSPOTS] + [0.0])[comp]
    centre_lon = np.array([h.lon for h in HOTSPOTS] + [0.0])[comp]
    sigma = np.array([h.sigma_m for h in HOTSPOTS] + [0.0])[comp]
    # Gaussian cloud around the hotspot: distance ~ Rayleigh(sigma), uniform direction.
    lat, lon = offset_m(
        centre_lat,
        centre_lon,
        sigma * np.sqrt(-2 * np.log1p(-rng.random(n))),
        rng.uniform(0, 2 * np.pi, n),
    )
    background = comp == len(HOTSPOTS)
    min_lon, min_lat, max_lon, max_lat = dc_polygon().bounds
    lat[background] = rng.uniform(min_lat, max_lat, background.sum())
    lon[background] = rng.uniform(min_lon, max_lon, background.sum())
    return lat, lon


def sample_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n trip ends inside DC from the hotspot mixture (rejection sampling, vectorized)."""
    lat, lon = _draw_mixture(rng, n)
    todo = ~inside_dc(lat, lon)
    while todo.any():  # a few rounds at most: ~15% of the bounding box is outside DC
        lat[todo], lon[todo] = _draw_mixture(rng, int(todo.sum()))
        todo[todo] = ~inside_dc(lat[todo], lon[todo])
    return lat, lon


def sample_trip_ends(
    rng: np.random.Generator, n: int, min_m: float = 300.0
) -> tuple[np.ndarray, ...]:
    """Pickup and drop-off points, redrawing drop-offs closer than min_m to their pickup."""
    plat, plon = sample_points(rng, n)
    dlat, dlon = sample_points(rng, n)
    todo = haversine_m(plat, plon, dlat, dlon) < min_m
    while todo.any():
        dlat[todo], dlon[todo] = sample_points(rng, int(todo.sum()))
        todo[todo] = haversine_m(plat[todo], plon[todo], dlat[todo], dlon[todo]) < min_m
    return plat, plon, dlat, dlon


def nearest_hotspot(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index into HOTSPOTS of the nearest hotspot (its zip stands in for the point's zip)."""
    h_lat = np.array([h.lat for h in HOTSPOTS])
    h_lon = np.array([h.lon for h in HOTSPOTS])
    # Equirectangular distance is enough to rank neighbours a few km apart.
    dx = (lon[:, None] - h_lon[None, :]) * np.cos(np.radians(38.9))
    dy = lat[:, None] - h_lat[None, :]
    return np.argmin(dx * dx + dy * dy, axis=1)


def hotspot_zips() -> pl.Series:
    return pl.Series("zip", [h.zip_code for h in HOTSPOTS], dtype=pl.String)


# --- Block grid -----------------------------------------------------------------------------
# DC addresses run out from the Capitol: numbered streets every ~143 m east and west of the
# North/South Capitol St axis, lettered (then alphabetical two- and three-syllable, then floral)
# streets every ~141 m north and south of the East Capitol St / Mall axis. Each block is 100
# house numbers. A point is snapped to the block face it lies along (nearest street), whose
# centre is at most ~100 m away: well inside the MAR's 250 m snapping radius.
CAPITOL_LAT = 38.88980
CAPITOL_LON = -77.00900
GRID_DLAT = 0.00127
GRID_DLON = 0.00165
GRID_HALF = 90  # street/block indices run from -GRID_HALF to GRID_HALF
_GRID_N = 2 * GRID_HALF + 1

_LETTERS = list("ABCDEFGHIKLMNOPQRSTUVW")  # DC has no J, X, Y or Z street
# fmt: off
_TWO_SYLLABLE = ["ADAMS", "BRYANT", "CHANNING", "DOUGLAS", "EVARTS", "FRANKLIN", "GIRARD",
                 "HARVARD", "IRVING", "KENYON", "LAMONT", "MONROE", "NEWTON", "OTIS", "PARK",
                 "QUINCY", "RANDOLPH", "SHEPHERD", "TAYLOR", "UPSHUR", "VARNUM", "WEBSTER"]
_THREE_SYLLABLE = ["ALLISON", "BUCHANAN", "CRITTENDEN", "DECATUR", "EMERSON", "FARRAGUT",
                   "GALLATIN", "HAMILTON", "INGRAHAM", "JEFFERSON", "KENNEDY", "LONGFELLOW",
                   "MADISON", "NICHOLSON", "OGLETHORPE", "PEABODY", "QUACKENBOS",
                   "RITTENHOUSE", "SHERIDAN", "TUCKERMAN", "UNDERWOOD", "VAN BUREN",
                   "WHITTIER"]
_FLORAL = ["ASPEN", "BUTTERNUT", "CEDAR", "DAHLIA", "ELDER", "FERN", "GERANIUM", "HEMLOCK",
           "IRIS", "JUNIPER", "KALMIA", "LOCUST", "MAPLE", "NORTHGATE", "ORCHID", "PRIMROSE",
           "REDWOOD", "SYCAMORE", "TULIP", "VERBENA", "WILLOW", "YEW", "ZINNIA"]
# fmt: on
EAST_WEST_STREETS = _LETTERS + _TWO_SYLLABLE + _THREE_SYLLABLE + _FLORAL


def _ordinal(k: int) -> str:
    suffix = "TH" if 10 <= k % 100 <= 20 else {1: "ST", 2: "ND", 3: "RD"}.get(k % 10, "TH")
    return f"{k}{suffix}"


def _block_centres(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of each block face from its key (see snap_to_blocks)."""
    on_ew = key // (_GRID_N * _GRID_N) == 0
    street = (key // _GRID_N) % _GRID_N - GRID_HALF
    block = key % _GRID_N - GRID_HALF
    lat = np.where(on_ew, CAPITOL_LAT + street * GRID_DLAT, CAPITOL_LAT + (block + 0.5) * GRID_DLAT)
    lon = np.where(on_ew, CAPITOL_LON + (block + 0.5) * GRID_DLON, CAPITOL_LON + street * GRID_DLON)
    return lat, lon


@cache
def block_table() -> pl.DataFrame:
    """Every block face of the synthetic grid, row number = block key.

    Columns: block_name ("1400 - 1499 BLOCK OF K ST NW"), lat/lon of the face's centre, the same
    as 6-decimal text, and the zip of the nearest hotspot. ~65k rows, built once, so chunks
    only gather from it.
    """
    key = np.arange(2 * _GRID_N * _GRID_N)
    lat, lon = _block_centres(key)
    df = pl.DataFrame(
        {
            "orient": key // (_GRID_N * _GRID_N),
            "street": (key // _GRID_N) % _GRID_N - GRID_HALF,
            "block": key % _GRID_N - GRID_HALF,
        }
    )
    ew_names = pl.Series(["EAST CAPITOL ST", *[f"{s} ST" for s in EAST_WEST_STREETS]])
    ns_names = pl.Series(["CAPITOL ST", *[f"{_ordinal(k)} ST" for k in range(1, GRID_HALF + 1)]])
    a = pl.col("street").abs()
    hundred = pl.when(pl.col("block") >= 0).then(pl.col("block")).otherwise(-pl.col("block") - 1)
    hundred = hundred * 100
    is_ew = pl.col("orient") == 0
    # North/south half: for a lettered street its own index, for a numbered one the block's.
    north = pl.when(is_ew).then(pl.col("street") >= 0).otherwise(pl.col("block") >= 0)
    east = pl.when(is_ew).then(pl.col("block") >= 0).otherwise(pl.col("street") >= 0)
    quadrant = pl.concat_str(
        [
            pl.when(north).then(pl.lit("N")).otherwise(pl.lit("S")),
            pl.when(east).then(pl.lit("E")).otherwise(pl.lit("W")),
        ]
    )
    ew = pl.lit(ew_names).gather(a.clip(0, len(ew_names) - 1))
    ns = pl.lit(ns_names).gather(a)
    ns = (
        pl.when(a == 0)
        .then(pl.when(north).then(pl.lit("NORTH CAPITOL ST")).otherwise(pl.lit("SOUTH CAPITOL ST")))
        .otherwise(ns)
    )
    street_name = pl.when(is_ew).then(ew).otherwise(ns)
    name = pl.concat_str(
        [
            hundred.cast(pl.String),
            pl.lit(" - "),
            (hundred + 99).cast(pl.String),
            pl.lit(" BLOCK OF "),
            street_name,
            pl.lit(" "),
            quadrant,
        ]
    )
    return df.select(name.alias("block_name")).with_columns(
        lat=pl.Series(lat),
        lon=pl.Series(lon),
        lat_text=text.decimal_text(lat, 6),
        lon_text=text.decimal_text(lon, 6),
        zip=hotspot_zips().gather(nearest_hotspot(lat, lon)),
    )


def snap_to_blocks(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Block key (row of block_table()) of each point: the nearest street, then the
    100-number block along it (the face's centre is at most ~100 m from the point)."""
    u = (lon - CAPITOL_LON) / GRID_DLON  # east-west position in street spacings
    v = (lat - CAPITOL_LAT) / GRID_DLAT  # north-south position
    du = np.abs(u - np.rint(u))
    dv = np.abs(v - np.rint(v))
    on_ew = dv <= du  # closer to a lettered street than to a numbered one
    street = np.where(on_ew, np.rint(v), np.rint(u)).astype(np.int64)
    block = np.where(on_ew, np.floor(u), np.floor(v)).astype(np.int64)
    street = np.clip(street, -GRID_HALF, GRID_HALF)
    block = np.clip(block, -GRID_HALF, GRID_HALF)
    key = ((~on_ew).astype(np.int64) * _GRID_N + street + GRID_HALF) * _GRID_N + block + GRID_HALF
    return key

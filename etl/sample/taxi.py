"""DFHV taxi trip zips in the two published layouts, with the real files' defects planted.

Rows are generated and written in chunks straight into the zip member, so memory stays flat
whatever the scale. Every defect is planted at a known rate and counted from the final arrays
with the same predicates a reader would use, so the truth file matches the bytes.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from etl.sample import clock, files, geo, text, truth

CHUNK_ROWS = 250_000

COLUMNS_2015_2019 = [
    "OBJECTID",
    "TRIPTYPE",
    "PROVIDERNAME",
    "FAREAMOUNT",
    "GRATUITYAMOUNT",
    "SURCHARGEAMOUNT",
    "EXTRAFAREAMOUNT",
    "TOLLAMOUNT",
    "TOTALAMOUNT",
    "PAYMENTTYPE",
    "ORIGINCITY",
    "ORIGINSTATE",
    "ORIGINZIP",
    "DESTINATIONCITY",
    "DESTINATIONSTATE",
    "DESTINATIONZIP",
    "MILEAGE",
    "DURATION",
    "ORIGIN_BLOCK_LATITUDE",
    "ORIGIN_BLOCK_LONGITUDE",
    "ORIGIN_BLOCKNAME",
    "DESTINATION_BLOCK_LATITUDE",
    "DESTINATION_BLOCK_LONGITUDE",
    "DESTINATION_BLOCKNAME",
    "AIRPORT",
    "ORIGINDATETIME_TR",
    "DESTINATIONDATETIME_TR",
]
# The later releases carry the same columns in another order: adapters must map by name.
COLUMNS_2020_ON = [
    "ORIGINDATETIME_TR",
    "DESTINATIONDATETIME_TR",
    "PROVIDERNAME",
    "TRIPTYPE",
    "PAYMENTTYPE",
    "FAREAMOUNT",
    "GRATUITYAMOUNT",
    "SURCHARGEAMOUNT",
    "EXTRAFAREAMOUNT",
    "TOLLAMOUNT",
    "TOTALAMOUNT",
    "MILEAGE",
    "DURATION",
    "ORIGINCITY",
    "ORIGINSTATE",
    "ORIGINZIP",
    "ORIGIN_BLOCK_LATITUDE",
    "ORIGIN_BLOCK_LONGITUDE",
    "ORIGIN_BLOCKNAME",
    "DESTINATIONCITY",
    "DESTINATIONSTATE",
    "DESTINATIONZIP",
    "DESTINATION_BLOCK_LATITUDE",
    "DESTINATION_BLOCK_LONGITUDE",
    "DESTINATION_BLOCKNAME",
    "AIRPORT",
    "OBJECTID",
]

# Fare sanity range used by a published cleaning of these files (and by the truth counts).
FARE_MIN, FARE_MAX = 3.25, 180.0
MILEAGE_OUTLIER_MILES = 100.0  # no real trip from DC (airports included) comes near this

# Defect rates, from docs/data.md ("Known quality problems").
MISSING_PICKUP_RATE = 0.16
MISSING_DROPOFF_RATE = 0.22
FARE_OUT_OF_RANGE_RATE = 0.0049
MILEAGE_OUTLIER_RATE = 0.0003
ZERO_MILEAGE_RATE = 0.003
JUNK_ZIP_RATE = 0.001
AIRPORT_RATE = 0.03
JUNK_ZIPS = ["2DA", "0", "20O01", "ZZZZZ", "2001", "200O9", "00000X"]
RAW_FARE_MIN_CENTS, RAW_FARE_MAX_CENTS = -206_471, 74_555_728  # extremes seen in the raw data
RAW_MILEAGE_MAX_HUNDREDTHS = 259_182

DATETIME_FORMAT = "%m/%d/%Y %H:%M"
PROVIDERS = [
    "Yellow Cab Co of DC",
    "Transco",
    "DC Checker Cab",
    "Capitol Cab",
    "Diamond Cab",
    "Grand Cab",
    "Bay Cab",
    "Elite Cab",
    "Orange Cab",
    "Liberty Cab",
]
PROVIDER_WEIGHTS = np.array([0.24, 0.16, 0.12, 0.1, 0.09, 0.08, 0.06, 0.06, 0.05, 0.04])
TRIPTYPE_WEIGHTS = np.array([0.93, 0.015, 0.02, 0.005, 0.01, 0.005, 0.005, 0.01])  # codes 1-8

README_TEXT = """DC Taxicab Trips - README

Source: Department of For-Hire Vehicles (DFHV). Published by the Office of the Chief Technology
Officer on opendata.dc.gov under CC BY 4.0.

Each monthly file holds the taxicab trips reported to DFHV for that month, one row per trip.
The archive carries pipe-delimited text and/or CSV files with a header row.

Fields
OBJECTID                    Row identifier (unique within this release)
TRIPTYPE                    1 Ordinal, 2 VoD, 3 TransportDC, 4 TransportDCShared, 5 MOVA, 6 CFSA,
                            7 NRS, 8 NEMT
PROVIDERNAME                Taxicab company
FAREAMOUNT                  Metered fare
GRATUITYAMOUNT              Tip
SURCHARGEAMOUNT             Surcharge
EXTRAFAREAMOUNT             Extras
TOLLAMOUNT                  Tolls
TOTALAMOUNT                 Total paid
PAYMENTTYPE                 1 Credit, 2 Cash, 3 EHail, 4 Other, 5 Uber
ORIGINCITY, ORIGINSTATE, ORIGINZIP
DESTINATIONCITY, DESTINATIONSTATE, DESTINATIONZIP
MILEAGE                     Trip distance
DURATION                    Trip duration
ORIGIN_BLOCK_LATITUDE, ORIGIN_BLOCK_LONGITUDE, ORIGIN_BLOCKNAME
DESTINATION_BLOCK_LAT, DESTINATION_BLOCK_LONG, DESTINATION_BLOCKNAME
                            Pick-up and drop-off locations generalized to the nearest block in
                            the Master Address Repository (within 250 meters); empty when no
                            block matched
AIRPORT                     Y when the trip served Reagan National, BWI or Dulles
ORIGINDATETIME_TR           Pick-up date and time, rounded to the hour
DESTINATIONDATETIME_TR      Drop-off date and time, rounded to the hour
"""


@dataclass(frozen=True)
class Release:
    """One published yearly zip and the layout of its monthly members."""

    year: int
    columns: list[str]
    separator: str
    missing_fare_text: str | None  # "NULL" written as text, or None for an empty field
    missing_fare_rate: float
    missing_fare_key: str  # name of its count in the truth file
    payment_weights: np.ndarray  # codes 1-5

    @property
    def zip_name(self) -> str:
        return f"taxi_{self.year}.zip"

    def member_name(self, month: int) -> str:
        if self.year <= 2019:
            return f"taxi_{self.year}_{month:02d}.txt"
        return f"taxi_{self.year}{month:02d}.csv"


RELEASES = (
    Release(
        2016,
        COLUMNS_2015_2019,
        "|",
        "NULL",
        0.005,
        "null_fare",
        np.array([0.50, 0.33, 0.08, 0.03, 0.06]),
    ),
    Release(
        2023,
        COLUMNS_2020_ON,
        ",",
        None,
        0.073,
        "empty_fare",
        np.array([0.64, 0.16, 0.10, 0.03, 0.07]),
    ),
)
# Monthly volume relative to the year's average (spring and autumn conference seasons).
MONTH_WEIGHTS = np.array([0.88, 0.90, 1.06, 1.08, 1.07, 1.02, 0.95, 0.90, 0.98, 1.07, 1.02, 1.07])


@cache
def airport_table() -> pl.DataFrame:
    """Destination fields by place: row 0 = a DC block (city and state only), then airports."""
    return pl.DataFrame(
        {
            "block_name": [None, *[a.block_name for a in geo.AIRPORTS]],
            "lat_text": [None, *[f"{a.lat:.6f}" for a in geo.AIRPORTS]],
            "lon_text": [None, *[f"{a.lon:.6f}" for a in geo.AIRPORTS]],
            "zip": [None, *[a.zip_code for a in geo.AIRPORTS]],
            "city": ["WASHINGTON", *[a.city for a in geo.AIRPORTS]],
            "state": ["DC", *[a.state for a in geo.AIRPORTS]],
        }
    )


def split_rows(total: int, weights: np.ndarray) -> np.ndarray:
    """Split total into integer parts proportional to weights (largest remainder)."""
    exact = total * weights / weights.sum()
    parts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[: total - parts.sum()]] += 1
    return parts


def _null_where(series: pl.Series, mask: np.ndarray) -> pl.Series:
    return series.scatter(np.flatnonzero(mask), None) if mask.any() else series


@dataclass
class _Defects:
    """Disjoint row sets for the fare and mileage defects of one chunk."""

    missing_fare: np.ndarray
    fare_out_of_range: np.ndarray
    mileage_outlier: np.ndarray
    zero_mileage: np.ndarray


def _draw_defects(rng: np.random.Generator, n: int, release: Release, force: bool) -> _Defects:
    counts = rng.binomial(
        n,
        [
            release.missing_fare_rate,
            FARE_OUT_OF_RANGE_RATE,
            MILEAGE_OUTLIER_RATE,
            ZERO_MILEAGE_RATE,
        ],
    )
    if force:  # the first chunk of a release always shows each kind (small scales too)
        counts = np.maximum(counts, [1, 2, 1, 1])
    counts = np.minimum(counts, n // 8)  # tiny chunks: never let defects crowd out clean rows
    bounds = np.concatenate([[0], np.cumsum(counts)])
    perm = rng.permutation(n)
    masks = []
    for lo, hi in itertools.pairwise(bounds):
        mask = np.zeros(n, dtype=bool)
        mask[np.sort(perm[lo:hi])] = True
        masks.append(mask)
    return _Defects(*masks)


def _bad_fares(rng: np.random.Generator, k: int, plant_extremes: bool) -> np.ndarray:
    """Out-of-range fares: refunds/voids (negative), sub-minimum, and keying errors (huge)."""
    kind = rng.choice(3, size=k, p=[0.35, 0.15, 0.50])
    negative = -np.rint(np.exp(rng.uniform(np.log(100), np.log(6_000), k)))
    tiny = rng.integers(1, 325, k)
    huge = np.rint(np.exp(rng.uniform(np.log(18_001), np.log(500_000), k)))
    cents = np.select([kind == 0, kind == 1], [negative, tiny], huge).astype(np.int64)
    if plant_extremes and k >= 2:
        cents[:2] = [RAW_FARE_MIN_CENTS, RAW_FARE_MAX_CENTS]
    return cents


def _airport_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Which trips go to an airport, which airport, and the kerb-side drop-off point."""
    airport = rng.random(n) < AIRPORT_RATE
    which = rng.choice(len(geo.AIRPORTS), size=n, p=[a.weight for a in geo.AIRPORTS])
    lat = np.array([a.lat for a in geo.AIRPORTS])[which]
    lon = np.array([a.lon for a in geo.AIRPORTS])[which]
    lat, lon = geo.jitter_m(rng, lat, lon, 0.0, 300.0)  # terminals spread a few hundred metres
    return airport, which, lat, lon


def _money(
    rng: np.random.Generator,
    release: Release,
    trip: truth.TripTruth,
    defects: _Defects,
    first_chunk: bool,
) -> dict[str, np.ndarray]:
    """Amounts in cents and mileage in hundredths of a mile, defects planted."""
    n = len(trip.miles)
    payment = rng.choice(5, size=n, p=release.payment_weights) + 1
    tipped = np.isin(payment, [1, 3, 5]) & (rng.random(n) > 0.15)  # card, e-hail, Uber
    fare = trip.fare_cents.copy()
    fare[defects.fare_out_of_range] = _bad_fares(
        rng, int(defects.fare_out_of_range.sum()), first_chunk
    )
    money = {
        "payment": payment,
        "fare": fare,
        "gratuity": np.where(tipped, np.rint(trip.fare_cents * rng.uniform(0.10, 0.25, n)), 0),
        "surcharge": np.full(n, 25),  # DC's per-trip passenger surcharge
        "extra": np.where(rng.random(n) < 0.10, 100, 0),  # extra passenger
        "toll": np.where(rng.random(n) < 0.01, rng.choice([100, 200, 400], size=n), 0),
    }
    # The total is what was paid, known even when the fare field is missing.
    money["total"] = sum(money[k] for k in ("fare", "gratuity", "surcharge", "extra", "toll"))
    mileage = np.rint(trip.miles * 100).astype(np.int64)
    k_out = int(defects.mileage_outlier.sum())
    outliers = np.rint(
        np.exp(rng.uniform(np.log(15_000), np.log(RAW_MILEAGE_MAX_HUNDREDTHS), k_out))
    ).astype(np.int64)
    if first_chunk and k_out:
        outliers[0] = RAW_MILEAGE_MAX_HUNDREDTHS
    mileage[defects.mileage_outlier] = outliers
    mileage[defects.zero_mileage] = 0
    money["mileage"] = mileage
    return money


def _snap_inside_dc(blocks: pl.DataFrame, lat: np.ndarray, lon: np.ndarray) -> pl.DataFrame:
    """Each point's block; near the border, where the grid's block centre falls outside DC, the
    point itself (DC's address repository only has blocks inside DC)."""
    snapped = blocks[geo.snap_to_blocks(lat, lon)]
    outside = ~geo.inside_dc(snapped["lat"].to_numpy(), snapped["lon"].to_numpy())
    if not outside.any():
        return snapped
    rows = np.flatnonzero(outside)
    return snapped.with_columns(
        snapped["lat_text"].scatter(rows, text.decimal_text(lat[rows], 6)),
        snapped["lon_text"].scatter(rows, text.decimal_text(lon[rows], 6)),
    )


def _places(
    rng: np.random.Generator,
    plat: np.ndarray,
    plon: np.ndarray,
    dlat: np.ndarray,
    dlon: np.ndarray,
    airport: np.ndarray,
    which_airport: np.ndarray,
) -> tuple[dict[str, pl.Series], dict[str, np.ndarray]]:
    """Location columns as published: snapped to a block (airports to the airport's point),
    some not geocoded, some zips junk. Returns the columns and the defect masks."""
    n = len(plat)
    blocks = geo.block_table()
    airports = airport_table()
    place = np.where(airport, which_airport + 1, 0)  # row of airport_table(), 0 = in DC
    origin = _snap_inside_dc(blocks, plat, plon)
    dest = _snap_inside_dc(blocks, dlat, dlon)
    to_airport = pl.Series(airport)
    dest = dest.select(
        pl.when(to_airport).then(airports[place][c]).otherwise(pl.col(c)).alias(c)
        for c in ("block_name", "lat_text", "lon_text", "zip")
    )
    masks = {
        "no_pickup": rng.random(n) < MISSING_PICKUP_RATE,
        "no_dropoff": rng.random(n) < MISSING_DROPOFF_RATE,
        "origin_junk_zip": rng.random(n) < JUNK_ZIP_RATE,
        "dest_junk_zip": rng.random(n) < JUNK_ZIP_RATE,
    }

    def junk_zips(zips: pl.Series, mask: np.ndarray) -> pl.Series:
        junk = pl.Series(JUNK_ZIPS).gather(rng.integers(0, len(JUNK_ZIPS), int(mask.sum())))
        return zips.scatter(np.flatnonzero(mask), junk)

    no_pickup, no_dropoff = masks["no_pickup"], masks["no_dropoff"]
    columns = {
        "ORIGINCITY": pl.repeat("WASHINGTON", n, eager=True),
        "ORIGINSTATE": pl.repeat("DC", n, eager=True),
        "ORIGINZIP": junk_zips(origin["zip"], masks["origin_junk_zip"]),
        "DESTINATIONCITY": airports["city"].gather(place),
        "DESTINATIONSTATE": airports["state"].gather(place),
        "DESTINATIONZIP": junk_zips(dest["zip"], masks["dest_junk_zip"]),
        "ORIGIN_BLOCK_LATITUDE": _null_where(origin["lat_text"], no_pickup),
        "ORIGIN_BLOCK_LONGITUDE": _null_where(origin["lon_text"], no_pickup),
        "ORIGIN_BLOCKNAME": _null_where(origin["block_name"], no_pickup),
        "DESTINATION_BLOCK_LATITUDE": _null_where(dest["lat_text"], no_dropoff),
        "DESTINATION_BLOCK_LONGITUDE": _null_where(dest["lon_text"], no_dropoff),
        "DESTINATION_BLOCKNAME": _null_where(dest["block_name"], no_dropoff),
        "AIRPORT": pl.Series(["N", "Y"]).gather(airport.astype(np.int64)),
    }
    return columns, masks


def generate_chunk(
    rng: np.random.Generator,
    n: int,
    release: Release,
    month: int,
    first_objectid: int,
    first_chunk: bool,
) -> tuple[pl.DataFrame, dict]:
    """n trips of one month as the release's text columns, plus the chunk's defect counts."""
    year = release.year
    first_day = clock.epoch_day(year, month)
    n_days = clock.epoch_day(year + month // 12, month % 12 + 1) - first_day
    pickup = clock.sample_naive_times(rng, n, first_day, n_days, year, taxi=True)
    plat, plon, dlat, dlon = geo.sample_trip_ends(rng, n)
    airport, which_airport, ap_lat, ap_lon = _airport_points(rng, n)
    dlat, dlon = np.where(airport, ap_lat, dlat), np.where(airport, ap_lon, dlon)
    trip = truth.simulate(rng, plat, plon, dlat, dlon, pickup, year)

    defects = _draw_defects(rng, n, release, first_chunk)
    money = _money(rng, release, trip, defects, first_chunk)
    places, masks = _places(rng, plat, plon, dlat, dlon, airport, which_airport)
    fare_text = text.cents_to_dollars_text(money["fare"]).scatter(
        np.flatnonzero(defects.missing_fare), release.missing_fare_text
    )

    def to_hour(naive: np.ndarray) -> pl.Series:  # published times: local, nearest hour
        rounded = (naive + clock.HOUR // 2) // clock.HOUR * clock.HOUR
        return clock.format_whole_hours(rounded, year, DATETIME_FORMAT)

    columns = {
        "OBJECTID": pl.Series(np.arange(first_objectid, first_objectid + n)).cast(pl.String),
        "TRIPTYPE": pl.Series(rng.choice(8, size=n, p=TRIPTYPE_WEIGHTS) + 1).cast(pl.String),
        "PROVIDERNAME": pl.Series(PROVIDERS).gather(
            rng.choice(len(PROVIDERS), size=n, p=PROVIDER_WEIGHTS)
        ),
        "FAREAMOUNT": fare_text,
        "GRATUITYAMOUNT": text.cents_to_dollars_text(money["gratuity"]),
        "SURCHARGEAMOUNT": text.cents_to_dollars_text(money["surcharge"]),
        "EXTRAFAREAMOUNT": text.cents_to_dollars_text(money["extra"]),
        "TOLLAMOUNT": text.cents_to_dollars_text(money["toll"]),
        "TOTALAMOUNT": text.cents_to_dollars_text(money["total"]),
        "PAYMENTTYPE": pl.Series(money["payment"]).cast(pl.String),
        "MILEAGE": text.scaled_int_text(money["mileage"], 2),
        "DURATION": pl.Series(trip.duration_s).cast(pl.String),  # seconds
        "ORIGINDATETIME_TR": to_hour(pickup),
        "DESTINATIONDATETIME_TR": to_hour(pickup + trip.duration_s),
        **places,
    }
    frame = pl.DataFrame([columns[c].alias(c) for c in release.columns])

    # Counted from the final values with the predicates a reader of the files would use.
    fare, mileage = money["fare"], money["mileage"]
    has_fare = ~defects.missing_fare
    no_pickup, no_dropoff = masks["no_pickup"], masks["no_dropoff"]
    counts = {
        "rows": n,
        release.missing_fare_key: int(defects.missing_fare.sum()),
        "fare_out_of_range": int(
            (has_fare & ((fare < FARE_MIN * 100) | (fare > FARE_MAX * 100))).sum()
        ),
        "missing_pickup_coords": int(no_pickup.sum()),
        "missing_dropoff_coords": int(no_dropoff.sum()),
        "missing_either_coords": int((no_pickup | no_dropoff).sum()),
        "mileage_outlier": int((mileage > MILEAGE_OUTLIER_MILES * 100).sum()),
        "zero_mileage_positive_fare": int(((mileage == 0) & has_fare & (fare > 0)).sum()),
        "junk_zip": int((masks["origin_junk_zip"] | masks["dest_junk_zip"]).sum()),
        "airport": int(airport.sum()),
        "totalamount_cents": int(money["total"].sum()),
    }
    return frame, counts


def _member_chunks(
    release: Release, seed: int, month: int, rows: int, first_objectid: int, counts: Counter
) -> Iterator[bytes]:
    """The delimited text of one monthly member, chunk by chunk, generated as the zip member
    consumes it; adds each chunk's defect counts to `counts`.

    Each chunk has its own generator seeded from (seed, year, month, chunk): chunks are
    independent of each other and of how the work is scheduled. (A worker thread generating
    ahead was tried: on 2 cores it slowed zlib down more than it saved.)
    """
    for chunk_no, start in enumerate(range(0, max(rows, 1), CHUNK_ROWS)):
        rng = np.random.default_rng([seed, release.year, month, chunk_no])
        frame, chunk_counts = generate_chunk(
            rng,
            min(CHUNK_ROWS, rows - start),
            release,
            month,
            first_objectid + start,
            first_chunk=(month == 1 and chunk_no == 0),
        )
        counts.update(chunk_counts)
        buf = io.BytesIO()
        frame.write_csv(
            buf,
            separator=release.separator,
            include_header=(chunk_no == 0),
            line_terminator="\n",
            quote_style="necessary",
        )
        yield buf.getvalue()


def write_release(root: Path, release: Release, seed: int, rows: int) -> dict[str, dict]:
    """Write one yearly zip of `rows` trips; returns the truth counts per member."""
    path = root / "dc_taxi" / release.zip_name
    path.parent.mkdir(parents=True, exist_ok=True)
    truth_counts: dict[str, dict] = {}
    first_objectid = 1  # OBJECTID restarts with every release
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for month, month_rows in enumerate(split_rows(rows, MONTH_WEIGHTS).tolist(), start=1):
            counts: Counter = Counter()
            name = release.member_name(month)
            files.write_zip_member(
                zf, name, _member_chunks(release, seed, month, month_rows, first_objectid, counts)
            )
            truth_counts[name] = {"first_objectid": first_objectid, **counts}
            first_objectid += month_rows
        files.write_zip_member(zf, "README_DC_Taxicab_trip.txt", [README_TEXT.encode()])
    return truth_counts

"""`etl sample`: determinism, the published layouts, and planted facts that match the bytes.

Everything is read back from the files with polars / json / csv, independently of the
generator's code, and compared with _sample_truth.json.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import shapely
from dfhv import HEADER_2015 as COLUMNS_2015_2019  # the published header (docs/data.md)

from etl.sample import write_sample
from etl.sample.company import DISPATCH_JOBS_PER_SCALE

SCALE = 0.05
SEED = 3

COURIER_HEADER = "TripRef,Vehicle,Start Time,End Time,From Lat,From Lng,To Lat,To Lng,Miles,Cost"
HOUR_ROUNDED = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:00$")
BLOCK_NAME = re.compile(r"^\d+ - \d+ BLOCK OF [A-Z0-9 ]+ (NW|NE|SW|SE)$")
COURIER_TIME = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} (AM|PM)$")
TOLERANCE_S, TOLERANCE_M = 120, 100


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("sample")
    summary = write_sample(root, seed=SEED, scale=SCALE)
    truth = json.loads((root / "_sample_truth.json").read_text())
    return root, summary, truth


@pytest.fixture(scope="module")
def taxi_members(sample) -> dict[str, pl.DataFrame]:
    """Every monthly member of both zips, all columns as text."""
    root, _, _ = sample
    frames = {}
    for zip_name, sep in (("taxi_2016.zip", "|"), ("taxi_2023.zip", ",")):
        with zipfile.ZipFile(root / "dc_taxi" / zip_name) as zf:
            for name in zf.namelist():
                if name.startswith("taxi_"):
                    frames[name] = pl.read_csv(zf.read(name), separator=sep, infer_schema=False)
    return frames


def _haversine_m(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))


# --- determinism and scale -------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(sample, tmp_path):
    root, summary, _ = sample
    again = write_sample(tmp_path / "again", seed=SEED, scale=SCALE)
    assert _hashes(root) == _hashes(tmp_path / "again")
    assert again["rows"] == summary["rows"]


def test_different_seed_gives_different_data(sample, tmp_path):
    root, _, _ = sample
    write_sample(tmp_path / "other", seed=SEED + 1, scale=SCALE)
    a, b = _hashes(root), _hashes(tmp_path / "other")
    assert a.keys() == b.keys()  # same layout...
    for name in (
        "dc_taxi/taxi_2016.zip",
        "dc_taxi/taxi_2023.zip",
        "_sample_truth.json",
        "company/courier/courier_trips_202306.csv",
    ):
        assert a[name] != b[name]  # ...different rows


def test_rows_scale_linearly(sample, tmp_path):
    _, summary, truth = sample
    double = write_sample(tmp_path / "double", seed=SEED, scale=2 * SCALE)
    assert summary["rows"]["dc_taxi"] == round(100_000 * SCALE)
    assert double["rows"]["dc_taxi"] == 2 * summary["rows"]["dc_taxi"]
    for source in ("dispatch", "courier"):
        ratio = double["rows"][source] / summary["rows"][source]
        assert 1.85 < ratio < 2.15, (source, ratio)
    jobs = DISPATCH_JOBS_PER_SCALE * SCALE
    assert 0.9 * jobs < truth["dispatch"]["jobs"] < 1.1 * jobs


def test_summary_lists_files_and_rows(sample):
    root, summary, truth = sample
    on_disk = _hashes(root)
    assert sum(summary["files"].values()) == len(on_disk)
    assert summary["files"] == {
        "dc_taxi": 2,
        "dc_boundary": 1,
        "dispatch": 365,
        "courier": 12,
        "truth": 1,
    }
    assert summary["bytes"] == sum((root / p).stat().st_size for p in on_disk)
    assert summary["rows"]["dc_taxi"] == sum(m["rows"] for m in truth["dc_taxi"].values())
    assert summary["rows"]["courier"] == sum(f["rows"] for f in truth["courier"].values())


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_sample(tmp_path, seed=-1)
    with pytest.raises(ValueError):
        write_sample(tmp_path, scale=0)


# --- DC taxi ---------------------------------------------------------------------------------


def test_taxi_2016_layout(sample):
    root, _, _ = sample
    with zipfile.ZipFile(root / "dc_taxi" / "taxi_2016.zip") as zf:
        names = zf.namelist()
        assert names == [f"taxi_2016_{m:02d}.txt" for m in range(1, 13)] + [
            "README_DC_Taxicab_trip.txt"
        ]
        lines = zf.read("taxi_2016_05.txt").decode().splitlines()
    assert lines[0].split("|") == COLUMNS_2015_2019
    assert all(line.count("|") == 26 for line in lines)
    assert all("," not in line.split("|")[3] for line in lines[1:])


def test_taxi_2023_layout(sample, taxi_members):
    root, _, _ = sample
    with zipfile.ZipFile(root / "dc_taxi" / "taxi_2023.zip") as zf:
        names = zf.namelist()
        header = zf.read("taxi_202307.csv").decode().splitlines()[0].split(",")
    assert names == [f"taxi_2023{m:02d}.csv" for m in range(1, 13)] + ["README_DC_Taxicab_trip.txt"]
    assert sorted(header) == sorted(COLUMNS_2015_2019)
    assert header != COLUMNS_2015_2019
    assert header[0] == "ORIGINDATETIME_TR" and header[-1] == "OBJECTID"
    for year in ("2016", "2023"):  # OBJECTID is unique within a release and restarts per release
        ids = pl.concat([f["OBJECTID"] for n, f in taxi_members.items() if year in n])
        ids = ids.cast(pl.Int64)
        assert ids.n_unique() == len(ids) and ids.min() == 1


def test_taxi_values_look_like_the_real_files(taxi_members):
    for name, f in taxi_members.items():
        for col in ("ORIGINDATETIME_TR", "DESTINATIONDATETIME_TR"):
            assert f[col].str.contains(HOUR_ROUNDED.pattern).all(), (name, col)
        month = int(re.search(r"(\d{2})\.(txt|csv)$", name).group(1))
        assert (f["ORIGINDATETIME_TR"].str.slice(0, 2).cast(pl.Int64) == month).mean() > 0.95
        for col in ("GRATUITYAMOUNT", "TOTALAMOUNT", "MILEAGE", "SURCHARGEAMOUNT"):
            assert f[col].str.contains(r"^-?\d+\.\d{2}$").all(), (name, col)
        assert f["DURATION"].str.contains(r"^\d+$").all()
        assert set(f["PAYMENTTYPE"].unique()) <= {"1", "2", "3", "4", "5"}
        assert set(f["TRIPTYPE"].unique()) <= {str(k) for k in range(1, 9)}
        assert (f["TRIPTYPE"] == "1").mean() > 0.8
        assert set(f["AIRPORT"].unique()) <= {"Y", "N"}
        names = pl.concat(
            [f["ORIGIN_BLOCKNAME"], f["DESTINATION_BLOCKNAME"].filter(f["AIRPORT"] == "N")]
        ).drop_nulls()
        assert names.str.contains(BLOCK_NAME.pattern).all(), name
        # A block name is present exactly when the coordinates are.
        assert (f["ORIGIN_BLOCKNAME"].is_null() == f["ORIGIN_BLOCK_LATITUDE"].is_null()).all()
        assert (
            f["DESTINATION_BLOCKNAME"].is_null() == f["DESTINATION_BLOCK_LONGITUDE"].is_null()
        ).all()


def _count_defects(f: pl.DataFrame) -> dict[str, int]:
    fare_text = f["FAREAMOUNT"]
    fare = fare_text.cast(pl.Float64, strict=False)
    mileage = f["MILEAGE"].cast(pl.Float64)
    no_pickup = f["ORIGIN_BLOCK_LATITUDE"].is_null()
    no_dropoff = f["DESTINATION_BLOCK_LATITUDE"].is_null()
    valid_zip = f.select(
        pl.col("ORIGINZIP").str.contains(r"^\d{5}$").fill_null(False)
        & pl.col("DESTINATIONZIP").str.contains(r"^\d{5}$").fill_null(False)
    ).to_series()
    total_cents = (f["TOTALAMOUNT"].cast(pl.Float64) * 100).round().cast(pl.Int64).sum()
    return {
        "rows": f.height,
        "null_fare": int((fare_text == "NULL").sum()),
        "empty_fare": int(fare_text.is_null().sum()),
        "fare_out_of_range": int(((fare < 3.25) | (fare > 180)).sum()),
        "missing_pickup_coords": int(no_pickup.sum()),
        "missing_dropoff_coords": int(no_dropoff.sum()),
        "missing_either_coords": int((no_pickup | no_dropoff).sum()),
        "mileage_outlier": int((mileage > 100).sum()),
        "zero_mileage_positive_fare": int(((mileage == 0) & (fare > 0)).sum()),
        "junk_zip": int((~valid_zip).sum()),
        "airport": int((f["AIRPORT"] == "Y").sum()),
        "totalamount_cents": int(total_cents),
    }


def test_taxi_defect_counts_match_the_truth_file(sample, taxi_members):
    _, _, truth = sample
    assert set(truth["dc_taxi"]) == set(taxi_members)
    for name, f in taxi_members.items():
        counted = _count_defects(f)
        planted = truth["dc_taxi"][name]
        missing_key = "null_fare" if name.startswith("taxi_2016") else "empty_fare"
        other_key = "empty_fare" if missing_key == "null_fare" else "null_fare"
        assert counted[other_key] == 0, name
        del counted[other_key]
        assert counted == {k: planted[k] for k in counted}, name


def test_taxi_defect_rates_and_extremes(sample, taxi_members):
    _, _, truth = sample
    both = pl.concat(taxi_members.values(), how="diagonal")
    n = both.height
    assert 0.13 < both["ORIGIN_BLOCK_LATITUDE"].is_null().sum() / n < 0.19
    assert 0.19 < both["DESTINATION_BLOCK_LATITUDE"].is_null().sum() / n < 0.25
    fares = both["FAREAMOUNT"].cast(pl.Float64, strict=False)
    assert fares.min() == -2064.71 and fares.max() == 745557.28
    assert both["MILEAGE"].cast(pl.Float64).max() == 2591.82
    m2016 = [m for name, m in truth["dc_taxi"].items() if name.startswith("taxi_2016")]
    m2023 = [m for name, m in truth["dc_taxi"].items() if name.startswith("taxi_2023")]
    rows16, rows23 = sum(m["rows"] for m in m2016), sum(m["rows"] for m in m2023)
    assert 0.002 < sum(m["null_fare"] for m in m2016) / rows16 < 0.01
    assert 0.05 < sum(m["empty_fare"] for m in m2023) / rows23 < 0.10
    assert sum(m["junk_zip"] for m in m2016 + m2023) > 0
    assert sum(m["airport"] for m in m2016 + m2023) / n > 0.015


def test_taxi_carries_the_ground_truth_signal(taxi_members):
    both = (
        pl.concat(taxi_members.values(), how="diagonal")
        .with_columns(
            miles=pl.col("MILEAGE").cast(pl.Float64),
            seconds=pl.col("DURATION").cast(pl.Float64),
            fare=pl.col("FAREAMOUNT").cast(pl.Float64, strict=False),
            hour=pl.col("ORIGINDATETIME_TR").str.slice(11, 2).cast(pl.Int64),
            day=pl.col("ORIGINDATETIME_TR").str.to_date("%m/%d/%Y %H:%M").dt.weekday(),
        )
        .filter(pl.col("miles").is_between(0.5, 30) & pl.col("fare").is_between(3.25, 180))
    )
    mph = both["miles"] / both["seconds"] * 3600
    assert 8 < mph.median() < 25  # seconds, not minutes
    # Fares follow the DC rule: $3.50 + $2.16/mile plus a little waiting time.
    residual = both["fare"] - (3.50 + 2.16 * both["miles"])
    assert 0 <= residual.median() < 3
    weekday = both.filter(pl.col("day") <= 5).with_columns(
        mph=pl.col("miles") / pl.col("seconds") * 3600
    )
    rush = weekday.filter(pl.col("hour").is_in([8, 17, 18]))["mph"].median()
    night = weekday.filter(pl.col("hour").is_in([0, 1, 2, 3, 4]))["mph"].median()
    assert night > 1.3 * rush


def test_taxi_points_are_snapped_inside_dc(sample, taxi_members):
    root, _, _ = sample
    dc = shapely.from_geojson((root / "dc_reference" / "dc_boundary.geojson").read_text())
    dc = shapely.get_geometry(dc, 0)
    near_dc = shapely.buffer(dc, 0.003)  # snapping moves a point by ~100 m at most
    for f in taxi_members.values():
        pts = f.filter(pl.col("ORIGIN_BLOCK_LATITUDE").is_not_null())
        lat = pts["ORIGIN_BLOCK_LATITUDE"].cast(pl.Float64).to_numpy()
        lon = pts["ORIGIN_BLOCK_LONGITUDE"].cast(pl.Float64).to_numpy()
        assert shapely.contains_xy(near_dc, lon, lat).all()
        airport = f.filter(
            (pl.col("AIRPORT") == "Y") & pl.col("DESTINATION_BLOCK_LATITUDE").is_not_null()
        )
        alat = airport["DESTINATION_BLOCK_LATITUDE"].cast(pl.Float64).to_numpy()
        alon = airport["DESTINATION_BLOCK_LONGITUDE"].cast(pl.Float64).to_numpy()
        assert not shapely.contains_xy(dc, alon, alat).any()


def test_taxi_points_share_block_points(taxi_members):
    both = pl.concat(taxi_members.values(), how="diagonal").drop_nulls("ORIGIN_BLOCK_LATITUDE")
    points = both.select("ORIGIN_BLOCK_LATITUDE", "ORIGIN_BLOCK_LONGITUDE", "ORIGIN_BLOCKNAME")
    # Snapped: trips share block points, and a block point always carries the same name.
    assert points.unique().height < 0.8 * points.height
    assert points.unique().height == points.unique(["ORIGIN_BLOCKNAME"]).height


def test_boundary_geojson(sample):
    root, _, _ = sample
    doc = json.loads((root / "dc_reference" / "dc_boundary.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 1
    geometry = doc["features"][0]["geometry"]
    assert geometry["type"] == "Polygon"
    ring = geometry["coordinates"][0]
    assert 15 <= len(ring) <= 40 and ring[0] == ring[-1]
    poly = shapely.geometry.shape(geometry)
    assert poly.is_valid and poly.exterior.is_ccw
    assert poly.contains(shapely.Point(-77.0365, 38.8977))  # the White House
    assert not poly.contains(shapely.Point(-77.0402, 38.8512))  # Reagan National, Virginia
    assert 150e6 < poly.area * 111_000 * 86_500 < 185e6  # DC is ~177 km2


# --- courier ---------------------------------------------------------------------------------


def _courier_rows(root: Path) -> dict[str, list[list[str]]]:
    out = {}
    for path in sorted((root / "company" / "courier").glob("courier_trips_*.csv")):
        raw = path.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n")  # Windows line endings throughout
        lines = raw.decode().split("\r\n")
        assert lines[0] == COURIER_HEADER and lines[-1] == ""
        # Each line parsed on its own, so a blank line stays an empty row.
        out[path.name] = [lines[-2], *(next(csv.reader([ln])) if ln else [] for ln in lines[1:-2])]
    return out


def test_courier_files_reconcile_with_trailer_and_truth(sample):
    root, _, truth = sample
    files = _courier_rows(root)
    assert list(files) == [f"courier_trips_2023{m:02d}.csv" for m in range(1, 13)]
    totals = dict.fromkeys(("dst_ambiguous", "dst_nonexistent", "end_before_start"), 0)
    for name, (trailer, *rows) in files.items():
        planted = truth["courier"][name]
        data = [r for r in rows if r]
        assert trailer == f"TOTAL ROWS: {len(data)}" and planted["rows"] == len(data)
        assert len(rows) - len(data) == planted["blank_lines"]
        assert all(len(r) == 10 for r in data)
        refs = [r[0] for r in data]
        assert len(refs) - len(set(refs)) == planted["duplicates"]
        assert len({tuple(r) for r in data}) == len(set(refs))  # duplicates are exact copies
        assert all(COURIER_TIME.match(r[2]) and COURIER_TIME.match(r[3]) for r in data)
        unique = {r[0]: r for r in data}.values()
        swapped = [r for r in unique if float(r[4]) < 0 or float(r[6]) < 0]
        assert len(swapped) == planted["swapped"]
        costs = [float(r[9].lstrip("$").replace(",", "")) for r in unique]
        assert sum(c >= 1000 for c in costs) == planted["cost_over_1000"]
        assert all(re.match(r"^\$\d{1,3}(,\d{3})*\.\d{2}$", r[9]) for r in unique)
        counts = {
            "dst_ambiguous": sum(
                r[2].startswith("11/05/2023 01:") and r[2].endswith("AM") for r in unique
            ),
            "dst_nonexistent": sum(
                r[2].startswith("03/12/2023 02:") and r[2].endswith("AM") for r in unique
            ),
        }
        frame = pl.DataFrame({"start": [r[2] for r in unique], "end": [r[3] for r in unique]})
        parsed = frame.select(pl.all().str.to_datetime("%m/%d/%Y %I:%M:%S %p"))
        counts["end_before_start"] = int((parsed["end"] < parsed["start"]).sum())
        for key, value in counts.items():
            assert value == planted[key], (name, key)
            totals[key] += value
    assert all(v >= 2 for v in totals.values()), totals


# --- dispatch --------------------------------------------------------------------------------


def _dispatch_lines(root: Path):
    for path in sorted((root / "company" / "dispatch").iterdir()):
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        else:
            assert path.name.endswith(".jsonl")
        for number, line in enumerate(raw.decode().splitlines(), start=1):
            yield str(path.relative_to(root)), number, line


KEYS = [
    "job_id",
    "vehicle_id",
    "driver_id",
    "status",
    "pickup",
    "dropoff",
    "distance_km",
    "charge_cents",
    "updated_at",
]


def _broken_kind(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "truncated"
    if list(obj) != KEYS:
        return "unknown_field"
    numbers = [obj["distance_km"], obj["charge_cents"], obj["pickup"]["lat"]]
    if any(isinstance(v, str) for v in numbers):
        return "string_number"
    return None


def _dispatch_jobs(root: Path) -> tuple[pl.DataFrame, list[tuple[str, int, str]]]:
    records, broken = [], []
    for file, number, line in _dispatch_lines(root):
        kind = _broken_kind(line)
        if kind:
            broken.append((file, number, kind))
            continue
        obj = json.loads(line)
        drop = obj["dropoff"] or {}
        records.append(
            {
                "file": file,
                "job_id": obj["job_id"],
                "status": obj["status"],
                "updated_at": obj["updated_at"],
                "charge": obj["charge_cents"],
                "plat": obj["pickup"]["lat"],
                "plon": obj["pickup"]["lon"],
                "pickup_at": obj["pickup"]["at"],
                "dlat": drop.get("lat"),
                "dlon": drop.get("lon"),
            }
        )
    return pl.DataFrame(records), broken


def test_dispatch_files_match_the_truth(sample):
    root, _, truth = sample
    files = sorted(p.name for p in (root / "company" / "dispatch").iterdir())
    assert len(files) == 365 and truth["dispatch"]["files"] == 365
    assert any(f.endswith(".jsonl.gz") for f in files) and any(f.endswith(".jsonl") for f in files)
    records, broken = _dispatch_jobs(root)
    planted = {(b["file"], b["line"], b["kind"]) for b in truth["dispatch"]["broken_lines"]}
    assert set(broken) == planted and len(broken) == len(truth["dispatch"]["broken_lines"])
    assert {b[2] for b in broken} == {"truncated", "unknown_field", "string_number"}
    newest = records.sort("updated_at").group_by("job_id").last()
    dt = truth["dispatch"]
    assert records.height == dt["versions"]
    assert newest.height == dt["jobs"]
    assert records.height - newest.height == dt["reappearing_jobs"]
    assert 0.01 < dt["reappearing_jobs"] / dt["jobs"] < 0.05
    for status in ("completed", "cancelled", "in_progress"):
        assert (newest["status"] == status).sum() == dt[status]
    assert dt["cancelled"] > 0 and dt["in_progress"] > 0
    # A job re-appears in the same file or a later one, never an earlier one.
    span = records.group_by("job_id").agg(pl.col("file").sort_by("updated_at"))
    assert all(f == sorted(f, key=lambda p: p.split("_")[-1]) for f in span["file"].to_list())
    # Cancelled jobs have no drop-off; times are UTC ISO.
    cancelled = records.filter(pl.col("status") == "cancelled")
    assert cancelled["dlat"].is_null().all()
    assert records["pickup_at"].str.contains(r"^202[34]-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").all()


# --- cross-silo overlap ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def silos(sample) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Completed dispatch trips (newest versions) and unique courier trips, times in UTC."""
    root, _, _ = sample
    records, _ = _dispatch_jobs(root)
    d = (
        records.sort("updated_at")
        .group_by("job_id")
        .last()
        .filter(pl.col("status") == "completed")
        .with_columns(t=pl.col("pickup_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ").dt.epoch("s"))
    )
    rows = [r for _, (_, *data) in _courier_rows(root).items() for r in data if r]
    c = pl.DataFrame(rows, schema=COURIER_HEADER.split(","), orient="row").unique("TripRef")
    c = c.with_columns(
        t=pl.col("Start Time")
        .str.to_datetime("%m/%d/%Y %I:%M:%S %p")
        .dt.replace_time_zone("America/New_York", ambiguous="earliest", non_existent="null")
        .dt.epoch("s"),
        plat=pl.col("From Lat").cast(pl.Float64),
        plon=pl.col("From Lng").cast(pl.Float64),
        dlat=pl.col("To Lat").cast(pl.Float64),
        dlon=pl.col("To Lng").cast(pl.Float64),
    ).drop_nulls("t")
    return d, c


def _gaps(d: pl.DataFrame, c: pl.DataFrame, pairs: list) -> pl.DataFrame:
    p = pl.DataFrame(pairs, schema=["job_id", "TripRef"], orient="row")
    j = p.join(d, on="job_id", how="left").join(c, on="TripRef", how="left", suffix="_c")
    return j.with_columns(
        dt=(pl.col("t") - pl.col("t_c")).abs(),
        pick_m=pl.Series(_haversine_m(j["plat"], j["plon"], j["plat_c"], j["plon_c"])),
        drop_m=pl.Series(_haversine_m(j["dlat"], j["dlon"], j["dlat_c"], j["dlon_c"])),
    )


def _within(g: pl.DataFrame) -> pl.Series:
    return (g["dt"] <= TOLERANCE_S) & (g["pick_m"] <= TOLERANCE_M) & (g["drop_m"] <= TOLERANCE_M)


def test_planted_matches_are_within_tolerance(sample, silos):
    _, _, truth = sample
    d, c = silos
    matches = truth["matches"]
    n_courier = sum(f["trips"] for f in truth["courier"].values())
    assert 0.025 < len(matches) / n_courier < 0.05
    g = _gaps(d, c, matches)
    assert g["t_c"].null_count() == 0 and g["t"].null_count() == 0
    assert _within(g).all()
    assert g["dt"].max() <= 95 and g["pick_m"].max() <= 65 and g["drop_m"].max() <= 65
    assert len({m[0] for m in matches}) == len({m[1] for m in matches}) == len(matches)


def test_near_misses_are_not_matches(sample, silos):
    _, _, truth = sample
    d, c = silos
    near = truth["near_misses"]
    assert {k for *_, k in near} == {"dropoff_far", "time_gap", "depot"}
    g = _gaps(d, c, [n[:2] for n in near]).with_columns(kind=pl.Series([n[2] for n in near]))
    far = g.filter(pl.col("kind") == "dropoff_far")
    assert (far["dt"] <= TOLERANCE_S).all() and (far["pick_m"] <= TOLERANCE_M).all()
    assert (far["drop_m"] >= 300).all()
    gap = g.filter(pl.col("kind") == "time_gap")
    assert gap["dt"].is_between(180, 300).all() and (gap["pick_m"] <= TOLERANCE_M).all()
    # Depot decoys are inside the tolerance, but the courier trip's true partner is closer in
    # time, pickup and drop-off: one-to-one best-score matching must pick the true partner.
    depot = g.filter(pl.col("kind") == "depot")
    assert _within(depot).all()
    true = _gaps(d, c, truth["matches"]).select("TripRef", "dt", "pick_m", "drop_m")
    both = depot.join(true, on="TripRef", suffix="_true")
    assert both.height == depot.height
    for col in ("dt", "pick_m", "drop_m"):
        assert (both[f"{col}_true"] < both[col]).all(), col
    matched = {tuple(m) for m in truth["matches"]}
    assert not matched & {tuple(n[:2]) for n in near}


def test_no_accidental_matches(sample, silos):
    _, _, truth = sample
    d, c = silos
    # Every cross-silo pair within tolerance is a planted match or a planted depot decoy.
    pairs = (
        d.select("job_id", "t", "plat", "plon", "dlat", "dlon")
        .join(c.select("TripRef", "t", "plat", "plon", "dlat", "dlon"), how="cross", suffix="_c")
        .filter((pl.col("t") - pl.col("t_c")).abs() <= TOLERANCE_S)
    )
    pairs = pairs.with_columns(
        pick_m=pl.Series(
            _haversine_m(pairs["plat"], pairs["plon"], pairs["plat_c"], pairs["plon_c"]),
            dtype=pl.Float64,
        ),
        drop_m=pl.Series(
            _haversine_m(pairs["dlat"], pairs["dlon"], pairs["dlat_c"], pairs["dlon_c"]),
            dtype=pl.Float64,
        ),
    )
    close = pairs.filter((pl.col("pick_m") <= TOLERANCE_M) & (pl.col("drop_m") <= TOLERANCE_M))
    found = set(close.select("job_id", "TripRef").iter_rows())
    expected = {tuple(m) for m in truth["matches"]} | {
        tuple(n[:2]) for n in truth["near_misses"] if n[2] == "depot"
    }
    assert found == expected


def test_only_the_named_sources_are_written(tmp_path):
    summary = write_sample(tmp_path, seed=SEED, scale=SCALE, sources=("dc_taxi", "dc_boundary"))
    assert set(summary["rows"]) == {"dc_taxi", "dc_boundary"}
    assert (tmp_path / "dc_taxi").is_dir() and not (tmp_path / "company").exists()

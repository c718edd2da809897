"""The hand-written peer: what a data scientist writes for the DFHV load without this toolkit.

Usage: python bench/peers/pandas_gx.py MEMBERS_DIR OUT_DIR [--boundary DC_BOUNDARY.geojson]

It models the usual notebook-turned-script. For each extracted monthly member
(`taxi_YYYY_MM.txt` pipe delimited, `taxi_YYYYMM.csv` comma delimited) pandas' read_csv types
the numeric columns (a column with junk in it comes back as text and is coerced), the DFHV
columns are renamed to the canonical trip fields, and the local DC times are parsed and
converted to UTC. Then come the same row checks as `schemas/trip_rows.yaml` +
`schemas/dc_taxi_rows.yaml`, written out by hand as one vectorised boolean mask per check. A row
failing a `reject` check is quarantined with every reason it failed (a value that does not
parse is `unparseable:<field>`, a repeated OBJECTID within a file `duplicate_key`); the `flag`
checks are kept on the valid rows (`_flags`, comma-separated names). With `--boundary`, points
are tested against the DC polygon with shapely (`pickup_outside_dc`, `dropoff_outside_dc`);
without it those checks are skipped, as the pipeline skips them when no boundary is loaded.

The valid rows of each layout are one batch (one release: OBJECTID restarts with every
release) for the expectations of `schemas/suites/trip.json`, run with Great Expectations'
pandas datasource; an expectation with a `$param` (history-based bounds) is skipped, as on a
first run. The valid rows go to OUT_DIR/trips.parquet only when no `error` expectation failed
(exit 1 otherwise); the quarantine (the row as read, file, line, reasons) goes to
OUT_DIR/quarantine.parquet, the check results to OUT_DIR/checks.json, and a one-line summary
to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SUITE = Path(__file__).resolve().parents[2] / "schemas" / "suites" / "trip.json"
DELIMITERS = {".txt": "|", ".csv": ","}
NULL_TOKENS = ["NULL", ""]
TIMEZONE = "America/New_York"
DATETIME_FORMAT = "%m/%d/%Y %H:%M"

# DFHV header name -> canonical field (sources.yaml, source dc_taxi).
FIELDS = {
    "OBJECTID": "source_record_id",
    "ORIGINDATETIME_TR": "pickup_at",
    "DESTINATIONDATETIME_TR": "dropoff_at",
    "ORIGIN_BLOCK_LATITUDE": "pickup_lat",
    "ORIGIN_BLOCK_LONGITUDE": "pickup_lon",
    "DESTINATION_BLOCK_LATITUDE": "dropoff_lat",
    "DESTINATION_BLOCK_LONGITUDE": "dropoff_lon",
    "MILEAGE": "distance_miles",
    "DURATION": "duration_s",  # seconds (a 5.76-mile trip of 852 only makes sense as s)
    "FAREAMOUNT": "fare_usd",
    "GRATUITYAMOUNT": "tip_usd",
    "SURCHARGEAMOUNT": "surcharge_usd",
    "EXTRAFAREAMOUNT": "extra_usd",
    "TOLLAMOUNT": "toll_usd",
    "TOTALAMOUNT": "total_usd",
    "PAYMENTTYPE": "payment_type",
    "TRIPTYPE": "trip_type",
    "PROVIDERNAME": "provider",
    "AIRPORT": "airport",
    "ORIGIN_BLOCKNAME": "pickup_block",
    "DESTINATION_BLOCKNAME": "dropoff_block",
    "ORIGINZIP": "pickup_zip",
    "DESTINATIONZIP": "dropoff_zip",
}
# Read as text; the other columns are numbers that read_csv types (or leaves as text if junk).
TEXT_COLUMNS = [
    "OBJECTID", "PROVIDERNAME", "ORIGINCITY", "ORIGINSTATE", "ORIGINZIP", "DESTINATIONCITY",
    "DESTINATIONSTATE", "DESTINATIONZIP", "ORIGIN_BLOCKNAME", "DESTINATION_BLOCKNAME", "AIRPORT",
    "ORIGINDATETIME_TR", "DESTINATIONDATETIME_TR",
]  # fmt: skip
STRINGS = ["source_record_id", "provider", "pickup_block", "dropoff_block", "pickup_zip",
           "dropoff_zip"]  # fmt: skip
TIMESTAMPS = ["pickup_at", "dropoff_at"]
FLOATS = ["pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon", "distance_miles", "duration_s"]
MONEY = ["fare_usd", "tip_usd", "surcharge_usd", "extra_usd", "toll_usd", "total_usd"]
INTEGERS = ["payment_type", "trip_type"]
TRUE_VALUES = ["Y", "y", "true", "True", "1"]
FALSE_VALUES = ["N", "n", "false", "False", "0"]

# Snapped DFHV points lie in this box (dc_taxi_rows.yaml), airport trips excepted.
DC_BOX = {"lat": (38.79, 39.0), "lon": (-77.12, -76.90)}


def read_member(path: Path) -> pd.DataFrame:
    """One monthly member: read_csv types the numeric columns; text columns stay text.

    "NULL" and empty fields are missing. A numeric column with junk in it comes back as text
    and is coerced in `stage`, so a bad value quarantines its row instead of failing the load.
    """
    return pd.read_csv(
        path,
        sep=DELIMITERS[path.suffix],
        dtype=dict.fromkeys(TEXT_COLUMNS, str),
        keep_default_na=False,
        na_values=NULL_TOKENS,
    )


def clean_text(column: pd.Series) -> pd.Series:
    """Text with surrounding blanks removed; a blank or "NULL" value is missing."""
    text = column.str.strip()
    return text.mask(text.isin(NULL_TOKENS))


def to_number(column: pd.Series, money: bool = False) -> tuple[pd.Series, pd.Series]:
    """A column as float64, and the mask of the values whose text did not parse."""
    if pd.api.types.is_numeric_dtype(column):  # read_csv parsed every value
        return column.astype("float64"), pd.Series(False, index=column.index)
    text = clean_text(column.astype(str))
    if money:
        text = text.str.replace(r"[$,\s]", "", regex=True)
    value = pd.to_numeric(text, errors="coerce").astype("float64")
    return value, text.notna() & value.isna()


def stage(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical typed trips, and per reason a mask of the rows whose values did not parse."""
    src = raw[list(FIELDS)].rename(columns=FIELDS)
    trips = pd.DataFrame(index=raw.index)
    bad: dict[str, pd.Series] = {}
    for field in STRINGS:
        trips[field] = clean_text(src[field])
    for field in FLOATS + INTEGERS + MONEY:
        trips[field], bad[field] = to_number(src[field], money=field in MONEY)
    for field in INTEGERS:
        whole = trips[field] % 1 == 0
        bad[field] |= trips[field].notna() & ~whole
        trips[field] = trips[field].where(whole).astype("Int64")
    yes_no = dict.fromkeys(TRUE_VALUES, True) | dict.fromkeys(FALSE_VALUES, False)
    airport = clean_text(src["airport"])
    trips["airport"] = airport.map(yes_no).astype("boolean")
    bad["airport"] = airport.notna() & trips["airport"].isna()
    for field in TIMESTAMPS:
        text = clean_text(src[field])
        local = pd.to_datetime(text, format=DATETIME_FORMAT, errors="coerce")
        bad[field] = text.notna() & local.isna()
        # The repeated autumn hour is read as the first (daylight) one; a time the spring change
        # skipped is read with the offset before it (02:00 -> 03:00 EDT).
        local = local.dt.tz_localize(
            TIMEZONE, ambiguous=np.ones(len(local), dtype=bool), nonexistent=pd.Timedelta(hours=1)
        )
        trips[field] = local.dt.tz_convert("UTC")

    reasons = {f"unparseable:{field}": mask for field, mask in bad.items()}
    # The first row of an OBJECTID stays; a later one repeats it (a duplicated export line).
    reasons["duplicate_key"] = trips["source_record_id"].duplicated()
    return trips, pd.DataFrame(dict(sorted(reasons.items())), index=raw.index)


def load_boundary(path: Path) -> Any:
    """The DC polygon (the union of the GeoJSON's features), prepared for fast point tests."""
    import shapely
    from shapely.geometry import shape

    doc = json.loads(path.read_text())
    features = doc["features"] if doc["type"] == "FeatureCollection" else [doc]
    polygon = shapely.union_all([shape(f.get("geometry", f)) for f in features])
    shapely.prepare(polygon)
    return polygon


def in_polygon(lat: pd.Series, lon: pd.Series, polygon: Any) -> pd.Series:
    """True inside the polygon, False outside, missing when a coordinate is missing."""
    import shapely

    x = lon.to_numpy(float, na_value=np.nan)
    y = lat.to_numpy(float, na_value=np.nan)
    inside = shapely.contains_xy(polygon, x, y)
    return pd.Series(inside, index=lat.index, dtype="boolean").mask(lat.isna() | lon.isna())


def outside(lat: pd.Series, lon: pd.Series, box: dict[str, tuple[float, float]]) -> pd.Series:
    """True where a present coordinate lies outside the box (a missing one is not judged)."""
    return (lat.notna() & ~lat.between(*box["lat"])) | (lon.notna() & ~lon.between(*box["lon"]))


def row_checks(t: pd.DataFrame, boundary: Any | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per check, a mask of the rows that FAIL it: (reject checks, flag checks), in spec order.

    A check whose inputs are missing passes; a missing value is its own not-null check's
    business. Where dc_taxi_rows.yaml narrows a check of trip_rows.yaml, the narrow one is it.
    """
    hour = pd.Timedelta(hours=1)
    not_airport = ~t["airport"].fillna(False).astype(bool)
    speed_known = (t["distance_miles"] > 0) & (t["duration_s"] > 0)
    speed_mph = t["distance_miles"] / (t["duration_s"] / 3600.0)
    if boundary is not None:
        pickup_outside_dc = ~in_polygon(t["pickup_lat"], t["pickup_lon"], boundary).fillna(True)
        dropoff_outside_dc = ~in_polygon(t["dropoff_lat"], t["dropoff_lon"], boundary).fillna(True)
    else:  # no boundary loaded: the checks are skipped
        pickup_outside_dc = dropoff_outside_dc = pd.Series(False, index=t.index)
    rejects = pd.DataFrame(
        {
            "pickup_at_missing": t["pickup_at"].isna(),
            "dropoff_at_missing": t["dropoff_at"].isna(),
            # Hour-rounded times; the extra hour absorbs the repeated November hour.
            "dropoff_before_pickup": t["dropoff_at"] < t["pickup_at"] - hour,
            "fare_out_of_range": t["fare_usd"].notna() & ~t["fare_usd"].between(3.25, 180),
            "mileage_out_of_range": t["distance_miles"].notna()
            & ~t["distance_miles"].between(0, 150),
            "duration_out_of_range": t["duration_s"].notna() & ~t["duration_s"].between(0, 21600),
            "pickup_outside_area": not_airport & outside(t["pickup_lat"], t["pickup_lon"], DC_BOX),
            "dropoff_outside_area": not_airport
            & outside(t["dropoff_lat"], t["dropoff_lon"], DC_BOX),
            "pickup_outside_dc": not_airport & pickup_outside_dc,
            "dropoff_outside_dc": not_airport & dropoff_outside_dc,
            "payment_type_unknown": t["payment_type"].notna()
            & ~t["payment_type"].isin([1, 2, 3, 4, 5]),
            "trip_type_unknown": t["trip_type"].notna() & ~t["trip_type"].isin(range(1, 9)),
        },
        index=t.index,
    ).astype(bool)
    flags = pd.DataFrame(
        {
            "fare_missing": t["fare_usd"].isna(),
            # A speed no car reaches: the mileage or the duration is wrong, the trip is real.
            "speed_implausible": speed_known & (speed_mph > 90),
            "pickup_not_geocoded": t["pickup_lat"].isna() | t["pickup_lon"].isna(),
            "dropoff_not_geocoded": t["dropoff_lat"].isna() | t["dropoff_lon"].isna(),
        },
        index=t.index,
    )
    return rejects, flags


def names_of(mask: pd.DataFrame) -> pd.Series:
    """Per row, the comma-separated names of the columns that are true (the classic dot trick)."""
    if mask.empty:
        return pd.Series("", index=mask.index, dtype=object)
    return mask.dot(mask.columns + ",").str.rstrip(",")


def process_member(
    path: Path, boundary: Any | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Read, stage and check one member: (valid trips, quarantined rows, failures per check)."""
    raw = read_member(path)
    trips, unparseable = stage(raw)
    rejects, flags = row_checks(trips, boundary)
    failed = pd.concat([unparseable, rejects], axis=1)
    bad = failed.any(axis=1)

    counts = {name: int(n) for name, n in failed.sum().items() if n}
    counts |= {name: int(n) for name, n in flags.sum().items()}

    line = pd.Series(np.arange(2, len(raw) + 2), index=raw.index)  # the header is line 1
    valid = trips[~bad].assign(_file=path.name, _line=line[~bad])
    valid["_flags"] = names_of(flags[~bad])

    quarantine = raw[bad].assign(_file=path.name, _line=line[bad])
    quarantine["reasons"] = names_of(failed[bad]).str.split(",")
    quarantine["flags"] = names_of(flags[bad])
    return valid, quarantine, counts


def expectations(suite: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The suite's expectations a first run can evaluate, and the `meta` of those it skips."""

    def has_param(value: Any) -> bool:
        if isinstance(value, dict):
            return "$param" in value or any(has_param(v) for v in value.values())
        if isinstance(value, list):
            return any(has_param(v) for v in value)
        return False

    runnable, skipped = [], []
    for exp in suite["expectations"]:
        if has_param(exp["kwargs"]):
            skipped.append(exp["meta"])
        else:
            runnable.append({"type": exp["type"], "kwargs": exp["kwargs"], "meta": exp["meta"]})
    return runnable, skipped


def validate_batches(batches: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Run trip.json with Great Expectations' pandas datasource on each batch."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite_doc = json.loads(SUITE.read_text())
    runnable, skipped = expectations(suite_doc)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name="dc_taxi").add_dataframe_asset(name="trips")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole batch")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_doc["name"], expectations=runnable))

    results: list[dict[str, Any]] = []
    for name, df in batches.items():
        for meta in skipped:
            results.append({"batch": name, "expectation": meta["name"],
                            "severity": meta["severity"], "success": True,
                            "skipped": "no history"})  # fmt: skip
        if df.empty:
            continue
        # The suite's derived_columns, in pandas; the record key of dc_taxi is its OBJECTID
        # (sources.yaml `key: [source_record_id]`).
        df = df.assign(
            implied_speed_mph=(df["distance_miles"] * 3600.0 / df["duration_s"]).where(
                df["duration_s"] > 0
            ),
            _record_key=df["source_record_id"],
        )
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        validation = batch.validate(suite)
        for res in validation.results:
            meta = res.expectation_config.meta
            results.append({
                "batch": name,
                "expectation": meta.get("name", res.expectation_config.type),
                "severity": meta["severity"],
                "success": bool(res.success),
                "observed_value": res.result.get("observed_value",
                                                 res.result.get("unexpected_percent")),
            })  # fmt: skip
    return results


def main(members_dir: Path, out_dir: Path, boundary_path: Path | None = None) -> int:
    started = time.perf_counter()
    members = sorted(p for p in members_dir.iterdir() if p.suffix in DELIMITERS)
    if not members:
        print(f"no taxi_*.txt / taxi_*.csv members in {members_dir}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    boundary = load_boundary(boundary_path) if boundary_path else None

    valid_parts: dict[str, list[pd.DataFrame]] = {}
    quarantine_parts: list[pd.DataFrame] = []
    counts: dict[str, int] = {}
    rows_read = 0
    for path in members:
        valid, quarantine, member_counts = process_member(path, boundary)
        rows_read += len(valid) + len(quarantine)
        valid_parts.setdefault(path.suffix, []).append(valid)
        quarantine_parts.append(quarantine)
        for name, n in member_counts.items():
            counts[name] = counts.get(name, 0) + n

    layouts = {"release_2015_2019": ".txt", "yearly_2020_on": ".csv"}
    batches = {
        layout: pd.concat(valid_parts[suffix], ignore_index=True)
        for layout, suffix in layouts.items()
        if suffix in valid_parts
    }
    del valid_parts
    results = validate_batches(batches)
    failed_errors = [r for r in results if not r["success"] and r["severity"] == "error"]

    trips = pd.concat(batches.values(), ignore_index=True)
    del batches
    quarantine = pd.concat(quarantine_parts, ignore_index=True)
    quarantine.to_parquet(out_dir / "quarantine.parquet", index=False)
    if not failed_errors:
        trips.to_parquet(out_dir / "trips.parquet", index=False)
    (out_dir / "checks.json").write_text(
        json.dumps({"row_checks": counts, "expectations": results}, indent=2, default=str)
    )

    passed = sum(r["success"] for r in results)
    warned = sum(not r["success"] and r["severity"] == "warn" for r in results)
    print(
        f"pandas_gx: {rows_read} rows read, {len(trips)} valid, {len(quarantine)} quarantined; "
        f"expectations {passed} passed, {len(failed_errors)} error failed, {warned} warn failed; "
        f"{'published' if not failed_errors else 'NOT published'}; "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 1 if failed_errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--boundary", type=Path, help="dc_reference/dc_boundary.geojson")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # GX logs config chatter; the summary line is the output
    warnings.filterwarnings("ignore")
    sys.exit(main(args.members_dir, args.out_dir, args.boundary))

"""model_card.md: what the models are, what they learned from, how good they are, their limits."""

from __future__ import annotations

from typing import Any

FEATURE_NOTES = {
    "pickup_lat": "pickup latitude (WGS84)",
    "pickup_lon": "pickup longitude",
    "dropoff_lat": "drop-off latitude",
    "dropoff_lon": "drop-off longitude",
    "straight_miles": "great-circle (haversine) distance between the two points, miles",
    "bearing_deg": "initial bearing from pickup to drop-off, degrees clockwise from north",
    "hour_of_day": "local (DC) hour of the pickup, 0-23",
    "day_of_week": "ISO day of week of the local pickup date, 1 = Monday",
    "month": "month of the local pickup date",
    "is_holiday": "DC public holiday (curated.dim_date, observed dates included)",
    "is_weekend": "Saturday or Sunday (curated.dim_date)",
    "airport": "DFHV AIRPORT flag, or an end within 1.5 km of DCA, IAD or BWI",
    "source": "the silo the trip is from (categorical)",
    "time_precision": "'hour' (DFHV, rounded timestamps) or 'second' (categorical)",
}

TARGET_UNITS = {"duration_s": ("duration", "s"), "fare_usd": ("fare", "USD")}


def model_card(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    split = summary["split"]
    rows = summary["rows"]
    lines = [
        "# Baseline ETA and fare models",
        "",
        "Two LightGBM regressors trained by `etl train` on the curated warehouse: trip duration",
        "(seconds) and meter fare (USD) between two points in Washington, DC, from what is known",
        "before the trip. `etl predict --from LAT,LON --to LAT,LON [--at TIME]` asks them.",
        "",
        "## Data",
        "",
        f"- Warehouse: `{summary['warehouse']}`; training table: `training_table.parquet`,"
        f" {rows['training_table']:,} trips (warehouse/queries/training_table.sql).",
        "- Kept: trips with both points geocoded, a positive duration and distance, and neither",
        "  `speed_implausible` nor `not_a_trip`. Trips flagged `fare_missing` train the duration",
        "  model only. Repaired swapped coordinates are kept.",
        f"- Split by pickup time ({split['method']}):",
        f"  train {split['train']['rows']:,} trips, {split['train']['first_pickup']} to"
        f" {split['train']['last_pickup']};",
        f"  test {split['test']['rows']:,} trips, {split['test']['first_pickup']} to"
        f" {split['test']['last_pickup']}.",
        "",
        "## Features",
        "",
        "| feature | meaning |",
        "| --- | --- |",
        *(f"| `{name}` | {FEATURE_NOTES.get(name, '')} |" for name in meta["features"]),
        "",
        "## Metrics on the test split (latest pickups)",
        "",
        "Baselines: duration = straight-line distance / median straight-line speed of the",
        "pickup hour (learned on the train split); fare = $3.50 + $2.16 per mile on the",
        "straight-line distance x 1.3. MAPE is the mean of |error| / actual.",
        "",
        "| target | rows | model MAE | baseline MAE | model MAPE | baseline MAPE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, result in summary["metrics"].items():
        name, unit = TARGET_UNITS.get(target, (target, ""))
        lines.append(_row(f"{name} (all)", unit, result["model"], result["baseline"]))
        for source, part in result["by_source"].items():
            lines.append(_row(f"{name}, {source}", unit, part["model"], part["baseline"]))
    levels = ", ".join(f"`{s}`" for s in meta["levels"]["source"])
    lines += [
        "",
        "## Training",
        "",
        f"LightGBM, objective L2 on log(target), {meta['num_boost_round']} rounds, learning rate"
        f" {meta['params']['learning_rate']}, {meta['params']['num_leaves']} leaves; seed"
        f" {meta['params']['seed']}, `deterministic=True`, {meta['params']['num_threads']}"
        " threads: the same warehouse gives the same models. Saved in LightGBM's text format"
        " (`duration_model.txt`, `fare_model.txt`); `model.json` holds the feature order and"
        " category levels that `etl predict` needs.",
        "",
        "## Limits",
        "",
        "- DFHV taxi timestamps are rounded to the hour: their hour of day is off by up to 30",
        "  minutes, and a trip near midnight can land on the neighbouring day (and weekday).",
        "- DFHV points are snapped to a block (within about 250 m); trips without both points",
        "  geocoded are not in the table at all.",
        "- Distance is straight-line: no road network, live traffic, weather or events. Rush-hour",
        "  effects are learned only as the average of the hour, day and place.",
        "- The fare is the meter fare (DFHV `FAREAMOUNT`: no tip, extras or tolls) or the",
        "  company's charge; courier charters billed over $1,000 cannot be told apart from",
        "  a trip by any feature and inflate the fare MAE (MAPE and the by-source rows show it).",
        "- The test split is the latest 20% of pickups only: the company silos cover fewer",
        "  years than the DFHV data, so the score is mostly that of the latest months. Fare rule",
        "  changes or traffic drift after the training window are not in the model.",
        f"- Sources the models know: {levels}. `etl predict` asks as"
        f" `{meta['default_source']}` unless told otherwise (`--source`).",
        "- Points far outside the area the trips cover are extrapolation; `etl predict` refuses",
        "  points outside the Washington region.",
        "",
    ]
    return "\n".join(lines)


def _row(label: str, unit: str, model: dict[str, Any], naive: dict[str, Any]) -> str:
    return (
        f"| {label} | {model['rows']:,} | {model['mae']:.2f} {unit} | {naive['mae']:.2f} {unit}"
        f" | {model['mape']:.1%} | {naive['mape']:.1%} |"
    )

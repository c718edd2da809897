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
    """The model card (model_card.md): what the models are, their data, scores and limits."""
    lines = [
        *_data_lines(summary, meta),
        *_estimator_lines(summary),
        *_metric_lines(summary),
        *_training_lines(meta),
        *_limit_lines(summary, meta),
    ]
    return "\n".join(lines)


def _data_lines(summary: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    split = summary["split"]
    rows = summary["rows"]
    return [
        "# Baseline ETA and fare models",
        "",
        "Two LightGBM regressors trained by `etl train` on the curated warehouse: trip duration",
        "(seconds) and meter fare (USD) between two points in Washington, DC, from what is known",
        "before the trip. Each estimate is the expected value (the conditional mean: sums of",
        "estimates add up) with an 80% interval (10th to 90th percentile). `etl predict` asks",
        "them for one trip or a file of trips, `etl serve` over HTTP.",
        f"Version `{meta['version']}`.",
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
    ]


def _training_lines(meta: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Training",
        "",
        "LightGBM; the number of rounds (at most"
        f" {meta['max_boost_round']}) found by early stopping on the calibration fold,"
        " then scaled to the whole training period: "
        + ", ".join(f"{target} {spec['rounds']}" for target, spec in meta["models"].items())
        + f"; learning rate"
        f" {meta['params']['learning_rate']}, {meta['params']['num_leaves']} leaves; seed"
        f" {meta['params']['seed']}, `deterministic=True`, {meta['params']['num_threads']}"
        " threads: the same warehouse gives the same models. Saved in LightGBM's text format"
        " (`duration_model.txt`, `fare_model.txt`); `model.json` holds the feature order and"
        " category levels that `etl predict` needs.",
    ]


def _limit_lines(summary: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    levels = ", ".join(f"`{s}`" for s in meta["levels"]["source"])
    return [
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
        *_extrapolation_lines(summary, meta),
        "",
    ]


def _estimator_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        "## Mean estimates",
        "",
        "A fit of log(target) gives the median, not the mean. Measured on the calibration fold",
        "(the latest 20% of the training period, not learned from): `log_smearing` is the log",
        "fit times Duan's smearing factor, `gamma` a loss whose minimiser is the mean;",
        "`log_median` is the uncorrected fit. The lower RMSE is kept and refitted on the whole",
        "training period. The 80% interval is the estimate times the 10th and 90th percentiles",
        "of actual/estimate on the calibration fold, per source.",
        "",
        "| target | candidate | RMSE | mean bias | kept |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for target, result in summary["metrics"].items():
        choice = result["estimator"]
        for name, score in choice["candidates"].items():
            kept = "yes" if name == choice["chosen"] else ""
            rmse, bias = score["rmse"], score["bias_pct"]
            lines.append(f"| {target} | `{name}` | {rmse:,.2f} | {bias:+.1%} | {kept} |")
    return [*lines, ""]


def _metric_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        "## Metrics on the test split (latest pickups)",
        "",
        "Baselines: duration = straight-line distance / median straight-line speed of the",
        "pickup hour (learned on the train split); fare = $3.50 + $2.16 per mile on the",
        "straight-line distance x 1.3. Mean bias is mean(estimate - actual) over the mean actual;",
        "coverage the share of actual values inside the 80% interval.",
        "",
        "| target, part | trips | RMSE | baseline RMSE | MAE | baseline MAE | mean bias |"
        " baseline bias | 80% coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, result in summary["metrics"].items():
        name, unit = TARGET_UNITS.get(target, (target, ""))
        lines.append(_row(f"{name}, all", unit, result["model"], result["baseline"]))
        for key in ("by_source", "by_hour_band"):
            for part, pair in result[key].items():
                lines.append(_row(f"{name}, {part}", unit, pair["model"], pair["baseline"]))
    return [*lines, ""]


def _extrapolation_lines(summary: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    calendar = summary["calendar"]
    unseen = ", ".join(str(m) for m in calendar["test_months_not_in_train"]) or "none"
    region = meta["region"]
    return [
        "- Every test trip is later than every training trip: the scores are of estimates for",
        "  a period the models never saw, as every request is. Calendar months of the test",
        f"  split the training never saw: {unseen}."
        + (
            ""
            if "month" in meta["features"]
            else " The training trips do not cover all twelve months, so `month` is left out"
            " of the features: no seasonality is learned."
        ),
        f"- Holidays: the training period holds {calendar['holiday_days_in_train']} DC public"
        " holiday days; what a holiday does to traffic is learned from those alone.",
        f"- Region: the training trips cover latitude {region['lat_min']}..{region['lat_max']},"
        f" longitude {region['lon_min']}..{region['lon_max']}; a point outside is extrapolated"
        " (batch prediction and `etl serve` say so in `warning`; `etl predict` refuses points"
        " outside the Washington region).",
    ]


def _row(label: str, unit: str, model: dict[str, Any], naive: dict[str, Any]) -> str:
    return (
        f"| {label} | {model['rows']:,} | {model['rmse']:,.2f} {unit} | {naive['rmse']:,.2f}"
        f" {unit} | {model['mae']:,.2f} | {naive['mae']:,.2f} | {model['bias_pct']:+.1%} |"
        f" {naive['bias_pct']:+.1%} | {model['coverage_80']:.1%} |"
    )

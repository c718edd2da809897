"""The report's model section: how good the ETA and fare estimates are, from the metrics.json
that `etl train` wrote (RMSE, MAE, mean bias and 80% interval coverage on the test split,
against the naive baselines, overall, per source and per hour band)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from etl.report.blocks import Html, key_values, note, section, table

METRICS_FILE = "metrics.json"


def model_metrics(models: Path) -> dict[str, Any] | None:
    """The metrics of the models in `models`, or None when there are none (or unreadable)."""
    try:
        return json.loads((models / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None


def model_section(metrics: dict[str, Any] | None) -> Html:
    if not metrics or "version" not in metrics:
        return section("model", note("No models with metrics yet: run `etl train`."))
    split = metrics["split"]
    facts = key_values(
        [
            ["Models", f"version {metrics['version']}, in {metrics['out']}"],
            ["Trained on", f"{split['train']['first_pickup']} to {split['train']['last_pickup']}"],
            ["Tested on", f"{split['test']['first_pickup']} to {split['test']['last_pickup']}"],
        ]
    )
    headers = [
        "target",
        "part",
        "trips",
        "RMSE",
        "baseline RMSE",
        "MAE",
        "baseline MAE",
        "mean bias",
        "baseline bias",
        "80% coverage",
    ]
    rows = []
    for target, result in metrics["metrics"].items():
        parts = [("all", result), *result["by_source"].items(), *result["by_hour_band"].items()]
        rows += [_row(target, part, pair["model"], pair["baseline"]) for part, pair in parts]
    chosen = ", ".join(
        f"{target}: {result['estimator']['chosen']}"
        for target, result in metrics["metrics"].items()
    )
    return section(
        "model",
        facts,
        note(f"Mean estimates by {chosen} (see model_card.md). Test split: the latest trips."),
        table(headers, rows),
    )


def _row(target: str, part: str, model: dict[str, Any], naive: dict[str, Any]) -> list[Any]:
    return [
        target,
        part,
        model["rows"],
        round(model["rmse"], 2),
        round(naive["rmse"], 2),
        round(model["mae"], 2),
        round(naive["mae"], 2),
        f"{model['bias_pct']:+.1%}",
        f"{naive['bias_pct']:+.1%}",
        f"{model['coverage_80']:.1%}",
    ]

"""Repairs: a defect with one certain correction is corrected and flagged, nothing else."""

from __future__ import annotations

import polars as pl

from etl.stage.repairs import REPAIRS, swapped_coordinates

DC = (38.90, -77.03)  # a point in DC, latitude first
SWAPPED = (-77.03, 38.90)
NOWHERE = (12.0, 34.0)  # wrong, but not a swap: left for the row checks


def test_swapped_points_are_exchanged_and_noted_in_point_order():
    rows = [(DC, DC), (SWAPPED, DC), (DC, SWAPPED), (SWAPPED, SWAPPED), (NOWHERE, (None, None))]
    frame = pl.DataFrame(
        [(*pickup, *dropoff) for pickup, dropoff in rows],
        schema=["pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon"],
        orient="row",
    )
    repaired = swapped_coordinates(frame)
    assert repaired.select("pickup_lat", "pickup_lon").rows() == [DC, DC, DC, DC, NOWHERE]
    assert repaired.select("dropoff_lat", "dropoff_lon").rows() == [DC, DC, DC, DC, (None, None)]
    assert repaired[REPAIRS].to_list() == [
        [],
        ["swapped_coordinates:pickup"],
        ["swapped_coordinates:dropoff"],
        ["swapped_coordinates:pickup", "swapped_coordinates:dropoff"],
        [],
    ]

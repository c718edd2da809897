"""Repairs: defects with one certain correction, applied before row checks and flagged.

A repair changes a value only when the right value is beyond doubt, and every repaired row
carries the repair's name in its flags, so that analysts can count and exclude them.

`swapped_coordinates`: a point whose latitude lies in DC's longitude band and whose longitude
lies in DC's latitude band was written with the two swapped (the courier system does this).
No point on Earth near DC reads both ways, so the swap is certain: the values are exchanged
and the row is flagged `swapped_coordinates:pickup` (or `:dropoff`). A point that is wrong in
any other way is left alone for the row checks to reject.
"""

from __future__ import annotations

import polars as pl

from etl.stage.labels import label_lists

REPAIRS = "_repairs"

# A generous box around DC (the boundary's extremes are 38.79..39.00 N, 77.12..76.90 W).
DC_LAT = (38.7, 39.1)
DC_LON = (-77.2, -76.8)

POINTS = {"pickup": ("pickup_lat", "pickup_lon"), "dropoff": ("dropoff_lat", "dropoff_lon")}


def swapped_coordinates(frame: pl.DataFrame) -> pl.DataFrame:
    """Exchange swapped latitude/longitude pairs and record which points were repaired."""
    fixes, swaps = [], {}
    for point, (lat, lon) in POINTS.items():
        if lat not in frame.columns or lon not in frame.columns:
            continue
        swapped = pl.col(lat).is_between(*DC_LON) & pl.col(lon).is_between(*DC_LAT)
        fixes += [
            pl.when(swapped).then(pl.col(lon)).otherwise(pl.col(lat)).alias(lat),
            pl.when(swapped).then(pl.col(lat)).otherwise(pl.col(lon)).alias(lon),
        ]
        swaps[f"swapped_coordinates:{point}"] = swapped
    if not fixes:
        return frame
    bits = frame.select(swapped.alias(note) for note, swapped in swaps.items())
    notes = label_lists(bits, list(swaps), frame.height)
    return frame.with_columns(*fixes, notes.alias(REPAIRS))


AVAILABLE = {"swapped_coordinates": swapped_coordinates}

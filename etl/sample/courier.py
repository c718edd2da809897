"""The acquired courier company's monthly CSV exports, with their known defects.

Format (docs/data.md, "Silo 2: courier"): comma separated, CRLF line endings, local DC times as
`MM/DD/YYYY hh:mm:ss AM`, Cost as `$1,012.50` (quoted when it holds a comma), a final control
line `TOTAL ROWS: N` counting the data rows. Defects: exact duplicate rows, lat/lon swapped in
one point, blank lines, end before start, and start times in the repeated autumn hour and the
skipped spring hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from etl.sample import clock, files, text, trips
from etl.sample.trips import TripSet

HEADER = "TripRef,Vehicle,Start Time,End Time,From Lat,From Lng,To Lat,To Lng,Miles,Cost"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
CRLF = "\r\n"

DUPLICATE_RATE = 0.01
SWAPPED_RATE = 0.005
BLANK_LINE_RATE = 0.002
END_BEFORE_START_RATE = 0.001
CHARTER_RATE = 0.003  # long charters billed over $1,000: the thousands separator shows up
DST_ROWS_PER_SCALE = 4  # "a handful" of rows in each clock-change hour
FIRST_TRIP_REF = 1_000_001


@dataclass(frozen=True)
class ClockDefects:
    end_first: np.ndarray  # Start Time and End Time written the wrong way round
    ambiguous: np.ndarray  # starts in the repeated 1 a.m. hour of the autumn change
    nonexistent: np.ndarray  # starts in the skipped 2 a.m. hour of the spring change

    def take(self, idx: np.ndarray) -> ClockDefects:
        return ClockDefects(self.end_first[idx], self.ambiguous[idx], self.nonexistent[idx])

    @property
    def pinned(self) -> np.ndarray:
        """Rows whose time is the point of the defect: they must not be moved."""
        return self.ambiguous | self.nonexistent


def trip_ref_text(numbers: np.ndarray) -> pl.Series:
    """Trip numbers as the courier system prints them ("CT-1000001")."""
    return text.padded_ids("CT-", FIRST_TRIP_REF + np.asarray(numbers), 7)


def plant_clock_defects(
    rng: np.random.Generator, c: TripSet, scale: float
) -> tuple[TripSet, ClockDefects]:
    """Choose rows among the unplanted ones and give them the clock defects.

    Rows in the skipped hour come from a device that did not spring forward: their instant is
    the wall-clock time read as standard time. Their pickup_utc says so, for the guard.
    """
    n = len(c)
    free = np.flatnonzero(c.group < 0)
    k_dst = min(max(2, round(DST_ROWS_PER_SCALE * scale)), len(free) // 10)
    k_ebs = min(max(2, round(END_BEFORE_START_RATE * n)), len(free) // 10)
    chosen = rng.choice(free, size=2 * k_dst + k_ebs, replace=False)
    amb, non, ebs = chosen[:k_dst], chosen[k_dst : 2 * k_dst], chosen[2 * k_dst :]

    spring_naive, fall_naive = clock.dst_window_naive(trips.YEAR)
    fall_back_utc = fall_naive - clock.EDT_OFFSET
    pickup, dropoff = c.pickup_utc.copy(), c.dropoff_utc.copy()
    duration = np.minimum(dropoff - pickup, 1_800)  # short: the trip ends in the same hour
    # Ambiguous: half in the first 1 a.m. (EDT, 05:xxZ), half in the second (EST, 06:xxZ).
    first_pass = np.arange(k_dst) % 2 == 0
    pickup[amb] = np.where(first_pass, fall_back_utc - clock.HOUR, fall_back_utc) + rng.integers(
        0, 1_200, k_dst
    )
    dropoff[amb] = pickup[amb] + duration[amb]
    pickup[non] = spring_naive + rng.integers(0, 3_000, k_dst) - clock.EST_OFFSET
    dropoff[non] = pickup[non] + duration[non]

    flags = [np.zeros(n, dtype=bool) for _ in range(3)]
    for flag, rows in zip(flags, (ebs, amb, non), strict=True):
        flag[rows] = True
    return c.with_(pickup_utc=pickup, dropoff_utc=dropoff), ClockDefects(*flags)


def written_local_times(c: TripSet, defects: ClockDefects) -> tuple[np.ndarray, np.ndarray]:
    """Local wall-clock Start Time and End Time as the file shows them."""
    start = clock.utc_to_local(c.pickup_utc, trips.YEAR)
    end = clock.utc_to_local(c.dropoff_utc, trips.YEAR)
    # The device that missed the spring change writes standard time.
    start = np.where(defects.nonexistent, c.pickup_utc + clock.EST_OFFSET, start)
    end = np.where(defects.nonexistent, c.dropoff_utc + clock.EST_OFFSET, end)
    return (np.where(defects.end_first, end, start), np.where(defects.end_first, start, end))


def _row_lines(
    c: TripSet,
    trip_ref: pl.Series,
    vehicle: pl.Series,
    start: np.ndarray,
    end: np.ndarray,
    swap_from: np.ndarray,
    swap_to: np.ndarray,
    cost_cents: np.ndarray,
) -> pl.Series:
    from_lat = np.where(swap_from, c.plon, c.plat)
    from_lng = np.where(swap_from, c.plat, c.plon)
    to_lat = np.where(swap_to, c.dlon, c.dlat)
    to_lng = np.where(swap_to, c.dlat, c.dlon)
    cost = text.thousands_dollar_text(cost_cents)
    frame = pl.DataFrame(
        {
            "ref": trip_ref,
            "vehicle": vehicle,
            "start": clock.format_seconds(start, TIME_FORMAT),
            "end": clock.format_seconds(end, TIME_FORMAT),
            "from_lat": text.decimal_text(from_lat, 6),
            "from_lng": text.decimal_text(from_lng, 6),
            "to_lat": text.decimal_text(to_lat, 6),
            "to_lng": text.decimal_text(to_lng, 6),
            "miles": text.decimal_text(c.miles, 2),
            # CSV quoting: only a cost with a thousands separator needs quotes.
            "cost": cost,
        }
    )
    quoted = (
        pl.when(pl.col("cost").str.contains(",", literal=True))
        .then(pl.concat_str([pl.lit('"'), pl.col("cost"), pl.lit('"')]))
        .otherwise(pl.col("cost"))
    )
    return frame.select(
        pl.concat_str([pl.col(name) for name in frame.columns[:-1]] + [quoted], separator=",")
    ).to_series()


def write_courier(
    root: Path,
    rng: np.random.Generator,
    c: TripSet,
    trip_ref: pl.Series,
    vehicle: pl.Series,
    defects: ClockDefects,
) -> tuple[list[str], dict]:
    """Write one CSV per local month of the written Start Time. Rows must be in TripRef order.

    Returns the relative paths written and the truth counts per file.
    """
    n = len(c)
    start, end = written_local_times(c, defects)
    # Data defects go to unplanted rows without a clock defect, disjoint so counts stay exact.
    clean = np.flatnonzero((c.group < 0) & ~defects.pinned & ~defects.end_first)
    k = rng.binomial(len(clean), [DUPLICATE_RATE, SWAPPED_RATE, CHARTER_RATE])
    chosen = rng.choice(clean, size=int(k.sum()), replace=False)
    dup_rows = np.sort(chosen[: k[0]])
    swapped = np.zeros(n, dtype=bool)
    swapped[chosen[k[0] : k[0] + k[1]]] = True
    swap_from = swapped & (rng.random(n) < 0.5)
    swap_to = swapped & ~swap_from
    cost = c.fare_cents.copy()
    charter = chosen[k[0] + k[1] :]
    cost[charter] = rng.integers(100_000, 250_000, len(charter))

    lines = _row_lines(c, trip_ref, vehicle, start, end, swap_from, swap_to, cost)
    month = (start // clock.DAY).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month = month % 12 + 1  # every written start is in 2023

    spring_naive, fall_naive = clock.dst_window_naive(trips.YEAR)
    ambiguous = (start >= fall_naive - clock.HOUR) & (start < fall_naive)
    nonexistent = (start >= spring_naive) & (start < spring_naive + clock.HOUR)
    is_dup = np.zeros(n, dtype=bool)
    is_dup[dup_rows] = True

    paths, truth_counts = [], {}
    for m in range(1, 13):
        rows = np.flatnonzero(month == m)
        name = f"courier_trips_{trips.YEAR}{m:02d}.csv"
        # Placement: each duplicate a few rows after its original, blank lines anywhere.
        dups = rows[is_dup[rows]]
        n_blank = max(1, int(rng.binomial(len(rows), BLANK_LINE_RATE)))
        pos = np.concatenate(
            [
                np.arange(len(rows), dtype=np.float64),
                np.searchsorted(rows, dups) + rng.uniform(0.5, 40.0, len(dups)),
                rng.uniform(0.0, len(rows), n_blank),
            ]
        )
        body = pl.concat(
            [
                lines.gather(rows),
                lines.gather(dups),
                pl.repeat("", n_blank, dtype=pl.String, eager=True),
            ]
        )
        body = body.gather(np.argsort(pos, kind="stable"))
        data_rows = len(rows) + len(dups)
        content = (
            CRLF.join(
                [
                    HEADER,
                    *([body.str.join(CRLF).item()] if len(body) else []),
                    f"TOTAL ROWS: {data_rows}",
                ]
            )
            + CRLF
        )
        path = root / "company" / "courier" / name
        files.write_text(path, content.encode())
        paths.append(str(path.relative_to(root)))
        truth_counts[name] = {
            "rows": data_rows,
            "trips": len(rows),
            "duplicates": len(dups),
            "swapped": int(swapped[rows].sum()),
            "end_before_start": int((end[rows] < start[rows]).sum()),
            "blank_lines": n_blank,
            "dst_ambiguous": int(ambiguous[rows].sum()),
            "dst_nonexistent": int(nonexistent[rows].sum()),
            "cost_over_1000": int((cost[rows] >= 100_000).sum()),
        }
    return paths, truth_counts

"""Cross-silo overlap: planted duplicates, planted near misses, and a guard against accidents.

A physical trip logged in both silos appears as a dispatch job and a courier trip whose pickup
times agree within TIME_TOLERANCE_S and whose pickup and drop-off points agree within
DISTANCE_TOLERANCE_M. The sample plants a known set of such pairs, plus near misses that a
correct matcher must not pair, and then moves every other trip away from the other silo until no
pair outside the planted cases comes within twice the tolerance.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from etl.sample import clock, geo, trips
from etl.sample.trips import TripSet

TIME_TOLERANCE_S = 120
DISTANCE_TOLERANCE_M = 100
# Unplanted cross-silo pairs are kept at least this far apart in time OR space.
GUARD_TIME_S = 2 * TIME_TOLERANCE_S
GUARD_DISTANCE_M = 2 * DISTANCE_TOLERANCE_M
WEEK_S = 7 * clock.DAY  # trips are moved by whole weeks: hour and weekday stay the same

# Shares of courier trips.
MATCH_RATE = 0.03
NEAR_MISS_RATE = 0.005  # per kind

# Near-miss kinds, as named in the truth file.
DROPOFF_FAR = "dropoff_far"  # same pickup time and place, drop-off 300+ m away
TIME_GAP = "time_gap"  # same places, pickups 3-5 min apart
DEPOT = "depot"  # a second dispatch trip leaving with the matched one; must stay unmatched


@dataclass(frozen=True)
class Planted:
    """Planted cases. Indices point into `dispatch` (base trips, then decoys) and `courier`
    (the planted courier trips only; the caller appends the unplanted ones after them)."""

    dispatch: TripSet
    courier: TripSet
    matches: np.ndarray  # (k, 2): dispatch index, courier index
    near_misses: np.ndarray  # (m, 2): dispatch index, courier index
    near_miss_kinds: list[str]


def _signed(rng: np.random.Generator, low: float, high: float, k: int) -> np.ndarray:
    """k integers whose magnitude is uniform in [low, high], random sign."""
    return np.rint(rng.uniform(low, high, k) * rng.choice([-1.0, 1.0], k)).astype(np.int64)


def _echo(
    rng: np.random.Generator,
    src: TripSet,
    group: np.ndarray,
    dt: np.ndarray,
    pickup_m: float,
    dropoff_m: float,
) -> TripSet:
    """The same physical trip seen by the other silo: its own clock and GPS, its own price."""
    k = len(src)
    plat, plon = geo.jitter_m(rng, src.plat, src.plon, 0.0, pickup_m)
    dlat, dlon = geo.jitter_m(rng, src.dlat, src.dlon, 0.0, dropoff_m)
    pickup = src.pickup_utc + dt
    duration = np.maximum(src.dropoff_utc - src.pickup_utc + rng.integers(-30, 31, k), 60)
    return TripSet(
        pickup_utc=pickup,
        dropoff_utc=pickup + duration,
        plat=plat,
        plon=plon,
        dlat=dlat,
        dlon=dlon,
        miles=np.round(src.miles * rng.uniform(0.97, 1.03, k), 2),
        fare_cents=np.rint(src.fare_cents * rng.uniform(0.92, 1.08, k)).astype(np.int64),
        group=group,
    )


def _other_trip(
    rng: np.random.Generator,
    pickup_utc: np.ndarray,
    plat: np.ndarray,
    plon: np.ndarray,
    dlat: np.ndarray,
    dlon: np.ndarray,
    group: np.ndarray,
) -> TripSet:
    """A genuinely different trip with the given start; duration and fare from the model."""
    naive = clock.utc_to_local(pickup_utc, trips.YEAR)
    t = trips.from_points(rng, naive, plat, plon, dlat, dlon, group)
    # Keep the exact instant asked for (local time is ambiguous in the autumn's repeated hour).
    return t.with_(dropoff_utc=pickup_utc + (t.dropoff_utc - t.pickup_utc), pickup_utc=pickup_utc)


def plant(
    rng: np.random.Generator, dispatch: TripSet, eligible: np.ndarray, n_courier: int
) -> Planted:
    """Plant matches and near misses against `eligible` (completed) dispatch trips."""
    k_match = max(2, round(MATCH_RATE * n_courier))
    k_miss = max(1, round(NEAR_MISS_RATE * n_courier))
    sizes = [k_match, k_miss, k_miss, k_miss]  # match, dropoff_far, time_gap, depot
    src_idx = rng.choice(np.flatnonzero(eligible), size=sum(sizes), replace=False)
    groups = np.arange(sum(sizes), dtype=np.int64)
    dispatch_group = dispatch.group.copy()
    dispatch_group[src_idx] = groups
    dispatch = dispatch.with_(group=dispatch_group)
    bounds = np.cumsum([0, *sizes])
    part = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    src = dispatch.take(src_idx)

    # True duplicates: pickups up to 90 s apart, both points within 60 m.
    m = src.take(part[0])
    matches_c = _echo(rng, m, groups[part[0]], _signed(rng, 0, 90, len(m)), 60.0, 60.0)

    # (a) Same pickup time and place, but the drop-off 320-900 m away: a different trip.
    a = src.take(part[1])
    a_plat, a_plon = geo.jitter_m(rng, a.plat, a.plon, 0.0, 30.0)
    a_dlat, a_dlon = geo.jitter_m(rng, a.dlat, a.dlon, 320.0, 900.0)
    far_c = _other_trip(
        rng,
        a.pickup_utc + _signed(rng, 0, 30, len(a)),
        a_plat,
        a_plon,
        a_dlat,
        a_dlon,
        groups[part[1]],
    )

    # (b) Same places, pickups 3-5 minutes apart: outside the 2-minute tolerance.
    b = src.take(part[2])
    gap_c = _echo(rng, b, groups[part[2]], _signed(rng, 180, 300, len(b)), 30.0, 30.0)

    # (c) Depot: d1 is duplicated in courier very closely (<= 10 s, <= 10 m); a decoy d2 leaves
    # the same spot 30-60 s apart, 25-40 m away, toward a drop-off 40-80 m from d1's. The decoy
    # is inside the tolerance of d1's courier twin but worse on every measure, so one-to-one
    # best-score matching pairs the courier trip with d1 only.
    c = src.take(part[3])
    depot_c = _echo(rng, c, groups[part[3]], _signed(rng, 0, 10, len(c)), 10.0, 10.0)
    d2_plat, d2_plon = geo.jitter_m(rng, c.plat, c.plon, 25.0, 40.0)
    d2_dlat, d2_dlon = geo.jitter_m(rng, c.dlat, c.dlon, 40.0, 80.0)
    decoys = _other_trip(
        rng,
        c.pickup_utc + _signed(rng, 30, 60, len(c)),
        d2_plat,
        d2_plon,
        d2_dlat,
        d2_dlon,
        groups[part[3]],
    )

    courier = TripSet.concat(matches_c, far_c, gap_c, depot_c)
    decoy_idx = len(dispatch) + np.arange(len(decoys))
    c_idx = np.arange(len(courier))
    near_d = np.concatenate([src_idx[part[1]], src_idx[part[2]], decoy_idx])
    near_c = np.concatenate([c_idx[part[1]], c_idx[part[2]], c_idx[part[3]]])
    kinds = [DROPOFF_FAR] * k_miss + [TIME_GAP] * k_miss + [DEPOT] * k_miss
    return Planted(
        dispatch=TripSet.concat(dispatch, decoys),
        courier=courier,
        matches=np.column_stack(
            [
                np.concatenate([src_idx[part[0]], src_idx[part[3]]]),
                np.concatenate([c_idx[part[0]], c_idx[part[3]]]),
            ]
        ),
        near_misses=np.column_stack([near_d, near_c]),
        near_miss_kinds=kinds,
    )


def close_pairs(
    d: TripSet,
    d_active: np.ndarray,
    c: TripSet,
    c_start: np.ndarray,
    max_dt: int,
    max_m: float,
    block: int = 50_000,
) -> tuple[np.ndarray, np.ndarray]:
    """(dispatch, courier) index pairs close in pickup time, pickup point and drop-off point.

    Dispatch pickups are sorted by (grid cell of at least max_m, time); each courier trip looks
    up the time window in its own cell and the 8 around it, so candidates are only trips that
    are already near in both time and space. Courier trips go in blocks to bound memory.
    """
    # Cells a little larger than max_m (1 degree of latitude is ~111.2 km here).
    cell_lat = max_m / 110_000.0
    cell_lon = max_m / (110_000.0 * np.cos(np.radians(39.5)))
    t0 = min(d.pickup_utc.min(initial=0), c_start.min(initial=0)) - max_dt
    lat0 = min(d.plat.min(initial=0), c.plat.min(initial=0)) - 2 * cell_lat
    lon0 = min(d.plon.min(initial=0), c.plon.min(initial=0)) - 2 * cell_lon
    n_cols = int((max(d.plon.max(initial=0), c.plon.max(initial=0)) - lon0) / cell_lon) + 3
    span = int(max(d.pickup_utc.max(initial=0), c_start.max(initial=0)) - t0) + 2 * max_dt + 1

    def key(
        lat: np.ndarray, lon: np.ndarray, t: np.ndarray, d_row: int = 0, d_col: int = 0
    ) -> np.ndarray:
        row = np.floor((lat - lat0) / cell_lat).astype(np.int64) + d_row
        col = np.floor((lon - lon0) / cell_lon).astype(np.int64) + d_col
        return (row * n_cols + col) * span + (t - t0)

    d_idx = np.flatnonzero(d_active)
    d_key = key(d.plat[d_idx], d.plon[d_idx], d.pickup_utc[d_idx])
    order = np.argsort(d_key, kind="stable")
    d_key, d_idx = d_key[order], d_idx[order]

    # Courier trips in key order too: sorted needles make searchsorted cache-friendly.
    c_order = np.argsort(key(c.plat, c.plon, c_start), kind="stable")
    out_d, out_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(c_start), block):
        rows = c_order[start : start + block]
        t, lat, lon = c_start[rows], c.plat[rows], c.plon[rows]
        for dr, dc in itertools.product((-1, 0, 1), repeat=2):
            lo = np.searchsorted(d_key, key(lat, lon, t - max_dt, dr, dc), "left")
            hi = np.searchsorted(d_key, key(lat, lon, t + max_dt, dr, dc), "right")
            count = hi - lo
            ci = np.repeat(np.arange(len(t)), count)
            di = d_idx[lo[ci] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)]
            ci = rows[ci]
            near = (geo.haversine_m(d.plat[di], d.plon[di], c.plat[ci], c.plon[ci]) <= max_m) & (
                geo.haversine_m(d.dlat[di], d.dlon[di], c.dlat[ci], c.dlon[ci]) <= max_m
            )
            out_d.append(di[near])
            out_c.append(ci[near])
    return np.concatenate(out_d), np.concatenate(out_c)


def _shift(t: TripSet, rows: np.ndarray, delta: np.ndarray) -> TripSet:
    pickup, dropoff = t.pickup_utc.copy(), t.dropoff_utc.copy()
    pickup[rows] += delta
    dropoff[rows] += delta
    return t.with_(pickup_utc=pickup, dropoff_utc=dropoff)


def _week_toward_midyear(pickup_utc: np.ndarray) -> np.ndarray:
    mid = (clock.epoch_day(trips.YEAR, 7, 1)) * clock.DAY
    return np.where(pickup_utc > mid, -WEEK_S, WEEK_S)


def _shift_groups(d: TripSet, c: TripSet, groups: np.ndarray) -> tuple[TripSet, TripSet]:
    """Move every trip of the given planted cases by the same week, so each case stays intact."""
    if not len(groups):
        return d, c
    in_d = np.flatnonzero(np.isin(d.group, groups))
    in_c = np.flatnonzero(np.isin(c.group, groups))
    # The direction comes from each case's first dispatch member.
    order = in_d[np.argsort(d.group[in_d], kind="stable")]
    first = order[np.searchsorted(d.group[order], groups)]
    delta = _week_toward_midyear(d.pickup_utc[first])  # groups is sorted (np.unique)
    d = _shift(d, in_d, delta[np.searchsorted(groups, d.group[in_d])])
    c = _shift(c, in_c, delta[np.searchsorted(groups, c.group[in_c])])
    return d, c


def separate(
    d: TripSet,
    d_active: np.ndarray,
    c: TripSet,
    c_end_first: np.ndarray,
    c_pinned: np.ndarray,
    max_rounds: int = 100,
) -> tuple[TripSet, TripSet]:
    """Move trips by whole weeks until no unplanted cross-silo pair is within the guard.

    c_end_first marks courier rows whose written Start Time is really their end (so that is
    the time a matcher sees); c_pinned marks rows that must keep their time (planted clock
    defects). Also moves unpinned courier trips that would straddle the autumn clock change,
    which would make their local end time fall before their start.
    """
    fall_back_utc = clock.dst_window_naive(trips.YEAR)[1] - clock.EDT_OFFSET
    for _ in range(max_rounds):
        c_start = np.where(c_end_first, c.dropoff_utc, c.pickup_utc)
        di, ci = close_pairs(d, d_active, c, c_start, GUARD_TIME_S, GUARD_DISTANCE_M)
        planted_pair = (d.group[di] >= 0) & (d.group[di] == c.group[ci])
        di, ci = di[~planted_pair], ci[~planted_pair]
        straddle = (
            (c.pickup_utc < fall_back_utc)
            & (c.dropoff_utc >= fall_back_utc)
            & (c.group < 0)
            & ~c_pinned
        )
        if not len(di) and not straddle.any():
            return d, c
        # Prefer moving an unplanted courier trip, then an unplanted dispatch trip, and only
        # when both sides are planted, one whole planted case. Two cases that collide both
        # ways (each one's dispatch trip near the other's courier trip) would move together
        # forever if each pair moved its dispatch side's case: the later-numbered one moves.
        c_free = (c.group[ci] < 0) & ~c_pinned[ci]
        d_free = ~c_free & (d.group[di] < 0)
        move_c = np.union1d(ci[c_free], np.flatnonzero(straddle))
        move_d = np.unique(di[d_free])
        both = ~c_free & ~d_free
        move_groups = np.unique(np.maximum(d.group[di[both]], c.group[ci[both]]))
        c = _shift(c, move_c, _week_toward_midyear(c.pickup_utc[move_c]))
        d = _shift(d, move_d, _week_toward_midyear(d.pickup_utc[move_d]))
        d, c = _shift_groups(d, c, move_groups)
    raise RuntimeError("could not separate unplanted cross-silo trips")

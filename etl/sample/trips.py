"""Company trips as parallel numpy arrays, drawn from the ground-truth model."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from etl.sample import clock, geo, truth

YEAR = 2023
# Last local pickup time: every export (drop-off + a few minutes, corrections clamped to the
# year's end) then lands in a 2023 file.
LAST_PICKUP_NAIVE = (clock.epoch_day(YEAR + 1) - 1) * clock.DAY + 20 * clock.HOUR
NO_GROUP = -1


@dataclass(frozen=True)
class TripSet:
    """One element per trip. `group` ties the trips of one planted overlap case together."""

    pickup_utc: np.ndarray  # int64 seconds
    dropoff_utc: np.ndarray
    plat: np.ndarray
    plon: np.ndarray
    dlat: np.ndarray
    dlon: np.ndarray
    miles: np.ndarray
    fare_cents: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return len(self.pickup_utc)

    def take(self, idx: np.ndarray) -> TripSet:
        return TripSet(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def with_(self, **changes: np.ndarray) -> TripSet:
        return replace(self, **changes)

    @staticmethod
    def concat(*sets: TripSet) -> TripSet:
        return TripSet(
            **{f.name: np.concatenate([getattr(s, f.name) for s in sets]) for f in fields(TripSet)}
        )


def simulate(rng: np.random.Generator, n: int) -> TripSet:
    """n independent company trips over 2023 (business-hours profile)."""
    naive = clock.sample_naive_times(rng, n, clock.epoch_day(YEAR), 365, YEAR, taxi=False)
    naive = np.where(naive > LAST_PICKUP_NAIVE, naive - 6 * clock.HOUR, naive)
    plat, plon, dlat, dlon = geo.sample_trip_ends(rng, n)
    return from_points(rng, naive, plat, plon, dlat, dlon)


def from_points(
    rng: np.random.Generator,
    naive: np.ndarray,
    plat: np.ndarray,
    plon: np.ndarray,
    dlat: np.ndarray,
    dlon: np.ndarray,
    group: np.ndarray | None = None,
) -> TripSet:
    """Trips with given local start times and points; distance, duration and fare from the
    ground-truth model."""
    trip = truth.simulate(rng, plat, plon, dlat, dlon, naive, YEAR)
    pickup = clock.local_to_utc(naive, YEAR)
    return TripSet(
        pickup_utc=pickup,
        dropoff_utc=pickup + trip.duration_s,
        plat=plat,
        plon=plon,
        dlat=dlat,
        dlon=dlon,
        miles=trip.miles,
        fare_cents=trip.fare_cents,
        group=np.full(len(naive), NO_GROUP, dtype=np.int64) if group is None else group,
    )

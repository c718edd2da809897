"""The ground-truth trip model every source's trips are drawn from.

This is the signal a model should later recover from the published files: road distance is the
straight-line distance times a detour factor, duration is distance over a speed that depends on
the hour, the day type and the trip length, and the fare follows DC's taxi rule. Noise is
multiplicative where the real effect is (traffic), additive where it is (meter rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.sample import clock, geo

DETOUR_FACTOR = 1.30  # road distance / great-circle distance in a grid city with diagonals
FLAG_DROP_CENTS = 350  # DC taxi rate: $3.50 on entry...
PER_MILE_CENTS = 216  # ...plus $2.16 per mile...
WAIT_CENTS_PER_HOUR = 2_500  # ...plus $25 an hour of waiting / crawling in traffic
MAX_FARE_CENTS = 17_999  # a real fare stays under the $180 cleaning cap
HANDLING_S = 75.0  # loading and unloading time on top of driving

# Average door-to-door driving speed (mph) for a short city trip by local hour, 0-23.
# fmt: off
SPEED_WEEKDAY_MPH = np.array([21.0, 22.0, 23.0, 23.0, 22.0, 20.0, 16.0, 11.5, 10.5, 12.0, 13.5,
                              13.5, 13.0, 13.5, 13.0, 12.5, 11.0, 10.0, 10.5, 12.5, 15.0, 17.0,
                              18.5, 20.0])
SPEED_WEEKEND_MPH = np.array([19.0, 20.0, 21.0, 22.0, 22.0, 22.0, 21.0, 19.5, 18.5, 17.5, 16.5,
                              15.5, 15.0, 15.0, 15.0, 15.0, 15.0, 15.5, 16.0, 16.5, 17.0, 17.5,
                              18.0, 18.5])
# fmt: on


@dataclass(frozen=True)
class TripTruth:
    miles: np.ndarray  # road distance
    duration_s: np.ndarray  # int64 seconds, pickup to drop-off
    fare_cents: np.ndarray  # int64, DC meter fare (no tip, extras or tolls)


def speed_mph(naive_s: np.ndarray, miles: np.ndarray, year: int) -> np.ndarray:
    """Expected speed: slow in rush hours, fast at night and on weekends; longer trips reach
    faster roads (up to +60% for airport runs)."""
    hour = clock.hour_of_day(naive_s)
    base = np.where(
        clock.is_weekend_like(naive_s, year), SPEED_WEEKEND_MPH[hour], SPEED_WEEKDAY_MPH[hour]
    )
    return base * (1.0 + 0.6 * np.tanh(miles / 12.0))


def simulate(
    rng: np.random.Generator,
    plat: np.ndarray,
    plon: np.ndarray,
    dlat: np.ndarray,
    dlon: np.ndarray,
    naive_s: np.ndarray,
    year: int,
) -> TripTruth:
    """Distance, duration and fare of trips starting at local wall-clock time naive_s."""
    n = len(plat)
    crow_miles = geo.haversine_m(plat, plon, dlat, dlon) / geo.METERS_PER_MILE
    miles = crow_miles * DETOUR_FACTOR * rng.lognormal(0.0, 0.08, n) + 0.05
    miles = np.maximum(np.round(miles, 2), 0.10)
    drive_s = miles / speed_mph(naive_s, miles, year) * 3_600.0
    duration = (drive_s + HANDLING_S) * rng.lognormal(0.0, 0.18, n)
    duration_s = np.maximum(np.rint(duration), 60).astype(np.int64)
    fare_cents = dc_fare_cents(rng, miles, duration_s)
    return TripTruth(miles=miles, duration_s=duration_s, fare_cents=fare_cents)


def dc_fare_cents(
    rng: np.random.Generator, miles: np.ndarray, duration_s: np.ndarray
) -> np.ndarray:
    """DC meter: flag drop + per mile + waiting time (time spent below a free-flow 20 mph,
    half of which the meter counts as waiting) + a little meter noise."""
    free_flow_s = miles / 20.0 * 3_600.0
    wait_s = np.clip(duration_s - free_flow_s, 0.0, None) * 0.5
    fare = (
        FLAG_DROP_CENTS
        + PER_MILE_CENTS * miles
        + WAIT_CENTS_PER_HOUR * wait_s / 3_600.0
        + rng.normal(0.0, 20.0, len(miles))
    )
    return np.clip(np.rint(fare), FLAG_DROP_CENTS, MAX_FARE_CENTS).astype(np.int64)

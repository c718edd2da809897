"""Time for the sample data: when trips happen, DC's clock changes, and text formats.

Times are int64 seconds. "Naive" seconds count local DC wall-clock time as if it were UTC (so
day, hour and weekday fall out of integer division); "UTC" seconds are real instants. The US
daylight-saving rule is applied with integer arithmetic instead of a time-zone database so the
output cannot change with the tzdata installed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl

DAY = 86_400
HOUR = 3_600
EST_OFFSET = -5 * HOUR
EDT_OFFSET = -4 * HOUR

# Relative trip volume by local hour, 0-23. Taxis: morning and evening peaks on weekdays, a
# long nightlife tail on weekends. The company's vans: business hours.
# fmt: off
TAXI_HOURS_WEEKDAY = np.array([2.0, 1.2, 0.8, 0.5, 0.5, 0.9, 2.2, 4.5, 6.0, 5.0, 4.2, 4.2,
                               4.6, 4.4, 4.3, 4.7, 5.3, 6.2, 6.4, 5.6, 4.6, 4.0, 3.5, 2.8])
TAXI_HOURS_WEEKEND = np.array([4.2, 3.6, 3.0, 1.8, 0.8, 0.6, 0.8, 1.3, 2.0, 2.8, 3.6, 4.2,
                               4.5, 4.5, 4.4, 4.4, 4.5, 4.8, 5.0, 5.0, 4.8, 4.8, 4.9, 4.7])
COMPANY_HOURS_WEEKDAY = np.array([0.3, 0.2, 0.1, 0.1, 0.2, 0.6, 2.0, 4.5, 6.0, 6.5, 6.5, 6.2,
                                  5.8, 6.0, 6.2, 6.2, 6.0, 5.5, 4.0, 2.5, 1.6, 1.0, 0.7, 0.5])
COMPANY_HOURS_WEEKEND = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.3, 0.8, 1.8, 3.0, 4.0, 4.5, 4.6,
                                  4.6, 4.5, 4.4, 4.0, 3.5, 3.0, 2.2, 1.5, 1.0, 0.7, 0.5, 0.4])
# fmt: on
# Relative volume by weekday, Monday first.
TAXI_WEEKDAYS = np.array([0.85, 0.92, 0.97, 1.02, 1.18, 1.22, 0.84])
COMPANY_WEEKDAYS = np.array([1.05, 1.08, 1.08, 1.08, 1.05, 0.55, 0.40])


def epoch_day(year: int, month: int = 1, day: int = 1) -> int:
    return int(np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "D").astype(np.int64))


def weekday(naive_s: np.ndarray) -> np.ndarray:
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    return (naive_s // DAY + 3) % 7


def hour_of_day(naive_s: np.ndarray) -> np.ndarray:
    return (naive_s // HOUR) % 24


@cache
def holiday_days(year: int) -> np.ndarray:
    """DC public holidays of a year (observed days included) as epoch days."""
    import holidays  # imported here: only the sample needs it, and it takes ~0.2 s

    days = sorted(holidays.US(subdiv="DC", years=year))
    return np.array([epoch_day(d.year, d.month, d.day) for d in days], dtype=np.int64)


def is_weekend_like(naive_s: np.ndarray, year: int) -> np.ndarray:
    """Saturdays, Sundays and public holidays: lighter traffic, no rush hour."""
    return (weekday(naive_s) >= 5) | np.isin(naive_s // DAY, holiday_days(year))


def dst_window_naive(year: int) -> tuple[int, int]:
    """Local wall-clock start and end of daylight time: 2 a.m. on the second Sunday of March
    and 2 a.m. on the first Sunday of November (US rule since 2007)."""
    march1, nov1 = epoch_day(year, 3, 1), epoch_day(year, 11, 1)
    second_sunday_march = march1 + (6 - (march1 + 3) % 7) % 7 + 7
    first_sunday_nov = nov1 + (6 - (nov1 + 3) % 7) % 7
    return second_sunday_march * DAY + 2 * HOUR, first_sunday_nov * DAY + 2 * HOUR


def skip_nonexistent(naive_s: np.ndarray, year: int) -> np.ndarray:
    """Move wall-clock times in the skipped spring hour forward by an hour, as a clock would."""
    start, _ = dst_window_naive(year)
    gap = (naive_s >= start) & (naive_s < start + HOUR)
    return np.where(gap, naive_s + HOUR, naive_s)


def local_to_utc(naive_s: np.ndarray, year: int) -> np.ndarray:
    """Wall-clock to instant; the repeated autumn hour is read as daylight time (the first)."""
    start, end = dst_window_naive(year)
    naive_s = skip_nonexistent(naive_s, year)
    in_dst = (naive_s >= start) & (naive_s < end)
    return naive_s - np.where(in_dst, EDT_OFFSET, EST_OFFSET)


def utc_to_local(utc_s: np.ndarray, year: int) -> np.ndarray:
    start, end = dst_window_naive(year)
    in_dst = (utc_s >= start - EST_OFFSET) & (utc_s < end - EDT_OFFSET)
    return utc_s + np.where(in_dst, EDT_OFFSET, EST_OFFSET)


def _inverse_cdf(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights) / weights.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weights) - 1)


def sample_naive_times(
    rng: np.random.Generator, n: int, first_day: int, n_days: int, year: int, *, taxi: bool
) -> np.ndarray:
    """n local wall-clock times in [first_day, first_day + n_days), shaped by weekday and hour.

    Holidays get the weekend hour profile; the skipped spring hour is never produced.
    """
    days = first_day + np.arange(n_days)
    dow = (days + 3) % 7
    holiday = np.isin(days, holiday_days(year))
    day_w = (TAXI_WEEKDAYS if taxi else COMPANY_WEEKDAYS)[np.where(holiday, 6, dow)]
    day = days[_inverse_cdf(rng, day_w, n)]
    weekend = ((day + 3) % 7 >= 5) | np.isin(day, holiday_days(year))
    hours_wd = TAXI_HOURS_WEEKDAY if taxi else COMPANY_HOURS_WEEKDAY
    hours_we = TAXI_HOURS_WEEKEND if taxi else COMPANY_HOURS_WEEKEND
    hour = np.where(weekend, _inverse_cdf(rng, hours_we, n), _inverse_cdf(rng, hours_wd, n))
    naive = day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
    return skip_nonexistent(naive, year)


def format_seconds(seconds: np.ndarray, fmt: str) -> pl.Series:
    """strftime over int64 seconds, vectorized by polars."""
    series = pl.Series(np.asarray(seconds, dtype=np.int64))
    return pl.from_epoch(series, time_unit="s").dt.strftime(fmt)


@cache
def _hour_table(year: int, fmt: str) -> tuple[int, pl.Series]:
    first = (epoch_day(year) - 1) * DAY
    hours = first + HOUR * np.arange((epoch_day(year + 1) + 8) * 24 - (first // HOUR))
    return first, format_seconds(hours, fmt)


def format_whole_hours(naive_s: np.ndarray, year: int, fmt: str) -> pl.Series:
    """Like format_seconds for times on the hour within (about) one year, by table lookup."""
    first, table = _hour_table(year, fmt)
    idx = (np.asarray(naive_s) - first) // HOUR
    if idx.min(initial=0) < 0 or idx.max(initial=0) >= len(table):
        return format_seconds(naive_s, fmt)
    return table.gather(idx)

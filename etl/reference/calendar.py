"""The date dimension (``curated.dim_date``) with Washington, DC public holidays.

Why a calendar table: trip time and cost depend on the kind of day (a holiday Monday moves like
a Sunday), and analysts want to group by "holiday or not" with a join instead of each writing
their own rules. Holiday rules are law, not arithmetic (dates move, new ones appear: Juneteenth
became federal in 2021), so they come from the maintained ``holidays`` library rather than SQL:

* ``holidays.country_holidays("US", subdiv="DC")`` gives the federal holidays plus DC's own:
  **DC Emancipation Day (April 16)** and **Inauguration Day** (January 20 after a presidential
  election, a holiday for DC government).
* When a holiday falls on a weekend the library also lists the **observed** weekday, named
  e.g. ``"Emancipation Day (observed)"``: in 2023 April 16 was a Sunday, so both 2023-04-16
  (``"Emancipation Day"``) and Monday 2023-04-17 (``"Emancipation Day (observed)"``) are
  holidays here. Both are kept: the Sunday is the legal date, the Monday is the day offices
  close and traffic changes.
* Two holidays on one day are joined with ``"; "`` (2025-01-20 is
  ``"Inauguration Day; Martin Luther King Jr. Day"``), as the library does.

The frame is small (a row per day), so it is built in Python and written to DuckDB by whoever
publishes ``curated.dim_date``, e.g. ``con.execute("CREATE TABLE ... AS FROM df")``.
"""

from __future__ import annotations

from datetime import date

import holidays
import polars as pl

#: Column order of :func:`build_dim_date`. ``date``, ``day_of_week``, ``is_holiday`` and
#: ``holiday_name`` are the warehouse contract; the rest are conveniences for models and SQL.
DIM_DATE_COLUMNS = (
    "date",
    "day_of_week",
    "is_weekend",
    "is_holiday",
    "holiday_name",
    "is_business_day",
    "year",
    "month",
)


def dc_holidays(years: range | list[int]) -> holidays.HolidayBase:
    """DC public holidays (federal plus DC's own, with observed dates) for ``years``."""
    return holidays.country_holidays("US", subdiv="DC", years=years)


def build_dim_date(start: date, end: date) -> pl.DataFrame:
    """One row per calendar day from ``start`` to ``end``, both inclusive.

    Columns (see :data:`DIM_DATE_COLUMNS`):

    * ``date`` (Date);
    * ``day_of_week`` (Int8): ISO weekday, 1 = Monday ... 7 = Sunday (the same numbering as
      DuckDB's ``isodow()`` and Python's ``date.isoweekday()``, *not* DuckDB's ``dayofweek()``
      where Sunday is 0);
    * ``is_weekend`` (Boolean): Saturday or Sunday;
    * ``is_holiday`` (Boolean) and ``holiday_name`` (String, null on ordinary days): DC public
      holidays including observed dates, as the ``holidays`` library gives them;
    * ``is_business_day`` (Boolean): neither weekend nor holiday;
    * ``year`` (Int16) and ``month`` (Int8).

    Raises:
        ValueError: ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    # The library lists an observed date in the year it falls in, even when the holiday it
    # stands for is in the next year (New Year's Day 2022, a Saturday, is observed on Friday
    # 2021-12-31 and listed in 2021's set), so the years of the range are exactly the years
    # to populate; the filter below trims the days outside [start, end].
    calendar = dc_holidays(range(start.year, end.year + 1))
    in_range = sorted((day, name) for day, name in calendar.items() if start <= day <= end)
    holiday_frame = pl.DataFrame(
        {
            "date": [day for day, _ in in_range],
            "holiday_name": [name for _, name in in_range],
        },
        schema={"date": pl.Date, "holiday_name": pl.String},
    )

    days = pl.DataFrame({"date": pl.date_range(start, end, interval="1d", eager=True)})
    frame = days.join(holiday_frame, on="date", how="left").with_columns(
        pl.col("date").dt.weekday().cast(pl.Int8).alias("day_of_week"),  # polars: ISO, Mon=1
        pl.col("holiday_name").is_not_null().alias("is_holiday"),
        pl.col("date").dt.year().cast(pl.Int16).alias("year"),
        pl.col("date").dt.month().cast(pl.Int8).alias("month"),
    )
    frame = frame.with_columns(
        (pl.col("day_of_week") >= 6).alias("is_weekend"),
    ).with_columns(
        (~pl.col("is_weekend") & ~pl.col("is_holiday")).alias("is_business_day"),
    )
    return frame.select(DIM_DATE_COLUMNS).sort("date")

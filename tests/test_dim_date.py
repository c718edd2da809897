"""The date dimension with DC public holidays."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from etl.reference.calendar import DIM_DATE_COLUMNS, build_dim_date


@pytest.fixture(scope="module")
def dim_2023() -> pl.DataFrame:
    return build_dim_date(date(2023, 1, 1), date(2023, 12, 31))


def day(frame: pl.DataFrame, when: date) -> dict[str, object]:
    rows = frame.filter(pl.col("date") == when).to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_one_row_per_day_inclusive_with_the_contract_columns(dim_2023: pl.DataFrame) -> None:
    assert dim_2023.height == 365
    assert dim_2023.columns == list(DIM_DATE_COLUMNS)
    assert dim_2023["date"].min() == date(2023, 1, 1)
    assert dim_2023["date"].max() == date(2023, 12, 31)
    assert dim_2023["date"].is_unique().all()
    assert dim_2023.schema["date"] == pl.Date


def test_emancipation_day_2023_and_its_observed_monday(dim_2023: pl.DataFrame) -> None:
    """April 16, 2023 was a Sunday: the library lists the Sunday and the observed Monday."""
    sunday = day(dim_2023, date(2023, 4, 16))
    assert sunday["is_holiday"] is True
    assert sunday["holiday_name"] == "Emancipation Day"
    assert sunday["day_of_week"] == 7
    assert sunday["is_weekend"] is True

    monday = day(dim_2023, date(2023, 4, 17))
    assert monday["is_holiday"] is True
    assert monday["holiday_name"] == "Emancipation Day (observed)"
    assert monday["day_of_week"] == 1
    assert monday["is_weekend"] is False
    assert monday["is_business_day"] is False


def test_emancipation_day_on_a_weekday_has_no_observed_shift() -> None:
    dim = build_dim_date(date(2024, 4, 15), date(2024, 4, 17))
    assert dim["is_holiday"].to_list() == [False, True, False]
    assert dim["holiday_name"].to_list() == [None, "Emancipation Day", None]


def test_independence_day_2023(dim_2023: pl.DataFrame) -> None:
    row = day(dim_2023, date(2023, 7, 4))
    assert row["is_holiday"] is True
    assert row["holiday_name"] == "Independence Day"
    assert row["day_of_week"] == 2  # a Tuesday
    assert row["is_business_day"] is False


def test_an_ordinary_day(dim_2023: pl.DataFrame) -> None:
    row = day(dim_2023, date(2023, 3, 15))  # a Wednesday
    assert row == {
        "date": date(2023, 3, 15),
        "day_of_week": 3,
        "is_weekend": False,
        "is_holiday": False,
        "holiday_name": None,
        "is_business_day": True,
        "year": 2023,
        "month": 3,
    }


def test_day_of_week_is_iso_monday_one_to_sunday_seven(dim_2023: pl.DataFrame) -> None:
    expected = [d.isoweekday() for d in dim_2023["date"].to_list()]
    assert dim_2023["day_of_week"].to_list() == expected
    # Agrees with DuckDB's isodow(), which analysts will use in SQL (not dayofweek()).
    iso = duckdb.sql("SELECT isodow(DATE '2023-01-01')").fetchall()[0][0]
    assert day(dim_2023, date(2023, 1, 1))["day_of_week"] == iso == 7
    weekend = dim_2023.filter(pl.col("is_weekend"))["day_of_week"].unique().sort().to_list()
    assert weekend == [6, 7]


def test_2023_holiday_count(dim_2023: pl.DataFrame) -> None:
    # 11 federal holidays + DC Emancipation Day, and the Sunday holidays of 2023 (New Year's
    # Day, Emancipation Day) plus Saturday Veterans Day also appear on their observed weekday.
    assert dim_2023["is_holiday"].sum() == 15
    assert dim_2023.filter(pl.col("is_holiday"))["holiday_name"].null_count() == 0
    assert dim_2023.filter(~pl.col("is_holiday"))["holiday_name"].null_count() == 365 - 15


def test_an_observed_date_in_the_previous_year_is_kept() -> None:
    """New Year's Day 2022 was a Saturday, observed on Friday 2021-12-31."""
    dim = build_dim_date(date(2021, 12, 31), date(2022, 1, 1))
    assert dim["holiday_name"].to_list() == ["New Year's Day (observed)", "New Year's Day"]


def test_inauguration_day_is_a_dc_holiday_and_names_are_joined() -> None:
    dim = build_dim_date(date(2025, 1, 20), date(2025, 1, 20))
    name = dim["holiday_name"][0]
    assert "Inauguration Day" in name and "Martin Luther King Jr. Day" in name


def test_multi_year_range_and_single_day() -> None:
    dim = build_dim_date(date(2019, 1, 1), date(2024, 12, 31))
    assert dim.height == (date(2024, 12, 31) - date(2019, 1, 1)).days + 1
    emancipation = dim.filter(pl.col("holiday_name") == "Emancipation Day")["date"].to_list()
    assert [d.year for d in emancipation] == list(range(2019, 2025))
    assert all((d.month, d.day) == (4, 16) for d in emancipation)
    assert build_dim_date(date(2023, 7, 4), date(2023, 7, 4)).height == 1


def test_end_before_start_is_an_error() -> None:
    with pytest.raises(ValueError, match="before start"):
        build_dim_date(date(2023, 1, 2), date(2023, 1, 2) - timedelta(days=2))

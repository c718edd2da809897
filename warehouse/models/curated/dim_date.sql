-- The calendar: one row per day of the years the trips cover, with DC public holidays
-- (intermediate.calendar is written from the holidays library by the publish step).
SELECT date, day_of_week, is_weekend, is_holiday, holiday_name, is_business_day, year, month
FROM intermediate.calendar

-- materialized: view
-- Median speed (mph) by local hour of day and day of week (ISO: 1 = Monday): when the city is
-- slow. Trips with an implausible or unknown duration or distance do not count.
SELECT
    isodow(timezone('America/New_York', pickup_at)) AS day_of_week,
    hour(timezone('America/New_York', pickup_at)) AS hour_of_day,
    count(*) AS trips,
    median(distance_miles / (duration_s / 3600.0)) AS median_speed_mph
FROM curated.trips
WHERE duration_s > 0 AND distance_miles > 0
GROUP BY ALL
ORDER BY day_of_week, hour_of_day

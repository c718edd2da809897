-- materialized: view
-- Trips, median duration and median fare per local day and source: the first look at volume
-- and at whether a source's numbers moved.
SELECT
    CAST(timezone('America/New_York', pickup_at) AS DATE) AS day,
    source,
    count(*) AS trips,
    median(duration_s) / 60 AS median_duration_min,
    median(fare_usd) AS median_fare_usd,
    median(distance_miles) AS median_distance_miles
FROM curated.trips
GROUP BY ALL
ORDER BY day, source

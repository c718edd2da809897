-- materialized: view
-- Origin-destination counts on a grid of about 1 km cells: 0.009 degrees of latitude is
-- 1.0 km, and 0.0115 degrees of longitude is 1.0 km at DC's latitude (38.9 N). A cell is
-- named by its south-west corner. Trips without both points geocoded do not count.
WITH cells AS (
    SELECT
        floor(pickup_lat / 0.009) AS o_row, floor(pickup_lon / 0.0115) AS o_col,
        floor(dropoff_lat / 0.009) AS d_row, floor(dropoff_lon / 0.0115) AS d_col,
        duration_s, fare_usd
    FROM curated.trips
    WHERE pickup_lat IS NOT NULL AND dropoff_lat IS NOT NULL
)
SELECT
    round(o_row * 0.009, 4) AS origin_lat, round(o_col * 0.0115, 4) AS origin_lon,
    round(d_row * 0.009, 4) AS destination_lat, round(d_col * 0.0115, 4) AS destination_lon,
    count(*) AS trips,
    median(duration_s) / 60 AS median_duration_min,
    median(fare_usd) AS median_fare_usd
FROM cells
GROUP BY ALL
ORDER BY trips DESC

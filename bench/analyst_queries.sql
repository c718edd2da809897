-- What an analyst asks of curated.trips, timed by `bench/run.py --groups analyst`: a change to
-- how the table is built must not make these slower. One statement per `-- name:` part.


-- name: pick_trip
-- A trip to look up (outside the timing): one from the middle of the table.
SELECT trip_id FROM curated.trips LIMIT 1 OFFSET (SELECT count(*) // 2 FROM curated.trips)


-- name: point_lookup
-- One trip by its id, as a support ticket or a join from another system asks for it.
SELECT * FROM curated.trips WHERE trip_id = $trip_id


-- name: daily_aggregate
-- Trips, median fare and median duration per local day: the first chart of any review.
SELECT
    CAST(timezone('America/New_York', pickup_at) AS DATE) AS day,
    count(*) AS trips,
    median(fare_usd) AS median_fare_usd,
    median(duration_s) AS median_duration_s
FROM curated.trips
GROUP BY ALL
ORDER BY day

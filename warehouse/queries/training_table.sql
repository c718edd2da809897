-- The clean training table of `etl train` (exported as training_table.parquet), and the
-- features of a trip request for `etl predict`: one query, so that a model is asked with exactly
-- the features it learned from. Reads curated.trips and curated.dim_date only.
--
-- $for_training (BOOLEAN):
--   true   the trips fit to learn from: both points geocoded, a positive duration and distance,
--          and no flag that makes the row unfit (speed_implausible: the mileage or the duration
--          is wrong; not_a_trip). A trip flagged fare_missing stays, for its duration, with
--          fare_usd null and fare_fit false: the fare model skips it. Repaired swapped
--          coordinates (swapped_coordinates:*) are fine.
--   false  every geocoded row, targets not required: etl.model.features runs the query on a
--          one-row curated.trips in memory that holds the request.
--
-- Every feature is known before the trip starts: the two points, the straight-line (haversine)
-- distance and the initial bearing between them, local (DC) hour, ISO day of week and month of
-- the pickup, holiday and weekend from the calendar, the airport flag, the source and its time
-- precision. DFHV rounds its timestamps to the hour: its hour of day is the rounded one.
WITH trips AS (
    SELECT
        trip_id,
        source,
        time_precision,
        pickup_at,
        timezone('America/New_York', pickup_at) AS pickup_local,
        pickup_lat,
        pickup_lon,
        dropoff_lat,
        dropoff_lon,
        coalesce(airport, false) AS airport_reported,
        duration_s,
        fare_usd,
        fare_usd IS NOT NULL AND NOT list_contains(coalesce(flags, []), 'fare_missing') AS fare_fit
    FROM curated.trips
    WHERE pickup_lat IS NOT NULL AND pickup_lon IS NOT NULL
      AND dropoff_lat IS NOT NULL AND dropoff_lon IS NOT NULL
      AND pickup_at IS NOT NULL
      AND (
          NOT $for_training
          OR (
              duration_s > 0
              AND distance_miles > 0
              AND NOT list_has_any(coalesce(flags, []), ['speed_implausible', 'not_a_trip'])
          )
      )
),

-- The three airports the DFHV AIRPORT flag names. A point within 1.5 km of a terminal counts
-- as an airport trip too, so that a request (and a silo without the flag) gets it from its
-- coordinates. Equirectangular distance: 111.2 km per degree of latitude, 86.6 km per degree
-- of longitude at 38.9 N.
airports (lat, lon) AS (
    VALUES (38.8512, -77.0377),   -- DCA, Reagan National
           (38.9531, -77.4565),   -- IAD, Dulles
           (39.1774, -76.6684)    -- BWI
),

geometry AS (
    SELECT
        t.*,
        radians(pickup_lat) AS phi1,
        radians(dropoff_lat) AS phi2,
        radians(dropoff_lat - pickup_lat) AS d_phi,
        radians(dropoff_lon - pickup_lon) AS d_lambda,
        airport_reported OR EXISTS (
            SELECT 1 FROM airports AS a
            WHERE sqrt(pow((t.pickup_lat - a.lat) * 111.2, 2)
                       + pow((t.pickup_lon - a.lon) * 86.6, 2)) < 1.5
               OR sqrt(pow((t.dropoff_lat - a.lat) * 111.2, 2)
                       + pow((t.dropoff_lon - a.lon) * 86.6, 2)) < 1.5
        ) AS airport
    FROM trips AS t
)

SELECT
    g.trip_id,
    g.source,
    g.time_precision,
    g.pickup_at,
    g.pickup_lat,
    g.pickup_lon,
    g.dropoff_lat,
    g.dropoff_lon,
    -- great-circle distance on a sphere of the Earth's mean radius, 3958.76 miles
    2 * 3958.7613 * asin(sqrt(
        pow(sin(g.d_phi / 2), 2) + cos(g.phi1) * cos(g.phi2) * pow(sin(g.d_lambda / 2), 2)
    )) AS straight_miles,
    -- initial bearing, degrees clockwise from north, 0 <= bearing < 360
    (degrees(atan2(
        sin(g.d_lambda) * cos(g.phi2),
        cos(g.phi1) * sin(g.phi2) - sin(g.phi1) * cos(g.phi2) * cos(g.d_lambda)
    )) + 360) % 360 AS bearing_deg,
    hour(g.pickup_local) AS hour_of_day,
    isodow(g.pickup_local) AS day_of_week,
    month(g.pickup_local) AS month,
    coalesce(d.is_holiday, false) AS is_holiday,
    coalesce(d.is_weekend, isodow(g.pickup_local) >= 6) AS is_weekend,
    g.airport,
    g.duration_s,
    CASE WHEN g.fare_fit THEN g.fare_usd END AS fare_usd,
    g.fare_fit
FROM geometry AS g
LEFT JOIN curated.dim_date AS d ON d.date = CAST(g.pickup_local AS DATE)
ORDER BY g.pickup_at, g.trip_id

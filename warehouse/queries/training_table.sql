-- The trips of the clean training table of `etl train` (exported as training_table.parquet).
-- Reads curated.trips only. The features are derived from these columns by
-- etl.ml.features.add_features (polars), the one definition that training, `etl predict`,
-- batch prediction and `etl serve` share: a request is asked with exactly the features its
-- trip would have had in training, and a million of them take seconds, one a millisecond.
--
-- $for_training (BOOLEAN):
--   true   the trips fit to learn from: both points geocoded, a positive duration and distance,
--          and no flag that makes the row unfit (speed_implausible: the mileage or the duration
--          is wrong; not_a_trip). A trip flagged fare_missing stays, for its duration, with
--          fare_usd null and fare_fit false: the fare model skips it. Repaired swapped
--          coordinates (swapped_coordinates:*) are fine.
--   false  every geocoded row, targets not required.
SELECT
    trip_id,
    source,
    time_precision,
    pickup_at,
    pickup_lat,
    pickup_lon,
    dropoff_lat,
    dropoff_lon,
    coalesce(airport, false) AS airport_reported,
    duration_s,
    CASE WHEN fare_usd IS NOT NULL AND NOT list_contains(coalesce(flags, []), 'fare_missing')
        THEN fare_usd END AS fare_usd,
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
ORDER BY pickup_at, trip_id

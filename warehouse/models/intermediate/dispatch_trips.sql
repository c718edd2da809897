-- materialized: view
-- Dispatch jobs in the shape of curated.trips. Every staged row is here; `excluded_by` says
-- why a row is not a trip of curated.trips: a job that was not completed, or an older version
-- of a job (a job re-sent with a newer updated_at: the newest version wins).
SELECT
    'dispatch' AS source,
    source_record_id,
    pickup_at,
    dropoff_at,
    pickup_lat,
    pickup_lon,
    dropoff_lat,
    dropoff_lon,
    distance_miles,
    duration_s,
    fare_usd,
    fare_usd AS total_usd,
    'second'::curated.time_precision AS time_precision,
    'exact'::curated.location_precision AS location_precision,
    false AS airport,
    pickup_in_dc,
    dropoff_in_dc,
    _flags AS flags,
    CASE
        WHEN list_contains(_flags, 'not_a_trip') THEN 'not_a_trip'
        WHEN row_number() OVER (
            PARTITION BY source_record_id ORDER BY updated_at DESC, _file DESC, _line DESC
        ) > 1 THEN 'superseded_version'
    END AS excluded_by,
    _file,
    _line
FROM staging.dispatch

-- materialized: view
-- Courier trips in the shape of curated.trips. Exact duplicate rows were quarantined as
-- duplicate_key and swapped coordinates repaired (flagged) at staging.
SELECT
    'courier' AS source,
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
    NULL::VARCHAR AS excluded_by,
    _file,
    _line
FROM staging.courier

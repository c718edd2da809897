-- materialized: view
-- DFHV taxi trips in the shape of curated.trips. OBJECTID is unique within a release only, so
-- the record id carries the release's year (the zip's name): 2016-123456.
SELECT
    'dc_taxi' AS source,
    regexp_extract(_file, 'taxi_(\d{4})', 1) || '-' || CAST(source_record_id AS VARCHAR) AS source_record_id,
    pickup_at,
    dropoff_at,
    pickup_lat,
    pickup_lon,
    dropoff_lat,
    dropoff_lon,
    distance_miles,
    duration_s,
    fare_usd,
    total_usd,
    'hour'::curated.time_precision AS time_precision,  -- DFHV rounds both times to the hour
    'block'::curated.location_precision AS location_precision,  -- snapped to a block
    airport,
    pickup_in_dc,
    dropoff_in_dc,
    _flags AS flags,
    NULL::VARCHAR AS excluded_by,    -- every staged taxi row is a trip
    _file,
    _line
FROM staging.dc_taxi

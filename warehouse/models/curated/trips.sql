-- materialized: incremental
-- generated: trip_id = source || ':' || source_record_id
-- generated: seen_by = CASE WHEN matched_source IS NULL THEN [source] ELSE [source, matched_source] END
-- uncompressed: source_record_id
-- One row per physical trip across all silos (the design.md contract). A trip two silos both
-- logged (intermediate.trip_matches, written by the matching step) is kept once, as the record
-- of the side the config keeps; seen_by lists every source that logged it.
SELECT
    t.source,
    t.source_record_id,
    t.pickup_at,
    t.dropoff_at,
    t.pickup_lat,
    t.pickup_lon,
    t.dropoff_lat,
    t.dropoff_lon,
    t.distance_miles,
    t.duration_s,
    t.fare_usd,
    t.total_usd,
    t.time_precision,
    t.location_precision,
    t.airport,
    t.pickup_in_dc,
    t.dropoff_in_dc,
    k.dropped_source AS matched_source,
    k.dropped_id AS matched_record_id,
    t.flags,
    t._file,
    t._line
FROM intermediate.all_trips AS t
LEFT JOIN intermediate.trip_matches AS k
    ON k.kept_source = t.source AND k.kept_id = t.source_record_id
ANTI JOIN intermediate.trip_matches AS d
    ON d.dropped_source = t.source AND d.dropped_id = t.source_record_id
WHERE t.excluded_by IS NULL

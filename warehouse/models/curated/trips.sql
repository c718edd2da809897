-- materialized: incremental
-- generated: trip_id = source || ':' || source_record_id
-- generated: seen_by = CASE WHEN matched_source IS NULL THEN [source] WHEN also_seen_by IS NULL THEN [source, matched_source] ELSE [source, matched_source] || also_seen_by END
-- uncompressed: source_record_id
-- One row per physical trip across all silos (docs/architecture.md, "Warehouse tables"). A trip
-- several silos logged (intermediate.trip_matches, written by the matching step) is kept once, as the record
-- of the side the config keeps; seen_by lists every source that logged it. matched_source and
-- matched_record_id name the first other record (by source, then id); a trip seen by more
-- than two silos lists the sources of its further records in also_seen_by (else NULL, which
-- costs nothing to store).
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
    k.matched_source,
    k.matched_record_id,
    k.also_seen_by,
    t.flags,
    t._file,
    t._line
FROM intermediate.all_trips AS t
LEFT JOIN (
    SELECT
        kept_source,
        kept_id,
        sources[1] AS matched_source,
        ids[1] AS matched_record_id,
        CASE WHEN len(sources) > 1 THEN sources[2:] END AS also_seen_by
    FROM (
        SELECT
            kept_source,
            kept_id,
            list(dropped_source ORDER BY dropped_source, dropped_id) AS sources,
            list(dropped_id ORDER BY dropped_source, dropped_id) AS ids
        FROM intermediate.trip_matches
        GROUP BY kept_source, kept_id
    )
) AS k
    ON k.kept_source = t.source AND k.kept_id = t.source_record_id
ANTI JOIN intermediate.trip_matches AS d
    ON d.dropped_source = t.source AND d.dropped_id = t.source_record_id
WHERE t.excluded_by IS NULL

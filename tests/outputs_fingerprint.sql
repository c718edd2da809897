-- A content fingerprint of each output table the curated build must not change
-- (tests/test_outputs_identical.py): its row count and an order-independent hash, the sum over
-- its rows of the lower 64 bits of the MD5 of the row as JSON. A sum, not an XOR: two equal
-- rows do not cancel out; a table without rows has no line. Run with TimeZone = 'UTC', so
-- times are written one way.
--
-- Columns: the warehouse contract's (docs/architecture.md) and the ones a table adds beside
-- them, except `run_id`: a new id every run, not content. quality.checks leaves out `details`
-- too: Great Expectations' own result details (partial lists, exception text) are not the
-- check's result, which is its success and observed value.

SELECT name, count(*) AS rows, sum(md5_number_lower(json_row))::VARCHAR AS hash
FROM (
    SELECT 'quarantine' AS name, to_json(r)::VARCHAR AS json_row
    FROM (SELECT source, file, line, reasons, raw, duplicate_of FROM quality.quarantine) AS r
    UNION ALL
    SELECT 'checks', to_json(r)::VARCHAR
    FROM (
        SELECT source, suite, expectation, severity, success, observed_value FROM quality.checks
    ) AS r
    UNION ALL
    SELECT 'matches', to_json(r)::VARCHAR
    FROM (
        SELECT left_source, left_id, right_source, right_id, time_gap_s, distance_gap_m, score
        FROM quality.matches
    ) AS r
    UNION ALL
    SELECT 'trips', to_json(r)::VARCHAR
    FROM (
        SELECT
            trip_id, source, source_record_id, pickup_at, dropoff_at,
            pickup_lat, pickup_lon, dropoff_lat, dropoff_lon,
            distance_miles, duration_s, fare_usd, total_usd,
            time_precision, location_precision, airport, pickup_in_dc, dropoff_in_dc,
            seen_by, matched_source, matched_record_id, also_seen_by, flags, _file, _line
        FROM curated.trips
    ) AS r
)
GROUP BY name
ORDER BY name

-- One row per physical trip across all silos (the design.md contract).
SELECT
    source || ':' || source_record_id AS trip_id,
    *
FROM intermediate.taxi_trips

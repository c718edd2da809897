-- Spark twin of warehouse/integrate/match_trips.sql: the same candidates, scores and rounds of
-- best-first one-to-one matching, held to the original by tests/spark/test_spark_sql.py.
--
-- Why a twin and not a transpiled copy: the original is DuckDB statements over temp tables that
-- Spark has no counterpart for: a temp macro (the haversine, inlined here), query_table() (here
-- IDENTIFIER()), temp tables changed in place by INSERT and DELETE (here each round is a
-- SELECT that etl/engine/spark/match.py keeps as a checkpointed view), and QUALIFY, which
-- Spark does not parse and sqlglot rewrites into a SELECT * that keeps its window column.
-- epoch() is unix_micros() / 1e6 (sqlglot's unix_timestamp() drops the sub-seconds).
--
-- Parameters (Spark's named parameter markers):
--   :left_table, :right_table  the canonical trip tables (or views), resolved by IDENTIFIER()
--   :max_time_gap_s, :max_distance_m, :round  as in the original


-- name: candidates
WITH
left_trips AS (
    SELECT
        source_record_id AS id,
        unix_micros(pickup_at) / 1e6 AS t,
        pickup_lat AS p_lat, pickup_lon AS p_lon,
        dropoff_lat AS d_lat, dropoff_lon AS d_lon
    FROM IDENTIFIER(:left_table)
    WHERE source_record_id IS NOT NULL AND pickup_at IS NOT NULL
      AND pickup_lat IS NOT NULL AND pickup_lon IS NOT NULL
      AND dropoff_lat IS NOT NULL AND dropoff_lon IS NOT NULL
),
right_trips AS (
    SELECT
        source_record_id AS id,
        unix_micros(pickup_at) / 1e6 AS t,
        pickup_lat AS p_lat, pickup_lon AS p_lon,
        dropoff_lat AS d_lat, dropoff_lon AS d_lon,
        CAST(floor(unix_micros(pickup_at) / 1e6 / :max_time_gap_s) AS BIGINT) AS bucket
    FROM IDENTIFIER(:right_table)
    WHERE source_record_id IS NOT NULL AND pickup_at IS NOT NULL
      AND pickup_lat IS NOT NULL AND pickup_lon IS NOT NULL
      AND dropoff_lat IS NOT NULL AND dropoff_lon IS NOT NULL
),
left_banded AS (
    SELECT
        id, t, p_lat, p_lon, d_lat, d_lon,
        explode(array(own_bucket - 1, own_bucket, own_bucket + 1)) AS bucket
    FROM (
        SELECT *, CAST(floor(t / :max_time_gap_s) AS BIGINT) AS own_bucket FROM left_trips
    )
),
pairs AS (
    SELECT
        l.id AS left_id,
        r.id AS right_id,
        abs(r.t - l.t) AS time_gap_s,
        r.t - l.t AS time_offset_s,
        2 * 6371008.8 * asin(least(1.0, sqrt(
            pow(sin(radians(r.p_lat - l.p_lat) / 2), 2)
            + cos(radians(l.p_lat)) * cos(radians(r.p_lat))
              * pow(sin(radians(r.p_lon - l.p_lon) / 2), 2)
        ))) AS pickup_gap_m,
        2 * 6371008.8 * asin(least(1.0, sqrt(
            pow(sin(radians(r.d_lat - l.d_lat) / 2), 2)
            + cos(radians(l.d_lat)) * cos(radians(r.d_lat))
              * pow(sin(radians(r.d_lon - l.d_lon) / 2), 2)
        ))) AS dropoff_gap_m
    FROM left_banded AS l
    JOIN right_trips AS r ON r.bucket = l.bucket
    WHERE abs(r.t - l.t) <= :max_time_gap_s
      AND abs(r.p_lat - l.p_lat) <= degrees(:max_distance_m / 6371008.8) * (1 + 1e-9)
      AND abs(r.d_lat - l.d_lat) <= degrees(:max_distance_m / 6371008.8) * (1 + 1e-9)
),
scored AS (
    SELECT
        left_id,
        right_id,
        time_gap_s,
        pickup_gap_m,
        dropoff_gap_m,
        greatest(pickup_gap_m, dropoff_gap_m) AS distance_gap_m,
        1 - (time_gap_s / :max_time_gap_s
             + pickup_gap_m / :max_distance_m
             + dropoff_gap_m / :max_distance_m) / 6 AS score,
        time_offset_s
    FROM pairs
    WHERE pickup_gap_m <= :max_distance_m
      AND dropoff_gap_m <= :max_distance_m
)
-- One edge per pair of ids (a record id twice in a silo): its best version, as QUALIFY did.
SELECT left_id, right_id, time_gap_s, pickup_gap_m, dropoff_gap_m, distance_gap_m, score,
       time_offset_s
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY left_id, right_id
        ORDER BY score DESC, time_gap_s, distance_gap_m
    ) AS _version
    FROM scored
)
WHERE _version = 1


-- name: accept_round
-- The remaining candidates that are the best of both their trips (see match_trips.sql).
SELECT left_id, right_id, time_gap_s, pickup_gap_m, dropoff_gap_m, distance_gap_m, score,
       time_offset_s, CAST(:round AS INT) AS round
FROM (
    SELECT *,
        row_number() OVER (
            PARTITION BY left_id
            ORDER BY score DESC, time_gap_s, distance_gap_m, left_id, right_id
        ) AS _left_rank,
        row_number() OVER (
            PARTITION BY right_id
            ORDER BY score DESC, time_gap_s, distance_gap_m, left_id, right_id
        ) AS _right_rank
    FROM _match_candidates
)
WHERE _left_rank = 1 AND _right_rank = 1


-- name: prune_round
-- The candidates left once the trips accepted this round are taken.
SELECT * FROM _match_candidates
WHERE left_id NOT IN (SELECT left_id FROM _match_accepted)
  AND right_id NOT IN (SELECT right_id FROM _match_accepted)


-- name: side
-- One side of a configured pair: the source's trips that are trips, and not dropped by an
-- earlier pair (intermediate.trip_matches so far, passed in as _match_dropped).
SELECT * FROM IDENTIFIER(:all_trips) AS t
WHERE source = :source AND excluded_by IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM _match_dropped AS m
      WHERE m.dropped_source = t.source AND m.dropped_id = t.source_record_id
  )


-- name: repoint
-- A record one pair kept and a later pair dropped passes what it kept on to its own keeper
-- (the UPDATE of etl/engine/duckdb/build.py, as a SELECT of the whole table).
SELECT
    coalesce(d.kept_source, m.kept_source) AS kept_source,
    coalesce(d.kept_id, m.kept_id) AS kept_id,
    m.dropped_source, m.dropped_id, m.time_gap_s, m.distance_gap_m, m.score,
    d.kept_source IS NOT NULL AS repointed
FROM _match_trip_matches AS m
LEFT JOIN _match_trip_matches AS d
    ON d.dropped_source = m.kept_source AND d.dropped_id = m.kept_id

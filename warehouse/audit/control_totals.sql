-- Control totals per source, from the files to curated.trips, rows and fares at each step.
-- Every difference must have a counted cause:
--   read = staged + quarantined                        (per file, from the manifest)
--   quarantined (manifest) = rows in quarantine        (per file: its rows of the run that
--                                                       loaded its current version)
--   staged (manifest) = rows in staging               (no orphan or missing rows)
--   staged = curated + excluded (by cause) + merged    (rows and fares)
-- Each unexplained_* column is one of these differences and must be 0, or the publish fails.
WITH files AS (
    SELECT source,
           sum(rows_read) AS rows_read,
           sum(rows_staged) AS rows_staged,
           sum(rows_quarantined) AS rows_quarantined,
           sum(control_total) AS trailer_rows
    FROM quality.manifest
    GROUP BY source
),
quarantined AS (
    SELECT m.source, sum(abs(m.rows_quarantined - coalesce(q.rows, 0))) AS unexplained
    FROM quality.manifest AS m
    LEFT JOIN (SELECT run_id, file, count(*) AS rows FROM quality.quarantine GROUP BY ALL) AS q
        ON q.run_id = m.run_id AND q.file = m.path
    GROUP BY m.source
),
-- Every staged row once, by source and why it is not a trip (excluded_by): one scan of
-- all_trips, which reads neither record ids nor the matches.
by_fate AS MATERIALIZED (
    SELECT source, excluded_by, count(*) AS rows, coalesce(sum(fare_usd), 0) AS fare_usd
    FROM intermediate.all_trips
    GROUP BY ALL
),
staged AS (
    SELECT source, sum(rows) AS rows, sum(fare_usd) AS fare_usd FROM by_fate GROUP BY source
),
excluded AS (
    SELECT source, sum(rows) AS rows, sum(fare_usd) AS fare_usd
    FROM by_fate WHERE excluded_by IS NOT NULL GROUP BY source
),
excluded_by_cause AS (
    SELECT source, string_agg(excluded_by || ' ' || rows, ', ' ORDER BY excluded_by) AS causes
    FROM by_fate WHERE excluded_by IS NOT NULL
    GROUP BY source
),
-- The trips a match merged into another record, found from the matches' side: in an inner
-- join DuckDB filters the scans by the range of the dropped ids and skips the row groups
-- outside it (on the bench data every DC taxi and dispatch row group); a left join of every
-- staged row to the matches hashed 7 M record ids (0.53 CPU s against 0.08 + 0.12 for both).
merged AS (
    SELECT t.source, count(*) AS rows, coalesce(sum(t.fare_usd), 0) AS fare_usd
    FROM intermediate.trip_matches AS m
    JOIN intermediate.all_trips AS t
        ON t.source = m.dropped_source AND t.source_record_id = m.dropped_id
    WHERE t.excluded_by IS NULL
    GROUP BY t.source
),
curated AS (
    SELECT source, count(*) AS rows, coalesce(sum(fare_usd), 0) AS fare_usd
    FROM curated.trips GROUP BY source
)
SELECT
    s.source,
    coalesce(f.rows_read, 0) AS rows_read,
    f.trailer_rows,
    coalesce(f.rows_quarantined, 0) AS rows_quarantined,
    coalesce(f.rows_staged, 0) AS rows_staged,
    s.rows AS rows_in_staging,
    coalesce(e.rows, 0) AS rows_excluded,
    c.causes AS excluded_causes,
    coalesce(m.rows, 0) AS rows_merged,
    coalesce(k.rows, 0) AS rows_curated,
    round(s.fare_usd, 2) AS fare_staged_usd,
    round(coalesce(e.fare_usd, 0), 2) AS fare_excluded_usd,
    round(coalesce(m.fare_usd, 0), 2) AS fare_merged_usd,
    round(coalesce(k.fare_usd, 0), 2) AS fare_curated_usd,
    coalesce(f.rows_read, 0) - coalesce(f.rows_staged, 0) - coalesce(f.rows_quarantined, 0)
        AS unexplained_read,
    coalesce(f.rows_staged, 0) - s.rows AS unexplained_staging,
    coalesce(q.unexplained, 0) AS unexplained_quarantine,
    s.rows - coalesce(e.rows, 0) - coalesce(m.rows, 0) - coalesce(k.rows, 0)
        AS unexplained_rows,
    round(s.fare_usd - coalesce(e.fare_usd, 0) - coalesce(m.fare_usd, 0)
          - coalesce(k.fare_usd, 0), 2) AS unexplained_fare_usd
FROM staged AS s
LEFT JOIN files AS f USING (source)
LEFT JOIN quarantined AS q USING (source)
LEFT JOIN excluded AS e USING (source)
LEFT JOIN excluded_by_cause AS c USING (source)
LEFT JOIN merged AS m USING (source)
LEFT JOIN curated AS k USING (source)
ORDER BY s.source

-- Spark twin of warehouse/audit/control_totals.sql (its header says what each column checks):
-- the same rows, held to the original by tests/spark/test_spark_sql.py, in fewer Spark jobs.
--
-- Why a twin: Spark runs each shuffle and each broadcast of a query as a job of its own, and
-- the original's seven aggregates joined six times took 27 jobs on the sample. Here every
-- figure of a source comes from ONE aggregate over the union of three kinds of rows: the
-- manifest's files (each with its rows in quarantine), the staged rows by fate, and the rows of
-- curated.trips. A row excluded is never merged, so each cause of a source is one group of
-- by_fate, and its causes are listed by the same aggregate.
WITH by_file AS (
    SELECT m.source, m.rows_read, m.rows_staged, m.rows_quarantined, m.control_total,
           abs(m.rows_quarantined - coalesce(q.rows, 0)) AS unexplained_quarantine
    FROM quality.manifest AS m
    LEFT JOIN (
        SELECT run_id, file, count(*) AS rows FROM quality.quarantine GROUP BY run_id, file
    ) AS q ON q.run_id = m.run_id AND q.file = m.path
),
by_fate AS (
    SELECT t.source, t.excluded_by,
           m.dropped_id IS NOT NULL AND t.excluded_by IS NULL AS merged,
           count(*) AS rows, coalesce(sum(t.fare_usd), 0) AS fare_usd
    FROM intermediate.all_trips AS t
    LEFT JOIN intermediate.trip_matches AS m
        ON m.dropped_source = t.source AND m.dropped_id = t.source_record_id
    GROUP BY ALL
),
facts AS (
    SELECT source, 'staged' AS kind, excluded_by, merged, rows, fare_usd,
           NULL AS rows_read, NULL AS rows_staged, NULL AS rows_quarantined,
           NULL AS control_total, NULL AS unexplained_quarantine
    FROM by_fate
    UNION ALL
    SELECT source, 'file', NULL, false, NULL, NULL,
           rows_read, rows_staged, rows_quarantined, control_total, unexplained_quarantine
    FROM by_file
    UNION ALL
    SELECT source, 'curated', NULL, false, 1, fare_usd, NULL, NULL, NULL, NULL, NULL
    FROM curated.trips
),
totals AS (
    SELECT
        source,
        sum(rows_read) AS rows_read,
        sum(control_total) AS trailer_rows,
        sum(rows_quarantined) AS rows_quarantined,
        sum(rows_staged) AS rows_staged,
        sum(unexplained_quarantine) AS unexplained_quarantine,
        sum(rows) FILTER (WHERE kind = 'staged') AS staged_rows,
        sum(fare_usd) FILTER (WHERE kind = 'staged') AS staged_fare,
        sum(rows) FILTER (WHERE kind = 'staged' AND excluded_by IS NOT NULL) AS excluded_rows,
        sum(fare_usd) FILTER (WHERE kind = 'staged' AND excluded_by IS NOT NULL) AS excluded_fare,
        -- only staged rows have a cause; the others' NULL text is left out
        listagg(excluded_by || ' ' || rows, ', ') WITHIN GROUP (ORDER BY excluded_by) AS causes,
        sum(rows) FILTER (WHERE kind = 'staged' AND merged) AS merged_rows,
        sum(fare_usd) FILTER (WHERE kind = 'staged' AND merged) AS merged_fare,
        sum(rows) FILTER (WHERE kind = 'curated') AS curated_rows,
        sum(fare_usd) FILTER (WHERE kind = 'curated') AS curated_fare
    FROM facts
    GROUP BY source
)
SELECT
    source,
    coalesce(rows_read, 0) AS rows_read,
    trailer_rows,
    coalesce(rows_quarantined, 0) AS rows_quarantined,
    coalesce(rows_staged, 0) AS rows_staged,
    staged_rows AS rows_in_staging,
    coalesce(excluded_rows, 0) AS rows_excluded,
    causes AS excluded_causes,
    coalesce(merged_rows, 0) AS rows_merged,
    coalesce(curated_rows, 0) AS rows_curated,
    round(staged_fare, 2) AS fare_staged_usd,
    round(coalesce(excluded_fare, 0), 2) AS fare_excluded_usd,
    round(coalesce(merged_fare, 0), 2) AS fare_merged_usd,
    round(coalesce(curated_fare, 0), 2) AS fare_curated_usd,
    coalesce(rows_read, 0) - coalesce(rows_staged, 0) - coalesce(rows_quarantined, 0)
        AS unexplained_read,
    coalesce(rows_staged, 0) - staged_rows AS unexplained_staging,
    coalesce(unexplained_quarantine, 0) AS unexplained_quarantine,
    staged_rows - coalesce(excluded_rows, 0) - coalesce(merged_rows, 0)
        - coalesce(curated_rows, 0) AS unexplained_rows,
    round(staged_fare - coalesce(excluded_fare, 0) - coalesce(merged_fare, 0)
          - coalesce(curated_fare, 0), 2) AS unexplained_fare_usd
FROM totals
-- the sources with rows in staging, as the original's FROM staged
WHERE staged_rows IS NOT NULL
ORDER BY source

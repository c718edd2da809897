-- The data-quality report, section 5: the control totals of the newest published run that
-- rebuilt the curated layer (a run that found no new files publishes without recounting).
-- A source reconciles when every difference from file to curated table has a counted cause.
WITH published AS (
    SELECT r.run_id, r.started_at
    FROM quality.runs AS r
    WHERE r.published AND r.run_id IN (SELECT run_id FROM quality.control_totals)
    ORDER BY r.started_at DESC
    LIMIT 1
)
SELECT t.run_id, p.started_at, t.source,
       t.rows_read, t.trailer_rows, t.rows_quarantined, t.rows_staged, t.rows_in_staging,
       t.rows_excluded, t.excluded_causes, t.rows_merged, t.rows_curated,
       t.fare_staged_usd, t.fare_excluded_usd, t.fare_merged_usd, t.fare_curated_usd,
       t.unexplained_read, t.unexplained_staging, t.unexplained_rows, t.unexplained_fare_usd,
       (t.unexplained_read = 0 AND t.unexplained_staging = 0 AND t.unexplained_rows = 0
        AND abs(t.unexplained_fare_usd) <= 0.01) AS reconciles
FROM quality.control_totals AS t
JOIN published AS p USING (run_id)
ORDER BY t.source

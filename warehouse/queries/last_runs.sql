-- The run history for `etl status`: newest first, with the checks that failed in each run.
SELECT r.run_id, r.started_at, r.finished_at, r.status, r.exit_code, r.published,
       r.files_loaded, r.files_skipped, r.files_failed,
       r.rows_read, r.rows_staged, r.rows_flagged, r.rows_quarantined, r.message,
       coalesce(c.failed_checks, []) AS failed_checks
FROM quality.runs AS r
LEFT JOIN (
    SELECT run_id, list(source || ': ' || expectation || ' (' || severity || ')') AS failed_checks
    FROM quality.checks WHERE NOT success GROUP BY run_id
) AS c USING (run_id)
ORDER BY r.started_at DESC
LIMIT $limit

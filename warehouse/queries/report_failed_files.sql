-- The data-quality report, section 2: the files that could not be read or failed their run's
-- audit, in the newest $runs runs, newest first.
WITH recent AS (
    SELECT run_id, started_at FROM quality.runs ORDER BY started_at DESC LIMIT $runs
)
SELECT f.run_id, r.started_at, f.source, f.path, f.status, f.reason, f.rows_read
FROM quality.files AS f
JOIN recent AS r USING (run_id)
WHERE f.status IN ('failed', 'audit_failed')
ORDER BY r.started_at DESC, f.source, f.path

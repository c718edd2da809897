-- The data-quality report, section 1: the newest run, whatever its outcome.
SELECT run_id, started_at, finished_at, status, exit_code, published,
       files_seen, files_loaded, files_skipped, files_failed,
       rows_read, rows_staged, rows_flagged, rows_quarantined, message
FROM quality.runs
ORDER BY started_at DESC
LIMIT 1

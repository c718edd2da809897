-- Recorded for `etl status`; the next run removes what this one left in staging, unless it
-- published (then the error came after its commit, and it stays so).
UPDATE quality.runs SET status = 'error', exit_code = ?, finished_at = now(),
    message = CASE WHEN published THEN 'published, then ' ELSE '' END || ?
WHERE run_id = ?

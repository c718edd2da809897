UPDATE quality.runs SET finished_at = now(), status = ?, exit_code = ?,
    files_seen = ?, files_loaded = ?, files_skipped = ?, files_failed = ?,
    rows_read = ?, rows_staged = ?, rows_flagged = ?, rows_quarantined = ?, message = ?
WHERE run_id = ?

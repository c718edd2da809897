DELETE FROM quality.quarantine WHERE run_id = ? AND file = ?

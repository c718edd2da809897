INSERT INTO quality.runs (run_id, started_at, status, config_path, data_root)
VALUES (?, now(), 'running', ?, ?)

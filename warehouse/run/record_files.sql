INSERT INTO quality.files (run_id, source, path, layout, size_bytes, sha256, fingerprint,
    rows_read, rows_staged, rows_flagged, rows_quarantined, blank_lines, control_total, status,
    reason, mtime_ns, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())

-- The same content under a new mtime (or one never recorded), `_touched` (path, mtime_ns):
-- remembered on the file's current record, or the file would be hashed again on every run.
UPDATE quality.files AS f SET mtime_ns = t.mtime_ns
FROM _touched AS t, quality.manifest AS m
WHERE f.path = t.path AND m.path = t.path AND f.status = 'loaded'
  AND f.recorded_at = m.recorded_at

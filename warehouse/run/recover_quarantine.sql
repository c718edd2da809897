-- The quarantined rows of runs that died or failed with an error, never published.
DELETE FROM quality.quarantine WHERE run_id IN (
    SELECT run_id FROM quality.runs WHERE status IN ('crashed', 'error') AND NOT published
)

-- The data-quality report, section 4: the batch checks of the newest run that ran any (the
-- newest run itself unless it found no new files), failures first, then errors before warnings.
WITH checked AS (
    SELECT c.run_id
    FROM quality.checks AS c
    JOIN quality.runs AS r USING (run_id)
    ORDER BY r.started_at DESC
    LIMIT 1
)
SELECT run_id, source, suite, expectation, severity, success, observed_value
FROM quality.checks
WHERE run_id IN (SELECT run_id FROM checked)
ORDER BY success, severity <> 'error', source, expectation

-- The data-quality report, section 3: quarantined rows per source and reason. A row with
-- several reasons counts once under each. `rows` covers every run that is still on record
-- (a file loaded twice counts twice); `rows_last_run` only the newest run.
WITH last_run AS (
    SELECT run_id FROM quality.runs ORDER BY started_at DESC LIMIT 1
),
reasons AS (
    SELECT source, run_id, unnest(reasons) AS reason FROM quality.quarantine
)
SELECT source, reason,
       count(*) AS rows,
       count(*) FILTER (WHERE run_id IN (SELECT run_id FROM last_run)) AS rows_last_run
FROM reasons
GROUP BY source, reason
ORDER BY rows DESC, source, reason

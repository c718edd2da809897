-- The data-quality report, section 3: the $top most frequent reasons per source, each with one
-- example quarantined record: the first line of the newest run that rejected a row for it.
WITH reasons AS (
    SELECT q.run_id, r.started_at, q.source, q.file, q.line, q.raw,
           unnest(q.reasons) AS reason
    FROM quality.quarantine AS q
    LEFT JOIN quality.runs AS r USING (run_id)
),
ranked AS (
    SELECT *,
           count(*) OVER (PARTITION BY source, reason) AS rows,
           row_number() OVER (
               PARTITION BY source, reason ORDER BY started_at DESC NULLS LAST, file, line
           ) AS pick
    FROM reasons
)
SELECT source, reason, rows, run_id, file, line, CAST(raw AS VARCHAR) AS raw
FROM ranked
WHERE pick = 1
ORDER BY rows DESC, source, reason
LIMIT $top

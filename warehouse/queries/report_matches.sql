-- The data-quality report, section 6: cross-silo matches of the newest run that recorded any,
-- per pair of sources, with the spread of their time and distance gaps.
WITH matched AS (
    SELECT m.run_id, r.started_at
    FROM quality.matches AS m
    JOIN quality.runs AS r USING (run_id)
    ORDER BY r.started_at DESC
    LIMIT 1
)
SELECT m.run_id, m.left_source, m.right_source,
       count(*) AS matches,
       median(m.time_gap_s) AS time_gap_median_s,
       quantile_cont(m.time_gap_s, 0.95) AS time_gap_p95_s,
       max(m.time_gap_s) AS time_gap_max_s,
       median(m.distance_gap_m) AS distance_gap_median_m,
       quantile_cont(m.distance_gap_m, 0.95) AS distance_gap_p95_m,
       max(m.distance_gap_m) AS distance_gap_max_m,
       median(m.score) AS score_median
FROM quality.matches AS m
JOIN matched USING (run_id)
GROUP BY ALL
ORDER BY m.left_source, m.right_source

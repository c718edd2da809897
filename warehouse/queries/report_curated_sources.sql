-- The data-quality report, section 7: published trips per source, how many carry a flag, and
-- the local dates they cover.
SELECT source,
       count(*) AS trips,
       count(*) FILTER (WHERE len(coalesce(flags, [])) > 0) AS flagged,
       count(*) FILTER (WHERE len(coalesce(flags, [])) > 0) / count(*) AS flagged_share,
       CAST(min(timezone('America/New_York', pickup_at)) AS DATE) AS first_day,
       CAST(max(timezone('America/New_York', pickup_at)) AS DATE) AS last_day
FROM curated.trips
GROUP BY source
ORDER BY trips DESC, source

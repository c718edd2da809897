-- The data-quality report, section 7: published trips per local day and source, for the chart.
SELECT source, day, trips
FROM curated.daily_by_source
WHERE day IS NOT NULL
ORDER BY source, day

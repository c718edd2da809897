-- The data-quality report, section 7: which curated tables exist (none before the first publish).
SELECT table_schema || '.' || table_name AS name
FROM information_schema.tables
WHERE table_schema = 'curated' AND table_name IN ('trips', 'daily_by_source')
ORDER BY name

-- The batch a run's suites check: one source's rows of this run that are trips. `_record_key`
-- is the source's key within its container (a release zip holds OBJECTIDs unique only within
-- it; a dispatch job's versions differ by updated_at), so uniqueness is tested on what must be
-- unique. A row of the key's own types, not one text: grouping 5 M keys as text took half the
-- audit. Placeholders in braces are filled by etl.quality.audit with checked identifiers.
CREATE OR REPLACE VIEW audit.{source} AS
SELECT
    *,
    row(split_part(_file, '!', 1), {key_columns}) AS _record_key
FROM staging.{source}
WHERE _run_id = '{run_id}'
  AND NOT list_contains(_flags, 'not_a_trip')

-- The batch a run's suites check: one source's rows of this run that are trips. `_record_key`
-- is the source's key within its container (a release zip holds OBJECTIDs unique only within
-- it; a dispatch job's versions differ by updated_at), so uniqueness is tested on what must be
-- unique. Placeholders in braces are filled by etl.quality.audit with checked identifiers.
CREATE OR REPLACE VIEW audit.{source} AS
SELECT
    *,
    concat_ws('|', split_part(_file, '!', 1), {key_columns}) AS _record_key
FROM staging.{source}
WHERE _run_id = '{run_id}'
  AND NOT list_contains(_flags, 'not_a_trip')

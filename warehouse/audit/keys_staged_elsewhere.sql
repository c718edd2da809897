-- The rows of a batch (`_batch_keys`: `_pos`, `_file`, the key fields) whose record key another
-- file of the source already holds: the same records re-sent under a second file name (a zip or
-- CSV sent twice). The file that came first keeps them; the later file's rows are quarantined
-- as duplicate_key, naming the other file (`duplicate_of`). Another file is:
--   a current file in staging: of this run, or of an earlier one unless this run loads it
--     again (`_reloaded`: a replaced version replaces, it does not duplicate) or this is a
--     full refresh;
--   the batch written just before this one (`_in_flight`: it may not be committed yet);
--   an earlier row of this batch in another file.
-- A key is unique within its scope: the first group of `$scope` on the file's path (a DFHV
-- OBJECTID is unique within its release year only; '()' scopes the whole source). The scope is
-- compared only on the pairs whose key matched (written as a join key, the regex ran on every
-- staged row scanned for every batch), and found once a file, not once a pair: a DFHV month of
-- 2023 matches every OBJECTID of the same month of 2016: 221,805 pairs of two files took
-- 0.19-0.20 CPU s with two regexes a pair, 0.10-0.14 with one a file.
-- Placeholders in braces are filled by etl.engine.duckdb.engine with checked identifiers.
WITH others AS (
    SELECT _file, -1 AS _pos, {keys} FROM staging.{source}
    WHERE _run_id = $run_id
       OR (NOT $full_refresh AND _file NOT IN (SELECT path FROM _reloaded))
    UNION ALL
    SELECT _file, -1 AS _pos, {keys} FROM _in_flight
    UNION ALL
    SELECT _file, _pos, {keys} FROM _batch_keys
), pairs AS (
    SELECT b._pos, b._file AS batch_file, o._file AS other_file
    FROM _batch_keys AS b
    JOIN others AS o
        ON {key_match}
       AND o._pos < b._pos
       AND o._file <> b._file
), scopes AS (
    SELECT file, regexp_extract(file, $scope, 1) AS scope
    FROM (SELECT batch_file AS file FROM pairs UNION SELECT other_file FROM pairs)
)
SELECT p._pos, min(p.other_file) AS duplicate_of
FROM pairs AS p
JOIN scopes AS batch_scope ON batch_scope.file = p.batch_file
JOIN scopes AS other_scope ON other_scope.file = p.other_file
WHERE batch_scope.scope = other_scope.scope
GROUP BY p._pos

-- Great Expectations metrics as DuckDB aggregate expressions, all computed in ONE query over
-- the batch (etl.quality.gx_sql). Each part is named after a GX metric, its dots written `__`,
-- and must give exactly what GX's own SQLAlchemy implementation of that metric gives on DuckDB
-- (tests/test_gx_sql.py holds each to GX on the same batches). GX then judges success and
-- formats the result from these values itself. A metric not listed here, or any domain option
-- (row_condition, ...) the compiler does not know, leaves its expectation to GX.
--
-- Placeholders: {column}, {column_A}, {column_B} are quoted identifiers; {batch} is the batch
-- CTE; {quantiles} a DuckDB list of numbers; {condition} and {pair_domain} are parts below.

-- name: table__row_count
count(*)

-- GX: sum(CASE WHEN <unexpected> THEN 1 ELSE 0 END): NULL (not 0) on an empty batch.
-- name: column_values__nonnull__unexpected_count
sum(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END)

-- name: column_values__null__unexpected_count
sum(CASE WHEN {column} IS NOT NULL THEN 1 ELSE 0 END)

-- Every row of a value that occurs more than once. GX numbers each row with a window count
-- over the whole batch (half the suite's cost at 5 M rows); grouping gives the same number.
-- Grouping the values' 64-bit hashes first is cheaper (2.1 against 3.1 CPU s for the audit
-- view's two-text record key at 5 M rows) and loses nothing: equal values hash alike, so
-- every repeated value is among the rows of a repeated hash, which are then grouped exactly.
-- name: column_values__unique__unexpected_count
(WITH repeated_hash AS (
    SELECT hash({column}) AS h FROM {batch} WHERE {column} IS NOT NULL
    GROUP BY h HAVING count(*) > 1
)
SELECT coalesce(sum(n), 0) FROM (
    SELECT count(*) AS n FROM {batch}
    WHERE {column} IS NOT NULL AND hash({column}) IN (SELECT h FROM repeated_hash)
    GROUP BY {column} HAVING count(*) > 1
))

-- GX: non-null count / row count, 0 for an empty batch (the division is in etl.quality.gx_sql).
-- name: column__non_null_proportion
struct_pack(nonnull := count({column}), total := count(*))

-- GX: percentile_disc(q) WITHIN GROUP (ORDER BY column) per quantile; the list form sorts once.
-- name: column__quantile_values
quantile_disc({column}, {quantiles})

-- GX reads the two middle values of the sorted non-null values (ORDER BY ... LIMIT 2 OFFSET
-- n // 2 - 1) and averages them when n is even. quantile_disc(0.5) is the lower middle (the
-- centre when n is odd), 0.5 + 1e-13 the upper middle (exact up to n = 2.5e12); one list of
-- quantiles sorts the column once.
-- name: column__median
struct_pack(n := count({column}), middle := quantile_disc({column}, [0.5, 0.5000000000001]))

-- name: column_pair_values__a_greater_than_b__unexpected_count
count(*) FILTER (WHERE {pair_domain} AND NOT ({condition}))

-- name: column_pair_values__a_greater_than_b__filtered_row_count
count(*) FILTER (WHERE {pair_domain})

-- Conditions of pair metrics, by GX's value kwargs.
-- name: condition__a_greater_than_b
{column_A} > {column_B}

-- name: condition__a_greater_than_b__or_equal
{column_A} >= {column_B} OR ({column_A} IS NULL AND {column_B} IS NULL)

-- Rows of a pair metric's domain, by GX's ignore_row_if.
-- name: pair_domain__both_values_are_missing
NOT ({column_A} IS NULL AND {column_B} IS NULL)

-- name: pair_domain__either_value_is_missing
NOT ({column_A} IS NULL OR {column_B} IS NULL)

-- name: pair_domain__neither
true

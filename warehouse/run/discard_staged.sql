-- A file that failed after some of its pieces were staged: none of it stays. {table} checked.
DELETE FROM {table} WHERE _run_id = ? AND _file = ?

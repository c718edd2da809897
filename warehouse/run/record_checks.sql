-- A run's batch checks (etl.quality.audit.SuiteAudit.rows), in quality.checks' column order.
INSERT INTO quality.checks VALUES (?, ?, ?, ?, ?, ?, ?, ?)

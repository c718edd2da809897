SELECT models_sha FROM quality.runs WHERE published ORDER BY started_at DESC LIMIT 1

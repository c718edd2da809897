UPDATE quality.runs SET published = true, models_sha = ? WHERE run_id = ?

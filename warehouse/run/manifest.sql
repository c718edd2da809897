SELECT path, size_bytes, mtime_ns, fingerprint FROM quality.manifest

"""One module per file format: text in, a frame of raw fields (with each row's line) out."""

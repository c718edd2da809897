"""One module per file format, each declaring its `Reader`; `READERS` finds them by name.

A new format is a module with a `READER` (see `etl.readers.base`) added to the tuple below;
`format:` in sources.yaml is validated against these names (`formats()`).
"""

from __future__ import annotations

from etl.readers import delimited, geojson, jsonl, parquet
from etl.readers.base import Reader

READERS: dict[str, Reader] = {
    module.READER.format: module.READER for module in (delimited, jsonl, geojson, parquet)
}


def formats() -> dict[str, str]:
    """Every format name with the entity its rows are: what sources.yaml may declare."""
    return {name: reader.entity for name, reader in READERS.items()}

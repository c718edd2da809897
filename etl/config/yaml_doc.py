"""Read a YAML config file with limits: bounded size, bounded aliases, no duplicate keys.

PyYAML shares an aliased node instead of copying it, so composing an "alias bomb" is cheap;
what blows up is everything that walks the document afterwards (a 6.7 KB file expands to
billions of nodes). Before anything walks it, the document's size with every alias expanded is
counted, once per distinct node, and refused above a limit. Each limit is a setting with a safe
default, changed through an environment variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from etl.errors import YamlError


@dataclass(frozen=True)
class YamlLimits:
    """How much a config file may hold. The project's own sources.yaml is 8 KB, 0 aliases."""

    max_bytes: int = 1 << 20  # ETL_CONFIG_MAX_BYTES
    max_aliases: int = 100  # ETL_CONFIG_MAX_ALIASES
    max_nodes: int = 100_000  # ETL_CONFIG_MAX_NODES: scalars, lists and mappings, aliases expanded

    @classmethod
    def from_env(cls) -> YamlLimits:
        """The defaults, each overridden by its environment variable when that is set."""
        values = {}
        for name in ("max_bytes", "max_aliases", "max_nodes"):
            variable = f"ETL_CONFIG_{name.upper()}"
            text = os.environ.get(variable)
            if text is None:
                continue
            if not text.strip().isdigit():
                raise YamlError(0, f"{variable}={text!r} is not a whole number")
            values[name] = int(text)
        return cls(**values)


def read_limited(path: Path, max_bytes: int) -> str:
    """The file's text, refused if it is larger than `max_bytes` (read no further than that)."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlError(
            0, f"larger than the limit of {max_bytes:,} bytes (ETL_CONFIG_MAX_BYTES to change)"
        )
    return data.decode("utf-8")


def parse(text: str, limits: YamlLimits) -> tuple[yaml.Node | None, Any]:
    """The document's node tree and its Python value, after every check passed."""
    loader = _CountingLoader(text, limits)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        nodes = _expanded_size(node, {}, set())
        if nodes > limits.max_nodes:
            raise YamlError(
                0,
                f"{nodes:,} values with aliases expanded, more than the limit of "
                f"{limits.max_nodes:,} (ETL_CONFIG_MAX_NODES to change)",
            )
        _check_duplicate_keys(node, (), set())
        return node, loader.construct_document(node)
    except RecursionError:
        raise YamlError(0, "nested too deeply") from None
    finally:
        loader.dispose()


class _CountingLoader(yaml.SafeLoader):
    """The safe loader, refusing a document with more aliases or nodes than it allows.

    Nodes are counted as they are composed: a PyYAML node costs about 800 bytes, so a 1 MB
    file of short values would otherwise hold 400 MB before any check could look at it.
    """

    def __init__(self, text: str, limits: YamlLimits) -> None:
        super().__init__(text)
        self.aliases_left = limits.max_aliases
        self.nodes_left = limits.max_nodes

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self.aliases_left -= 1
            if self.aliases_left < 0:
                raise YamlError(line, "too many aliases (ETL_CONFIG_MAX_ALIASES to change)")
        else:
            self.nodes_left -= 1
            if self.nodes_left < 0:
                raise YamlError(line, "too many values (ETL_CONFIG_MAX_NODES to change)")
        return super().compose_node(parent, index)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in the tree under `node` as if every alias were copied; each node visited once."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise YamlError(node.start_mark.line + 1, "an alias refers to a node that contains it")
    open_nodes.add(key)
    sizes[key] = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in _children(node))
    open_nodes.discard(key)
    return sizes[key]


def _check_duplicate_keys(node: yaml.Node, path: tuple, seen: set[int]) -> None:
    """Refuse a mapping that names a key twice (PyYAML would silently keep the last)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key in first_line:
                dotted = ".".join(str(part) for part in (*path, key))
                raise YamlError(line, f"{dotted}: duplicate key (first on line {first_line[key]})")
            if key is not None:
                first_line[key] = line
            _check_duplicate_keys(value_node, (*path, key), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, index), seen)

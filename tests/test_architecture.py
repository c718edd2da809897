"""The package's shape, read from its source with `ast` (docs/architecture.md, "Layers").

- no import cycle between modules (an import inside a function counts: it runs too);
- a module imports only its own layer or lower ones, and never `etl.cli` unless it is part of
  the command line; `ml`, `report` and `sample` sit beside `run` and import what is below it;
- no function over 60 lines in `etl/` outside `etl/sample/` (the sample generator is exempt);
- comments cite documents the repository holds (`docs/`), not design notes kept elsewhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import etl

PACKAGE = Path(etl.__file__).parent
REPOSITORY = PACKAGE.parent
MAX_FUNCTION_LINES = 60
# Lowest first: a module imports only its own layer or lower ones.
LAYERS = ("config", "engine", "reference", "sources", "readers", "stage", "quality", "run", "cli")
BESIDE_RUN = ("ml", "report", "sample")  # on top of `quality`, below `cli`; they may not use `run`
ENTRY_POINTS = ("etl.__main__",)  # `python -m etl`: the command line's, at the top
NO_LENGTH_LIMIT = ("etl.sample",)

# Design notes that lived outside the repository; their content is in docs/ now.
OUTSIDE_DOCUMENTS = re.compile(r"\b(design|company-silos|dfhv-facts)\.md\b")
CITED_DOCS = re.compile(r"\bdocs/[\w.-]+\.md\b")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def imported(tree: ast.Module) -> set[str]:
    """The package's modules `tree` imports, anywhere in it; `from a import b` of a submodule
    `a.b` is an import of `a.b` (its package's `__init__` runs, but is not what is used)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found.update(submodules & MODULES.keys())
            if submodules - MODULES.keys():
                found.add(node.module)
    return {name for name in found if name in MODULES}


GRAPH = {name: imported(tree) - {name} for name, tree in TREES.items()}


def rank(module: str) -> float:
    """Where a module sits: -1 for the package's base modules (errors, names, paths, ...),
    which every layer may import; `ml`, `report` and `sample` half a step above `quality`."""
    if module in ENTRY_POINTS:
        return LAYERS.index("cli")
    parts = module.split(".")
    if len(parts) < 3 and (len(parts) < 2 or parts[1] not in LAYERS + BESIDE_RUN):
        return -1
    if parts[1] in BESIDE_RUN:
        return LAYERS.index("quality") + 0.5
    return LAYERS.index(parts[1])


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_offences() -> Iterator[str]:
    for module, targets in GRAPH.items():
        for target in sorted(targets):
            same_package = package_of(target) == package_of(module)
            if not same_package and rank(target) > rank(module):
                yield f"{module} -> {target}"
            elif rank(module) == -1 and rank(target) != -1:
                yield f"{module} -> {target}"  # a base module leans on a layer: not a base


def cycles() -> Iterator[str]:
    """Each cycle of imports once, as `a -> b -> a` (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    for component in components:
        yield " -> ".join([*component, component[0]])


def long_functions() -> Iterator[str]:
    for module, tree in TREES.items():
        if module.startswith(NO_LENGTH_LIMIT):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    yield f"{module}.{node.name} ({lines} lines)"


def project_texts() -> Iterator[tuple[str, str]]:
    """Each file of code, SQL, config and prose in the repository, by its relative path."""
    patterns = ("etl/**/*.py", "warehouse/**/*.sql", "schemas/**/*", "tests/**/*.py", "bench/**/*")
    paths = {p for pattern in patterns for p in REPOSITORY.glob(pattern) if p.is_file()}
    paths |= {REPOSITORY / "sources.yaml", REPOSITORY / "README.md"}
    for path in sorted(paths):
        if path.suffix in (".py", ".sql", ".yaml", ".json", ".md") and path.name != THIS_FILE:
            yield str(path.relative_to(REPOSITORY)), path.read_text(encoding="utf-8")


THIS_FILE = Path(__file__).name


def outside_citations() -> Iterator[str]:
    for name, text in project_texts():
        if OUTSIDE_DOCUMENTS.search(text):
            yield name


CHECKS = {
    "layers": layer_offences,
    "cycles": cycles,
    "long functions": long_functions,
    "citations": outside_citations,
}


def offences(check: str) -> set[str]:
    """The check's offences, a long function named without its line count (which drifts)."""
    return {offence.split(" (")[0] for offence in CHECKS[check]()}


@pytest.mark.parametrize("check", CHECKS)
def test_no_offence(check: str) -> None:
    assert sorted(offences(check)) == []


def test_the_checks_see_what_they_should() -> None:
    """The checks read the real package: a known import and the layer rule on made-up edges."""
    assert "etl.errors" in GRAPH["etl.cli.main"]
    assert "etl.names" in GRAPH["etl.stage.batch"]
    assert rank("etl.errors") == -1 and rank("etl.engine.duckdb.match") == LAYERS.index("engine")
    assert rank("etl.report.html") < rank("etl.run.pipeline") < rank("etl.cli.main")
    assert rank("etl.__main__") == rank("etl.cli.main")
    assert MODULES.keys() >= {"etl.sample.geo", "etl.run.pipeline", "etl.quality.rowspec"}


def test_the_docs_cited_are_in_the_repository() -> None:
    cited = {doc for _, text in project_texts() for doc in CITED_DOCS.findall(text)}
    assert "docs/architecture.md" in cited
    assert sorted(doc for doc in cited if not (REPOSITORY / doc).is_file()) == []


def test_every_user_facing_error_derives_from_the_root() -> None:
    """An exception class defined anywhere in `etl/` derives from `EtlError` (through its
    bases), so the command line's one `except EtlError` catches it with its exit code."""
    from etl import errors

    roots = {"EtlError"} | {name for name, obj in vars(errors).items() if _is_etl_error(obj)}
    strays = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and _is_exception(node):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if not bases & roots and module not in SIGNALS and node.name not in roots:
                    strays.append(f"{module}.{node.name}")
    assert strays == []


SIGNALS = {"etl.cli.errors"}  # `Interrupted` is a BaseException on purpose: not an error


def _is_etl_error(obj: object) -> bool:
    from etl.errors import EtlError

    return isinstance(obj, type) and issubclass(obj, EtlError)


def _is_exception(node: ast.ClassDef) -> bool:
    names = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
    return any(name.endswith(("Error", "Exception")) for name in names)

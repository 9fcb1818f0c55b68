"""The layering docs/architecture.md promises, read from the code (every test here fails on a violation;
the scanners are themselves tested on samples):

* graph/ is three subpackages (`graph.io` readers + identifiers, `graph.store` the parquet store,
  `graph.db` the Neo4j layer) plus the shared modules beside them;
* no import cycle between the project's modules (function-level imports count: a lazy import is still
  a dependency);
* Cypher lives only in `graph.db`: no other module holds a Cypher string or calls a driver, session or
  transaction;
* the readers, the store and the shared modules never reach the Neo4j layer or the driver, even
  transitively; models/ reaches neither the Neo4j layer nor Dagster;
* platform/ is not a Python package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("graph", "models", "pipelines")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            out[".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def _imported(path: Path, package: str) -> set[str]:
    """Every name an import statement anywhere in the file refers to (absolute, relative resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph() -> nx.DiGraph:
    modules = _modules()

    def owner(name: str) -> str | None:  # "graph.io.gctx.write_gctx" -> "graph.io.gctx"
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in _imported(path, package):
            if (dep := owner(target)) and dep != name:
                g.add_edge(name, dep)
    return g


def test_import_graph_sees_known_edges():
    g = import_graph()
    assert g.has_edge("pipelines.cli.model", "models.datasets")  # module-level import
    assert g.has_edge("pipelines.cli.model", "models.distributed")  # function-level import


def test_no_import_cycles():
    cycles = sorted(" -> ".join(c) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], cycles


def external_roots(path: Path, name: str) -> set[str]:
    """Top-level packages outside the project that a module's import statements name."""
    roots = {n.split(".")[0] for n in _imported(path, name if path.name == "__init__.py" else name.rpartition(".")[0])}
    return roots - set(PACKAGES)


def reach(g: nx.DiGraph, prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules of the given packages -> the project modules they reach (transitively) in `g`."""
    return {m: sorted(nx.descendants(g, m)) for m in g if m.startswith(prefixes)}


# What each part of the house may not reach. The readers, the store and graph/'s shared modules are used
# by models/ and by the CLI without a database: neither the Neo4j layer nor the driver package.
NEO4J_FREE = ("graph.io", "graph.store", "graph.records", "graph.settings", "graph.processes", "graph.simulated")
FORBIDDEN = {
    NEO4J_FREE: (("graph.db",), {"neo4j", "dagster"}),
    ("models",): (("graph.db", "pipelines"), {"neo4j", "dagster"}),
}


def layering_offenders(g: nx.DiGraph, modules: dict[str, Path]) -> dict[str, list[str]]:
    offenders: dict[str, list[str]] = {}
    for prefixes, (no_modules, no_packages) in FORBIDDEN.items():
        for module, reached in reach(g, prefixes).items():
            bad = [m for m in reached if m.startswith(no_modules)]
            bad += sorted(f"{m} imports {r}" for m in [module, *reached] if m in modules
                          for r in external_roots(modules[m], m) & no_packages)
            if bad:
                offenders[module] = bad
    return offenders


def test_readers_store_and_models_never_reach_the_neo4j_layer():
    modules = _modules()
    offenders = layering_offenders(import_graph(), modules)
    assert offenders == {}, f"layering broken (module -> what it must not reach): {offenders}"


def test_layering_check_sees_a_transitive_violation():
    g = import_graph()
    g.add_edge("graph.io.gctx", "graph.store.quarantine")
    g.add_edge("graph.store.quarantine", "graph.db.queries")  # e.g. the store running a query
    offenders = layering_offenders(g, _modules())
    assert "graph.db.queries" in offenders["graph.io.gctx"]
    assert "graph.db.queries" in offenders["graph.store.quarantine"]
    assert any(m.startswith("models") for m in layering_offenders(
        nx.compose(g, nx.DiGraph([("models.lpm", "graph.io.gctx")])), _modules()))


def test_graph_is_three_subpackages_and_the_shared_modules():
    graph = REPO / "graph"
    packages = sorted(p.name for p in graph.iterdir() if (p / "__init__.py").exists())
    modules = sorted(p.name for p in graph.glob("*.py"))
    assert packages == ["db", "io", "store"]
    assert modules == ["__init__.py", "processes.py", "records.py", "settings.py", "simulated.py"]
    # `neo4j` as a name would shadow the driver package inside graph/.
    assert not (graph / "neo4j").exists()


def test_platform_is_not_a_python_package():
    assert not (REPO / "platform" / "__init__.py").exists()


# Calls that run Cypher on a Neo4j driver, session or transaction; only graph/db/ may make them.
_DRIVER_CALLS = {"execute_query", "session", "execute_read", "execute_write", "begin_transaction"}


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def cypher_calls(path: Path) -> list[str]:
    """`line: call` for every driver/session/transaction call in the file (`.run(` counts when it is
    on something named like a driver, session or transaction; subprocess.run does not)."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, receiver = node.func.attr, _receiver_name(node.func.value).lower()
            if attr in _DRIVER_CALLS or (attr == "run" and any(w in receiver for w in ("driver", "session", "tx"))):
                hits.append(f"{node.lineno}: {receiver}.{attr}(")
    return hits


def test_cypher_runs_only_in_the_neo4j_layer():
    offenders = {str(path.relative_to(REPO)): hits for name, path in _modules().items()
                 if not name.startswith("graph.db") and (hits := cypher_calls(path))}
    assert not offenders, f"driver calls outside graph/db/ (give the query a function there): {offenders}"


def test_cypher_call_scan_sees_a_driver_call(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(driver, s):\n    driver.execute_query('RETURN 1')\n    s.session().run('x')\n"
                      "    import subprocess\n    subprocess.run(['ls'])\n")
    assert cypher_calls(sample) == ["2: driver.execute_query(", "3: s.session("]


# Cypher in a string: a clause with its pattern or parameter (`MATCH (`, `MERGE (`, `UNWIND $rows AS`, ...)
# or a procedure / admin command. Docstrings are prose and are not scanned.
_CYPHER = re.compile(
    r"\b(?:OPTIONAL\s+)?(?:MATCH|MERGE|CREATE)\s*\(|\bUNWIND\s+\$\w+\s+AS\b|\bDETACH\s+DELETE\b"
    r"|\bCALL\s+db\.\w+|\bSHOW\s+(?:CONSTRAINTS|INDEXES)\b|\bRETURN\s+count\s*\(")


def cypher_strings(path: Path) -> list[str]:
    """`line: start of the string` for every non-docstring string constant that reads as Cypher."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [f"{n.lineno}: {n.value.strip()[:60]!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
            and _CYPHER.search(n.value)]


def test_cypher_strings_live_only_in_the_neo4j_layer():
    modules = _modules()
    offenders = {str(path.relative_to(REPO)): hits for name, path in modules.items()
                 if not name.startswith("graph.db") and (hits := cypher_strings(path))}
    assert not offenders, f"Cypher outside graph/db/ (name the query in a graph/db query module): {offenders}"
    # The scan does see the layer's queries (it would pass vacuously otherwise).
    assert cypher_strings(modules["graph.db.queries"]) and cypher_strings(modules["graph.db.discovery_queries"])


@pytest.mark.parametrize("text, hit", [
    ('"MATCH (g:Gene) RETURN g"', True),
    ('"UNWIND $rows AS row MERGE (c:Compound {compound_id: row.id})"', True),
    ('"CALL db.awaitIndexes($t)"', True),
    ("'OPTIONAL MATCH (p)-[:PERTURBS]->(g)'", True),
    ('"MATCH the compound names case-insensitively"', False),
    ('"create a new dataset id"', False),
])
def test_cypher_string_scan_on_samples(tmp_path, text, hit):
    sample = tmp_path / "sample.py"
    sample.write_text(f'"""Module docstring: UNWIND $rows AS row MERGE (x) is prose here."""\nQ = {text}\n')
    assert bool(cypher_strings(sample)) is hit


ARCHITECTURE_DOC = REPO / "docs" / "architecture.md"


def doc_paths(text: str) -> set[str]:
    """Every `graph/...`, `models/...`, `pipelines/...`, `platform/...` path the doc names in backticks."""
    return {m.rstrip("/") for m in re.findall(r"`((?:graph|models|pipelines|platform)/[\w./-]*)", text)}


def test_architecture_doc_names_only_paths_that_exist():
    missing = sorted(p for p in doc_paths(ARCHITECTURE_DOC.read_text()) if not (REPO / p).exists())
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_architecture_doc_names_every_module_of_the_neo4j_layer_and_the_store():
    text = ARCHITECTURE_DOC.read_text()
    named = doc_paths(text) | {f"{pkg}/{m}" for pkg in ("graph/db", "graph/store")
                               for m in re.findall(r"`(\w+\.py)`", text)}
    unnamed = sorted(str(p.relative_to(REPO)) for pkg in ("db", "store") for p in (REPO / "graph" / pkg).glob("*.py")
                     if p.name != "__init__.py" and str(p.relative_to(REPO)) not in named)
    assert unnamed == [], f"modules docs/architecture.md does not place: {unnamed}"


def test_doc_path_scan_on_a_sample():
    assert doc_paths("see `graph/db/queries.py` and `graph/store/`, not graph/x.py") == {
        "graph/db/queries.py", "graph/store"}

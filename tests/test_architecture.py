"""The layering docs/architecture.md promises, read from the code: no import cycle between the
project's modules (function-level imports count: a lazy import is still a dependency), models/
knows nothing of Neo4j or Dagster, and platform/ is not a Python package."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

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


def test_models_import_neither_neo4j_nor_dagster():
    offenders = {}
    for name, path in _modules().items():
        if name.startswith("models"):
            roots = {n.split(".")[0] for n in _imported(path, name.rpartition(".")[0])}
            if bad := roots & {"neo4j", "dagster", "graph_db"}:
                offenders[name] = sorted(bad)
    assert offenders == {}


def test_platform_is_not_a_python_package():
    assert not (REPO / "platform" / "__init__.py").exists()


# Calls that run Cypher on a Neo4j driver, session or transaction; only graph/ may make them.
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


def test_cypher_runs_only_in_the_graph_layer():
    offenders = {str(path.relative_to(REPO)): hits for name, path in _modules().items()
                 if name.split(".")[0] in ("pipelines", "models") and (hits := cypher_calls(path))}
    assert not offenders, f"Cypher outside graph/ (give the query a function in graph/): {offenders}"


def test_cypher_call_scan_sees_a_driver_call(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(driver, s):\n    driver.execute_query('RETURN 1')\n    s.session().run('x')\n"
                      "    import subprocess\n    subprocess.run(['ls'])\n")
    assert cypher_calls(sample) == ["2: driver.execute_query(", "3: s.session("]

"""Initial load of an empty database through `neo4j-admin database import full` (offline): the fastest
path for a first load of millions of relationships (docs/benchmarks.md); the MERGE writers
(graph.db.graph_writer) are idempotent on top of an imported graph."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graph.db.schema import require_label, require_rel_type
from graph.db.server import ADMIN_TOOL, Neo4jServer, ServerState


@dataclass(frozen=True)
class BulkImportResult:
    database: str
    seconds: float
    command: list[str]
    output_tail: str


def bulk_import(
    settings: Any,
    nodes: dict[str, Sequence[Any]],
    relationships: dict[str, Sequence[Any]],
    *,
    database: str | None = None,
    overwrite: bool = False,
    import_heap: str = "2g",
    timeout_s: float = 3600.0,
) -> BulkImportResult:
    """Initial load of an EMPTY database with `neo4j-admin database import full` (offline, the fastest
    path for a first load of millions of relationships; see docs/benchmarks.md).

    `nodes` maps an allowlisted label to CSV files whose header names the key column as
    `<key>:ID(<Label>)` (e.g. `entrez_id:ID(Gene)`, keeping the key as a property) plus typed
    properties (`sources:string[]`, `dose_value:float`, arrays split on ';'); `relationships` maps an
    allowlisted type to CSVs with `:START_ID(<Label>)`, `:END_ID(<Label>)` and properties (`dataset`).
    The managed server of `settings` must be stopped (the import needs the store to itself). Start
    the server afterwards and run `GraphWriter.ensure_schema` (constraints are built on the imported data), then
    continue with the normal MERGE writers, which are idempotent on top of an imported graph.
    """
    server = Neo4jServer(settings)
    if server.status().state is ServerState.RUNNING:
        raise RuntimeError(f"stop the Neo4j server in {server.home} before a bulk import")
    server.ensure_jars()
    server.write_config()
    java = server.command()[0]
    db = database or settings.neo4j_database
    cmd = [
        java, f"-Xmx{import_heap}", "-cp", f"{server.conf_dir}/*:{server.lib_dir}/*", ADMIN_TOOL,
        # The database name goes first: --nodes/--relationships take a variable number of values.
        "database", "import", "full", db,
        "--array-delimiter=;", f"--overwrite-destination={'true' if overwrite else 'false'}",
    ]
    for label, files in nodes.items():
        cmd.append(f"--nodes={require_label(label)}={','.join(str(f) for f in files)}")
    for rel_type, files in relationships.items():
        cmd.append(f"--relationships={require_rel_type(rel_type)}={','.join(str(f) for f in files)}")
    env = {**os.environ, "NEO4J_HOME": str(server.home), "NEO4J_CONF": str(server.conf_dir)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    seconds = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr)[-3000:]
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() and not ln.lstrip().startswith("at ")]
        raise RuntimeError(f"neo4j-admin database import failed ({proc.returncode}): {' | '.join(lines[-8:])[-1200:]}")
    return BulkImportResult(db, seconds, cmd, tail)

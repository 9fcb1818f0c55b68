"""Ingest all of ../shared/data through the Dagster assets into a fresh managed Neo4j, twice.

Not a test (it takes minutes): it shows that every shared file goes through the `ingest` job, that
the blocking checks pass, and that a second run changes no count. Figures go to docs/benchmarks.md.

    nice python benchmarks/shared_ingest.py [--home /tmp/shared-home] [--port 7691]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time


def start_shared_server(home: str, port: int, *, wipe: bool = True):
    """Point PerturbGraph at `home` with the shared inputs and a managed Neo4j on `port` (any
    NEO4J_URI is ignored), start it; returns (settings, server). wipe: start from an empty home."""
    if wipe:
        shutil.rmtree(home, ignore_errors=True)
    os.environ.update(PERTURBGRAPH_HOME=home, PERTURBGRAPH_NEO4J_BOLT_PORT=str(port), PERTURBGRAPH_INPUTS="shared")
    os.environ.pop("NEO4J_URI", None)
    from graph.db.server import Neo4jServer
    from graph.settings import reload_settings

    settings = reload_settings()
    server = Neo4jServer(settings)
    server.start()
    return settings, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default="/tmp/perturbgraph-shared-ingest")
    parser.add_argument("--port", type=int, default=7691)
    args = parser.parse_args()
    settings, server = start_shared_server(args.home, args.port)
    import dagster as dg

    from graph.db import checks
    from graph.db.connection import open_driver
    from pipelines.definitions import defs

    counts = []
    try:
        for attempt in (1, 2):
            began = time.monotonic()
            result = defs.resolve_job_def("ingest").execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
            seconds = time.monotonic() - began
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            with open_driver(settings) as driver:
                counts.append(checks.graph_counts(driver, database=settings.neo4j_database))
            print(json.dumps({"run": attempt, "success": result.success, "seconds": round(seconds),
                              "checks": checks, "total_nodes": counts[-1]["total_nodes"],
                              "total_relationships": counts[-1]["total_relationships"]}), flush=True)
            if not result.success:
                raise SystemExit(1)
        print(json.dumps({"second_run_changes_nothing": counts[0] == counts[1], "counts": counts[1]}, indent=1))
    finally:
        server.stop()


if __name__ == "__main__":
    main()

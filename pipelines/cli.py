"""The `perturbgraph` command line (typer)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from graph.settings import get_settings

app = typer.Typer(help="PerturbGraph: perturbation experiments, the LPM and discoveries in a Neo4j graph.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
neo4j_app = typer.Typer(help="The managed Neo4j server (ignored when NEO4J_URI is set).", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _server():
    from graph.server import Neo4jServer

    return Neo4jServer(get_settings(), progress=lambda m: console.print(f"[dim]{m}[/]"))


@neo4j_app.command("start")
def neo4j_start() -> None:
    """Start the managed Neo4j (first start resolves jars and generates the password)."""
    import time

    from graph.server import Neo4jServerError

    settings = get_settings()
    if not settings.managed_neo4j:
        console.print(f"NEO4J_URI is set ({settings.neo4j_uri}): using that server, starting nothing.")
        return
    began = time.monotonic()
    try:
        status = _server().start()
    except Neo4jServerError as exc:
        fail(str(exc))
    console.print(f"{status} (ready in {time.monotonic() - began:.1f} s)")


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Stop the managed Neo4j (SIGTERM, then SIGKILL after a bounded wait)."""
    if not get_settings().managed_neo4j:
        console.print("NEO4J_URI is set: the platform does not manage that server.")
        return
    console.print(str(_server().stop()))


@neo4j_app.command("status")
def neo4j_status() -> None:
    """running / stopped / stale (exit code 0 / 3 / 4)."""
    settings = get_settings()
    if not settings.managed_neo4j:
        console.print(f"external Neo4j at {settings.neo4j_uri} (NEO4J_URI)")
        return
    from graph.server import ServerState

    status = _server().status()
    typer.echo(str(status))
    if status.state is ServerState.STALE:
        console.print("[yellow]the pid file is stale (the process is gone); `perturbgraph neo4j start` recovers[/]")
    raise typer.Exit({ServerState.RUNNING: 0, ServerState.STOPPED: 3, ServerState.STALE: 4}[status.state])


@app.command("where")
def where() -> None:
    """Print where PerturbGraph keeps its data, artifacts, Neo4j store and Dagster instance."""
    s = get_settings()
    for label, path in [("home", s.home), ("neo4j", s.neo4j_home), ("jars", s.neo4j_lib_dir),
                        ("store", s.store_dir), ("quarantine", s.quarantine_dir),
                        ("artifacts", s.artifacts_dir), ("inbox", s.inbox_dir), ("dagster", s.dagster_home),
                        ("shared data", s.shared_data)]:
        typer.echo(f"{label:12s} {path}")
    typer.echo(f"{'neo4j uri':12s} {s.effective_neo4j_uri}")


@app.command("demo")
def demo() -> None:
    """The main job: start Neo4j, write and read back a probe, and show where everything lives."""
    import time
    import uuid

    from graph.db import ensure_neo4j, open_driver
    from graph.server import Neo4jServerError

    settings = get_settings()
    try:
        ensure_neo4j(settings, progress=lambda m: console.print(f"[dim]{m}[/]"))
    except Neo4jServerError as exc:
        fail(str(exc))
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    with open_driver(settings) as driver:
        driver.execute_query("MERGE (p:Probe {name: $name}) SET p.written_at = datetime()", name=probe,
                             database_=settings.neo4j_database)
        found = driver.execute_query("MATCH (p:Probe {name: $name}) RETURN p.name AS name", name=probe,
                                     database_=settings.neo4j_database).records
        driver.execute_query("MATCH (p:Probe {name: $name}) DELETE p", name=probe, database_=settings.neo4j_database)
    if not found:
        fail("the probe written to Neo4j could not be read back")
    console.print(f"[green]Neo4j answers at {settings.effective_neo4j_uri}: probe written and read back "
                  f"in {1000 * (time.monotonic() - began):.0f} ms[/]")
    where()


def main() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())

"""`perturbgraph neo4j start|stop|status`, `where` and `ui`: the managed server, the paths, the Dagster UI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from graph.settings import get_settings
from pipelines.cli.common import app, console, dagster_home, fail

neo4j_app = typer.Typer(help="The managed Neo4j server (ignored when NEO4J_URI is set).", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")

def _server():
    from graph.db.server import Neo4jServer

    return Neo4jServer(get_settings(), progress=lambda m: console.print(f"[dim]{m}[/]"))


@neo4j_app.command("start")
def neo4j_start() -> None:
    """Start the managed Neo4j (first start resolves jars and generates the password)."""
    import time

    from graph.db.server import Neo4jServerError

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
    from graph.db.server import ServerState

    server = _server()
    status = server.status()
    rss = server.resident_memory_mib() if status.state is ServerState.RUNNING else None
    typer.echo(str(status) + (f"; resident memory {rss:,.0f} MiB" if rss else ""))
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
    if not Path(s.shared_data).is_dir():
        typer.echo(f"warning: shared data folder {s.shared_data} does not exist (set PERTURBGRAPH_SHARED_DATA); "
                   "the real-data inputs (--inputs shared, tahoe, replogle, l1000-*) are unavailable", err=True)


# `dagster dev` is marked superseded by `dg dev` (a separate package); its SupersessionWarning tells a
# user of `perturbgraph ui` nothing they can act on, so this shim starts it with that warning off.
_DAGSTER_DEV = ("import warnings\n"
                "from dagster_shared.utils.warnings import SupersessionWarning\n"
                "warnings.simplefilter('ignore', SupersessionWarning)\n"
                "from dagster._cli import main\n"
                "main()")
UI_STOP_GRACE_S = 20.0  # dagster dev's own Ctrl-C shutdown, before SIGKILL


def _group_members(pgid: int) -> list[int]:
    """Live processes in a process group (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
                members.append(int(entry.name))
    return members


def run_process_group(cmd: list[str], *, cwd: Path, env: dict[str, str], grace_s: float = UI_STOP_GRACE_S) -> int:
    """Run cmd in its own process group; SIGINT / SIGTERM to us stop the whole group: the signal is
    forwarded (SIGINT: Dagster's graceful Ctrl-C path), and whatever is left after grace_s is killed.
    Returns the command's exit code (128 + signal when stopped by one)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    received: list[int] = []

    class _Stop(Exception):
        pass

    def on_signal(signum, _frame):
        received.append(signum)
        raise _Stop

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            return proc.wait()
        except _Stop:
            pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the group half-stopped
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (proc.poll() is None or _group_members(proc.pid)):
            time.sleep(0.2)
        for pid in _group_members(proc.pid):  # left after the grace period: SIGKILL, as a user would
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        return 128 + received[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("ui")
def ui(port: int = typer.Option(3000, "--port")) -> None:
    """Open the Dagster UI (dagster dev) on this project's Definitions and instance."""
    from graph.settings import REPO_ROOT

    settings = get_settings()
    home = dagster_home(settings)
    console.print(f"Dagster UI on http://127.0.0.1:{port} (instance {home}); Ctrl-C stops it")
    # cwd = DAGSTER_HOME (which holds the project's dagster.yaml): from the repository root, Dagster warns
    # that the dagster.yaml there is not the instance's. PYTHONPATH finds the code from any folder.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    raise typer.Exit(run_process_group(
        [sys.executable, "-c", _DAGSTER_DEV, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", str(port)], cwd=home, env=env))

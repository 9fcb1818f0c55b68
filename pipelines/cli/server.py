"""The `perturbgraph` command line (typer)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from graph.settings import get_settings
from models.runtime import thread_env

# Before numpy / torch load (the subcommands below import them): thread counts for the cores actually
# free and sleeping, not spinning, OpenMP threads; inherited by the processes Dagster starts.
thread_env(get_settings().torch_threads)

from graph.io.options import OPTION_HELP  # noqa: E402 - after the thread policy
from pipelines.output import OutputFormat  # noqa: E402


class _Typer(typer.Typer):
    """Turns "Neo4j is not there" into one line with the way to start it, for every command."""

    def __call__(self, *args, **kwargs):
        from neo4j.exceptions import AuthError, ServiceUnavailable

        from graph.server import Neo4jServerError

        try:
            return super().__call__(*args, **kwargs)
        except (ServiceUnavailable, Neo4jServerError, AuthError) as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {neo4j_hint(exc)}", soft_wrap=True)
            sys.exit(1)


def neo4j_hint(exc: BaseException) -> str:
    s = get_settings()
    if not s.managed_neo4j:
        return f"Neo4j at {s.neo4j_uri} (NEO4J_URI) is not reachable: {type(exc).__name__}: {exc}"
    return (f"Neo4j is not running at {s.effective_neo4j_uri} (home {s.home}): start it with "
            f"`perturbgraph neo4j start` (or set NEO4J_URI to another server)")


app = _Typer(help="PerturbGraph: perturbation experiments, the LPM and discoveries in a Neo4j graph.",
             no_args_is_help=True, pretty_exceptions_enable=False)
neo4j_app = typer.Typer(help="The managed Neo4j server (ignored when NEO4J_URI is set).", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")

console = Console(stderr=True, soft_wrap=True)  # messages are never hard-wrapped (piped logs)


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


def _dagster_home(settings) -> Path:
    """DAGSTER_HOME under PERTURBGRAPH_HOME, with the project's dagster.yaml in it."""
    import os
    import shutil

    from graph.settings import REPO_ROOT

    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    if source.exists():
        shutil.copyfile(source, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@app.command("demo")
def demo(
    inputs: str = typer.Option(None, "--inputs", help="default (simulated) | shared | shared:<substr>,… | file paths "
                                                      "(a file's own options: FILE?readouts=150&context=A375, "
                                                      "docs/inputs.md); default: PERTURBGRAPH_INPUTS"),
    epochs: int = typer.Option(12, "--epochs", help="LPM training epochs (early stopping may end sooner)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="summary as table | json | tsv"),
    perturbation_type: str | None = typer.Option(None, "--perturbation-type", help=OPTION_HELP["perturbation_type"]),
    context: str | None = typer.Option(None, "--context", "--input-context", help=OPTION_HELP["context"]),
    readout_key: str | None = typer.Option(None, "--readout-key", help=OPTION_HELP["readout_key"]),
    readouts: str | None = typer.Option(None, "--readouts", help=OPTION_HELP["readouts"]),
    readout_seed: int = typer.Option(0, "--readout-seed", help=OPTION_HELP["readout_seed"]),
    duplicates: str = typer.Option("quarantine", "--duplicates", help=OPTION_HELP["duplicates"]),
) -> None:
    """The main job: start Neo4j, materialize every asset, print counts, metrics and example discoveries.
    The read options apply to every measurement file of the run (a file's own options win)."""
    import time

    from graph.db import ensure_neo4j, open_driver
    from graph.io.common import InputFileError
    from graph.io.options import ReadOptions
    from graph.server import Neo4jServerError
    from pipelines.inputs import resolve_inputs

    settings = get_settings()
    began = time.monotonic()
    selection = inputs or settings.inputs
    try:
        read_options = ReadOptions.parse({"perturbation_type": perturbation_type, "context": context,
                                          "readout_key": readout_key, "readouts": readouts,
                                          "readout_seed": readout_seed, "duplicates": duplicates})
        if selection not in ("default", "shared", "inbox") and not selection.startswith("shared:"):
            resolve_inputs(settings, selection, read_options)  # named files: checked before Neo4j starts
    except (ValueError, InputFileError) as exc:
        fail(" ".join(str(exc).split()))
    try:
        ensure_neo4j(settings, progress=lambda m: console.print(f"[dim]{m}[/]"))
    except Neo4jServerError as exc:
        fail(str(exc))
    with open_driver(settings) as driver:
        driver.verify_connectivity()
    console.print(f"[green]Neo4j ready at {settings.effective_neo4j_uri}[/]")
    _dagster_home(settings)
    from pipelines.runner import first_failure, run_everything, summary

    console.print(f"materializing every asset on inputs={selection!r}"
                  + (" (SIMULATED default dataset)" if selection == "default" else ""))
    result = run_everything(settings, inputs=selection, epochs=epochs, log_level="INFO", read_options=read_options)
    if not result.success:
        fail(f"the main job failed: {first_failure(result) or 'see the step logs above'} (the full run: "
             "`perturbgraph ui`)")
    summary(settings, result, elapsed_s=time.monotonic() - began, fmt=fmt.value)


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
    home = _dagster_home(settings)
    console.print(f"Dagster UI on http://127.0.0.1:{port} (instance {home}); Ctrl-C stops it")
    # cwd = DAGSTER_HOME (which holds the project's dagster.yaml): from the repository root, Dagster warns
    # that the dagster.yaml there is not the instance's. PYTHONPATH finds the code from any folder.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    raise typer.Exit(run_process_group(
        [sys.executable, "-c", _DAGSTER_DEV, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", str(port)], cwd=home, env=env))


def _mount_subcommands() -> None:
    from models import cli as model_cli
    from pipelines import query_cli

    app.command("train", help="Train the LPM on an ingested dataset or any file the readers accept.")(model_cli.train)
    app.command("evaluate", help="Evaluate the LPM beside every baseline on a split; JSON + markdown out.")(
        model_cli.evaluate)
    query_cli.register(app)


_mount_subcommands()


def main() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())

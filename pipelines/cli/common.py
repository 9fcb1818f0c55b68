"""What every `perturbgraph` command shares: the one typer app, the thread policy, error lines.

Importing this module sets the torch / BLAS thread policy (models/runtime.thread_env) before numpy or
torch load; every command module imports it first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from graph.settings import get_settings
from models.runtime import thread_env

# Before numpy / torch load (the commands import them): thread counts for the cores actually free and
# sleeping, not spinning, OpenMP threads; inherited by the processes Dagster starts.
thread_env(get_settings().torch_threads)


class _Typer(typer.Typer):
    """Turns "Neo4j is not there" into one line with the way to start it, for every command."""

    def __call__(self, *args, **kwargs):
        from neo4j.exceptions import AuthError, ServiceUnavailable

        from graph.db.server import Neo4jServerError

        try:
            return super().__call__(*args, **kwargs)
        except (ServiceUnavailable, Neo4jServerError, AuthError) as exc:
            typer.echo(f"error: {neo4j_hint(exc)}", err=True)
            sys.exit(1)


def neo4j_hint(exc: BaseException) -> str:
    s = get_settings()
    if not s.managed_neo4j:
        return f"Neo4j at {s.neo4j_uri} (NEO4J_URI) is not reachable: {type(exc).__name__}: {exc}"
    return (f"Neo4j is not running at {s.effective_neo4j_uri} (home {s.home}): start it with "
            f"`perturbgraph neo4j start` (or set NEO4J_URI to another server)")


app = _Typer(help="PerturbGraph: perturbation experiments, the LPM and discoveries in a Neo4j graph.",
             no_args_is_help=True, pretty_exceptions_enable=False)

console = Console(stderr=True, soft_wrap=True)  # progress and messages; never hard-wrapped (piped logs)


def fail(message: object, code: int = 1) -> None:
    """One line on stderr ("error: ..."), then exit (1 by default): never a traceback for bad input."""
    typer.echo("error: " + " ".join(str(message).split()), err=True)
    raise typer.Exit(code)


def warn(message: object) -> None:
    typer.echo("warning: " + " ".join(str(message).split()), err=True)


def read_flag(name: str, *flags: str, default: object = None, help_suffix: str = ""):
    """The one definition of a read-option flag (graph/io/options.ReadOptions field `name`), used by train,
    evaluate and demo: `--name-with-dashes` (or the given flags), its help text from OPTION_HELP."""
    from graph.io.options import OPTION_HELP

    return typer.Option(default, *(flags or (f"--{name.replace('_', '-')}",)), help=OPTION_HELP[name] + help_suffix)


def dagster_home(settings) -> Path:
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

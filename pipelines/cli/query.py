"""`perturbgraph query` / `perturbgraph cypher` / `perturbgraph queries`: the discovery query surface.

    perturbgraph queries                                   # list the named queries and their parameters
    perturbgraph query mechanism --compound imatinib       # a rich table
    perturbgraph query interactions --gene MTOR --novel-only --json
    perturbgraph cypher "MATCH (m:ModelVersion) RETURN m.version_id"         # read-only
    perturbgraph cypher "MATCH (m:ModelVersion {version_id: \\$v}) DETACH DELETE m" -p v=old --write
    perturbgraph prune-versions [--non-current] [--dry-run]  # delete refused (and old) versions' discoveries

Named queries run in read transactions. Raw Cypher without `--write` is planned by the server
first and runs only if the plan is a plain read (graph.db.cypher_guard): no write, no LOAD CSV, no
administration command, no procedure outside an allowlist; otherwise exit code 3, nothing ran.
Every query is bounded: `--timeout` seconds (default 60; the server stops it) and `--max-rows`
(default 10,000; 0 = no limit); rows are printed as they arrive. pipelines/cli/__init__.py mounts the
commands into the `perturbgraph` app with `register(app)`; `app` here is the group alone (tests).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from neo4j import Driver
from neo4j.exceptions import Neo4jError, ServiceUnavailable
from rich.console import Console
from rich.table import Table
from rich.text import Text

from graph.db import cypher_guard as CG
from graph.db import discovery_queries as DQ
from graph.settings import get_settings
from pipelines.output import OutputFormat, cell_text, stdout_console

app = typer.Typer(help="Query discoveries in the graph.", no_args_is_help=True, pretty_exceptions_enable=False)
err = Console(stderr=True)

EXIT_USAGE, EXIT_DB, EXIT_READ_ONLY, EXIT_TIMEOUT = 2, 1, 3, 4
TABLE_CHUNK = 1_000  # a table is printed every this many rows, so output starts before the query ends

TimeoutOption = Annotated[float, typer.Option(
    "--timeout", help="seconds before the server stops the query (0: the server's own limit)")]
MaxRowsOption = Annotated[int, typer.Option("--max-rows", help="stop after this many rows (0: no limit)")]


@contextlib.contextmanager
def _default_driver() -> Iterator[Driver]:
    from graph.db.connection import open_driver

    with open_driver(get_settings()) as driver:
        yield driver


# Tests (and the Dagster webserver) swap this for a factory that yields an existing driver.
driver_factory: Callable[[], contextlib.AbstractContextManager[Driver]] = _default_driver


def _fail(message: str, code: int) -> None:
    # One line, printed as text: a message may quote user input, which must not be read as markup.
    err.print("[bold red]error:[/] ", end="")
    err.print(" ".join(message.split()), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _table(columns: list[str], rows: list[dict[str, Any]], title: str | None) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell_text(row.get(c))) for c in columns))  # Text: values are not rich markup
    stdout_console().print(table)  # the terminal's width; unwrapped when piped


def _emit(stream: CG.CypherStream, fmt: str, title: str) -> None:
    """Print rows as they arrive: JSON one row per line inside one array, TSV lines, or a table per chunk."""
    as_json = fmt == "json"
    chunk: list[dict[str, Any]] = []
    first = True
    for row in stream:
        if fmt == "tsv":
            if first:
                typer.echo("\t".join(stream.columns))
            typer.echo("\t".join(cell_text(row.get(c)).replace("\t", " ").replace("\n", " ") for c in stream.columns))
        elif as_json:
            typer.echo(("[\n" if first else ",\n") + json.dumps(row, default=str), nl=False)
        else:
            chunk.append(row)
            if len(chunk) >= TABLE_CHUNK:
                _table(stream.columns, chunk, title if first else None)
                chunk = []
        first = False
    if as_json:
        typer.echo("[]" if first else "\n]")
    elif chunk:
        _table(stream.columns, chunk, title if stream.rows <= len(chunk) else None)
    if first and fmt == "table":
        err.print(f"[yellow]{title}: no rows[/]")
    if stream.truncated:
        err.print(f"[yellow]stopped at the row limit: {stream.rows:,} rows printed, more exist; "
                  "raise it with --max-rows N (0: no limit)[/]", highlight=False, soft_wrap=True)


def _run_stream(make: Callable[[Driver], CG.CypherStream], fmt: str, title: str) -> None:
    """Open the driver, print the rows, and turn every failure into one line and an exit code."""
    try:
        with driver_factory() as driver:
            _emit(make(driver), fmt, title)
    except CG.ReadOnlyError as exc:
        _fail(str(exc), EXIT_READ_ONLY)
    except CG.QueryTimeoutError as exc:
        _fail(str(exc), EXIT_TIMEOUT)
    except ServiceUnavailable as exc:
        _fail(f"Neo4j is not reachable ({exc}); start it with `perturbgraph neo4j start`", EXIT_DB)
    except Neo4jError as exc:
        _fail(CG.one_line(exc), EXIT_DB)


def parse_options(tokens: list[str], query: DQ.NamedQuery) -> dict[str, Any]:
    """`--name value`, `--name=value` and bare `--flag` (bool parameters) -> {name: text or True}."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ValueError(f"unexpected argument {tok!r}; parameters are given as --name value")
        name, eq, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        spec = query.params.get(name)
        if spec is None:
            raise ValueError(f"query {query.name!r} has no parameter --{name.replace('_', '-')}; "
                             f"it takes {', '.join('--' + p.replace('_', '-') for p in query.params) or 'none'}")
        if eq:
            out[name] = value
        elif spec.type is bool and (i + 1 >= len(tokens) or tokens[i + 1].startswith("--")):
            out[name] = True
        elif i + 1 < len(tokens):
            i += 1
            out[name] = tokens[i]
        else:
            raise ValueError(f"--{name.replace('_', '-')} needs a value")
        i += 1
    return out


@app.command("queries")
def list_queries() -> None:
    """List the named queries and their parameters."""
    table = Table(title="named queries")
    for col in ("name", "parameters", "description"):
        table.add_column(col, overflow="fold")
    for q in DQ.NAMED_QUERIES.values():
        params = " ".join(
            f"--{n.replace('_', '-')}" + ("" if p.required else f"[={p.default}]") for n, p in q.params.items())
        table.add_row(q.name, params, q.description)
    stdout_console().print(table)


@app.command("query", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def query(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="named query (see `perturbgraph queries`)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table (= --format json)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table | json | tsv"),
    database: str | None = typer.Option(None, "--database", help="Neo4j database (default: settings)"),
    timeout: TimeoutOption = CG.DEFAULT_TIMEOUT_S,
    max_rows: MaxRowsOption = CG.DEFAULT_MAX_ROWS,
) -> None:
    """Run a named, parameterised discovery query (read-only): query NAME --param value ..."""
    if name not in DQ.NAMED_QUERIES:
        _fail(f"no named query {name!r}; known: {', '.join(sorted(DQ.NAMED_QUERIES))}", EXIT_USAGE)
    spec = DQ.NAMED_QUERIES[name]
    try:
        params = spec.bind(parse_options(list(ctx.args), spec))
        CG.check_values(params, "a parameter")
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    db = database or get_settings().neo4j_database
    # A named query is the project's own read-only Cypher: no plan check, the same bounds.
    _run_stream(lambda driver: CG.CypherStream(driver, spec.cypher, params, check_plan=False, database=db,
                                               timeout_s=timeout, max_rows=max_rows),
                "json" if as_json else fmt.value, name)


def _parse_param(text: str) -> tuple[str, Any]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValueError(f"-p expects key=value, not {text!r}")
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, ValueError):  # ValueError: an integer too long for Python to parse
        parsed = value
    CG.check_values(key, "a parameter name")
    CG.check_values(parsed, f"parameter {key!r}")
    return key, parsed


@app.command("cypher")
def cypher(
    statement: str = typer.Argument(..., help="Cypher text; pass values with -p name=value and $name"),
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="name=value (value parsed as JSON when it is JSON)")] = None,
    write: bool = typer.Option(False, "--write", help="allow writes, LOAD CSV, procedures and administration "
                                                     "(otherwise only a plain read is run)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table (= --format json)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table | json | tsv"),
    database: str | None = typer.Option(None, "--database", help="Neo4j database (default: settings)"),
    timeout: TimeoutOption = CG.DEFAULT_TIMEOUT_S,
    max_rows: MaxRowsOption = CG.DEFAULT_MAX_ROWS,
) -> None:
    """Run raw Cypher. Read-only unless --write: the server plans it first and only a plain read runs."""
    try:
        CG.check_values(statement, "the statement")
        params = dict(_parse_param(p) for p in param or [])
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    db = database or get_settings().neo4j_database
    _run_stream(lambda driver: CG.CypherStream(driver, statement, params, write=write, database=db,
                                               timeout_s=timeout, max_rows=max_rows),
                "json" if as_json else fmt.value, "cypher")


@app.command("prune-versions")
def prune_versions(
    non_current: bool = typer.Option(False, "--non-current",
                                     help="also every published version that is not current (default: refused only)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be deleted, delete nothing"),
    stale_after: float | None = typer.Option(
        None, "--stale-after", min=0.001, metavar="HOURS",
        help="a version still being written or awaiting its check for longer than this is marked 'abandoned' "
             "and deleted (default: PERTURBGRAPH_MODEL_STALE_AFTER_HOURS, 24)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table | json | tsv"),
    database: str | None = typer.Option(None, "--database", help="Neo4j database (default: settings)"),
) -> None:
    """Delete model versions a blocking check refused (status 'refused') or that were abandoned (still
    being written or awaiting their check after --stale-after hours: marked 'abandoned' with the reason
    first), with their links and embeddings; --non-current also older published versions. Younger
    versions in flight, and the current one, are never deleted."""
    from graph.db.model_versions import ModelVersions

    db = database or get_settings().neo4j_database
    try:
        with driver_factory() as driver:
            rows = ModelVersions(driver, db).prune_versions(non_current=non_current, dry_run=dry_run,
                                                           stale_after_hours=stale_after)
    except ServiceUnavailable as exc:
        _fail(f"Neo4j is not reachable ({exc}); start it with `perturbgraph neo4j start`", EXIT_DB)
    except Neo4jError as exc:
        _fail(CG.one_line(exc), EXIT_DB)
    if fmt.value == "json":
        typer.echo(json.dumps(rows, default=str))
    elif not rows:
        err.print("no model version to prune")
    elif fmt.value == "tsv":
        columns = list(rows[0])
        typer.echo("\t".join(columns))
        for row in rows:
            typer.echo("\t".join(cell_text(row.get(c)).replace("\t", " ") for c in columns))
    else:
        _table(list(rows[0]), rows, "would delete (dry run)" if dry_run else "deleted")


def register(parent: typer.Typer) -> None:
    """Add `query`, `cypher`, `queries` and `prune-versions` as top-level commands of `parent`."""
    parent.command("queries")(list_queries)
    parent.command("query", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(query)
    parent.command("cypher")(cypher)
    parent.command("prune-versions")(prune_versions)

"""pipelines.cli.query: `query NAME --param value [--json]`, `cypher "..." [--write]`, `queries`."""

from __future__ import annotations

import contextlib
import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from graph.db import discovery_queries as DQ
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.graph_writer import GraphWriter
from graph.db.model_versions import ModelVersionRecord, ModelVersions
from graph.records import CompoundRecord, GeneRecord
from pipelines.cli import query as query_cli

runner = CliRunner()


@pytest.fixture
def cli_graph(empty_graph, monkeypatch):
    """The real server with one compound, two genes and one model version; the CLI uses its driver."""
    w = GraphWriter(empty_graph)
    w.write_genes([GeneRecord(2475, "MTOR", "MTOR"), GeneRecord(57521, "RPTOR", "RPTOR")], "t")
    w.write_compounds([CompoundRecord("RAPA", "sirolimus")], "t")
    links = pd.DataFrame({"compound": ["RAPA", "RAPA"], "gene": ["MTOR", "RPTOR"], "score": [0.9, 0.7],
                          "rank": [1, 2], "zscore": [5.0, 3.0], "pvalue": [0.001, 0.01], "qvalue": [0.002, 0.01],
                          "significant": [True, True]})  # named queries show significant links by default
    DiscoveryWriter(empty_graph).publish(ModelVersionRecord({"x": 1}, trained_at="2025-01-01T00:00:00",
                                                            version_id="v1"), mechanisms=links)

    @contextlib.contextmanager
    def factory():
        yield empty_graph

    monkeypatch.setattr(query_cli, "driver_factory", factory)
    return empty_graph


def test_parse_options_handles_flags_equals_and_dashes():
    q = DQ.NAMED_QUERIES["interactions"]
    assert query_cli.parse_options(["--gene", "MTOR", "--novel-only", "--limit=3"], q) == {
        "gene": "MTOR", "novel_only": True, "limit": "3"}
    assert query_cli.parse_options(["--novel-only", "false", "--gene", "X"], q) == {"novel_only": "false", "gene": "X"}
    with pytest.raises(ValueError, match="no parameter --colour"):
        query_cli.parse_options(["--colour", "red"], q)
    with pytest.raises(ValueError, match="needs a value"):
        query_cli.parse_options(["--gene"], q)
    with pytest.raises(ValueError, match="unexpected argument"):
        query_cli.parse_options(["MTOR"], q)


def test_queries_lists_every_named_query():
    result = runner.invoke(query_cli.app, ["queries"])
    assert result.exit_code == 0
    for name in DQ.NAMED_QUERIES:
        assert name in result.stdout


def test_unknown_query_and_bad_parameters_exit_2_without_a_server():
    assert runner.invoke(query_cli.app, ["query", "nope"]).exit_code == 2
    assert runner.invoke(query_cli.app, ["query", "mechanism"]).exit_code == 2  # --compound missing
    assert runner.invoke(query_cli.app, ["query", "mechanism", "--compound", "x", "--limit", "ten"]).exit_code == 2


@pytest.mark.neo4j
def test_query_prints_json_and_table(cli_graph):
    result = runner.invoke(query_cli.app, ["query", "mechanism", "--compound", "sirolimus", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["gene"], r["rank"], r["model_version"]) for r in rows] == [("MTOR", 1, "v1"), ("RPTOR", 2, "v1")]
    result = runner.invoke(query_cli.app, ["query", "mechanism", "--json", "--compound", "RAPA", "--limit", "1"])
    assert [r["gene"] for r in json.loads(result.stdout)] == ["MTOR"]
    table = runner.invoke(query_cli.app, ["query", "mimics", "--gene", "RPTOR"])
    assert table.exit_code == 0 and "sirolimus" in table.stdout and "compound" in table.stdout


@pytest.mark.neo4j
def test_cypher_is_read_only_without_write(cli_graph):
    count = ["cypher", "MATCH (g:Gene) RETURN count(g) AS n", "--json"]
    assert json.loads(runner.invoke(query_cli.app, count).stdout) == [{"n": 2}]
    refused = runner.invoke(query_cli.app, ["cypher", "CREATE (:Gene {entrez_id: 1, symbol: 'A1BG'})"])
    assert refused.exit_code == 3
    assert json.loads(runner.invoke(query_cli.app, count).stdout) == [{"n": 2}]
    deleted = runner.invoke(query_cli.app, ["cypher", "MATCH (g:Gene {symbol: $s}) DETACH DELETE g",
                                            "-p", "s=RPTOR"])
    assert deleted.exit_code == 3
    ok = runner.invoke(query_cli.app, ["cypher", "CREATE (:Gene {entrez_id: $e, symbol: $s})",
                                       "-p", "e=1", "-p", "s=A1BG", "--write"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(runner.invoke(query_cli.app, count).stdout) == [{"n": 3}]
    bad = runner.invoke(query_cli.app, ["cypher", "MATCH (n RETURN n"])
    assert bad.exit_code == 1


@pytest.mark.neo4j
def test_register_mounts_commands_on_another_app(cli_graph):
    parent = typer.Typer()

    @parent.command("other")
    def other() -> None:  # a second command so typer keeps sub-command names
        pass

    query_cli.register(parent)
    result = runner.invoke(parent, ["query", "model-versions", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["version_id"] == "v1"


@pytest.mark.neo4j
def test_a_refused_version_is_hidden_from_query_and_removed_by_prune_versions(cli_graph):
    """`query` never shows a refused version's links; `model-versions` shows it refused with the
    reason; `prune-versions --dry-run` lists it, `prune-versions` deletes it, the current one stays."""
    links = pd.DataFrame({"compound": ["RAPA"], "gene": ["RPTOR"], "score": [0.99], "rank": [1],
                          "qvalue": [0.001], "significant": [True]})
    DiscoveryWriter(cli_graph).publish(ModelVersionRecord({"x": 2}, trained_at="2025-02-01T00:00:00",
                                                          version_id="v2"), mechanisms=links, make_current=False)
    ModelVersions(cli_graph).refuse("v2", "edges score below signature correlation")

    def mechanism(*extra: str) -> list[dict]:
        result = runner.invoke(query_cli.app, ["query", "mechanism", "--compound", "RAPA", "--all", "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert {r["model_version"] for r in mechanism()} == {"v1"} and mechanism("--version", "v2") == []
    versions = {r["version_id"]: r for r in json.loads(
        runner.invoke(query_cli.app, ["query", "model-versions", "--json"]).stdout)}
    assert versions["v2"]["status"] == "refused" and versions["v2"]["refused_reason"].startswith("edges score")
    dry = runner.invoke(query_cli.app, ["prune-versions", "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    assert [r["version_id"] for r in json.loads(dry.stdout)] == ["v2"]
    assert ModelVersions(cli_graph).list_versions()[0]["version_id"] == "v2"  # nothing deleted yet
    table = runner.invoke(query_cli.app, ["prune-versions"])
    assert table.exit_code == 0 and "v2" in table.stdout and "deleted" in table.stdout
    assert [v["version_id"] for v in ModelVersions(cli_graph).list_versions()] == ["v1"]
    assert {r["model_version"] for r in mechanism()} == {"v1"}
    again = runner.invoke(query_cli.app, ["prune-versions", "--non-current"])
    assert again.exit_code == 0 and "no model version to prune" in again.stderr


# ------------------------------------------------------------------------------------------------
# Bounded queries: a timeout, a row limit, rows printed as they arrive
# ------------------------------------------------------------------------------------------------


def _error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.neo4j
def test_cartesian_product_stops_at_the_timeout(cli_graph):
    import time

    runner.invoke(query_cli.app, ["cypher", "UNWIND range(1, 1000) AS i CREATE (:Scratch {i: i})", "--write"])
    began = time.monotonic()
    result = runner.invoke(query_cli.app, [
        "cypher", "MATCH (a:Scratch), (b:Scratch), (c:Scratch) WHERE a.i + b.i + c.i < 0 RETURN count(*) AS n",
        "--timeout", "2"])
    elapsed = time.monotonic() - began
    print(f"RELIABILITY cartesian product of 1000^3 rows with --timeout 2: exit {result.exit_code} after "
          f"{elapsed:.1f} s")
    assert result.exit_code == query_cli.EXIT_TIMEOUT, result.output
    assert "2 s timeout" in _error_line(result) and "--timeout" in result.stderr
    assert elapsed < 15  # stopped by the server once, not retried


@pytest.mark.neo4j
def test_a_million_rows_stop_at_the_row_limit_and_stream(cli_graph):
    import time

    began = time.monotonic()
    result = runner.invoke(query_cli.app, ["cypher", "UNWIND range(1, 1000000) AS x RETURN x", "--json"])
    elapsed = time.monotonic() - began
    print(f"RELIABILITY UNWIND range(1, 1000000) with the default row limit: exit {result.exit_code}, "
          f"{elapsed:.1f} s")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 10_000 and rows[-1] == {"x": 10_000}
    assert "row limit" in result.stderr and "--max-rows" in result.stderr
    assert elapsed < 30
    small = runner.invoke(query_cli.app, ["cypher", "UNWIND range(1, 1000000) AS x RETURN x", "--max-rows", "3"])
    assert small.exit_code == 0 and "row limit: 3 rows" in small.stderr
    whole = runner.invoke(query_cli.app, ["cypher", "UNWIND range(1, 5) AS x RETURN x", "--json", "--max-rows", "5"])
    assert json.loads(whole.stdout) == [{"x": i} for i in range(1, 6)] and "row limit" not in whole.stderr
    named = runner.invoke(query_cli.app, ["query", "model-versions", "--json", "--max-rows", "1", "--timeout", "5"])
    assert named.exit_code == 0 and len(json.loads(named.stdout)) == 1, named.output


def test_rows_are_printed_before_the_query_ends(monkeypatch):
    """Streaming: the first rows reach stdout while the source is still producing."""
    import contextlib

    from graph.db import cypher_guard as CG

    seen_before_end: list[bool] = []
    printed: list[str] = []

    class FakeStream(CG.CypherStream):
        def _run(self):
            self.columns = ["x"]
            for i in range(3):
                self.rows += 1
                yield {"x": i}
                seen_before_end.append(bool(printed))

    monkeypatch.setattr(query_cli, "driver_factory", lambda: contextlib.nullcontext(None))
    monkeypatch.setattr(query_cli.CG, "CypherStream", FakeStream)
    monkeypatch.setattr(query_cli.typer, "echo", lambda text="", nl=True: printed.append(text))
    query_cli.cypher("RETURN 1", param=None, write=False, as_json=True, database="neo4j", timeout=5, max_rows=10)
    assert seen_before_end == [True, True, True]
    assert json.loads("".join(printed)) == [{"x": 0}, {"x": 1}, {"x": 2}]


@pytest.mark.parametrize("args, expected", [
    (["cypher", "RETURN $n", "-p", "n=123456789012345678901234567890"], "beyond 64 bits"),
    (["cypher", "RETURN $n", "-p", "n=[1, 99999999999999999999]"], "beyond 64 bits"),
    (["cypher", "RETURN $s", "-p", "s=caf\udce9"], "not valid UTF-8"),
    (["cypher", "RETURN '\udcff'"], "not valid UTF-8"),
    (["query", "mechanism", "--compound", "\udcff\udcfe"], "not valid UTF-8"),
    (["query", "mechanism", "--compound", "x", "--limit", "99999999999999999999"], "beyond 64 bits"),
])
def test_bad_arguments_are_one_line_errors_without_a_server(args, expected, monkeypatch):
    def no_server():
        raise AssertionError("the server must not be contacted")

    monkeypatch.setattr(query_cli, "driver_factory", no_server)
    result = runner.invoke(query_cli.app, args)
    assert result.exit_code == query_cli.EXIT_USAGE, result.output
    assert expected in _error_line(result)


def test_a_memory_limit_failure_is_reported_once_not_retried(monkeypatch):
    """The server marks a memory-limit failure as transient, so the driver's managed transactions
    retried it (4 attempts, 56 s, in the issue's probe). Queries here run in explicit transactions:
    one attempt, one line."""
    import contextlib

    from neo4j.exceptions import Neo4jError

    attempts = []

    class Tx:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def run(self, text, params):
            attempts.append(text)
            raise Neo4jError._hydrate_neo4j(code="Neo.TransientError.General.MemoryPoolOutOfMemoryError",
                                            message="The allocation of an extra 2.0 MiB would use more than the "
                                                    "limit 10.0 MiB.\nSecond line of detail")

    class Session(Tx):
        def begin_transaction(self, timeout=None):
            return Tx()

    class Driver:
        def session(self, **kwargs):
            return Session()

    monkeypatch.setattr(query_cli, "driver_factory", lambda: contextlib.nullcontext(Driver()))
    result = runner.invoke(query_cli.app, ["query", "model-versions"])
    assert result.exit_code == query_cli.EXIT_DB and len(attempts) == 1
    assert "MemoryPoolOutOfMemoryError: The allocation" in _error_line(result)

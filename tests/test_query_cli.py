"""pipelines.query_cli: `query NAME --param value [--json]`, `cypher "..." [--write]`, `queries`."""

from __future__ import annotations

import contextlib
import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from graph import discovery_queries as DQ
from graph import discovery_writer as W
from graph import writer as GW
from graph.records import CompoundRecord, GeneRecord
from pipelines import query_cli

runner = CliRunner()


@pytest.fixture
def cli_graph(empty_graph, monkeypatch):
    """The real server with one compound, two genes and one model version; the CLI uses its driver."""
    GW.write_genes(empty_graph, [GeneRecord(2475, "MTOR", "MTOR"), GeneRecord(57521, "RPTOR", "RPTOR")], "t")
    GW.write_compounds(empty_graph, [CompoundRecord("RAPA", "sirolimus")], "t")
    links = pd.DataFrame({"compound": ["RAPA", "RAPA"], "gene": ["MTOR", "RPTOR"], "score": [0.9, 0.7],
                          "rank": [1, 2], "zscore": [5.0, 3.0], "pvalue": [0.001, 0.01], "qvalue": [0.002, 0.01]})
    W.publish_discoveries(empty_graph, W.ModelVersionRecord({"x": 1}, trained_at="2025-01-01T00:00:00",
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

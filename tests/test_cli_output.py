"""Tables on stdout (pipelines/output.py, the query CLI's streaming printer): piped output is never
hard-wrapped, and --format json / tsv give machine-readable output. No Neo4j needed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.output import OutputFormat, OutTable, emit, stdout_console

LONG = "MATCH (c:Compound)-[m:SHARES_MECHANISM_WITH {modelVersion: $v}]->(g:Gene) RETURN c.name, g.symbol, m.score"


def _tables() -> list[OutTable]:
    return [OutTable("metrics", "Held-out experiments (unseen-experiment, target A549) — SIMULATED data",
                     ("model", "rmse", "pearson", "pearson_per_signature", "top50_up", "note"),
                     (("lpm", 0.412, 0.871, 0.803, 0.55, LONG), ("context_mean", 0.61, 0.702, 0.512, 0.31, "")),
                     ("rmse", "pearson")),
            OutTable("nodes", "Graph", ("nodes", "n"), (("Gene", 400), ("Compound", 57)), ("n",))]


def _piped() -> tuple[io.StringIO, object]:
    buf = io.StringIO()  # not a TTY, as a pipe or a file is
    return buf, stdout_console(buf)


def test_piped_tables_are_not_wrapped():
    buf, console = _piped()
    emit(_tables(), OutputFormat.table, console=console, text="Cypher:\n  " + LONG)
    lines = buf.getvalue().splitlines()
    row = [ln for ln in lines if "lpm " in ln or "│ lpm" in ln]
    assert len(row) == 1 and LONG in row[0], lines  # the whole row, Cypher included, on one line
    assert any(ln.strip() == LONG for ln in lines)  # free text is not wrapped either
    assert max(len(ln) for ln in lines) > 120  # wider than rich's 80-column default for a pipe
    assert "\x1b[" not in buf.getvalue()  # no colour codes in a pipe


def test_json_and_tsv_formats():
    buf, console = _piped()
    emit(_tables(), "json", console=console, extra={"elapsed_s": 12.5})
    data = json.loads(buf.getvalue())
    assert data["metrics"][0] == {"model": "lpm", "rmse": 0.412, "pearson": 0.871, "pearson_per_signature": 0.803,
                                  "top50_up": 0.55, "note": LONG}
    assert data["nodes"] == [{"nodes": "Gene", "n": 400}, {"nodes": "Compound", "n": 57}]
    assert data["elapsed_s"] == 12.5
    buf, console = _piped()
    emit(_tables(), "tsv", console=console)
    blocks = buf.getvalue().split("\n\n")
    assert len(blocks) == 2
    header, *rows = [ln for ln in blocks[0].splitlines() if not ln.startswith("#")]
    assert header.split("\t") == ["model", "rmse", "pearson", "pearson_per_signature", "top50_up", "note"]
    assert rows[0].split("\t") == ["lpm", "0.412", "0.871", "0.803", "0.55", LONG]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        emit(_tables(), "xml", console=_piped()[1])


class _Stream:
    """What query_cli._emit iterates: rows with columns, like graph.db.cypher_guard.CypherStream."""

    def __init__(self, rows):
        self.columns, self._rows, self.rows, self.truncated = list(rows[0]), rows, 0, False

    def __iter__(self):
        for row in self._rows:
            self.rows += 1
            yield row


@pytest.mark.parametrize("fmt", ["table", "tsv", "json"])
def test_query_cli_rows_are_not_wrapped_when_piped(fmt, capsys):
    from pipelines.cli import query as query_cli

    rows = [{"compound": "vorinostat", "gene": "HDAC1", "cypher": LONG, "score": 0.98765}]
    query_cli._emit(_Stream(rows), fmt, "mechanism")
    out = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(out) == rows
    else:
        line = next(ln for ln in out.splitlines() if "vorinostat" in ln)
        assert LONG in line
        if fmt == "tsv":
            assert out.splitlines()[0].split("\t") == ["compound", "gene", "cypher", "score"]


def test_commands_that_need_neo4j_say_how_to_start_it_in_one_line(tmp_path):
    """A home whose Neo4j was never started: one line naming `perturbgraph neo4j start`, no traceback."""
    env = dict(os.environ, PERTURBGRAPH_HOME=str(tmp_path / "never-started"), PERTURBGRAPH_NEO4J_BOLT_PORT="1")
    env.pop("NEO4J_URI", None)
    exe = str(Path(sys.executable).parent / "perturbgraph")
    for args in (["cypher", "MATCH (n) RETURN count(n)"], ["query", "mechanism", "--compound", "vorinostat"],
                 ["query", "model-versions", "--format", "tsv"]):
        out = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 1, (args, out.stderr)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "perturbgraph neo4j start" in lines[0], (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_evaluate_prints_results_on_stdout_in_each_format(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ci, pi, ri = (a.ravel() for a in np.meshgrid(np.arange(4), np.arange(30), np.arange(40), indexing="ij"))
    path = tmp_path / "long.tsv"
    pd.DataFrame({"context": [f"CL{c}" for c in ci], "perturbation": [f"P{p}" for p in pi],
                  "perturbation_type": "shRNA", "readout": [f"G{r}" for r in ri],
                  "value": rng.normal(size=ci.size)}).to_csv(path, sep="\t", index=False)
    env = dict(os.environ, PERTURBGRAPH_HOME=str(tmp_path / "home"), PERTURBGRAPH_SHARED_DATA=str(tmp_path / "none"))
    env.pop("NEO4J_URI", None)
    base = [str(Path(sys.executable).parent / "perturbgraph"), "evaluate", "--input", str(path), "--split",
            "unseen-experiment", "--target-context", "CL0", "--models", "context_mean,linear", "--seeds", "0"]
    outs = {}
    for fmt in ("table", "json", "tsv"):
        run = subprocess.run(base + ["--format", fmt, "--out", str(tmp_path / fmt)], env=env, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        outs[fmt] = run.stdout
    table = [ln for ln in outs["table"].splitlines() if ln.startswith("| ")]
    assert len(table) == 3 and all(ln.endswith("|") for ln in table)  # header + 2 models, one line each
    assert {r["model"] for r in json.loads(outs["json"])} == {"context_mean", "linear"}
    header, *rows = outs["tsv"].splitlines()
    assert header.split("\t")[0] == "model" and "pearson_per_signature" in header.split("\t")
    assert sorted(r.split("\t")[0] for r in rows) == ["context_mean", "linear"]

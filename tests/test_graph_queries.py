"""graph.db.queries: every label/type is allowlisted, values travel only as parameters.

The recording fake driver below stands in for Neo4j only to see which query text and which
parameters the writer builds; graph behaviour is tested against the real server in
test_graph_writer.py.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.db import queries as Q
from graph.db.graph_writer import GraphWriter
from graph.db.schema import NODE_LABELS, REL_TYPES, SchemaError
from graph.records import CompoundRecord, ContextRecord, GeneRecord, PerturbationRecord

LABEL_RE = re.compile(r"\(\w*:(\w+)")
REL_RE = re.compile(r"\[\w*:(\w+)")


def test_registry_holds_named_string_queries():
    assert "MERGE_GENES" in Q.QUERIES and "EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT" in Q.QUERIES
    assert all(isinstance(q, str) and q.strip() for q in Q.QUERIES.values())


@pytest.mark.parametrize("name", sorted(Q.QUERIES))
def test_labels_and_types_in_queries_are_allowlisted(name):
    text = Q.QUERIES[name]
    assert set(LABEL_RE.findall(text)) <= NODE_LABELS, name
    assert set(REL_RE.findall(text)) <= REL_TYPES, name


def test_writes_are_unwind_batches():
    for name, text in Q.QUERIES.items():
        if name.startswith(("MERGE_", "CREATE_")) and name != "MERGE_DATASET":
            assert text.lstrip().startswith("UNWIND $rows AS row"), name
            assert "RETURN count(*) AS written" in text, name


def test_count_queries_only_template_allowlisted_names():
    assert Q.count_nodes_query("Gene") == "MATCH (n:Gene) RETURN count(n) AS n"
    assert Q.count_relationships_query("TARGETS") == "MATCH ()-[r:TARGETS]->() RETURN count(r) AS n"
    with pytest.raises(SchemaError):
        Q.count_nodes_query("Gene) DETACH DELETE n //")
    with pytest.raises(SchemaError):
        Q.count_relationships_query("X]->() DELETE r //")


class RecordingDriver:
    """Captures (query, params) of managed write transactions; answers 'all rows written'."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def session(self, database=None):
        driver = self

        class _Session:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute_write(self, work):
                return work(_Tx())

        class _Tx:
            def run(self, query, **params):
                driver.calls.append((query, params))
                counters = SimpleNamespace(nodes_created=0, relationships_created=0, properties_set=0)
                rows = params.get("rows", [])
                return SimpleNamespace(
                    single=lambda: {"written": len(rows)},
                    consume=lambda: SimpleNamespace(counters=counters),
                )

        return _Session()


NASTY = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from([
        "it's", 'say "hi"', "`Gene`", "{name: 'x'}", "x'}) DETACH DELETE n //", "$rows", "\\u0027",
        "MATCH (n) DETACH DELETE n", "a\nb", "名前", "}]->(", "//", "/* c */",
    ]),
)


@settings(max_examples=60, deadline=None)
@given(name=NASTY)
def test_names_reach_cypher_only_as_parameters(name):
    drv = RecordingDriver()
    w = GraphWriter(drv)
    w.write_compounds([CompoundRecord(compound_id=f"name:{name}", name=name, aliases=(name,))], "ds")
    w.write_contexts([ContextRecord(context_id=name, name=name)], "ds")
    w.write_genes([GeneRecord(entrez_id=1, symbol=name, name=name, aliases=(name,))], "ds")
    w.write_perturbations([PerturbationRecord(perturbation_id=f"x:{name}", name=name, perturbation_type="control")], "ds")
    static = set(Q.QUERIES.values())
    assert len(drv.calls) == 4
    for query, params in drv.calls:
        assert query in static  # the text is a fixed named query, never built from data
        (row,) = params["rows"]
        assert name in row.values() or f"name:{name}" in row.values() or row.get("symbol") == name
        assert params["dataset_id"] == "ds"
    compound_row = drv.calls[0][1]["rows"][0]
    assert compound_row["name"] == name and compound_row["aliases"] == [name]
    assert drv.calls[2][1]["rows"][0]["symbol"] == name


def test_batches_split_rows():
    drv = RecordingDriver()
    genes = [GeneRecord(entrez_id=i, symbol=f"G{i}") for i in range(25)]
    stats = GraphWriter(drv, batch_size=10).write_genes(genes, "ds")
    assert [len(p["rows"]) for _, p in drv.calls] == [10, 10, 5]
    assert stats.rows == stats.written == 25 and stats.batches == 3

"""graph.db.discovery_queries: allowlist and parameter discipline (no server), and every named query
on a tiny planted graph in the real Neo4j."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph.db import cypher_guard as CG
from graph.db import discovery_queries as DQ
from graph.db import discovery_reads as DR
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.graph_writer import GraphWriter
from graph.db.model_versions import ModelVersionRecord, ModelVersions
from graph.db.schema import NODE_LABELS, REL_TYPES
from graph.records import CompoundRecord, ContextRecord, GeneRecord, PerturbationRecord, PriorEdgeRecord

# ---------------------------------------------------------------------------------------------
# Without a server
# ---------------------------------------------------------------------------------------------

_LABEL = re.compile(r"\(\s*\w*\s*:\s*`?([A-Za-z_][A-Za-z0-9_]*)")
_REL = re.compile(r"\[\s*\w*\s*:\s*`?([A-Za-z_][A-Za-z0-9_]*)")
_DDL_LABEL = re.compile(r"FOR \((?:n|m):(\w+)\)")


def test_every_label_and_relationship_type_is_allowlisted():
    labels, rels = set(), set()
    for text in DQ.QUERIES.values():
        labels |= set(_LABEL.findall(text)) | set(_DDL_LABEL.findall(text))
        rels |= set(_REL.findall(text))
    assert labels and rels
    assert labels <= NODE_LABELS, labels - NODE_LABELS
    assert rels <= REL_TYPES, rels - REL_TYPES
    assert {"ModelVersion", "Compound", "Gene", "CellLine", "Perturbation"} <= labels
    assert {"SHARES_MECHANISM_WITH", "PREDICTED_INTERACTION", "PREDICTED_EFFECT", "TARGETS"} <= rels


def test_vector_index_names_used_by_queries_exist():
    names = {t.index_name for t in DQ.EMBEDDING_TARGETS.values()}
    used = set(re.findall(r"'(\w+_vidx)'", "\n".join(DQ.QUERIES.values())))
    assert used and used <= names
    assert "$dim" in DQ.VECTOR_INDEX_DDL["compound"] and "cosine" in DQ.VECTOR_INDEX_DDL["compound"]


def test_named_queries_declare_every_parameter_they_use():
    for q in DQ.NAMED_QUERIES.values():
        used = set(re.findall(r"\$(\w+)", q.cypher))
        assert used == set(q.params), (q.name, used ^ set(q.params))
        # values only via parameters: no string literal compares to a property except fixed vocabulary
        # (the escaping of the alias lookup's Lucene phrase is the one expression with other literals)
        assert "'" not in re.sub(r"'(\w+_vidx|\w+_ftidx|readout|added|removed|prior|novel|complete|"
                                 r"SHARES_MECHANISM_WITH|PREDICTED_INTERACTION|PREDICTED_EFFECT)'", "",
                                 q.cypher.replace(DQ.ALIAS_PHRASE, ""))


def test_bind_converts_types_fills_defaults_and_rejects_unknowns():
    q = DQ.NAMED_QUERIES["interactions"]
    assert q.bind({"gene": "MTOR", "limit": "5", "novel_only": "yes"}) == {
        "gene": "MTOR", "version": None, "limit": 5, "novel_only": True}
    with pytest.raises(ValueError, match="needs --gene"):
        q.bind({})
    with pytest.raises(ValueError, match="no parameter"):
        q.bind({"gene": "X", "bogus": 1})
    with pytest.raises(ValueError, match="int"):
        q.bind({"gene": "X", "limit": "ten"})
    with pytest.raises(ValueError, match="one of"):
        DQ.NAMED_QUERIES["similar-genes"].bind({"gene": "X", "space": "context"})


@given(st.text(max_size=40))
def test_bound_values_are_never_spliced_into_the_query(value):
    q = DQ.NAMED_QUERIES["mechanism"]
    bound = q.bind({"compound": value})
    assert bound["compound"] == value
    assert q.cypher == DQ.MECHANISM_OF_COMPOUND  # the text is a constant, whatever the value


# ---------------------------------------------------------------------------------------------
# Against the real server
# ---------------------------------------------------------------------------------------------

SYMS = {"MTOR": 2475, "RPTOR": 57521, "BRAF": 673, "MAP2K1": 5604, "EGFR": 1956}
V1, V2 = "v1-test", "v2-test"
ODD_ALIAS = 'AY-22989 "x\\" (1:2)*?'  # Lucene syntax characters, a quote and a backslash


def _emb(rows: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(rows).T.rename(columns=lambda i: f"e{i}")


def build(driver) -> None:
    w = GraphWriter(driver)
    w.ensure_schema()
    w.write_genes([GeneRecord(e, s, s) for s, e in SYMS.items()], "t")
    comps = [CompoundRecord("RAPA", "sirolimus", aliases=("rapamycin", ODD_ALIAS), targets=("MTOR",)),
             CompoundRecord("EVER", "everolimus", targets=("MTOR",)),
             CompoundRecord("VEMU", "vemurafenib", targets=("BRAF",))]
    w.write_compounds(comps, "t")
    w.write_compound_targets(comps, "t")
    w.write_contexts([ContextRecord("A375", "A-375"), ContextRecord("K562", "K-562"),
                               ContextRecord("HELA", "HeLa")], "t")
    w.write_perturbations([PerturbationRecord("compound:RAPA@1uM", "sirolimus", "compound",
                                                       compound_id="RAPA", dose_value=1.0, dose_unit="uM")], "t")
    w.write_prior_edges([PriorEdgeRecord("MTOR", "RPTOR", "STRING", 0.9)], "t")
    mech = pd.DataFrame({"compound": ["RAPA", "RAPA", "EVER", "VEMU"], "gene": ["MTOR", "EGFR", "MTOR", "BRAF"],
                         "score": [0.95, 0.4, 0.9, 0.8], "rank": [1, 2, 1, 1], "zscore": [6.0, 1.0, 5.0, 4.0],
                         "pvalue": [0.001, 0.3, 0.002, 0.004], "qvalue": [0.01, 0.5, 0.01, 0.02],
                         "significant": [True, False, True, True], "method": "lpm_embeddings"})
    inter = pd.DataFrame({"source": ["MTOR", "RPTOR", "MTOR", "BRAF"], "target": ["RPTOR", "MTOR", "EGFR", "MAP2K1"],
                          "score": [0.9, 0.9, 0.5, 0.7], "rank": [1, 1, 2, 1], "method": "signature_correlation"})
    effects = pd.DataFrame({"perturbation": ["compound:RAPA@1uM"] * 3, "context": ["A375"] * 3,
                            "readout": ["EGFR", "BRAF", "MAP2K1"], "value": [2.0, 1.0, -3.0],
                            "direction": ["up", "up", "down"], "rank": [1, 2, 1]})
    emb = {"compound": _emb({"RAPA": [1, 0, 0], "EVER": [0.9, 0.1, 0], "VEMU": [0, 1, 0]}),
           "gene_perturbation": _emb({"MTOR": [1, 0, 0], "RPTOR": [0.95, 0.05, 0], "BRAF": [0, 1, 0],
                                      "MAP2K1": [0, 0.9, 0.1], "EGFR": [0, 0, 1]}),
           "readout": _emb({"MTOR": [0, 0, 1], "EGFR": [0, 0.1, 1], "BRAF": [1, 0, 0]}),
           "context": _emb({"A375": [1, 0], "K562": [0, 1], "HELA": [0.9, 0.2]})}
    dw = DiscoveryWriter(driver)
    dw.publish(ModelVersionRecord({"v": 1}, trained_at="2025-01-01T00:00:00", version_id=V1), mechanisms=mech, interactions=inter, effects=effects, embeddings=emb)
    # v2: RAPA loses EGFR and gains RPTOR; MTOR-EGFR interaction dropped
    mech2 = mech.copy()
    mech2.loc[1, "gene"] = "RPTOR"
    dw.publish(ModelVersionRecord({"v": 2}, trained_at="2025-02-01T00:00:00", version_id=V2), mechanisms=mech2, interactions=inter.iloc[[0, 1, 3]], effects=effects, embeddings=emb, quality=QUALITY)


QUALITY = {"edges": {"method": "signature_correlation", "metric": "AUPRC outside the prior", "score": 0.2,
                     "baseline_score": 0.2, "reason": "signature correlation scores best"},
           "mechanisms": {"method": "lpm_embeddings", "metric": "AUROC of annotated targets", "score": 0.8,
                          "baseline_score": 0.6, "fdr": 0.1, "significant": 3}}


def q(driver, name, **params):
    return DR.run_named_query(driver, name, params)


@pytest.mark.neo4j
def test_named_queries_return_planted_content(empty_graph):
    build(empty_graph)
    d = empty_graph
    # mechanism: by id, exact name, alias, case-insensitive name; defaults to the current version
    for key in ("RAPA", "sirolimus", "rapamycin", "SIROLIMUS", ODD_ALIAS):
        rows = q(d, "mechanism", compound=key)  # significant links only by default
        assert {r["method"] for r in rows} == {"lpm_embeddings"}  # the source the version published
        assert [(r["gene"], r["rank"], r["annotated_target"], r["significant"]) for r in rows] == [
            ("MTOR", 1, True, True)]
        assert {r["model_version"] for r in rows} == {V2}
        rows = q(d, "mechanism", compound=key, all=True)  # --all: every stored link, flagged
        assert [(r["gene"], r["rank"], r["significant"]) for r in rows] == [("MTOR", 1, True), ("RPTOR", 2, False)]
        assert rows[1]["qvalue"] == 0.5
    assert [r["gene"] for r in q(d, "mechanism", compound="RAPA", version=V1)] == ["MTOR"]
    assert [r["gene"] for r in q(d, "mechanism", compound="RAPA", version=V1, all=True)] == ["MTOR", "EGFR"]
    assert q(d, "mechanism", compound="RAPA", limit=1)[0]["gene"] == "MTOR"
    assert q(d, "mechanism", compound="unknown drug") == []
    assert q(d, "mechanism", compound="") == [] and q(d, "mechanism", compound='"') == []
    assert q(d, "mechanism", compound="AY-22989") == []  # an alias matches whole, never a part of one
    assert q(d, "mechanism", compound="RAPA", version="no-such-version") == []

    mim = q(d, "mimics", gene="MTOR")
    assert [r["compound"] for r in mim] == ["sirolimus", "everolimus"]
    assert [r["compound"] for r in q(d, "mimics", gene="2475")] == ["sirolimus", "everolimus"]  # Entrez id
    assert [r["compound"] for r in q(d, "mimics", gene="mtor")] == ["sirolimus", "everolimus"]  # any case
    assert q(d, "mimics", gene="RPTOR") == [] and [r["compound"] for r in q(d, "mimics", gene="RPTOR", all=True)] == [
        "sirolimus"]

    inter = q(d, "interactions", gene="MTOR", version=V1)
    assert [(r["partner"], r["evidence"], r["mutual"]) for r in inter] == [("RPTOR", "prior", True),
                                                                           ("EGFR", "novel", False)]
    assert inter[0]["prior_sources"] == ["STRING"] and inter[0]["method"] == "signature_correlation"
    assert [r["partner"] for r in q(d, "interactions", gene="MTOR", version=V1, novel_only=True)] == ["EGFR"]
    assert [r["partner"] for r in q(d, "interactions", gene="MTOR")] == ["RPTOR"]  # current: EGFR edge gone

    resp = q(d, "response", compound="rapamycin", context="A-375")  # context by name
    assert [(r["direction"], r["rank"], r["gene"]) for r in resp] == [("up", 1, "EGFR"), ("up", 2, "BRAF"),
                                                                      ("down", 1, "MAP2K1")]
    assert resp[0]["value"] == 2.0 and resp[0]["dose_value"] == 1.0
    assert q(d, "response", compound="RAPA", context="K562") == []

    # vector indexes are eventually consistent: give the last publish a moment to become visible
    deadline = time.monotonic() + 10
    while (time.monotonic() < deadline
           and [r["gene"] for r in q(d, "similar-genes", gene="MTOR", k=1)] != ["RPTOR"]):
        time.sleep(0.2)
    sim = q(d, "similar-compounds", compound="sirolimus", k=2)
    assert [r["compound"] for r in sim] == ["everolimus", "vemurafenib"]
    assert sim[0]["score"] > sim[1]["score"] and sim[0]["model_version"] == V2
    assert [r["gene"] for r in q(d, "similar-genes", gene="MTOR", k=1)] == ["RPTOR"]
    assert [r["gene"] for r in q(d, "similar-genes", gene="MTOR", k=1, space="readout")] == ["EGFR"]
    assert [r["context_id"] for r in q(d, "similar-contexts", context="A375", k=1)] == ["HELA"]


@pytest.mark.neo4j
def test_version_queries_report_what_changed(empty_graph):
    build(empty_graph)
    d = empty_graph
    versions = q(d, "model-versions")
    assert [(v["version_id"], v["current"]) for v in versions] == [(V2, True), (V1, False)]
    assert versions[0]["mechanism_links"] == 4 and versions[1]["interaction_links"] == 4
    # the quality record: per discovery type, the source, its score and the simple answer's
    assert (versions[0]["edge_method"], versions[0]["edge_score"], versions[0]["edge_correlation_score"]) == (
        "signature_correlation", 0.2, 0.2)
    assert (versions[0]["mechanism_method"], versions[0]["mechanism_score"],
            versions[0]["mechanism_baseline_score"], versions[0]["mechanism_fdr"]) == ("lpm_embeddings", 0.8, 0.6, 0.1)
    assert versions[0]["significant_mechanism_links"] == 3
    assert versions[1]["edge_method"] is None  # a version published without a quality record says nothing

    summary = {r["relationship"]: r for r in q(d, "version-summary")}
    assert summary["SHARES_MECHANISM_WITH"]["previous_version"] == V1
    assert (summary["SHARES_MECHANISM_WITH"]["added"], summary["SHARES_MECHANISM_WITH"]["removed"],
            summary["SHARES_MECHANISM_WITH"]["kept"]) == (1, 1, 3)
    assert (summary["PREDICTED_INTERACTION"]["added"], summary["PREDICTED_INTERACTION"]["removed"]) == (0, 1)
    assert (summary["PREDICTED_EFFECT"]["added"], summary["PREDICTED_EFFECT"]["kept"]) == (0, 3)

    changes = {(r["change"], r["relationship"], r["source"], r["target"]) for r in q(d, "version-changes")}
    assert changes == {("added", "SHARES_MECHANISM_WITH", "sirolimus", "RPTOR"),
                       ("removed", "SHARES_MECHANISM_WITH", "sirolimus", "EGFR"),
                       ("removed", "PREDICTED_INTERACTION", "MTOR", "EGFR")}
    # the first version has no predecessor: everything it has is 'added'
    first = q(d, "version-summary", version=V1)
    assert {r["previous_version"] for r in first} == {None}
    assert {r["relationship"]: r["added"] for r in first}["SHARES_MECHANISM_WITH"] == 4

    # summaries are stored at publish time; a graph written before that gets them by backfill
    stored = sorted(map(str, q(d, "version-summary")))
    d.execute_query("MATCH (m:ModelVersion) REMOVE m.summary_relationships, m.mechanism_links")
    assert q(d, "version-summary") == [] and q(d, "model-versions")[0]["mechanism_links"] is None
    assert sorted(ModelVersions(d).backfill_summaries()) == [V1, V2]
    assert sorted(map(str, q(d, "version-summary"))) == stored
    assert q(d, "model-versions")[0]["mechanism_links"] == 4


@pytest.mark.neo4j
def test_named_queries_run_in_read_transactions(empty_graph):
    """A named query is executed with read access: the same text as a write would be refused."""
    with pytest.raises(CG.ReadOnlyError):
        CG.run_cypher(empty_graph, "CREATE (:ModelVersion {version_id: 'x'})")
    with pytest.raises(KeyError):
        DR.run_named_query(empty_graph, "drop-everything")


def test_docs_show_every_named_query_as_it_runs():
    """docs/queries.md pastes each named query's Cypher; it must be the text that actually runs."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "queries.md").read_text()
    for q in DQ.NAMED_QUERIES.values():
        assert f"### `{q.name}`" in docs, q.name
        assert q.cypher.strip("\n") in docs, f"docs/queries.md shows an outdated `{q.name}` query"


def test_all_flag_reaches_the_mechanism_queries_from_the_command_line():
    """`perturbgraph query mechanism --compound X --all`: the bare flag binds $all (default false =
    significant links only), for `mechanism` and `mimics` alike."""
    from pipelines.cli.query import parse_options

    for name, key in (("mechanism", "compound"), ("mimics", "gene")):
        q = DQ.NAMED_QUERIES[name]
        assert q.bind(parse_options([f"--{key}", "X", "--all"], q))["all"] is True
        assert q.bind(parse_options([f"--{key}", "X"], q))["all"] is False
        assert "Significant links only" in q.description and "--all" in q.description

"""graph.db.graph_writer against the real Neo4j server: constraints, idempotent re-runs, additive datasets,
crash + re-run, quarantine of unresolvable symbols, names stored verbatim."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.db import checks
from graph.db.graph_writer import DatasetConflict, GraphWriter
from graph.db.queries import EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT
from graph.records import (
    ComplexRecord,
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    PriorEdgeRecord,
    SignatureRecord,
)

pytestmark = pytest.mark.neo4j

DS = DatasetRecord(
    dataset_id="tiny_l1000", name="tiny L1000", source="test", version="1", path="/x/tiny.gctx",
    sha256="a" * 64, licence="CC0", kind="gctx", value_kind="zscore",
)
GENES = [
    GeneRecord(1017, "CDK2", "cyclin dependent kinase 2", aliases=("CDKN2",)),
    GeneRecord(1019, "CDK4", "cyclin dependent kinase 4", aliases=("PSK-J3",)),
    GeneRecord(2475, "MTOR", "mechanistic target of rapamycin kinase", aliases=("FRAP", "FRAP1")),
    GeneRecord(673, "BRAF", "B-Raf proto-oncogene", aliases=("BRAF1",)),
]
COMPOUNDS = [
    CompoundRecord("KEY-VEM", "vemurafenib", targets=("BRAF", "NOTAGENE"), moa=("BRAF inhibitor",)),
    CompoundRecord("KEY-SIR", "sirolimus", targets=("FRAP1",), aliases=("rapamycin",)),
]
CONTEXTS = [ContextRecord("A375", "A375"), ContextRecord("MCF7", "MCF-7")]
PERTS = [
    PerturbationRecord("compound:KEY-VEM@10uM", "vemurafenib", "compound", compound_id="KEY-VEM",
                       dose_value=10.0, dose_unit="uM", time_value=24.0, time_unit="h"),
    PerturbationRecord("compound:KEY-SIR@1uM", "sirolimus", "compound", compound_id="KEY-SIR", dose_value=1.0,
                       dose_unit="uM"),
    PerturbationRecord("CRISPRi:MTOR", "MTOR", "CRISPRi", target_symbols=("MTOR",)),
    PerturbationRecord("control:DMSO", "DMSO", "control"),
]
SIGS = [
    SignatureRecord("tiny_l1000:s1", "tiny_l1000", "A375", "compound:KEY-VEM@10uM", 978),
    SignatureRecord("tiny_l1000:s2", "tiny_l1000", "MCF7", "compound:KEY-VEM@10uM", 978),
    SignatureRecord("tiny_l1000:s3", "tiny_l1000", "A375", "compound:KEY-SIR@1uM", 978),
    SignatureRecord("tiny_l1000:s4", "tiny_l1000", "A375", "CRISPRi:MTOR", 978),
    SignatureRecord("tiny_l1000:s5", "tiny_l1000", "A375", "control:DMSO", 978),
]
PRIOR = [
    PriorEdgeRecord("CDK2", "CDK4", "STRING", 0.9),
    PriorEdgeRecord("CDK4", "CDK2", "STRING", 0.95),  # same undirected edge, higher score wins
    PriorEdgeRecord("MTOR", "BRAF", "DoRothEA", 1.0, directed=True, sign=-1, evidence="A"),
    PriorEdgeRecord("MTOR", "XYZ1", "STRING", 0.5),
]
COMPLEXES = [ComplexRecord("corum:1", "CDK2-CDK4 toy complex", ("CDK2", "CDK4", "NOPE"))]


def ingest(driver, signatures=SIGS, batch_size=2):
    """The order the Dagster assets use; returns all quarantined records."""
    w = GraphWriter(driver, batch_size=batch_size)
    w.ensure_schema()
    w.write_dataset(DS)
    q = []
    w.write_genes(GENES, DS.dataset_id)
    w.write_compounds(COMPOUNDS, DS.dataset_id)
    w.write_contexts(CONTEXTS, DS.dataset_id)
    q += w.write_perturbations(PERTS, DS.dataset_id).quarantined
    q += w.write_signatures(signatures).quarantined
    q += w.write_compound_targets(COMPOUNDS, DS.dataset_id, source="test").quarantined
    q += w.write_prior_edges(PRIOR, DS.dataset_id).quarantined
    q += w.write_complexes(COMPLEXES, DS.dataset_id).quarantined
    w.mark_dataset_complete(DS.dataset_id, n_quarantined=len(q))
    return q


def snapshot(driver):
    recs, _, _ = driver.execute_query(
        "MATCH (n) OPTIONAL MATCH (n)-[r]->(m) "
        "RETURN labels(n) AS l, properties(n) AS p, type(r) AS t, properties(r) AS rp, properties(m) AS mp"
    )
    return sorted(repr(sorted(r.items(), key=lambda kv: kv[0])) for r in (dict(x) for x in recs))


def test_schema_constraints_created_and_checked(empty_graph):
    assert len(checks.check_constraints(empty_graph)) > 0
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.ensure_schema()  # idempotent
    assert checks.check_constraints(empty_graph) == []


def test_case_folded_lookup_keys_are_written_and_backfilled(empty_graph):
    """symbol_upper / name_lower (the indexed case-insensitive lookup keys) are set on write, and
    ensure_schema fills them in on a graph written before they existed."""
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_genes([GeneRecord(1017, "Cdk2", "x")], "t")
    w.write_compounds([CompoundRecord("C1", "Sirolimus")], "t")

    def keys():
        return empty_graph.execute_query(
            "MATCH (g:Gene), (c:Compound) RETURN g.symbol_upper AS g, c.name_lower AS c").records[0].data()

    assert keys() == {"g": "CDK2", "c": "sirolimus"}
    empty_graph.execute_query("MATCH (n) WHERE n:Gene OR n:Compound REMOVE n.symbol_upper, n.name_lower")
    assert keys() == {"g": None, "c": None}
    w.ensure_schema()
    assert keys() == {"g": "CDK2", "c": "sirolimus"}


def test_full_ingest_counts_quarantine_and_integrity(empty_graph):
    quarantined = ingest(empty_graph)
    counts = checks.graph_counts(empty_graph)
    assert counts["nodes"]["Gene"] == 4
    assert counts["nodes"]["Compound"] == 2
    assert counts["nodes"]["CellLine"] == 2
    assert counts["nodes"]["Perturbation"] == 4
    assert counts["nodes"]["Signature"] == 5
    assert counts["nodes"]["Dataset"] == 1
    assert counts["nodes"]["Complex"] == 1
    rels = counts["relationships"]
    assert rels["IN_CONTEXT"] == rels["OF_PERTURBATION"] == rels["FROM_DATASET"] == 5
    assert rels["OF_COMPOUND"] == 2
    assert rels["PERTURBS"] == 1
    assert rels["TARGETS"] == 2  # BRAF, and MTOR through the alias FRAP1; NOTAGENE quarantined
    assert rels["INTERACTS_WITH"] == 1 and rels["REGULATES"] == 1
    assert rels["MEMBER_OF"] == 2
    assert counts["total_nodes"] == 19 and counts["total_relationships"] == sum(rels.values())
    assert sorted(q.record_key for q in quarantined) == ["KEY-VEM->NOTAGENE", "MTOR-XYZ1", "corum:1<-NOPE"]
    assert checks.check_no_orphans(empty_graph) == {}
    ds = checks.get_dataset(empty_graph, DS.dataset_id)
    assert ds["status"] == "complete" and ds["sha256"] == DS.sha256 and ds["n_quarantined"] == 3
    assert ds["ingested_at"] and ds["licence"] == "CC0"
    score, _, _ = empty_graph.execute_query(
        "MATCH (:Gene {symbol: 'CDK2'})-[r:INTERACTS_WITH]-(:Gene {symbol: 'CDK4'}) RETURN r.score AS s, "
        "r.source AS src, r.dataset AS ds"
    )
    assert (score[0]["s"], score[0]["src"], score[0]["ds"]) == (0.95, "STRING", "tiny_l1000")

    # "which experiments measured compound X in cell line Y"
    recs, _, _ = empty_graph.execute_query(EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT, compound="Vemurafenib",
                                           context="A375")
    assert [r["signature_id"] for r in recs] == ["tiny_l1000:s1"]
    assert recs[0]["dose_value"] == 10.0 and recs[0]["dataset_id"] == "tiny_l1000"
    recs, _, _ = empty_graph.execute_query(EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT, compound="rapamycin",
                                           context="a375")
    assert [r["signature_id"] for r in recs] == ["tiny_l1000:s3"]
    recs, _, _ = empty_graph.execute_query(EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT, compound="KEY-SIR",
                                           context="MCF-7")
    assert recs == []


def test_rerunning_the_same_ingest_changes_nothing(empty_graph):
    ingest(empty_graph)
    counts, snap = checks.graph_counts(empty_graph), snapshot(empty_graph)
    ingest(empty_graph, batch_size=3)
    assert checks.graph_counts(empty_graph) == counts
    assert snapshot(empty_graph) == snap


def test_a_new_dataset_adds_without_rewriting(empty_graph):
    ingest(empty_graph)
    before = checks.graph_counts(empty_graph)
    ds2 = DatasetRecord("genes_v2", "gene table v2", "NCBI", "2", "/x/genes.tsv", "b" * 64, "public", "gene_table")
    w = GraphWriter(empty_graph)
    w.write_dataset(ds2)
    w.write_genes([GeneRecord(1017, "CDK2", "a rewritten description", aliases=("NEWALIAS",)),
                                     GeneRecord(5290, "PIK3CA", "phosphatidylinositol-4,5-bisphosphate")], "genes_v2")
    w.write_prior_edges([PriorEdgeRecord("CDK2", "CDK4", "STRING", 0.1)], "genes_v2")
    w.mark_dataset_complete("genes_v2")
    after = checks.graph_counts(empty_graph)
    assert after["nodes"]["Gene"] == before["nodes"]["Gene"] + 1
    assert after["nodes"]["Dataset"] == 2
    assert after["relationships"]["INTERACTS_WITH"] == 2  # one per dataset; the old one untouched
    recs, _, _ = empty_graph.execute_query("MATCH (g:Gene {entrez_id: 1017}) RETURN g {.*} AS g")
    g = recs[0]["g"]
    assert g["description"] == "cyclin dependent kinase 2"  # not rewritten
    assert g["sources"] == ["tiny_l1000", "genes_v2"]
    assert g["aliases"] == ["CDKN2", "NEWALIAS"]
    old, _, _ = empty_graph.execute_query(
        "MATCH ()-[r:INTERACTS_WITH {dataset: 'tiny_l1000'}]->() RETURN r.score AS s")
    assert old[0]["s"] == 0.95


def test_same_dataset_id_with_another_file_hash_is_refused(empty_graph):
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_dataset(DS)
    changed = DatasetRecord(**{**DS.__dict__, "sha256": "c" * 64})
    with pytest.raises(DatasetConflict):
        w.write_dataset(changed)


def test_crash_mid_ingest_stays_loading_and_rerun_completes(empty_graph):
    ingest(empty_graph)
    clean = checks.graph_counts(empty_graph), snapshot(empty_graph)
    empty_graph.execute_query("MATCH (n) DETACH DELETE n")  # data only; the schema stays

    def crashing():
        for i, s in enumerate(SIGS):
            if i == 3:
                raise RuntimeError("killed")
            yield s

    with pytest.raises(RuntimeError, match="killed"):
        ingest(empty_graph, signatures=crashing(), batch_size=2)
    assert checks.get_dataset(empty_graph, DS.dataset_id)["status"] == "loading"
    assert checks.graph_counts(empty_graph)["nodes"]["Signature"] == 2  # first batch committed
    assert checks.check_no_orphans(empty_graph) == {"incomplete_dataset": 1}
    ingest(empty_graph)
    assert checks.graph_counts(empty_graph) == clean[0]
    strip = [s for s in clean[1] if "ingested_at" not in s and "completed_at" not in s]
    assert [s for s in snapshot(empty_graph) if "ingested_at" not in s and "completed_at" not in s] == strip


def test_create_path_falls_back_to_merge_on_duplicate_ids(empty_graph):
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_dataset(DS)
    w.write_contexts(CONTEXTS, DS.dataset_id)
    w.write_perturbations(PERTS[3:], DS.dataset_id)
    dup = [SIGS[4], SIGS[4]]
    stats = w.write_signatures(dup)
    assert stats.written == 2 and checks.graph_counts(empty_graph)["nodes"]["Signature"] == 1
    assert checks.graph_counts(empty_graph)["relationships"]["FROM_DATASET"] == 1


def test_signatures_with_missing_references_are_quarantined(empty_graph):
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_dataset(DS)
    w.write_contexts(CONTEXTS, DS.dataset_id)
    w.write_perturbations(PERTS[3:], DS.dataset_id)
    sigs = [SIGS[4], SignatureRecord("tiny_l1000:bad", "tiny_l1000", "NOWHERE", "control:DMSO", 1)]
    for mode in ("auto", "merge"):
        stats = w.write_signatures(sigs, mode=mode)
        assert stats.written == 1
        assert [(q.record_key, q.reason) for q in stats.quarantined] == [("tiny_l1000:bad", "context not in graph")]
    # compound perturbation of a compound that is not in the graph
    stats = w.write_perturbations(PERTS[:1], DS.dataset_id)
    assert stats.written == 0 and stats.quarantined[0].reason == "compound not in graph"


NASTY_NAMES = [
    "it's", 'say "hi"', "back`tick`", "{braces: 'x'}", "x'}) DETACH DELETE n //", "$rows",
    "MATCH (n) DETACH DELETE n", "line\nbreak", "ünïcødé 名前", "\\'escaped\\'",
]


def test_names_with_cypher_fragments_are_stored_verbatim(empty_graph):
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    ds = DatasetRecord("nasty`ds", "ds'); DROP", "x", "1", "p", "d" * 64, "l", "k")
    w.write_dataset(ds)
    comps = [CompoundRecord(f"name:{n}", n, aliases=(n,)) for n in NASTY_NAMES]
    w.write_compounds(comps, ds.dataset_id)
    w.write_contexts([ContextRecord(n, n) for n in NASTY_NAMES], ds.dataset_id)
    recs, _, _ = empty_graph.execute_query("MATCH (c:Compound) RETURN c.name AS n, c.aliases AS a, c.sources AS s")
    assert sorted(r["n"] for r in recs) == sorted(NASTY_NAMES)
    assert all(r["a"] == [r["n"]] and r["s"] == ["nasty`ds"] for r in recs)
    recs, _, _ = empty_graph.execute_query("MATCH (x:CellLine) RETURN x.context_id AS n")
    assert sorted(r["n"] for r in recs) == sorted(NASTY_NAMES)
    assert checks.get_dataset(empty_graph, "nasty`ds")["name"] == "ds'); DROP"


@settings(max_examples=25, deadline=None)
@given(name=st.text(min_size=1, max_size=30))
def test_any_text_roundtrips_through_the_real_server(neo4j_driver, name):
    key = f"hyp:{name}"
    try:
        GraphWriter(neo4j_driver).write_compounds([CompoundRecord(key, name, aliases=(name,))], "hyp`ds'")
        recs, _, _ = neo4j_driver.execute_query(
            "MATCH (c:Compound {compound_id: $key}) RETURN c.name AS n, c.aliases AS a, c.sources AS s", key=key
        )
        assert [(r["n"], r["a"], r["s"]) for r in recs] == [(name, [name], ["hyp`ds'"])]
    finally:
        neo4j_driver.execute_query("MATCH (c:Compound {compound_id: $key}) DETACH DELETE c", key=key)


def test_gene_sets_from_tuples_and_gmt_objects(empty_graph):
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_dataset(DS)
    w.write_genes(GENES, DS.dataset_id)
    stats = w.write_gene_sets([("set:a", "set a", ("CDK2", "CDK4")), ComplexRecord("HALLMARK_X", "desc", ("MTOR", "NOPE"))], DS.dataset_id, source="GMT")
    assert [q.record_key for q in stats.quarantined] == ["HALLMARK_X<-NOPE"]
    recs, _, _ = empty_graph.execute_query(
        "MATCH (g:Gene)-[r:MEMBER_OF]->(s:GeneSet) RETURN s.gene_set_id AS s, g.symbol AS g, r.source AS src "
        "ORDER BY s, g")
    assert [(r["s"], r["g"], r["src"]) for r in recs] == [
        ("HALLMARK_X", "MTOR", "GMT"), ("set:a", "CDK2", "GMT"), ("set:a", "CDK4", "GMT")]

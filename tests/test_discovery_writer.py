"""graph.db.discovery_writer against the real Neo4j: versions, idempotency, current flag, pruning,
embeddings and vector indexes, read-only raw Cypher, odd names through parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.db import cypher_guard as CG
from graph.db import discovery_queries as DQ
from graph.db import discovery_reads as DR
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.graph_writer import GraphWriter
from graph.db.model_versions import (
    AWAITING_CHECK,
    REFUSED,
    ModelVersionConflict,
    ModelVersionRecord,
    ModelVersions,
)
from graph.records import CompoundRecord, ContextRecord, GeneRecord, PerturbationRecord, PriorEdgeRecord
from models import discovery as D

pytestmark = pytest.mark.neo4j

GENES = {"MTOR": 2475, "RPTOR": 57521, "BRAF": 673, "MAP2K1": 5604, "EGFR": 1956, "TP53": 7157}
COMPOUNDS = [("RAPA", "sirolimus", ("rapamycin",), ("MTOR",)), ("VEMU", "vemurafenib", (), ("BRAF",)),
             ("ERLO", "erlotinib", (), ("EGFR",))]


def build_base(driver) -> None:
    """Genes, compounds with annotated targets, contexts, perturbations, two prior edges."""
    w = GraphWriter(driver)
    w.ensure_schema()
    w.write_genes([GeneRecord(e, s, s) for s, e in GENES.items()], "t")
    comps = [CompoundRecord(cid, name, aliases=al, targets=tg) for cid, name, al, tg in COMPOUNDS]
    w.write_compounds(comps, "t")
    w.write_compound_targets(comps, "t")
    w.write_contexts([ContextRecord("K562", "K-562"), ContextRecord("A375", "A375")], "t")
    perts = [PerturbationRecord(f"compound:{cid}@{d:g}uM", name, "compound", compound_id=cid, dose_value=d,
                                dose_unit="uM") for cid, name, _, _ in COMPOUNDS for d in (1.0, 10.0)]
    perts += [PerturbationRecord(f"CRISPRi:{s}", s, "CRISPRi", target_symbols=(s,)) for s in GENES]
    w.write_perturbations(perts, "t")
    w.write_prior_edges([PriorEdgeRecord("MTOR", "RPTOR", "STRING", 0.9),
                                  PriorEdgeRecord("BRAF", "MAP2K1", "STRING", 0.8)], "t")


def planted(seed=0, d=8):
    """Gene knock-down embeddings (MTOR~RPTOR, BRAF~MAP2K1) and compounds equal to their target."""
    rng = np.random.default_rng(seed)
    genes = pd.DataFrame(rng.normal(size=(len(GENES), d)), index=list(GENES), columns=[f"e{i}" for i in range(d)])
    genes.loc["RPTOR"] = genes.loc["MTOR"] + 0.05 * rng.normal(size=d)
    genes.loc["MAP2K1"] = genes.loc["BRAF"] + 0.05 * rng.normal(size=d)
    comp = pd.DataFrame({"RAPA": genes.loc["MTOR"], "VEMU": genes.loc["BRAF"], "ERLO": genes.loc["EGFR"]}).T
    return comp, genes


def discoveries(seed=0, d=8, k=3):
    comp, genes = planted(seed, d)
    mech = D.mechanism_links(comp, genes, k=k, n_null=500, seed=seed)
    inter = D.gene_interactions(genes, k=2)
    effects = D.top_effects(pd.DataFrame({
        "perturbation": ["compound:RAPA@1uM"] * 3, "context": ["A375"] * 3,
        "readout": ["TP53", "EGFR", "BRAF"], "value": [2.0, -1.5, 0.5]}), top_n=2)
    emb = {"compound": comp, "gene_perturbation": genes,
           "context": pd.DataFrame([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]], index=["K562", "A375"])}
    return emb, mech, inter, effects


def record(trained_at, **kw):
    return ModelVersionRecord(config={"d": 8, **kw}, dataset_ids=("t",), dataset_hashes=("abc",),
                                metrics={"pearson": 0.5}, trained_at=trained_at, code_version="test")


def publish(driver, rec, seed=0, retention=5, d=8):
    emb, mech, inter, effects = discoveries(seed, d)
    return DiscoveryWriter(driver).publish(rec, embeddings=emb, mechanisms=mech, interactions=inter, effects=effects, retention=retention)


def count(driver, rel, version):
    return CG.run_cypher(driver, DQ.COUNT_VERSION_LINKS[rel], {"version_id": version})[0]["n"]


def test_publish_writes_everything_and_is_idempotent(empty_graph):
    build_base(empty_graph)
    rec = record("2025-01-01T00:00:00")
    first = publish(empty_graph, rec)
    assert first.created
    s = first.summary()["writes"]
    assert s["SHARES_MECHANISM_WITH"]["written"] == 9 and s["SHARES_MECHANISM_WITH"]["relationships_created"] == 9
    assert s["PREDICTED_INTERACTION"]["written"] == 12
    assert s["PREDICTED_EFFECT"]["written"] == 3
    assert s["embeddings:gene_perturbation"]["written"] == 6
    before = {rel: count(empty_graph, rel, rec.version_id) for rel in DQ.VERSIONED_REL_TYPES}
    nodes_before = CG.run_cypher(empty_graph, "MATCH (n) RETURN count(n) AS n")[0]["n"]

    again = publish(empty_graph, rec)
    assert not again.created
    assert all(st.relationships_created == 0 for st in again.stats.values())
    assert {rel: count(empty_graph, rel, rec.version_id) for rel in DQ.VERSIONED_REL_TYPES} == before
    assert CG.run_cypher(empty_graph, "MATCH (n) RETURN count(n) AS n")[0]["n"] == nodes_before
    assert ModelVersions(empty_graph).current() == rec.version_id

    mv = CG.run_cypher(empty_graph, DQ.GET_MODEL_VERSION, {"version_id": rec.version_id})[0]["model_version"]
    assert mv["current"] is True and mv["status"] == "complete"
    assert mv["dataset_ids"] == ["t"] and '"t": "abc"' in mv["data_snapshot"]
    assert mv["code_version"] == "test" and '"pearson": 0.5' in mv["metrics"]


def test_a_refused_version_is_never_read_and_prune_versions_deletes_it(empty_graph):
    """A version the blocking check refused keeps its links in the graph until pruned, but no named
    query shows them (not by default, not by --version), the version comparisons skip it, the nodes
    keep the current version's embeddings, and `prune_versions` deletes it (then, with non_current,
    the older published ones) without touching the current version."""
    build_base(empty_graph)
    v1, v2, v3 = (record(f"2025-0{i}-01T00:00:00", i=i) for i in (1, 2, 3))
    publish(empty_graph, v1, seed=0)
    publish(empty_graph, v2, seed=1)  # current; v1 is the previous published version
    _, mech, inter, effects = discoveries(seed=2)
    DiscoveryWriter(empty_graph).publish(v3, mechanisms=mech, interactions=inter, effects=effects, retention=5, make_current=False)
    versions = ModelVersions(empty_graph)
    versions.refuse(v3.version_id, "edges_beat_signature_correlation: below correlation")
    with pytest.raises(KeyError):
        versions.refuse(v2.version_id, "the current version cannot be refused")
    for rel in DQ.VERSIONED_REL_TYPES:  # still stored ...
        assert count(empty_graph, rel, v3.version_id) > 0
    reads = [("mechanism", {"compound": "RAPA", "all": True}), ("mimics", {"gene": "MTOR", "all": True}),
             ("interactions", {"gene": "MTOR"}), ("response", {"compound": "RAPA", "context": "A375"}),
             ("version-summary", {}), ("version-changes", {})]
    for name, params in reads:  # ... but never read
        for version in (None, v3.version_id):
            rows = DR.run_named_query(empty_graph, name, {**params, "version": version})
            shown = {r.get("model_version") for r in rows} | {r.get("previous_version") for r in rows}
            assert v3.version_id not in shown, (name, version)
            assert bool(rows) == (version is None), (name, version)  # the current version answers
    changes = DR.run_named_query(empty_graph, "version-summary", {})
    assert {r["previous_version"] for r in changes} == {v1.version_id}
    assert DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA", "all": True,
                                                        "version": v1.version_id})  # published: readable
    sim = DR.run_named_query(empty_graph, "similar-compounds", {"compound": "RAPA", "k": 2})
    assert sim and {r["model_version"] for r in sim} == {v2.version_id}
    listed = {r["version_id"]: r for r in DR.run_named_query(empty_graph, "model-versions")}
    assert listed[v3.version_id]["status"] == REFUSED and "below correlation" in listed[v3.version_id]["refused_reason"]

    # retention counts published versions: the refused one neither crowds v1 out nor is deleted by it
    assert versions.prune(retention=2) == []
    dry = versions.prune_versions(dry_run=True)
    assert [(r["version_id"], r["status"]) for r in dry] == [(v3.version_id, "refused")]
    assert count(empty_graph, "SHARES_MECHANISM_WITH", v3.version_id) > 0
    pruned = versions.prune_versions()
    assert [r["version_id"] for r in pruned] == [v3.version_id] and pruned[0]["ModelVersion"] == 1
    assert pruned[0]["SHARES_MECHANISM_WITH"] == len(mech)
    for rel in DQ.VERSIONED_REL_TYPES:
        assert count(empty_graph, rel, v3.version_id) == 0 and count(empty_graph, rel, v2.version_id) > 0
    assert [v["version_id"] for v in versions.list_versions()] == [v2.version_id, v1.version_id]
    # non_current: the older published version goes too; the current one and its embeddings stay
    assert [r["version_id"] for r in versions.prune_versions(non_current=True)] == [v1.version_id]
    assert [v["version_id"] for v in versions.list_versions()] == [v2.version_id]
    assert DR.run_named_query(empty_graph, "similar-compounds", {"compound": "RAPA", "k": 2}) == sim
    assert versions.prune_versions(non_current=True) == []


def test_annotated_target_and_prior_flags_come_from_the_graph(empty_graph):
    build_base(empty_graph)
    rec = record("2025-01-01T00:00:00")
    publish(empty_graph, rec)
    rows = DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA"})
    assert rows[0]["gene"] == "MTOR" and rows[0]["annotated_target"] is True and rows[0]["rank"] == 1
    assert all(r["annotated_target"] is False for r in rows[1:])
    inter = DR.run_named_query(empty_graph, "interactions", {"gene": "MTOR"})
    assert inter[0]["partner"] == "RPTOR" and inter[0]["evidence"] == "prior" and inter[0]["mutual"]
    assert inter[0]["prior_sources"] == ["STRING"]
    assert all(r["evidence"] == "novel" for r in inter[1:])


def test_retraining_keeps_versions_distinguishable_with_one_current(empty_graph):
    build_base(empty_graph)
    v1, v2 = record("2025-01-01T00:00:00"), record("2025-02-01T00:00:00", lr=0.1)
    publish(empty_graph, v1, seed=0)
    publish(empty_graph, v2, seed=1)
    versions = ModelVersions(empty_graph).list_versions()
    assert [v["version_id"] for v in versions] == [v2.version_id, v1.version_id]
    assert [v["current"] for v in versions] == [True, False]
    for rel in DQ.VERSIONED_REL_TYPES:
        assert count(empty_graph, rel, v1.version_id) > 0 and count(empty_graph, rel, v2.version_id) > 0
    cur = DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA"})
    old = DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA", "version": v1.version_id})
    assert {r["model_version"] for r in cur} == {v2.version_id}
    assert {r["model_version"] for r in old} == {v1.version_id}
    # republishing the old version makes it current again, still exactly one current
    ModelVersions(empty_graph).set_current(v1.version_id)
    assert [v["version_id"] for v in ModelVersions(empty_graph).list_versions() if v["current"]] == [v1.version_id]


def test_pruning_beyond_retention_removes_old_links_and_node(empty_graph):
    build_base(empty_graph)
    recs = [record(f"2025-0{i}-01T00:00:00", i=i) for i in (1, 2, 3)]
    for i, rec in enumerate(recs[:2]):
        publish(empty_graph, rec, seed=i, retention=5)
    report = publish(empty_graph, recs[2], seed=2, retention=2)
    assert report.pruned == [recs[0].version_id]
    versions = ModelVersions(empty_graph)
    assert [v["version_id"] for v in versions.list_versions()] == [recs[2].version_id, recs[1].version_id]
    for rel in DQ.VERSIONED_REL_TYPES:
        assert count(empty_graph, rel, recs[0].version_id) == 0
        assert count(empty_graph, rel, recs[1].version_id) > 0
    # small delete batches still remove everything
    deleted = ModelVersions(empty_graph, delete_batch_size=2).delete(recs[1].version_id)
    assert deleted["SHARES_MECHANISM_WITH"] == 9 and deleted["ModelVersion"] == 1
    with pytest.raises(ValueError):
        versions.delete(recs[2].version_id)  # the current one
    with pytest.raises(ValueError):
        versions.prune(0)


def test_embeddings_vector_index_dimension_change_and_stale_clearing(empty_graph):
    build_base(empty_graph)
    v1 = record("2025-01-01T00:00:00")
    publish(empty_graph, v1, d=8)
    idx = {r["name"]: r for r in CG.run_cypher(empty_graph, DQ.SHOW_VECTOR_INDEXES)}
    assert idx["gene_embedding_perturbation_vidx"]["dimensions"] == 8
    assert idx["compound_embedding_perturbation_vidx"]["state"] == "ONLINE"
    # a wider model: index recreated with the new dimension; embeddings of names it lacks are removed
    comp, genes = planted(seed=3, d=16)
    v2 = record("2025-02-01T00:00:00", d=16)
    dw = DiscoveryWriter(empty_graph)
    dw.publish(v2, embeddings={"gene_perturbation": genes.drop(index="TP53"),
                                                       "compound": comp}, retention=5)
    idx = {r["name"]: r for r in CG.run_cypher(empty_graph, DQ.SHOW_VECTOR_INDEXES)}
    assert idx["gene_embedding_perturbation_vidx"]["dimensions"] == 16
    rows = CG.run_cypher(empty_graph, "MATCH (g:Gene) RETURN g.symbol AS s, size(g.embedding_perturbation) AS d, "
                                     "g.embedding_perturbation_version AS v ORDER BY s")
    by = {r["s"]: r for r in rows}
    assert by["TP53"]["d"] is None and by["TP53"]["v"] is None
    assert by["MTOR"]["d"] == 16 and by["MTOR"]["v"] == v2.version_id
    sim = DR.run_named_query(empty_graph, "similar-genes", {"gene": "MTOR", "k": 1})
    assert sim[0]["gene"] == "RPTOR"
    with pytest.raises(ValueError):
        dw.ensure_schema(dims={"gene_perturbation": "16"})
    with pytest.raises(ValueError):
        dw.ensure_schema(dims={"nonsense": 4})


def test_version_conflict_and_unresolvable_genes(empty_graph):
    build_base(empty_graph)
    rec = record("2025-01-01T00:00:00")
    versions = ModelVersions(empty_graph)
    assert versions.register(rec)
    clash = ModelVersionRecord(config={"other": 1}, trained_at=rec.trained_at, version_id=rec.version_id)
    with pytest.raises(ModelVersionConflict):
        versions.register(clash)
    links = pd.DataFrame({"compound": ["RAPA", "RAPA"], "gene": ["MTOR", "NOT_A_GENE"], "score": [0.9, 0.8],
                          "rank": [1, 2], "zscore": [5.0, 4.0], "pvalue": [0.001, 0.01], "qvalue": [0.01, 0.02]})
    dw = DiscoveryWriter(empty_graph)
    stats = dw.write_mechanism_links(rec.version_id, links)
    assert stats.written == 1 and [q.record_key for q in stats.quarantined] == ["RAPA->NOT_A_GENE"]
    # a compound id that is not in the graph is not created
    stats = dw.write_mechanism_links(rec.version_id, links.assign(compound="NOPE").iloc[:1])
    assert stats.written == 0 and stats.relationships_created == 0


@pytest.mark.parametrize("query", ["WRITE_MECHANISM_LINKS", "WRITE_GENE_INTERACTIONS", "WRITE_PREDICTED_EFFECTS"])
def test_version_links_are_found_from_their_two_nodes_not_the_version_index(empty_graph, query):
    """On a graph with none of the type yet (a first version), the planner would answer a MERGE with the
    index on r.modelVersion: every link of the version read per row, quadratic. The writes must expand
    between the row's two nodes whatever the statistics say."""
    build_base(empty_graph)
    DiscoveryWriter(empty_graph).ensure_schema()
    with empty_graph.session() as session:
        plan = session.run("EXPLAIN CYPHER replan=force " + getattr(DQ, query), rows=[], version_id="v",
                           basis="embedding").consume().plan
    operators = []

    def walk(step):
        operators.append(step["operatorType"].split("@")[0])
        for child in step.get("children", []):
            walk(child)

    walk(plan)
    assert not [op for op in operators if "RelationshipIndex" in op], operators
    assert "Expand(Into)" in operators, operators


def test_rows_of_one_relationship_write_it_once_with_the_last_values(empty_graph):
    """Two rows with the same key (here MTOR by symbol and by alias-free Entrez id) make one relationship
    holding the later row's values; the earlier row is recorded as superseded, not dropped silently."""
    build_base(empty_graph)
    rec = record("2025-01-01T00:00:00")
    ModelVersions(empty_graph).register(rec)
    effects = pd.DataFrame({"perturbation": ["compound:RAPA@1uM"] * 3, "context": ["A375"] * 3,
                            "readout": ["MTOR", "2475", "EGFR"], "value": [2.0, 3.0, -1.0],
                            "direction": ["up", "up", "down"], "rank": [2, 1, 3]})
    stats = DiscoveryWriter(empty_graph).write_predicted_effects(rec.version_id, effects)
    assert (stats.rows, stats.written, stats.relationships_created) == (2, 2, 2)
    assert [(q.record_key, "later row" in q.reason) for q in stats.quarantined] == [
        ("compound:RAPA@1uM/A375/2475", True)]
    rows = CG.run_cypher(empty_graph, "MATCH (:Perturbation)-[r:PREDICTED_EFFECT]->(g:Gene {entrez_id: 2475}) "
                                      "RETURN r.value AS value, r.readout AS readout")
    assert rows == [{"value": 3.0, "readout": "2475"}]


def test_fetch_discovery_inputs(empty_graph):
    build_base(empty_graph)
    inp = DR.fetch_discovery_inputs(empty_graph)
    assert inp.perturbation_compound["compound:RAPA@10uM"] == "RAPA"
    assert inp.perturbation_genes["CRISPRi:MTOR"] == [2475]
    assert inp.genetic_groups()["CRISPRi:BRAF"] == "673"
    assert inp.annotated_targets["VEMU"] == [673]
    assert sorted(tuple(sorted(p)) for p in inp.prior_pairs) == [(673, 5604), (2475, 57521)]


def test_raw_cypher_is_read_only_unless_write(empty_graph):
    with pytest.raises(CG.ReadOnlyError):
        CG.run_cypher(empty_graph, "CREATE (:Gene {entrez_id: -1, symbol: 'X'})")
    assert CG.run_cypher(empty_graph, "MATCH (n) RETURN count(n) AS n") == [{"n": 0}]
    with pytest.raises(CG.ReadOnlyError):
        CG.run_cypher(empty_graph, "MERGE (g:Gene {entrez_id: $e})", {"e": 5})
    CG.run_cypher(empty_graph, "CREATE (:Gene {entrez_id: -1, symbol: 'X'})", write=True)
    assert CG.run_cypher(empty_graph, "MATCH (n) RETURN count(n) AS n") == [{"n": 1}]


ODD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=ODD | st.sampled_from(["x'}) DETACH DELETE n //", "`a`", "$x", "\\", "a\"b", "}{", "1 OR 1=1"]))
def test_odd_names_travel_as_parameters(empty_graph, name):
    """Compound ids and names from data never become Cypher text: whatever they contain, they are
    written and found verbatim, and nothing else in the graph changes."""
    CG.run_cypher(empty_graph, "MATCH (n) DETACH DELETE n", write=True)
    w = GraphWriter(empty_graph)
    w.write_genes([GeneRecord(2475, "MTOR", "MTOR")], "t")
    w.write_compounds([CompoundRecord(name, name)], "t")
    rec = ModelVersionRecord(config={"n": name}, trained_at="2025-01-01T00:00:00", version_id=name)
    versions = ModelVersions(empty_graph)
    versions.register(rec)
    links = pd.DataFrame({"compound": [name], "gene": ["MTOR"], "score": [0.5], "rank": [1], "significant": [True]})
    assert DiscoveryWriter(empty_graph).write_mechanism_links(name, links).written == 1
    versions.set_current(name)
    rows = DR.run_named_query(empty_graph, "mechanism", {"compound": name})
    assert [(r["compound_id"], r["gene"], r["model_version"]) for r in rows] == [(name, "MTOR", name)]
    assert CG.run_cypher(empty_graph, "MATCH (n) RETURN count(n) AS n") == [{"n": 3}]


def test_publish_non_current_then_promote_and_quality_and_flags(empty_graph):
    """The gate's write path: a version is written non-current ('awaiting_check'), queries still see
    the previous one; promote_version makes it current. `method` and `significant` land on the links,
    the quality record on the version."""
    from graph.records import ComplexRecord

    build_base(empty_graph)
    v1, v2 = record("2025-01-01T00:00:00"), record("2025-02-01T00:00:00", lr=0.1)
    publish(empty_graph, v1)
    emb, mech, inter, effects = discoveries(seed=1)
    inter = inter.assign(method="signature_correlation")
    mech = mech.assign(method="signature_connectivity")
    quality = {"predictions": {"status": "published: linear, the LPM did not beat it"},
               "edges": {"method": "signature_correlation", "metric": "AUPRC", "score": 0.3, "baseline_score": 0.3,
                         "gate": "edges are signature correlation"},
               "mechanisms": {"method": "signature_connectivity", "metric": "AUROC", "score": 0.9, "baseline_score": 0.5,
                              "fdr": 0.1, "significant": int(mech["significant"].sum())}}
    dw = DiscoveryWriter(empty_graph)
    with pytest.raises(ValueError, match="written when it is promoted"):
        dw.publish(v2, embeddings=emb, make_current=False)
    dw.publish(v2, mechanisms=mech, interactions=inter, effects=effects, quality=quality, retention=5, make_current=False)
    versions = ModelVersions(empty_graph)
    assert versions.current() == v1.version_id
    # the nodes keep the current version's embeddings until v2 is promoted
    assert {r["v"] for r in CG.run_cypher(empty_graph, "MATCH (g:Gene) WHERE g.embedding_perturbation IS NOT NULL "
                                                       "RETURN g.embedding_perturbation_version AS v")} == {v1.version_id}
    status = {v["version_id"]: v["status"] for v in versions.list_versions()}
    assert status[v2.version_id] == AWAITING_CHECK and status[v1.version_id] == "complete"
    assert {r["model_version"] for r in DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA"})} <= {
        v1.version_id}
    methods = CG.run_cypher(empty_graph, "MATCH ()-[r:PREDICTED_INTERACTION]->() WHERE r.modelVersion = $v "
                                         "RETURN collect(DISTINCT r.method) AS m", {"v": v2.version_id})[0]["m"]
    assert methods == ["signature_correlation"]
    flags = CG.run_cypher(empty_graph, "MATCH ()-[r:SHARES_MECHANISM_WITH]->() WHERE r.modelVersion = $v "
                                       "RETURN r.significant AS s, count(*) AS n", {"v": v2.version_id})
    assert sum(r["n"] for r in flags if r["s"]) == int(mech["significant"].sum()) > 0
    assert {r["s"] for r in flags} <= {True, False}
    mech_methods = CG.run_cypher(empty_graph, "MATCH ()-[r:SHARES_MECHANISM_WITH]->() WHERE r.modelVersion = $v "
                                              "RETURN collect(DISTINCT r.method) AS m", {"v": v2.version_id})[0]["m"]
    assert mech_methods == ["signature_connectivity"]

    dw.promote(v2.version_id, embeddings=emb, retention=5)
    assert versions.current() == v2.version_id
    assert {r["v"] for r in CG.run_cypher(empty_graph, "MATCH (g:Gene) WHERE g.embedding_perturbation IS NOT NULL "
                                                       "RETURN g.embedding_perturbation_version AS v")} == {v2.version_id}
    row = next(v for v in DR.run_named_query(empty_graph, "model-versions") if v["version_id"] == v2.version_id)
    assert (row["edge_method"], row["edge_score"], row["mechanism_score"], row["mechanism_baseline_score"]) == (
        "signature_correlation", 0.3, 0.9, 0.5)
    assert row["mechanism_method"] == "signature_connectivity"
    assert (row["predictor_status"], row["edge_gate"]) == ("published: linear, the LPM did not beat it",
                                                           "edges are signature correlation")
    shown = DR.run_named_query(empty_graph, "mechanism", {"compound": "RAPA", "all": True})
    assert shown and {r["method"] for r in shown} == {"signature_connectivity"}
    mv = CG.run_cypher(empty_graph, DQ.GET_MODEL_VERSION, {"version_id": v2.version_id})[0]["model_version"]
    assert mv["status"] == "complete" and '"baseline_score": 0.5' in mv["discovery_quality"]

    # reference pairs for edge scoring come from the graph: complexes and prior interactions
    GraphWriter(empty_graph).write_complexes([ComplexRecord("CORUM:1", "mTORC1", ("MTOR", "RPTOR", "EGFR"))], "t")
    refs = DR.fetch_edge_references(empty_graph, [GENES[g] for g in ("MTOR", "RPTOR", "EGFR", "BRAF", "MAP2K1")])
    assert sorted(refs["CORUM"]) == sorted([(1956, 2475), (1956, 57521), (2475, 57521)])
    assert sorted(refs["STRING"]) == [(673, 5604), (2475, 57521)]
    only = DR.fetch_edge_references(empty_graph, [GENES["MTOR"], GENES["RPTOR"]])
    assert only == {"CORUM": [(2475, 57521)], "STRING": [(2475, 57521)]}
    # members per complex, paired by graph.io.networks.complex_pairs: a pair two complexes share counts once
    GraphWriter(empty_graph).write_complexes([ComplexRecord("CORUM:2", "mTOR-RPTOR", ("MTOR", "RPTOR"))], "t")
    again = DR.fetch_edge_references(empty_graph, [GENES[g] for g in ("MTOR", "RPTOR", "EGFR", "BRAF", "MAP2K1")])
    assert again["CORUM"] == [(1956, 2475), (1956, 57521), (2475, 57521)]

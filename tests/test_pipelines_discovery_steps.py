"""pipelines/discovery_steps.py without Dagster or Neo4j: a tiny planted world (two gene modules, one
compound mimicking each knocked-down gene), a stand-in for the fitted LPM (its embeddings, vocabularies
and predict), and the graph's reads handed in as functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.db.discovery_reads import DiscoveryInputs
from models import discovery as D
from models import edge_sources as ES
from pipelines import discovery_steps as S

GENES = [f"G{i}" for i in range(1, 7)]  # G1-G3 one module, G4-G6 another; Entrez id = the number
CONTEXTS, READOUTS = ["c1", "c2"], [f"R{i}" for i in range(20)]
CORUM = [(1, 2), (1, 3), (2, 3), (4, 5), (4, 6), (5, 6)]


def _world(seed=0):
    """Long table: knock-down of each gene = its module's pattern + its own; compound Ck = Gk's + noise."""
    rng = np.random.default_rng(seed)
    modules = rng.normal(size=(2, len(CONTEXTS) * len(READOUTS)))
    gene_sig = {g: modules[i // 3] + 0.7 * rng.normal(size=modules.shape[1]) for i, g in enumerate(GENES)}
    rows = []
    for g, sig in gene_sig.items():
        for name, s in ((f"shRNA:{g}", sig), (f"cmpd:C{g[1:]}", sig + 0.1 * rng.normal(size=sig.size))):
            rows += [(c, name, "shRNA" if name.startswith("shRNA") else "compound", r, s[i * len(READOUTS) + j])
                     for i, c in enumerate(CONTEXTS) for j, r in enumerate(READOUTS)]
    table = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])
    inputs = DiscoveryInputs(
        perturbation_compound={f"cmpd:C{g[1:]}": f"C{g[1:]}" for g in GENES},
        perturbation_genes={f"shRNA:{g}": [int(g[1:])] for g in GENES},
        perturbation_types={p: t for p, t in zip(table["perturbation"], table["perturbation_type"], strict=True)},
        annotated_targets={f"C{g[1:]}": [int(g[1:])] for g in GENES}, prior_pairs=[])
    return table, inputs


class FittedModel:
    """What the steps read from a fitted LPM; predict returns a fixed value per (perturbation, readout)."""

    def __init__(self, table: pd.DataFrame, seed=0):
        rng = np.random.default_rng(seed)
        perts = sorted(table["perturbation"].unique())
        self.vocab = {"perturbation": [*perts, "control:DMSO"], "context": CONTEXTS, "gene": READOUTS}
        self._emb = {"perturbation": pd.DataFrame(rng.normal(size=(len(perts), 4)), index=perts),
                     "readout": pd.DataFrame(rng.normal(size=(len(READOUTS), 4)), index=READOUTS),
                     "context": pd.DataFrame(rng.normal(size=(2, 4)), index=CONTEXTS)}
        self.predicted_rows = 0

    def embeddings(self, kind: str) -> pd.DataFrame:
        return self._emb[kind].copy()

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        self.predicted_rows += len(rows)
        key = rows["perturbation"].astype(str) + rows["readout"].astype(str)
        return np.array([(hash(k) % 1000) / 500 - 1 for k in key])


@pytest.fixture
def world():
    table, inputs = _world()
    model = FittedModel(table)
    return table, inputs, model, S.embedding_groups(model, inputs)


def test_embedding_groups_aggregate_compounds_and_knocked_down_genes(world):
    table, inputs, model, groups = world
    assert list(groups.compound.index) == [f"C{i}" for i in range(1, 7)]
    assert sorted(groups.gene_perturbation.index) == [str(i) for i in range(1, 7)]
    one, own = groups.gene_perturbation.loc["3"].to_numpy(), model.embeddings("perturbation").loc["shRNA:G3"].to_numpy()
    assert one @ own / np.linalg.norm(one) / np.linalg.norm(own) == pytest.approx(1.0)  # its only perturbation
    assert set(groups.to_save()) == {"perturbation", "readout", "context", "compound", "gene_perturbation"}
    no_compounds = DiscoveryInputs({}, inputs.perturbation_genes, inputs.perturbation_types, {}, [])
    assert set(S.embedding_groups(model, no_compounds).to_save()) == {
        "perturbation", "readout", "context", "gene_perturbation"}
    assert S.annotated_targets(inputs)["C4"] == ["4"]


def test_mechanism_links_recover_the_planted_targets_from_the_better_source(world):
    table, inputs, _, groups = world
    annotated = S.annotated_targets(inputs)
    logged = []
    links, quality = S.mechanism_discoveries(table, inputs, groups, annotated, fdr=0.1, top_k=3, null_samples=200,
                                             seed=0, log=logged.append)
    # the stand-in's embeddings are random: the planted signatures (connectivity) rank the targets better
    assert quality["method"] == D.CONNECTIVITY and quality["tested_pairs"] == 36 and quality["fdr"] == 0.1
    assert logged and logged[0].startswith(f"mechanism links from {D.CONNECTIVITY}")
    summary = S.mechanism_summary(links, annotated)
    assert summary.rank1_is_annotated_target == 1.0 and summary.stored == len(links) == 18
    assert summary.significant == int(links["significant"].sum()) == quality["significant"]
    assert S.mechanism_summary(None, annotated) == S.MechanismSummary(0, 0, 0.0)
    assert S.moa_labels({"C1": ["1", "2"], "C9": []}).to_dict() == {"C1": "annotated target: 1",
                                                                   "C9": "annotated target: none"}


def test_no_compound_or_gene_to_link_gives_no_links(world):
    table, _, model, _ = world
    genes_only = DiscoveryInputs({}, {}, {}, {}, [])
    links, quality = S.mechanism_discoveries(table, genes_only, S.embedding_groups(model, genes_only), {}, fdr=0.1,
                                             top_k=3, null_samples=10, seed=0)
    assert links is None and quality == {"method": None, "reason": "no compound and perturbed gene to link",
                                         "fdr": 0.1}


def test_edges_are_scored_on_the_references_read_for_their_genes(world):
    table, _, model, groups = world
    asked = []

    def references_for(genes):
        asked.append(genes)
        return {"CORUM": [p for p in CORUM if p[0] in genes and p[1] in genes]}

    resolve = {g: int(g[1:]) for g in GENES} | {r: 100 + int(r[1:]) for r in READOUTS}
    quality, edges = S.edge_discoveries(model, table, groups, resolve=resolve.get, references_for=references_for,
                                        prior=None, top_k=2, max_imputed_rows=10_000, seed=0)
    assert asked and set(range(1, 7)) <= set(asked[0])
    assert quality["reference_pairs"] == {"CORUM": 6} and quality["baseline"] == ES.CORRELATION
    assert quality["imputed_columns"] == {"used": len(CONTEXTS) * len(READOUTS), "of": len(CONTEXTS) * len(READOUTS),
                                          "budget": 10_000}
    said = []
    small, _ = S.edge_discoveries(model, table, groups, resolve=resolve.get, references_for=references_for,
                                  prior=None, top_k=2, max_imputed_rows=60, seed=0, log=said.append)
    assert small["imputed_columns"]["used"] == len(CONTEXTS) * 5 < small["imputed_columns"]["of"]
    assert any("lpm_imputed scored on" in line and "max_imputed_rows=60" in line for line in said)
    assert quality["method"] in ES.SOURCES and (edges["method"] == quality["method"]).all()
    assert len(edges) == 2 * len({s for s in edges["source"]})  # top 2 per gene
    forced, corr_edges = S.edge_discoveries(model, table, groups, resolve=resolve.get, references_for=references_for,
                                            prior=None, top_k=2, max_imputed_rows=10_000, edge_source=ES.CORRELATION)
    assert forced["method"] == ES.CORRELATION and forced["passes"]
    # the planted modules: correlation links each gene to its two module partners
    pairs = {frozenset((int(a), int(b))) for a, b in zip(corr_edges["source"], corr_edges["target"], strict=True)}
    assert pairs == {frozenset(p) for p in CORUM}


def test_fewer_than_two_knocked_down_genes_give_no_edges_and_read_nothing(world):
    table, inputs, model, _ = world
    one_gene = DiscoveryInputs({}, {"shRNA:G1": [1]}, inputs.perturbation_types, {}, [])
    quality, edges = S.edge_discoveries(model, table, S.embedding_groups(model, one_gene), resolve=lambda s: None,
                                        references_for=lambda genes: pytest.fail("no references needed"),
                                        prior=None, top_k=2, max_imputed_rows=100)
    assert edges is None and quality["method"] is None and "fewer than 2" in quality["reason"]


def test_imputed_profiles_stay_within_the_row_budget(world):
    _, _, model, groups = world
    full = D.imputed_gene_profiles(model, groups.genetic, max_rows=10_000, seed=0)
    assert full.shape == (6, len(CONTEXTS) * len(READOUTS)) and model.predicted_rows == 240
    model.predicted_rows = 0
    capped = D.imputed_gene_profiles(model, groups.genetic, max_rows=60, seed=0)
    assert capped.shape == (6, len(CONTEXTS) * 5) and model.predicted_rows == 60  # 60 // (6 x 2) readouts
    assert D.imputed_gene_profiles(model, {}, max_rows=60, seed=0) is None


def test_effects_are_imputed_for_unmeasured_experiments_only(world):
    table, _, model, _ = world
    measured = table[~((table["perturbation"] == "shRNA:G1") & (table["context"] == "c2"))]
    pairs = S.unmeasured_experiments(model, measured, max_pairs=10, seed=0)
    assert pairs.to_dict("records") == [{"perturbation": "shRNA:G1", "context": "c2",
                                         "perturbation_type": "shRNA"}]  # no control
    seen_types = set()

    def predict(rows):  # the production predictor's members may read the type (network_knn does)
        seen_types.update(rows["perturbation_type"])
        return model.predict(rows)

    effects = S.predicted_effects(predict, model, measured, max_pairs=10, top_n=3)
    assert seen_types == {"shRNA"}
    assert set(zip(effects["perturbation"], effects["context"], strict=True)) == {("shRNA:G1", "c2")}
    assert effects.groupby("direction").size().max() <= 3
    assert S.predicted_effects(model.predict, model, table, max_pairs=10, top_n=3) is None
    many = S.unmeasured_experiments(model, table.iloc[:0], max_pairs=5, seed=1)
    assert len(many) == 5 and many.equals(S.unmeasured_experiments(model, table.iloc[:0], max_pairs=5, seed=1))


def test_embeddings_round_trip_with_text_names(tmp_path):
    emb = {"gene_perturbation": pd.DataFrame([[0.5, 1.5], [2.0, 3.0]], index=[7157, 672], columns=[0, 1])}
    folder = S.save_embeddings(emb, tmp_path / "emb")
    back = S.load_embeddings(folder, ["gene_perturbation"])["gene_perturbation"]
    assert list(back.index) == ["7157", "672"] and list(back.columns) == ["0", "1"]
    np.testing.assert_array_equal(back.to_numpy(), emb["gene_perturbation"].to_numpy())


def test_interaction_basis_and_jsonable():
    assert [S.interaction_basis(m) for m in ("lpm_knockdown", "lpm_readout", ES.CORRELATION, None)] == [
        "embedding", "embedding", "profile", "profile"]
    assert S.jsonable({"a": (1, 2), "p": Path("/x/y")}) == {"a": [1, 2], "p": "/x/y"}


def test_unmeasured_experiments_leave_out_controls_by_the_one_rule(world):
    """A control is known by its type (graph/io/validation.drop_controls), not by how its name is spelled: a
    control typed in the table but named without the store's 'control:' prefix (a benchmark loader's "DMSO")
    is no experiment to impute, nor is an id whose type part says control ("control:DMSO", not in the table)."""
    table, _, model, _ = world
    dmso = pd.DataFrame({"context": "c1", "perturbation": "DMSO", "perturbation_type": "control", "readout": READOUTS,
                         "value": 0.0})
    with_control = pd.concat([table, dmso], ignore_index=True)
    model.vocab["perturbation"] = [*model.vocab["perturbation"], "DMSO"]
    pairs = S.unmeasured_experiments(model, with_control, max_pairs=100, seed=0)
    assert not {"DMSO", "control:DMSO"} & set(pairs["perturbation"]) and len(pairs) == 0
    measured = with_control[~((with_control["perturbation"] == "shRNA:G1") & (with_control["context"] == "c2"))]
    assert S.unmeasured_experiments(model, measured, max_pairs=100, seed=0).to_dict("records") == [
        {"perturbation": "shRNA:G1", "context": "c2", "perturbation_type": "shRNA"}]

"""Mechanism-link source selection (models.discovery): LPM embeddings vs signature connectivity from the
version's own training table, scored on annotated targets over the same pairs; the better is published
with a `method`, and calibration (BH over every pair) applies to whichever is published."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import discovery as D

N_GENES, N_COMP, READOUTS, CONTEXTS = 40, 12, 60, ("A375", "K562")


def _world(seed: int = 0, *, gain_of_function: bool = False, noise: float = 0.3):
    """A long training table: each gene's knock-down signature (one per context), each compound at two
    doses = its target's knock-down signature (scaled) + noise; when `gain_of_function`, half the genes
    are over-expressed instead (their measured signature is the negated loss of function)."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(N_GENES)]
    readouts = [f"R{i}" for i in range(READOUTS)]
    lof = {(g, c): rng.normal(size=READOUTS) for g in genes for c in CONTEXTS}
    rows, types, gene_of = [], {}, {}
    for i, g in enumerate(genes):
        oe = gain_of_function and i % 2 == 1
        pert = f"{'ORF' if oe else 'CRISPRi'}:{g}"
        types[pert], gene_of[pert] = ("ORF" if oe else "CRISPRi"), g
        for c in CONTEXTS:
            rows += [(c, pert, r, v) for r, v in zip(readouts, -lof[g, c] if oe else lof[g, c], strict=True)]
    targets, compound_of = {}, {}
    for j in range(N_COMP):
        comp, target = f"drug{j}", genes[j]
        targets[comp] = [target]
        for dose in (1, 10):
            pert = f"compound:{comp}@{dose}uM"
            types[pert], compound_of[pert] = "compound", comp
            for c in CONTEXTS:
                v = dose / 10 * lof[target, c] + noise * rng.normal(size=READOUTS)
                rows += [(c, pert, r, x) for r, x in zip(readouts, v, strict=True)]
    table = pd.DataFrame(rows, columns=["context", "perturbation", "readout", "value"])
    return table, compound_of, gene_of, types, targets


def _embeddings(compounds, genes, targets, *, informative: bool, seed: int = 1, d: int = 16):
    rng = np.random.default_rng(seed)
    g = pd.DataFrame(rng.normal(size=(len(genes), d)), index=genes)
    c = pd.DataFrame(rng.normal(size=(len(compounds), d)), index=compounds)
    if informative:  # each compound's embedding is its target's, exactly
        for comp in compounds:
            c.loc[comp] = g.loc[targets[comp][0]].to_numpy()
    return D.MechanismSource(c, g, centre=True)


def test_connectivity_recovers_planted_targets_and_beats_uninformative_embeddings():
    table, compound_of, gene_of, types, targets = _world()
    simple = D.connectivity_source(table, compound_of, gene_of, perturbation_types=types)
    assert simple is not None and not simple.centre
    assert simple.compounds.shape[1] == len(CONTEXTS) * READOUTS  # shared contexts: context x readout columns
    assert "context x readout" in simple.note and "positively" in simple.note
    np.testing.assert_allclose(simple.compounds.mean(axis=1), 0.0, atol=1e-12)  # rows centred: cosine = Pearson
    sources = {D.CONNECTIVITY: simple,
               D.LPM_EMBEDDINGS: _embeddings(list(simple.compounds.index), list(simple.genes.index), targets,
                                             informative=False)}
    report = D.score_mechanism_sources(sources, targets)
    assert report.compounds_scored == N_COMP and report.positive_pairs == N_COMP
    assert report.scores[D.CONNECTIVITY]["auroc"] > 0.95 > report.scores[D.LPM_EMBEDDINGS]["auroc"]
    assert report.published == D.CONNECTIVITY == report.best
    record = report.as_dict()
    assert record["method"] == D.CONNECTIVITY and record["score"] == record["baseline_score"]
    links = D.published_mechanism_links(report, sources, k=5, n_null=2000, fdr=0.1, annotated_targets=targets)
    assert set(links["method"]) == {D.CONNECTIVITY}
    sig = links[links["significant"]]
    assert {(c, t[0]) for c, t in targets.items()} <= set(zip(sig["compound"], sig["gene"], strict=True))
    assert sig["is_annotated_target"].mean() >= 0.9


def test_better_embeddings_are_published_and_a_tie_goes_to_the_simple_answer():
    table, compound_of, gene_of, types, targets = _world(noise=3.0)  # connectivity drowned in noise
    simple = D.connectivity_source(table, compound_of, gene_of, perturbation_types=types)
    lpm = _embeddings(list(simple.compounds.index), list(simple.genes.index), targets, informative=True)
    sources = {D.CONNECTIVITY: simple, D.LPM_EMBEDDINGS: lpm}
    report = D.score_mechanism_sources(sources, targets)
    assert report.scores[D.LPM_EMBEDDINGS]["auroc"] > report.scores[D.CONNECTIVITY]["auroc"]
    assert report.published == D.LPM_EMBEDDINGS and "better than signature connectivity" in report.reason
    assert report.as_dict()["score"] > report.as_dict()["baseline_score"]
    links = D.published_mechanism_links(report, sources, k=3, n_null=500, annotated_targets=targets)
    assert set(links["method"]) == {D.LPM_EMBEDDINGS}
    # identical scores: the simple answer is published
    same = {D.CONNECTIVITY: simple, D.LPM_EMBEDDINGS: D.MechanismSource(simple.compounds, simple.genes, centre=False)}
    assert D.score_mechanism_sources(same, targets).published == D.CONNECTIVITY


def test_over_expression_is_negated_into_a_loss_of_function_signature():
    table, compound_of, gene_of, types, targets = _world(gain_of_function=True)
    simple = D.connectivity_source(table, compound_of, gene_of, perturbation_types=types)
    report = D.score_mechanism_sources({D.CONNECTIVITY: simple}, targets)
    assert report.scores[D.CONNECTIVITY]["auroc"] > 0.95
    # not negated, the over-expressed targets (odd genes) would rank last for their compounds
    raw = D.connectivity_source(table, compound_of, gene_of, perturbation_types={})
    assert D.score_mechanism_sources({D.CONNECTIVITY: raw}, targets).scores[D.CONNECTIVITY]["auroc"] < 0.8


def test_too_few_annotated_compounds_publishes_the_simple_answer_and_says_why():
    table, compound_of, gene_of, types, targets = _world()
    simple = D.connectivity_source(table, compound_of, gene_of, perturbation_types=types)
    lpm = _embeddings(list(simple.compounds.index), list(simple.genes.index), targets, informative=True)
    few = dict(list(targets.items())[:4])
    report = D.score_mechanism_sources({D.LPM_EMBEDDINGS: lpm, D.CONNECTIVITY: simple}, few)
    assert report.published == D.CONNECTIVITY and report.best is None and report.scores == {}
    assert "4 compound(s)" in report.reason and "< 5" in report.reason


def test_compounds_and_knockdowns_in_different_contexts_are_matched_on_readouts():
    table, compound_of, gene_of, types, targets = _world()
    comp_rows = table["perturbation"].str.startswith("compound:")
    table = table[(comp_rows & (table["context"] == "A375")) | (~comp_rows & (table["context"] == "K562"))]
    simple = D.connectivity_source(table, compound_of, gene_of, perturbation_types=types)
    assert simple is not None and simple.compounds.shape[1] == READOUTS and "readout (mean over contexts)" in simple.note
    with pytest.raises(ValueError):
        D.score_mechanism_sources({}, targets)

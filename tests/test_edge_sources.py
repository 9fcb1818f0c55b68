"""models.edge_sources: gene-gene edge sources scored against references, the best one chosen, and
signature correlation (the simple answer) published whenever nothing beats it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import discovery as D
from models import edge_sources as ES

N_MOD, PER = 10, 4
GENES = [f"G{i}" for i in range(N_MOD * PER)]
MODULE = {g: i // PER for i, g in enumerate(GENES)}
WITHIN = [(a, b) for i, a in enumerate(GENES) for b in GENES[i + 1:] if MODULE[a] == MODULE[b]]
PRIOR = [(a, b) for a, b in WITHIN if MODULE[a] < 5]  # half the complexes were given to the model


def _profiles(noise: float, seed: int, modules_with_signal=range(N_MOD), d=24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_MOD, d))
    rows = [(centres[MODULE[g]] if MODULE[g] in modules_with_signal else 0) + noise * rng.normal(size=d)
            for g in GENES]
    return pd.DataFrame(rows, index=GENES, columns=[f"f{i}" for i in range(d)])


def _refs(prior=PRIOR):
    return ES.EdgeReferences.build({"CORUM": WITHIN}, prior)


def test_knockdown_signatures_pivot_the_training_table():
    table = pd.DataFrame({"context": ["A", "A", "B", "A", "A"], "perturbation": ["kd1", "kd1", "kd1", "kd2", "drug"],
                          "readout": ["x", "y", "x", "x", "x"], "value": [1.0, 2.0, 3.0, -1.0, 9.0]})
    sig = D.knockdown_signatures(table, {"kd1": "101", "kd2": "102", "kd1b": "101"})
    assert list(sig.index) == ["101", "102"] and list(sig.columns) == ["A|x", "A|y", "B|x"]
    assert sig.loc["101"].tolist() == [1.0, 2.0, 3.0] and sig.loc["102"].tolist() == [-1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="lacks columns"):
        D.knockdown_signatures(table.drop(columns="value"), {})


def test_the_best_scoring_source_is_published_with_its_method():
    scores = ES.candidate_scores(signatures=_profiles(noise=3.0, seed=1), knockdown=_profiles(noise=0.5, seed=2))
    assert set(scores) == {"signature_correlation", "lpm_knockdown", "combined"}
    rep = ES.score_edge_sources(scores, _refs())
    assert rep.references == ("CORUM",) and rep.genes_scored == len(GENES)
    kd, corr = rep.scores["lpm_knockdown"]["CORUM"], rep.scores["signature_correlation"]["CORUM"]
    assert kd["without_prior"]["pairs"] == len(GENES) * (len(GENES) - 1) // 2 - len(PRIOR)
    assert kd["without_prior"]["auprc"] > corr["without_prior"]["auprc"]
    assert rep.best == rep.published == "lpm_knockdown"
    assert ES.beats_correlation(rep.scores, "lpm_knockdown", rep.references)
    d = rep.as_dict()
    assert d["published_score"] > d["baseline_score"] and d["published"] == "lpm_knockdown"
    edges = ES.edges_from_scores(scores[rep.published], k=3, prior_pairs=PRIOR, method=rep.published)
    assert set(edges["method"]) == {"lpm_knockdown"} and edges.groupby("source").size().eq(3).all()
    assert (edges["source"] != edges["target"]).all()
    assert edges["in_prior"].any() and not edges["in_prior"].all()


def test_a_source_good_only_on_the_prior_loses_to_correlation():
    """Like the LPM fed STRING: perfect on the prior's complexes, noise elsewhere. With the prior
    counted it looks best; without it correlation wins, so correlation is what gets published."""
    scores = ES.candidate_scores(signatures=_profiles(noise=1.5, seed=1),
                                 knockdown=_profiles(noise=0.3, seed=2, modules_with_signal=range(5)))
    rep = ES.score_edge_sources(scores, _refs())
    kd, corr = rep.scores["lpm_knockdown"]["CORUM"], rep.scores["signature_correlation"]["CORUM"]
    assert kd["with_prior"]["auprc"] > corr["with_prior"]["auprc"]
    assert kd["without_prior"]["auprc"] < corr["without_prior"]["auprc"]
    assert rep.published != "lpm_knockdown" and ES.beats_correlation(rep.scores, rep.published, rep.references)
    assert not ES.beats_correlation(rep.scores, "lpm_knockdown", rep.references)
    without_combination = ES.score_edge_sources({k: v for k, v in scores.items() if k != "combined"}, _refs())
    assert without_combination.published == "signature_correlation"
    forced = ES.score_edge_sources(scores, _refs(), force="lpm_knockdown")
    assert forced.published == "lpm_knockdown" and "forced" in forced.reason
    assert not ES.beats_correlation(forced.scores, forced.published, forced.references)


def test_without_references_outside_the_prior_correlation_is_published_and_says_why():
    scores = ES.candidate_scores(signatures=_profiles(noise=3.0, seed=1), knockdown=_profiles(noise=0.5, seed=2))
    everything_in_prior = ES.score_edge_sources(scores, _refs(prior=WITHIN))
    assert everything_in_prior.published == "signature_correlation" and everything_in_prior.best is None
    assert "given to the model as prior" in everything_in_prior.reason
    assert everything_in_prior.scores["lpm_knockdown"]["CORUM"]["with_prior"]["auprc"] is not None
    none = ES.score_edge_sources(scores, ES.EdgeReferences.build({"CORUM": [("X1", "X2")]}))
    assert none.published == "signature_correlation" and "no reference pairs" in none.reason
    assert none.as_dict()["published_score"] is None
    assert not ES.beats_correlation(none.scores, "lpm_knockdown", none.references)


def test_a_source_covering_few_genes_is_not_compared():
    ro = _profiles(noise=0.5, seed=3).iloc[:8]
    scores = ES.candidate_scores(signatures=_profiles(noise=1.0, seed=1), readout=ro)
    assert "combined" not in scores  # only one source covers enough genes to combine
    rep = ES.score_edge_sources(scores, _refs())
    assert "lpm_readout" in rep.excluded and "lpm_readout" not in rep.scores
    assert rep.genes_scored == len(GENES)
    with pytest.raises(ValueError):
        ES.score_edge_sources({"lpm_readout": scores["lpm_readout"]}, _refs())


def test_rank_average_combines_on_shared_genes():
    a = pd.DataFrame([[1, 0.9, 0.1], [0.9, 1, 0.2], [0.1, 0.2, 1]], index=list("xyz"), columns=list("xyz"))
    b = a.loc[list("zyx"), list("zyx")]
    comb = ES.rank_average({"a": a, "b": b})
    assert list(comb.index) == ["x", "y", "z"]
    assert comb.loc["x", "y"] == pytest.approx(1.0) and comb.loc["x", "z"] == pytest.approx(1 / 3)


def test_signatures_without_context_average_each_context_first():
    table = pd.DataFrame({"context": ["A", "A", "A", "B"], "perturbation": ["d@1", "d@1", "d@10", "d@1"],
                          "readout": ["x", "x", "x", "x"], "value": [1.0, 1.0, 4.0, 10.0]})
    sig = D.knockdown_signatures(table, {"d@1": "d", "d@10": "d"}, by_context=False)
    assert list(sig.columns) == ["x"] and sig.loc["d", "x"] == pytest.approx((2.0 + 10.0) / 2)


def test_edge_gate_passes_correlation_and_better_sources_only():
    good = ES.candidate_scores(signatures=_profiles(noise=3.0, seed=1), knockdown=_profiles(noise=0.5, seed=2))
    rep = ES.score_edge_sources(good, _refs())
    assert ES.edge_gate({**rep.as_dict(), "method": rep.published})[0]
    bad = ES.candidate_scores(signatures=_profiles(noise=1.5, seed=1),
                              knockdown=_profiles(noise=0.3, seed=2, modules_with_signal=range(5)))
    forced = ES.score_edge_sources(bad, _refs(), force="lpm_knockdown").as_dict()
    passed, why = ES.edge_gate({**forced, "method": "lpm_knockdown"})
    assert not passed and "below signature correlation" in why
    assert ES.edge_gate({**forced, "method": "signature_correlation"})[0]
    unvalidated = ES.score_edge_sources(bad, _refs(prior=WITHIN), force="lpm_knockdown").as_dict()
    assert not ES.edge_gate({**unvalidated, "method": "lpm_knockdown"})[0]


def test_the_prior_removed_is_the_gene_graph_the_model_was_given():
    """'Without prior' removes the pairs the model's gene encoder was given: its gene graph when its
    config uses one, none for the paper model (no gene graph), whatever the training set holds."""
    from models.module import LPMConfig

    graph = pd.DataFrame({"source": ["A"], "target": ["B"], "weight": [0.9]})
    assert ES.given_prior(LPMConfig(), graph) is graph
    assert ES.given_prior(LPMConfig.paper(), graph) is None
    assert ES.EdgeReferences.build({"R": [("A", "B")]}, ES.given_prior(LPMConfig.paper(), graph)).prior == frozenset()


def _long(values: pd.DataFrame, listed: pd.DataFrame, context: str = "K562") -> pd.DataFrame:
    """A training table of knock-downs kd_<gene> (long), only the listed (gene, readout) cells present."""
    stacked = values.where(listed.astype(bool)).stack().rename("value").reset_index()
    stacked.columns = ["gene", "readout", "value"]
    return pd.DataFrame({"context": context, "perturbation": "kd_" + stacked["gene"],
                         "readout": stacked["readout"], "value": stacked["value"]})


def test_a_shared_measured_pattern_beats_correlation_and_is_published_with_its_method():
    """Truncated signatures (Replogle's top lists): genes of one module list the same readouts, with
    magnitudes that are noise. The 0/1 pattern finds the modules; the values' correlation cannot."""
    rng = np.random.default_rng(0)
    d = 60
    readouts = [f"r{i}" for i in range(d)]
    module_lists = rng.random((N_MOD, d)) < 0.3
    listed = pd.DataFrame([module_lists[MODULE[g]] ^ (rng.random(d) < 0.05) for g in GENES],
                          index=GENES, columns=readouts)
    values = pd.DataFrame(rng.normal(size=(len(GENES), d)), index=GENES, columns=readouts)
    table = _long(values, listed)
    gene_of = {f"kd_{g}": g for g in GENES}
    sig, pattern = D.knockdown_signatures(table, gene_of), D.measured_pattern(table, gene_of)
    assert pattern.index.equals(sig.index) and pattern.columns.equals(sig.columns)
    expected = listed.rename(columns=lambda r: f"K562|{r}").reindex(index=sig.index, columns=sig.columns)
    assert (pattern.astype(bool) == expected).all().all() and (sig.where(pattern == 0).fillna(0) == 0).all().all()
    scores = ES.candidate_scores(signatures=sig, measured=pattern)
    assert ES.MEASURED_PATTERN in scores and not scores.excluded
    assert not np.isnan(scores[ES.MEASURED_PATTERN].to_numpy()).any()
    rep = ES.score_edge_sources(scores, _refs())
    pat, corr = rep.scores[ES.MEASURED_PATTERN]["CORUM"], rep.scores[ES.CORRELATION]["CORUM"]
    assert pat["without_prior"]["auprc"] > corr["without_prior"]["auprc"] + 0.2
    assert rep.published in (ES.MEASURED_PATTERN, ES.COMBINED) and rep.published != ES.CORRELATION
    only = ES.score_edge_sources({k: v for k, v in scores.items() if k != ES.COMBINED}, _refs())
    assert only.published == ES.MEASURED_PATTERN
    quality = {**only.as_dict(), "method": only.published}
    assert ES.edge_gate(quality)[0] and ES.MEASURED_PATTERN in ES.edge_gate(quality)[1]
    edges = ES.edges_from_scores(scores[only.published], k=3, method=only.published)
    assert set(edges["method"]) == {ES.MEASURED_PATTERN}
    # correlation-derived, gated like any other source: below correlation on a reference, it is refused
    worse = {r: {"without_prior": {"auprc": 0.0}} for r in only.references}
    assert not ES.edge_gate({**quality, "scores": {**quality["scores"], ES.MEASURED_PATTERN: worse}})[0]


def test_dense_signatures_exclude_the_measured_pattern_with_a_reason_and_nothing_is_nan():
    """Tahoe, L1000, the simulated world: every readout measured, the pattern constant (1 everywhere).
    Genes run in only some contexts do not make it informative: only the contexts run count."""
    values = _profiles(noise=1.0, seed=1)
    dense = pd.concat([_long(values, values.notna(), "A"), _long(values.iloc[:20], values.iloc[:20].notna(), "B")])
    gene_of = {f"kd_{g}": g for g in GENES}
    sig, pattern = D.knockdown_signatures(dense, gene_of), D.measured_pattern(dense, gene_of)
    assert pattern.to_numpy().min() == 0.0  # genes 20.. were never run in context B
    assert ES.measured_fraction(pattern) == pytest.approx(1.0)
    scores = ES.candidate_scores(signatures=sig, measured=pattern, knockdown=_profiles(noise=0.5, seed=2))
    assert ES.MEASURED_PATTERN not in scores and "carries no information" in scores.excluded[ES.MEASURED_PATTERN]
    rep = ES.score_edge_sources(scores, _refs())
    assert ES.MEASURED_PATTERN in rep.excluded and ES.MEASURED_PATTERN not in rep.scores
    assert "carries no information" in rep.as_dict()["excluded"][ES.MEASURED_PATTERN]
    constant = ES.similarity(pd.DataFrame(1.0, index=GENES[:4], columns=["a", "b", "c"]), "pearson")
    assert not np.isnan(constant.to_numpy()).any()
    for s in scores.values():
        assert not np.isnan(s.to_numpy()).any()

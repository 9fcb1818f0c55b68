"""The quality gate's rules (pipelines/quality.py) and the checks that apply them: the blocking check
on what the production predictor publishes, production's margin over the strongest baseline in
`evaluation_report`, the per-type quality table of `discoveries`, and the edge check marking a refused
version in the real Neo4j."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from pipelines.assets.discoveries import edges_beat_signature_correlation
from pipelines.assets.training import ModelRun, production_not_below_strongest_baseline
from pipelines.quality import (
    margins_table,
    prediction_quality,
    production_margins,
    published_vs_strongest_baseline,
    quality_table,
    selection_table,
)


def selection(chosen: str, scores: dict[str, float], best: str, margin: float) -> dict:
    """A Selection record (models.predictor.Selection.to_dict()) with the given validation scores."""
    return {"chosen": chosen, "metric": "pearson_per_signature", "best_baseline": best, "margin": margin,
            "validation": {c: {"pearson_per_signature": r, "pearson": r, "rmse": 1 - r} for c, r in scores.items()},
            "stacking_weights": {}}


SCORES = {"context_mean": 0.40, "other_contexts": 0.52, "linear": 0.50, "lpm": 0.55, "lpm_stacked": 0.57}


def run_with(sel: dict) -> ModelRun:
    return ModelRun("v", "lpm.pt", "snap", {}, "2026-01-01T00:00:00", sel["validation"], [], selection=sel)


def test_an_lpm_candidate_that_beats_the_strongest_baseline_passes_with_its_margin():
    passed, meta = published_vs_strongest_baseline(selection("lpm_stacked", SCORES, "other_contexts", 0.05))
    assert passed and meta["margin"] == pytest.approx(0.05)
    assert meta["verdict"] == "published: lpm_stacked, +0.0500 pearson_per_signature over other_contexts"
    assert meta["validation_scores"] == SCORES


def test_a_baseline_chosen_is_a_pass_that_says_the_lpm_did_not_beat_it():
    scores = {**SCORES, "lpm": 0.30, "lpm_stacked": 0.51}
    passed, meta = published_vs_strongest_baseline(selection("other_contexts", scores, "other_contexts", 0.0))
    assert passed and meta["margin"] == 0.0
    assert meta["verdict"] == "published: other_contexts, the LPM did not beat it"


def test_a_baseline_chosen_over_a_small_lead_says_what_was_passed_over():
    scores = {**SCORES, "lpm": 0.5203, "lpm_stacked": 0.5204}
    sel = {**selection("other_contexts", scores, "other_contexts", 0.0), "min_margin": 0.001,
           "passed_over": "lpm_stacked +0.0004 over other_contexts, under the 0.001 required"}
    passed, meta = published_vs_strongest_baseline(sel)
    assert passed and meta["margin"] == 0.0
    assert meta["verdict"] == ("published: other_contexts, the LPM did not beat it by enough "
                               "(lpm_stacked +0.0004 over other_contexts, under the 0.001 required)")


def test_a_chosen_candidate_below_the_strongest_baseline_is_refused():
    """A record whose choice scores below a baseline (e.g. an edited predictor.json) fails the check."""
    scores = {**SCORES, "lpm_stacked": 0.49}
    passed, meta = published_vs_strongest_baseline(selection("lpm_stacked", scores, "other_contexts", -0.03))
    assert not passed and meta["verdict"].startswith("refused: lpm_stacked scores -0.0300")
    nan = {**SCORES, "lpm": float("nan")}
    assert not published_vs_strongest_baseline(selection("lpm", nan, "other_contexts", 0.0))[0]
    missing = {k: v for k, v in SCORES.items() if k != "lpm"}
    passed, meta = published_vs_strongest_baseline(selection("lpm", missing, "other_contexts", 0.0))
    assert not passed and "no pearson_per_signature" in meta["verdict"]


def test_the_blocking_check_reports_what_is_published():
    check = production_not_below_strongest_baseline
    (spec,) = check.check_specs
    assert spec.blocking and spec.name == "production_not_below_strongest_baseline"
    result = check(run_with(selection("linear", {**SCORES, "lpm": 0.3, "lpm_stacked": 0.5, "other_contexts": 0.45},
                                      "linear", 0.0)))
    assert result.passed and result.description == "published: linear, the LPM did not beat it"
    assert result.metadata["chosen"].value == "linear" and result.metadata["margin"].value == 0.0
    assert "linear (chosen)" in result.metadata["validation"].value
    refused = check(run_with(selection("lpm", {**SCORES, "lpm": 0.45}, "other_contexts", -0.07)))
    assert not refused.passed and refused.metadata["margin"].value == pytest.approx(-0.07)


def test_production_margins_per_seed_wins_losses_and_ties():
    rows = []
    for seed, (prod, other, lin) in enumerate([(0.60, 0.55, 0.50), (0.50, 0.52, 0.51), (0.52, 0.52, 0.40)]):
        rows += [{"model": "production", "seed": seed, "pearson_per_signature": prod, "error": ""},
                 {"model": "other_contexts", "seed": seed, "pearson_per_signature": other, "error": ""},
                 {"model": "linear", "seed": seed, "pearson_per_signature": lin, "error": ""},
                 {"model": "lpm", "seed": seed, "pearson_per_signature": 0.99, "error": ""}]  # not a baseline
    m = production_margins(pd.DataFrame(rows))
    assert [(r["seed"], r["strongest_baseline"]) for r in m["per_seed"]] == [
        (0, "other_contexts"), (1, "other_contexts"), (2, "other_contexts")]
    assert [r["margin"] for r in m["per_seed"]] == pytest.approx([0.05, -0.02, 0.0])
    assert (m["wins"], m["losses"], m["ties"]) == (1, 1, 1)
    assert m["mean_margin"] == pytest.approx(0.01)
    table = margins_table(m).splitlines()
    assert table[2] == "| 0 | 0.6000 | other_contexts | 0.5500 | +0.0500 |"
    assert table[-1] == "wins 1, losses 1, ties 1; mean margin +0.0100"
    empty = production_margins(pd.DataFrame(rows).assign(error="failed"))
    assert empty["per_seed"] == [] and empty["mean_margin"] is None
    assert margins_table(empty).endswith("mean margin –")


def test_selection_table_marks_the_chosen_candidate():
    lines = selection_table(selection("linear", {"linear": 0.5, "lpm": 0.25}, "linear", 0.0)).splitlines()
    assert lines[0] == "| candidate | pearson_per_signature | pearson | rmse |"
    assert lines[2:] == ["| linear (chosen) | 0.500 | 0.500 | 0.500 |", "| lpm | 0.250 | 0.250 | 0.750 |"]


def test_quality_table_has_every_discovery_type_with_source_scores_and_status():
    quality = {"predictions": prediction_quality(selection("lpm_stacked", SCORES, "other_contexts", 0.05)),
               "edges": {"method": "signature_correlation", "metric": "AUPRC", "score": 0.2, "baseline":
                         "signature_correlation", "baseline_score": 0.2, "gate": "edges are signature correlation"},
               "mechanisms": {"method": "signature_connectivity", "metric": "AUROC", "score": 0.9,
                              "baseline": "signature_connectivity", "baseline_score": 0.9, "significant": 83,
                              "fdr": 0.1, "reason": "connectivity ranks targets better"}}
    assert quality["predictions"]["score"] == 0.57 and quality["predictions"]["baseline_score"] == 0.52
    lines = quality_table(quality).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith("| predictions (PREDICTED_EFFECT) | lpm_stacked |") and "| 0.5700 | other_contexts | 0.5200 |" in lines[2]
    assert "published: lpm_stacked" in lines[2]
    assert "| signature_correlation |" in lines[3] and "edges are signature correlation" in lines[3]
    assert "83 links significant at q <= 0.1" in lines[4]


@pytest.mark.neo4j
def test_a_failed_edge_check_marks_the_version_refused(empty_graph, neo4j_settings, monkeypatch):
    """The blocking check on `discoveries` writes status 'refused' and the reason on the version it
    refuses; a version that passes is left as it is."""
    from graph.db.connection import credentials
    from graph.db.discovery_reads import run_named_query
    from graph.db.model_versions import ModelVersionRecord, ModelVersions
    from pipelines.resources import Neo4jResource

    versions = ModelVersions(empty_graph)
    versions.register(ModelVersionRecord({"x": 1}, version_id="bad"))
    versions.register(ModelVersionRecord({"x": 2}, version_id="good"))
    user, password = credentials(neo4j_settings)
    monkeypatch.setenv("PG_TEST_CHECK_PASSWORD", password)  # read when the driver opens (settings are cached)
    resource = Neo4jResource(uri=neo4j_settings.effective_neo4j_uri, username=user,
                             password=dg.EnvVar("PG_TEST_CHECK_PASSWORD"), database=neo4j_settings.neo4j_database)
    worse = {"method": "lpm_knockdown", "references": ["CORUM"],
             "scores": {"lpm_knockdown": {"CORUM": {"without_prior": {"auprc": 0.01, "auroc": 0.5}}},
                        "signature_correlation": {"CORUM": {"without_prior": {"auprc": 0.05, "auroc": 0.7}}}}}
    result = edges_beat_signature_correlation(dg.build_asset_check_context(), neo4j=resource,
                                              discoveries={"version_id": "bad", "quality": {"edges": worse}})
    assert not result.passed
    correlation = {"method": "signature_correlation", "references": ["CORUM"], "scores": {}}
    ok = edges_beat_signature_correlation(dg.build_asset_check_context(), neo4j=resource,
                                          discoveries={"version_id": "good", "quality": {"edges": correlation}})
    assert ok.passed
    rows = {r["version_id"]: r for r in run_named_query(empty_graph, "model-versions")}
    assert rows["bad"]["status"] == "refused"
    assert rows["bad"]["refused_reason"].startswith("edges_beat_signature_correlation: lpm_knockdown edges score below")
    assert rows["good"]["status"] == "writing" and rows["good"]["refused_reason"] is None

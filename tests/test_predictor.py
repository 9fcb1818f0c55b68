"""The production predictor: chosen on validation experiments only, saved and loaded without pickle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import ContextReadoutMean, LinearPCARidge, OtherContextsMean
from models.evaluation.harness import evaluate_model
from models.evaluation.metrics import per_signature_pearson
from models.evaluation.splits import make_split
from models.predictor import (
    MANIFEST,
    STACKED,
    PredictorError,
    ProductionPredictor,
    _experiment_folds,
)
from models.registry import Resources, build_model

COLS = ["context", "perturbation", "perturbation_type", "readout", "value"]


def _data(n_ctx=3, n_pert=24, n_readout=10, noise=0.3, seed=0):
    """Effects shared across contexts (what other_contexts copies) + noise."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, n_readout))
    rows = [(f"ctx{c}", f"p{p}", "compound", f"r{r}", effect[p, r] + noise * rng.normal())
            for c in range(n_ctx) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=COLS)


class Noisy:
    """Truth (looked up from every row it may ever see) + its own fixed noise: a stand-in member whose
    errors are independent of the other Noisy members'."""

    def __init__(self, truth: pd.DataFrame, scale: float, seed: int):
        self.truth = truth.set_index(["context", "perturbation", "readout"])["value"]
        self.scale, self.seed = scale, seed

    def fit(self, train, valid=None):
        return self

    def predict(self, rows):
        idx = pd.MultiIndex.from_frame(rows[["context", "perturbation", "readout"]].astype(str))
        y = self.truth.reindex(idx).to_numpy()
        noise = np.random.default_rng([self.seed, len(rows)]).normal(size=len(rows))
        return y + self.scale * noise


class Spy(ContextReadoutMean):
    """context_mean that records every (context, perturbation) it was fitted on or asked about."""

    seen: set

    def fit(self, train, valid=None):
        self.seen = set(zip(train["context"], train["perturbation"], strict=True))
        if valid is not None:
            self.seen |= set(zip(valid["context"], valid["perturbation"], strict=True))
        return super().fit(train, valid)

    def predict(self, rows):
        self.seen |= set(zip(rows["context"], rows["perturbation"], strict=True))
        return super().predict(rows)


def _tiny_lpm_resources():
    from models.module import LPMConfig

    return Resources(lpm_config=LPMConfig.paper(max_epochs=2, embed_dim=8, hidden_dim=16))


def test_the_choice_does_not_change_when_test_values_are_poisoned():
    df = _data()
    split = make_split(df, "unseen-experiment", context="ctx0", seed=1)
    res = _tiny_lpm_resources()
    clean = build_model("production", seed=1, resources=res, split_kind="unseen-experiment")
    evaluate_model(clean, split)
    # Poison every test value: a selection that looked at them would change.
    poisoned_split = make_split(df, "unseen-experiment", context="ctx0", seed=1)
    poisoned_split.test["value"] = np.random.default_rng(9).normal(scale=100.0, size=len(poisoned_split.test))
    poisoned = build_model("production", seed=1, resources=res, split_kind="unseen-experiment")
    evaluate_model(poisoned, poisoned_split)
    assert clean.selection.chosen == poisoned.selection.chosen
    assert clean.selection.validation == poisoned.selection.validation
    assert clean.selection.stacking_weights == poisoned.selection.stacking_weights
    # During fit and selection no member saw a test experiment (the harness predicts test rows afterwards).
    spy = Spy()
    predictor = ProductionPredictor({"lpm": OtherContextsMean(), "spy": spy}, seed=1)
    predictor.fit(split.train, split.valid)
    assert not spy.seen & split.experiments("test")


def test_the_chosen_candidate_is_the_best_on_validation_and_scores_are_honest():
    split = make_split(_data(), "unseen-experiment", context="ctx0", seed=0)
    predictor = ProductionPredictor({"lpm": ContextReadoutMean(), "context_mean": ContextReadoutMean(),
                                     "other_contexts": OtherContextsMean(), "linear": LinearPCARidge()}, seed=0,
                                    min_margin=0.0)
    sel = predictor.fit(split.train, split.valid).selection
    scores = {name: m["pearson_per_signature"] for name, m in sel.validation.items()}
    assert set(scores) == {"lpm", "context_mean", "other_contexts", "linear", STACKED}
    assert scores[sel.chosen] == max(scores.values())
    # Recomputed by hand: other_contexts fitted on train, scored on the validation experiments.
    valid = split.valid
    ref = OtherContextsMean().fit(split.train).predict(valid.drop(columns="value"))
    assert scores["other_contexts"] == pytest.approx(per_signature_pearson(valid, valid["value"], ref))
    assert sel.best_baseline == max(("context_mean", "other_contexts", "linear"), key=scores.get)
    expected_margin = 0.0 if sel.chosen != STACKED and sel.chosen != "lpm" else scores[sel.chosen] - scores[sel.best_baseline]
    assert sel.margin == pytest.approx(expected_margin)
    # The stacked score is out of fold: each fold's predictions use the weights fitted on the other.
    folds = _experiment_folds(valid, 0)
    X = np.column_stack([m.predict(valid.drop(columns="value")) for m in predictor.members.values()])
    oof = np.empty(len(valid))
    for f, w in enumerate(sel.fold_weights):
        oof[folds == f] = X[folds == f] @ np.array(list(w.values()))
    assert scores[STACKED] == pytest.approx(per_signature_pearson(valid, valid["value"], oof))
    assert sel.n_valid_experiments == len(split.experiments("valid"))


def test_a_stack_of_members_with_independent_errors_is_chosen_with_a_positive_margin():
    df = _data(n_pert=30)
    split = make_split(df, "unseen-experiment", context="ctx0", seed=0)
    members = {"lpm": Noisy(df, 1.0, 1), "context_mean": Noisy(df, 1.0, 2), "other_contexts": Noisy(df, 1.0, 3)}
    sel = ProductionPredictor(members, seed=0).fit(split.train, split.valid).selection
    assert sel.chosen == STACKED and sel.margin > 0.02
    assert all(w > 0.2 for w in sel.stacking_weights.values())
    assert sum(sel.stacking_weights.values()) == pytest.approx(1.0)


def test_ties_go_to_the_simpler_candidate():
    split = make_split(_data(), "unseen-experiment", context="ctx0", seed=0)
    # The "LPM" here is the very same baseline: equal scores, and the baseline (simpler) is chosen.
    sel = ProductionPredictor({"lpm": OtherContextsMean(), "other_contexts": OtherContextsMean()}, seed=0) \
        .fit(split.train, split.valid).selection
    assert sel.chosen == "other_contexts" and sel.margin == 0.0


def test_the_lpm_or_the_stack_must_lead_the_best_baseline_by_min_margin():
    df = _data(n_pert=30)
    split = make_split(df, "unseen-experiment", context="ctx0", seed=0)

    def select(min_margin):
        members = {"lpm": Noisy(df, 0.9, 1), "context_mean": Noisy(df, 1.0, 2), "other_contexts": Noisy(df, 1.0, 3)}
        return ProductionPredictor(members, seed=0, min_margin=min_margin).fit(split.train, split.valid)

    free = select(0.0).selection
    assert free.chosen in ("lpm", STACKED) and free.margin > 0 and not free.passed_over
    lead = free.margin
    held = select(lead + 1e-6)
    sel = held.selection
    assert sel.chosen == free.best_baseline == sel.best_baseline and sel.margin == 0.0
    assert sel.passed_over.startswith(f"{free.chosen} {lead:+.4f} over {free.best_baseline}")
    assert sel.validation == free.validation  # same scores, only the rule differs
    assert "passed over" in held.describe()
    rows = split.test.drop(columns="value")
    np.testing.assert_array_equal(held.predict(rows), held.members[free.best_baseline].predict(rows))
    assert select(lead - 1e-6).selection.chosen == free.chosen
    with pytest.raises(ValueError, match="min_margin"):
        ProductionPredictor({"lpm": ContextReadoutMean()}, min_margin=-0.1)


def test_fit_needs_validation_rows_and_an_lpm():
    split = make_split(_data(), "unseen-experiment", context="ctx0", seed=0)
    with pytest.raises(ValueError, match="needs the LPM"):
        ProductionPredictor({"context_mean": ContextReadoutMean()})
    with pytest.raises(ValueError, match="validation"):
        ProductionPredictor({"lpm": ContextReadoutMean()}).fit(split.train, split.valid.iloc[:0])
    with pytest.raises(RuntimeError, match="before fit"):
        ProductionPredictor({"lpm": ContextReadoutMean()}).predict(split.test)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real production predictor (tiny LPM) fitted and saved once."""
    split = make_split(_data(), "unseen-experiment", context="ctx0", seed=0)
    predictor = build_model("production", seed=0, resources=_tiny_lpm_resources(), split_kind="unseen-experiment")
    predictor.fit(split.train, split.valid)
    folder = tmp_path_factory.mktemp("predictor")
    predictor.save(folder)
    return predictor, folder, split


def _copy(folder, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def test_save_load_round_trip_predicts_identically(saved):
    predictor, folder, split = saved
    loaded = ProductionPredictor.load(folder)
    rows = pd.concat([split.test, split.valid]).drop(columns="value")
    assert loaded.selection == predictor.selection
    assert loaded.min_margin == predictor.min_margin == predictor.selection.min_margin > 0
    np.testing.assert_array_equal(loaded.predict(rows), predictor.predict(rows))
    for name, member in predictor.members.items():  # every candidate, not just the chosen one
        np.testing.assert_array_equal(loaded.members[name].predict(rows), member.predict(rows))
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["selection"]["embeddings_from"] == "lpm"
    assert {p.suffix for p in folder.iterdir()} <= {".json", ".pt", ".npz"}  # no pickle files


def test_an_edited_member_file_is_refused(saved, tmp_path):
    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    with np.load(copy / "linear.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["W"] = arrays["W"] * 2
    np.savez(copy / "linear.npz", **arrays)
    with pytest.raises(PredictorError, match=r"linear.npz was modified after the predictor was saved"):
        ProductionPredictor.load(copy)


def _rehash(folder, name):
    from models.predictor import _sha256

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["members"][name]["sha256"] = _sha256(folder / manifest["members"][name]["file"])
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_inconsistent_files_are_refused_even_with_matching_hashes(saved, tmp_path):
    _, folder, _ = saved
    copy = _copy(folder, tmp_path)
    with np.load(copy / "linear.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["W"] = arrays["W"][:-1]  # wrong shape
    np.savez(copy / "linear.npz", **arrays)
    _rehash(copy, "linear")
    with pytest.raises(PredictorError, match=r"linear.npz: .*do not fit together.*W"):
        ProductionPredictor.load(copy)
    # an object array would need pickle to load: refused
    arrays = {"readout_mean.readout": np.array([object()], dtype=object)}
    np.savez(copy / "context_mean.npz", **arrays)
    _rehash(copy, "context_mean")
    with pytest.raises(PredictorError, match="context_mean.npz: .*allow_pickle"):
        ProductionPredictor.load(copy)


def test_a_manifest_with_bad_weights_or_foreign_vocabulary_is_refused(saved, tmp_path):
    _, folder, split = saved
    copy = _copy(folder, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["selection"]["chosen"] = STACKED
    manifest["selection"]["stacking_weights"] = {"lpm": 2.0, "linear": -1.0}
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PredictorError, match="not convex weights"):
        ProductionPredictor.load(copy)
    manifest = json.loads((folder / MANIFEST).read_text())
    for bad in ("a lot", True, -0.5):
        manifest["min_margin"] = bad
        (copy / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(PredictorError, match="min_margin must be a number"):
            ProductionPredictor.load(copy)
    # a baseline fitted on other data (contexts the LPM never saw) does not belong to this LPM
    copy2 = _copy(folder, tmp_path / "b")
    other = split.train.assign(context="elsewhere")
    params, arrays = ContextReadoutMean().fit(other).state()
    np.savez(copy2 / "context_mean.npz", **arrays)
    _rehash(copy2, "context_mean")
    with pytest.raises(PredictorError, match="contexts / readouts the LPM does not know"):
        ProductionPredictor.load(copy2)
    (copy2 / MANIFEST).unlink()
    with pytest.raises(PredictorError, match="does not exist"):
        ProductionPredictor.load(copy2)


def _gene_world(n_clusters=6, size=6, n_readout=12, seed=0):
    """Knock-downs whose response is their cluster's (+ noise); the gene graph links each cluster."""
    rng = np.random.default_rng(seed)
    profile = rng.normal(size=(n_clusters, n_readout))
    rows = [(c, f"g{k}_{i}", "CRISPRi", f"r{r}", scale * profile[k, r] + 0.3 * rng.normal())
            for c, scale in (("A", 1.0), ("B", 0.7)) for k in range(n_clusters) for i in range(size)
            for r in range(n_readout)]
    graph = pd.DataFrame([(f"g{k}_{i}", f"g{k}_{j}", 0.9) for k in range(n_clusters) for i in range(size)
                          for j in range(i + 1, size)], columns=["source", "target", "weight"])
    return pd.DataFrame(rows, columns=COLS), graph


def test_network_knn_raises_the_bar_and_is_saved_with_the_predictor(tmp_path):
    from dataclasses import replace

    from models.side_information import SideInformation

    df, graph = _gene_world()
    split = make_split(df, "unseen-gene", seed=0)
    res = replace(_tiny_lpm_resources(), side=SideInformation(gene_graph=graph))
    predictor = build_model("production", seed=0, resources=res, split_kind="unseen-gene").fit(split.train, split.valid)
    sel = predictor.selection
    scores = {name: m["pearson_per_signature"] for name, m in sel.validation.items()}
    # The graph neighbours carry the held-out genes' responses: network_knn is the strongest baseline, and
    # any margin is over it.
    assert sel.best_baseline == "network_knn" and scores["network_knn"] > scores["context_mean"] + 0.2
    assert predictor.members["network_knn"].shrinkage_ > 0
    predictor.save(tmp_path)
    loaded = ProductionPredictor.load(tmp_path)
    rows = pd.concat([split.test, split.valid]).drop(columns="value")
    np.testing.assert_array_equal(loaded.members["network_knn"].predict(rows),
                                  predictor.members["network_knn"].predict(rows))
    np.testing.assert_array_equal(loaded.predict(rows), predictor.predict(rows))


def test_signature_stacking_is_cross_fitted_and_saved_with_a_consensus_member(tmp_path):
    from models.evaluation.baselines import Consensus
    from models.evaluation.stacking import signature_convex_weights
    from models.registry import production_members

    split = make_split(_data(), "unseen-experiment", context="ctx0", seed=0)
    members = {**production_members(0, _tiny_lpm_resources(), "unseen-experiment"), "consensus": Consensus()}
    predictor = ProductionPredictor(members, seed=0, stack_objective="signature").fit(split.train, split.valid)
    sel = predictor.selection
    assert "signature objective" in sel.protocol and "consensus" in sel.validation
    # Each fold's weights are the per-signature fit on the other fold's validation experiments only.
    valid = split.valid
    X = np.column_stack([m.predict(valid.drop(columns="value")) for m in predictor.members.values()])
    y, folds = valid["value"].to_numpy(), _experiment_folds(valid, 0)
    groups = (valid["context"].astype(str) + "/" + valid["perturbation"].astype(str)).to_numpy()
    for f, w in enumerate(sel.fold_weights):
        assert list(w.values()) == pytest.approx(signature_convex_weights(X[folds != f], y[folds != f], groups[folds != f]))
    assert list(sel.stacking_weights.values()) == pytest.approx(signature_convex_weights(X, y, groups))
    predictor.save(tmp_path)
    loaded = ProductionPredictor.load(tmp_path)
    assert loaded.stack_objective == "signature" and loaded.selection == sel
    rows = pd.concat([split.test, split.valid]).drop(columns="value")
    np.testing.assert_array_equal(loaded.members["consensus"].predict(rows), predictor.members["consensus"].predict(rows))
    np.testing.assert_array_equal(loaded.predict(rows), predictor.predict(rows))
    with pytest.raises(ValueError, match="unknown stacking objective"):
        ProductionPredictor({"lpm": ContextReadoutMean()}, stack_objective="rmse")

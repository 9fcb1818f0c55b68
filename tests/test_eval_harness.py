"""The harness evaluates every model through one path, hides test values, and reports mean ± sd."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.evaluation import harness
from models.evaluation.harness import (
    Resources,
    evaluate_model,
    expand_model_names,
    markdown_table,
    run_benchmark,
    write_results,
)
from models.evaluation.splits import make_split
from models.side_information import SideInformation

COLS = ["context", "perturbation", "perturbation_type", "readout", "value"]


def _data(n_ctx=4, n_pert=20, n_readout=12, seed=0):
    """Shared perturbation effects across contexts (what 'other_contexts' exploits) + noise."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, n_readout))
    rows = []
    for c in range(n_ctx):
        for p in range(n_pert):
            kind = "compound" if p < n_pert - 6 else "CRISPRi"
            v = effect[p] + 0.3 * rng.normal(size=n_readout)
            rows += [(f"ctx{c}", f"p{p}", kind, f"r{r}", v[r]) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=COLS)


class Spy:
    """Records what it was shown; predicts the training mean."""

    def fit(self, train, valid=None):
        self.train_pairs = set(zip(train["context"], train["perturbation"], strict=False))
        self.valid_pairs = set() if valid is None else set(zip(valid["context"], valid["perturbation"], strict=False))
        self.mean = train["value"].mean()
        return self

    def predict(self, rows):
        self.predict_columns = list(rows.columns)
        return np.full(len(rows), self.mean)


@pytest.mark.parametrize("kind,context", [("unseen-experiment", "ctx1"), ("unseen-compound", None),
                                          ("unseen-gene", None), ("unseen-context", "ctx2")])
def test_no_leakage_into_fit_or_predict(kind, context):
    df = _data()
    split = make_split(df, kind, context=context, seed=4)
    spy = Spy()
    metrics = evaluate_model(spy, split)
    test_pairs = split.experiments("test")
    assert test_pairs and not test_pairs & (spy.train_pairs | spy.valid_pairs)
    assert "value" not in spy.predict_columns
    assert spy.mean == pytest.approx(split.train["value"].mean())  # normalisation from train only
    assert np.isfinite(metrics["rmse"]) and metrics["fit_s"] >= 0


def test_run_benchmark_ranks_baselines_sensibly():
    df = _data()
    res = run_benchmark(df, "unseen-experiment", context="ctx0", models=["baselines"], seeds=[0, 1])
    assert set(res["model"]) == {"global_mean", "no_change", "context_mean", "consensus", "other_contexts",
                                 "similar_contexts", "similar_perturbations", "linear"}
    assert (res.groupby("model")["seed"].nunique() == 2).all() and not res["error"].any()
    mean = res.groupby("model")["pearson_per_signature"].mean()
    # Effects are shared across contexts, so copying them from other contexts must win clearly.
    assert mean["other_contexts"] > 0.8 > mean["context_mean"]
    assert mean["similar_contexts"] > 0.8  # weighting the same lines cannot lose the shared effect
    assert res.groupby("model")["rmse"].mean()["other_contexts"] < res.groupby("model")["rmse"].mean()["global_mean"]


def test_model_names_and_failures_are_reported(monkeypatch):
    df = _data()
    assert "tanimoto_knn" not in expand_model_names(["baselines"], df, Resources())
    assert "tanimoto_knn" in expand_model_names(["baselines"], df, Resources(side=SideInformation(compound_smiles={"p0": "CCO"})))
    # network_knn: genetic perturbations and a gene graph, else it would only repeat context_mean.
    graphed = Resources(side=SideInformation(gene_graph=pd.DataFrame({"source": ["p14"], "target": ["p15"]})))
    assert "network_knn" not in expand_model_names(["baselines"], df, Resources())
    assert "network_knn" in expand_model_names(["baselines"], df, graphed)
    assert "network_knn" not in expand_model_names(["baselines"], df[df["perturbation_type"] == "compound"], graphed)
    with pytest.raises(ValueError, match="unknown model"):
        expand_model_names(["magic"], df, Resources())

    class Broken:
        def fit(self, train, valid=None):
            raise RuntimeError("boom")

    real = harness.build_model
    monkeypatch.setattr(harness, "build_model", lambda name, **kw: Broken() if name == "no_change" else real(name, **kw))
    res = run_benchmark(df, "unseen-compound", models=["no_change", "context_mean"], seeds=[0])
    broken = res[res["model"] == "no_change"].iloc[0]
    assert "boom" in broken["error"] and np.isnan(broken["rmse"])
    assert np.isfinite(res[res["model"] == "context_mean"]["rmse"]).all()
    assert "no_change seed 0 failed: RuntimeError: boom" in markdown_table(res)


def test_markdown_and_json_outputs(tmp_path):
    df = _data()
    res = run_benchmark(df, "unseen-experiment", context="ctx0", models=["context_mean", "other_contexts"], seeds=[0, 1, 2])
    table = markdown_table(res)
    assert "±" in table and table.count("\n") == 3  # header, rule, two models
    best_row = next(line for line in table.splitlines() if line.startswith("| other_contexts"))
    assert best_row.count("**") >= 8  # wins at least four metrics, each wrapped in **
    json_path, md_path = write_results(res, tmp_path / "out", title="demo")
    records = json.loads(json_path.read_text())
    assert len(records) == 6 and {"model", "seed", "rmse", "description"} <= set(records[0])
    assert md_path.read_text().startswith("## demo")


def test_lpm_runs_through_the_same_path():
    pytest.importorskip("models.lpm", reason="models/lpm.py not written yet")
    from models.module import LPMConfig

    df = _data(n_ctx=3, n_pert=10, n_readout=8)
    res = run_benchmark(df, "unseen-experiment", context="ctx0", models=["lpm"], seeds=[0],
                        resources=Resources(lpm_config=LPMConfig.paper(max_epochs=2)))
    assert res["error"].iloc[0] == "" and np.isfinite(res["rmse"].iloc[0])


def test_lpm_paper_is_the_lpm_with_every_encoder_off():
    from models.evaluation.harness import build_model
    from models.module import LPMConfig

    res = Resources(lpm_config=LPMConfig(max_epochs=3, embed_dim=16))
    full, paper = (build_model(n, seed=0, resources=res).config for n in ("lpm", "lpm_paper"))
    assert full.use_compound_encoder and full.use_gene_graph and full.use_targets
    assert paper == LPMConfig.paper(max_epochs=3, embed_dim=16)
    assert expand_model_names(["lpm_paper", "lpm"], _data(), res) == ["lpm_paper", "lpm"]


def test_lpm_zeroshot_is_the_lpm_with_symbol_dropout():
    from dataclasses import replace

    from models.evaluation.harness import ZERO_SHOT_SYMBOL_DROPOUT, build_model
    from models.module import LPMConfig

    res = Resources(lpm_config=LPMConfig(max_epochs=3, embed_dim=16))
    full, zero = (build_model(n, seed=0, resources=res).config for n in ("lpm", "lpm_zeroshot"))
    assert full.symbol_dropout == 0 and 0 < ZERO_SHOT_SYMBOL_DROPOUT < 1
    assert zero == replace(full, symbol_dropout=ZERO_SHOT_SYMBOL_DROPOUT)


def test_lpm_stacked_runs_through_the_same_path_and_records_its_weights():
    from models.evaluation.harness import STACKED_MEMBERS, build_model
    from models.evaluation.stacking import StackedLPM
    from models.module import LPMConfig

    res = Resources(lpm_config=LPMConfig.paper(max_epochs=2))
    model = build_model("lpm_stacked", seed=0, resources=res, split_kind="unseen-experiment")
    assert isinstance(model, StackedLPM) and tuple(model.members) == STACKED_MEMBERS
    out = run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                        models=["lpm_stacked"], seeds=[0], resources=res)
    assert out["error"].iloc[0] == "" and np.isfinite(out["pearson_per_signature"].iloc[0])
    # shared effects across contexts: copying the other contexts must carry weight
    assert "other_contexts" in out["detail"].iloc[0]


def test_every_registered_name_builds_and_unknown_names_are_refused():
    from models.module import LPMConfig
    from models.registry import MODEL_NAMES, build_model

    res = Resources(lpm_config=LPMConfig.paper(max_epochs=1))
    for name in MODEL_NAMES:
        model = build_model(name, seed=0, resources=res)
        assert hasattr(model, "fit") and hasattr(model, "predict"), name
    assert expand_model_names(["production", "baselines"], _data(), res)[0] == "production"
    with pytest.raises(ValueError, match="unknown model 'magic'"):
        build_model("magic", seed=0, resources=res)


def test_production_runs_through_the_same_path_and_records_its_choice():
    from models.module import LPMConfig
    from models.predictor import ProductionPredictor

    res = Resources(lpm_config=LPMConfig.paper(max_epochs=2))
    out = run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                        models=["production", "other_contexts"], seeds=[0], resources=res)
    assert (out["error"] == "").all() and np.isfinite(out["pearson_per_signature"]).all()
    detail = out.set_index("model").at["production", "detail"]
    # shared effects across contexts: other_contexts (alone or stacked) wins on validation
    assert "validation r" in detail and "over other_contexts" in detail
    model = harness.build_model("production", seed=0, resources=res, split_kind="unseen-experiment")
    assert isinstance(model, ProductionPredictor)
    assert tuple(model.members) == ("lpm", "context_mean", "other_contexts", "similar_contexts",
                                    "similar_perturbations", "linear", "network_knn", "corum_knn", "mechanism_knn")


def test_lpm_and_production_together_fit_one_lpm_per_seed(lpm_fits):
    """The `lpm` row is production's LPM member: a real LPM, fitted once per seed (counted at LPM.fit)."""
    from models.module import LPMConfig

    fitted = lpm_fits
    res = Resources(lpm_config=LPMConfig.paper(max_epochs=2, embed_dim=8, hidden_dim=16))
    out = run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                        models=["lpm", "production", "context_mean"], seeds=[0, 1], resources=res)
    assert fitted == [0, 1]
    assert list(out["model"]) == ["lpm", "production", "context_mean"] * 2
    assert (out["error"] == "").all() and np.isfinite(out["pearson_per_signature"]).all()
    lpm = out[out["model"] == "lpm"]
    assert lpm["detail"].str.match(r"\d+ epochs, best \d+").all()
    # production's fit time includes its member's, which is the lpm row's whole fit
    assert (out.loc[out["model"] == "production", "fit_s"].to_numpy() >= lpm["fit_s"].to_numpy()).all()
    fitted.clear()
    run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                  models=["lpm"], seeds=[0], resources=res)
    assert fitted == [0]  # alone, the lpm row fits its own


def test_a_residual_lpm_row_says_which_base_it_chose_on_validation():
    from models.lpm import BASE_CANDIDATES
    from models.module import LPMConfig

    cfg = LPMConfig(max_epochs=1, embed_dim=8, hidden_dim=16, encoder_hidden=16, use_compound_encoder=False,
                    use_context_features=False, use_gene_graph=False, use_targets=False)
    out = run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                        models=["lpm"], seeds=[0], resources=Resources(lpm_config=cfg))
    detail = out.at[0, "detail"]
    assert detail.split(", base ")[1] in BASE_CANDIDATES, detail


def test_a_failed_shared_lpm_fit_fails_both_rows_without_refitting(monkeypatch):
    from models.lpm import LPM
    from models.module import LPMConfig

    calls = []

    def broken_fit(self, *args, **kwargs):
        calls.append(self.seed)
        raise RuntimeError("no convergence")

    monkeypatch.setattr(LPM, "fit", broken_fit)
    out = run_benchmark(_data(n_ctx=3, n_pert=10, n_readout=8), "unseen-experiment", context="ctx0",
                        models=["production", "lpm", "context_mean"], seeds=[0],
                        resources=Resources(lpm_config=LPMConfig.paper(max_epochs=1)))
    assert calls == [0]
    errors = out.set_index("model")["error"]
    assert errors["lpm"] == errors["production"] == "RuntimeError: no convergence" and errors["context_mean"] == ""

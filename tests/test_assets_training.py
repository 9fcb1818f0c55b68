"""The `evaluation_report` asset, materialized in process on a stub training set (no Neo4j): one real
LPM fit per seed (the `lpm` row is the production predictor's member), said so in its metadata."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from graph.settings import reload_settings


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("PERTURBGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERTURBGRAPH_DEVICE", "cpu")
    reload_settings()
    yield tmp_path / "home"
    monkeypatch.undo()
    reload_settings()


def _training_set(tmp_path):
    from pipelines.training_steps import TrainingSet

    rng = np.random.default_rng(0)
    effect = rng.normal(size=(12, 10))
    rows = [("sim", f"S{c}_{p}", f"CL{c}", f"shRNA:G{p}", "shRNA", f"G{r}", effect[p, r] + 0.3 * rng.normal())
            for c in range(3) for p in range(12) for r in range(10)]
    table = pd.DataFrame(rows, columns=["dataset", "signature_id", "context", "perturbation", "perturbation_type",
                                        "readout", "value"])
    path = tmp_path / "table.parquet"
    table.to_parquet(path, index=False)
    return TrainingSet(str(path), "snap0002", ("sim",), ("0" * 64,), len(table), simulated=True)


def test_evaluation_report_fits_one_lpm_per_seed(home, tmp_path, lpm_fits):
    from pipelines.assets.training import evaluation_report
    from pipelines.resources import PerturbGraphSettings

    ts = _training_set(tmp_path)

    @dg.asset(name="training_set")
    def stub_training_set():
        return ts

    result = dg.materialize([stub_training_set, evaluation_report],
                            resources={"perturbgraph": PerturbGraphSettings(home=str(home))},
                            run_config={"ops": {"evaluation_report": {"config": {"seeds": [0, 1], "max_epochs": 1,
                                                                                 "target_context": "CL2"}}}})
    assert lpm_fits == [0, 1]
    report = result.output_for_node("evaluation_report")
    assert report["context"] == "CL2" and {"lpm", "production", "context_mean"} <= set(report["means"])
    assert [r["seed"] for r in report["production_vs_strongest_baseline"]["per_seed"]] == [0, 1]
    # which candidate each seed's `production` row is, named among the candidates it was chosen from
    assert set(report["production_choices"]) == {0, 1}
    candidates = set(report["means"]) | {"lpm_stacked"}
    assert all(why.split(" ")[0] in candidates for why in report["production_choices"].values())
    meta = result.asset_materializations_for_node("evaluation_report")[0].metadata
    assert "one LPM fit per seed" in meta["lpm_row"].value
    assert meta["production_wins"].value + meta["production_losses"].value + meta["production_ties"].value == 2
    assert "One LPM fit per seed" in evaluation_report.specs_by_key[evaluation_report.key].description

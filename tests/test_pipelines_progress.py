"""Training progress in the Dagster run log: lpm_model logs epoch, loss, validation loss, triples/s and
ETA within epochs at the configured interval and after every epoch. No Neo4j: the training set is a
stub asset with a small synthetic table."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from graph.settings import reload_settings


@pytest.fixture
def progress_every_tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("PERTURBGRAPH_PROGRESS_EVERY_S", "0.001")  # an artificially slow fit, seen often
    monkeypatch.setenv("PERTURBGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PERTURBGRAPH_DEVICE", "cpu")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


def _training_set(tmp_path):
    from pipelines.assets.training import TrainingSet

    rng = np.random.default_rng(0)
    ci, pi, ri = (a.ravel() for a in np.meshgrid(np.arange(3), np.arange(20), np.arange(30), indexing="ij"))
    table = pd.DataFrame({"dataset": "sim", "signature_id": [f"S{c}_{p}" for c, p in zip(ci, pi, strict=True)],
                          "context": [f"CL{c}" for c in ci], "perturbation": [f"shRNA:G{p}" for p in pi],
                          "perturbation_type": "shRNA", "readout": [f"G{r}" for r in ri],
                          "value": rng.normal(size=ci.size).astype(np.float32)})
    for col in ("context", "perturbation", "perturbation_type", "readout"):
        table[col] = table[col].astype("category")
    path = tmp_path / "table.parquet"
    table.to_parquet(path, index=False)
    return TrainingSet(str(path), "snap0001", ("sim",), ("0" * 64,), len(table), simulated=True)


def test_lpm_model_logs_training_progress_to_the_run_log(progress_every_tiny, tmp_path):
    from pipelines.assets.training import lpm_model
    from pipelines.resources import PerturbGraphSettings

    ts = _training_set(tmp_path)

    @dg.asset(name="training_set")
    def stub_training_set():
        return ts

    instance = dg.DagsterInstance.ephemeral()
    config = {"max_epochs": 2, "patience": 5, "embed_dim": 8, "hidden_dim": 16}
    result = dg.materialize([stub_training_set, lpm_model], instance=instance,
                            resources={"perturbgraph": PerturbGraphSettings(home=str(tmp_path / "home"))},
                            run_config={"ops": {"lpm_model": {"config": config}}},
                            selection=[lpm_model.key, dg.AssetKey("training_set")], raise_on_error=False)
    messages = [e.user_message for e in instance.all_logs(result.run_id) if e.step_key == "lpm_model"]
    progress = [m for m in messages if m.startswith("LPM epoch")]
    ends = [m for m in progress if "done" in m]
    assert [m.split(":")[0] for m in ends] == ["LPM epoch 1/2 done", "LPM epoch 2/2 done"], messages[-20:]
    assert all("valid " in m and "triples/s" in m and "ETA" in m for m in ends)
    assert any(" step " in m for m in progress)  # within an epoch, at the (tiny) configured interval

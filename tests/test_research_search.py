"""benchmarks/research_search.py (issue 17, per-dataset configuration search): a 2-trial search on a toy world
scores trials on validation experiments only, records every trial and turns its params into LPMConfig overrides."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from research_search import REFERENCE, default_params, overrides_of  # noqa: E402

from models.evaluation.harness import Resources  # noqa: E402
from models.evaluation.splits import make_split  # noqa: E402
from models.module import LPMConfig  # noqa: E402

TOY_SPACE = {"embed_dim": (8, 16), "hidden_dim": (16, 32), "num_layers": (1, 2), "dropout": (0.0, 0.3),
             "lr": (1e-3, 1e-2), "weight_decay": (1e-4, 0.1), "lr_decay": (0.9, 1.0), "batch_triples": (100, 400),
             "lr_rule": ("none", "sqrt_batch")}


def _world(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contexts, readouts = ["A", "B", "C"], [f"g{k}" for k in range(6)]
    prof, off = rng.normal(size=(24, len(readouts))), rng.normal(size=(len(contexts), len(readouts)))
    rows = [(c, f"drug{p}", "compound", r, float(off[i, k] + prof[p, k] + 0.3 * rng.normal()))
            for i, c in enumerate(contexts) for p in range(24) for k, r in enumerate(readouts)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def test_overrides_apply_the_variant_and_the_sqrt_batch_rule():
    p = {**default_params("lpm_simctx_rstop"), "batch_triples": 4000}
    assert overrides_of(p)["lr"] == p["lr"] and overrides_of(p)["similar_contexts_base"]
    assert overrides_of({**p, "lr_rule": "sqrt_batch"})["lr"] == pytest.approx(p["lr"] * 2)
    assert overrides_of(default_params("lpm")) == {"base_choice": "fixed", **{
        k: v for k, v in default_params("lpm").items() if k not in ("variant", "lr_rule")}}  # measured so
    LPMConfig(**overrides_of({**p, **REFERENCE}))  # every key is an LPMConfig field


def test_two_trial_search_scores_validation_only_and_records_every_trial(monkeypatch):
    import research_search

    from models.evaluation import metrics

    df = _world()
    split = make_split(df, "unseen-experiment", context="A", seed=0)
    scored = []
    real = metrics.per_signature_pearson
    monkeypatch.setattr(metrics, "per_signature_pearson",
                        lambda rows, t, p: scored.append(set(zip(rows.context, rows.perturbation, strict=True)))
                        or real(rows, t, p))
    base = LPMConfig(max_epochs=2, patience=1, encoder_hidden=16, use_compound_encoder=False,
                     use_context_features=False, use_gene_graph=False)
    seen = []
    out = research_search.search(split, Resources(), base, ("lpm_rstop", "lpm_simctx_rstop"), trials=2,
                                 timeout=None, space=TOY_SPACE, enqueue=False, on_trial=seen.append)
    assert out["n_trials"] == out["n_complete"] == 2 and len(seen) == 2 and out["trials_budget"] == 2
    assert out["spent_s"] > 0 and out["sampler_seed"] == 0
    for rec in out["trials"]:
        assert math.isfinite(rec["valid_r"]) and -1 <= rec["valid_r"] <= 1 and 1 <= rec["epochs"] <= 2
        assert rec["overrides"]["stop_metric"] == "pearson_per_signature"
    assert out["best"]["valid_r"] == max(r["valid_r"] for r in out["trials"])
    held = split.experiments("test")
    assert scored and all(not (s & held) for s in scored)  # the test experiments were never scored
    assert any(s == split.experiments("valid") for s in scored)  # the objective: the validation experiments


def test_a_continuation_tells_the_sampler_the_earlier_trials_inside_its_space():
    import research_search

    split = make_split(_world(), "unseen-experiment", context="A", seed=0)
    base = LPMConfig(max_epochs=1, patience=1, encoder_hidden=16, use_compound_encoder=False,
                     use_context_features=False, use_gene_graph=False)
    variants = ("lpm_rstop", "lpm_simctx_rstop")
    first = research_search.search(split, Resources(), base, variants, trials=2, timeout=None, space=TOY_SPACE,
                                   enqueue=False)
    narrow = {**TOY_SPACE, "hidden_dim": (first["trials"][0]["params"]["hidden_dim"],)}
    inside = sum(r["params"]["hidden_dim"] in narrow["hidden_dim"] for r in first["trials"])
    then = research_search.search(split, Resources(), base, variants, trials=1, timeout=None, space=narrow,
                                  enqueue=False, sampler_seed=1, earlier=first["trials"])
    assert then["n_earlier_told"] == inside >= 1 and then["n_trials"] == 1 == len(then["trials"])


def test_lr_rule_check_scales_only_the_rule_rows():
    import research_search

    split = make_split(_world(), "unseen-experiment", context="A", seed=0)
    base = LPMConfig(max_epochs=1, patience=1, embed_dim=8, hidden_dim=16, encoder_hidden=16,
                     use_compound_encoder=False, use_context_features=False, use_gene_graph=False)
    rows = research_search.lr_rule_check(split, Resources(), base, "lpm_rstop", batches=(400,))
    assert [(r["batch"], r["rule"]) for r in rows] == [(400, "none"), (400, "sqrt_batch")]
    assert rows[0]["lr"] == LPMConfig().lr and rows[1]["lr"] == pytest.approx(LPMConfig().lr * math.sqrt(0.4))
    assert all(math.isfinite(r["valid_r"]) for r in rows)

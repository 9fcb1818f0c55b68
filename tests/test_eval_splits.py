"""Splits hold out whole experiments, are seed-controlled, and never leak test experiments into training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models.evaluation.splits import (
    make_split,
    unseen_compound,
    unseen_context,
    unseen_experiment,
    unseen_gene,
)


def _table(n_ctx=4, n_cpd=10, n_gene=6, n_readout=5, seed=0) -> pd.DataFrame:
    """Every perturbation in every context; compounds c0.., genetic perturbations g0.."""
    rng = np.random.default_rng(seed)
    rows = []
    perts = [(f"c{i}", "compound") for i in range(n_cpd)] + [(f"g{i}", "CRISPRi") for i in range(n_gene)]
    for c in range(n_ctx):
        for p, t in perts:
            for r in range(n_readout):
                rows.append((f"ctx{c}", p, t, f"r{r}", rng.normal()))
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def _pairs(df):
    return set(zip(df["context"], df["perturbation"], strict=False))


def _assert_partition(df, split):
    assert len(split.train) + len(split.valid) + len(split.test) == len(df)
    assert not (_pairs(split.test) & _pairs(split.train))
    assert not (_pairs(split.test) & _pairs(split.valid))
    assert not (_pairs(split.valid) & _pairs(split.train))


def test_unseen_experiment_holds_out_only_target_context_experiments():
    df = _table(n_cpd=14, n_gene=6)  # 20 perturbations in the target: 3 test, 3 valid
    split = unseen_experiment(df, "ctx1", seed=3)
    _assert_partition(df, split)
    assert set(split.test["context"]) == {"ctx1"} and set(split.valid["context"]) == {"ctx1"}
    assert split.test["perturbation"].nunique() == 3 and split.valid["perturbation"].nunique() == 3
    # Every other context is fully in training; test perturbations are seen in other contexts.
    other = df[df["context"] != "ctx1"]
    assert _pairs(other) <= _pairs(split.train)
    assert set(split.test["perturbation"]) <= set(split.train["perturbation"])
    # Whole signatures: every readout of a test experiment is in test.
    assert (split.test.groupby(["context", "perturbation"]).size() == 5).all()


def test_unseen_experiment_is_seed_controlled():
    df = _table(n_cpd=30)
    a, b, c = (unseen_experiment(df, "ctx0", seed=s) for s in (0, 0, 1))
    assert _pairs(a.test) == _pairs(b.test)
    assert _pairs(a.test) != _pairs(c.test)
    assert a.seed == 0 and "ctx0" in a.description


def test_unseen_compound_holds_compounds_out_of_every_context():
    df = _table(n_cpd=20)
    split = unseen_compound(df, seed=1)
    _assert_partition(df, split)
    test_perts = set(split.test["perturbation"])
    assert len(test_perts) == 3 and all(p.startswith("c") for p in test_perts)
    assert not test_perts & set(split.train["perturbation"]) and not test_perts & set(split.valid["perturbation"])
    assert set(split.test["context"]) == set(df["context"])  # held out everywhere
    assert {f"g{i}" for i in range(6)} <= set(split.train["perturbation"])  # genetic ones untouched


def test_unseen_gene_holds_genetic_perturbations_out():
    df = _table(n_gene=10)
    split = unseen_gene(df, seed=2)
    _assert_partition(df, split)
    test_perts = set(split.test["perturbation"])
    assert test_perts and all(p.startswith("g") for p in test_perts)
    assert not test_perts & set(split.train["perturbation"])


def test_unseen_context_leaves_one_context_out():
    df = _table(n_ctx=8)
    split = unseen_context(df, "ctx2", seed=0)
    _assert_partition(df, split)
    assert set(split.test["context"]) == {"ctx2"}
    assert "ctx2" not in set(split.train["context"]) | set(split.valid["context"])
    assert split.valid["context"].nunique() == 1  # 15% of 7 remaining contexts, at least one


def test_split_is_frozen_and_errors_are_clear():
    df = _table()
    split = make_split(df, "unseen-experiment", context="ctx0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.seed = 5
    with pytest.raises(ValueError, match="not in the data"):
        unseen_experiment(df, "nope")
    with pytest.raises(ValueError, match="needs a target context"):
        make_split(df, "unseen-experiment")
    with pytest.raises(ValueError, match="unknown split"):
        make_split(df, "random")
    with pytest.raises(ValueError, match="at least two"):
        unseen_gene(_table(n_gene=0))

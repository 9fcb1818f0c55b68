"""benchmarks/research_pooled.py (issue 17, pooled training): the pooled parts keep every section's held-out
experiments out of training, and the pooled LPM starts from each dataset's own residual base."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from research_pooled import PooledLPM, pooled_parts  # noqa: E402

from models.evaluation.splits import make_split  # noqa: E402
from models.lpm import LPM, LPMConfig  # noqa: E402


def _dataset(prefix: str, contexts, n_pert: int, readouts, shift: float, seed: int) -> pd.DataFrame:
    """A small dense dataset: value = context offset + perturbation profile + noise, on its own scale."""
    rng = np.random.default_rng(seed)
    prof = rng.normal(size=(n_pert, len(readouts)))
    off = rng.normal(size=(len(contexts), len(readouts)))
    rows = [(c, f"{prefix}{p}", "compound", r, shift + float(off[i, k] + prof[p, k] + 0.3 * rng.normal()))
            for i, c in enumerate(contexts) for p in range(n_pert) for k, r in enumerate(readouts)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def _two():
    # the readouts overlap (g2, g3), as Tahoe's and Replogle's do; the scales differ (shift)
    a = _dataset("drug", ["A1", "A2", "A3"], 20, ["g0", "g1", "g2", "g3"], 0.0, 0)
    b = _dataset("kd", ["B1", "B2"], 20, ["g2", "g3", "g4", "g5", "g6"], 3.0, 1)
    return a, b


def test_pooled_parts_keep_every_sections_held_out_experiments_out():
    a, b = _two()
    splits = {"a": make_split(a, "unseen-experiment", context="A1", seed=0),
              "b": make_split(b, "unseen-experiment", context="B2", seed=0)}
    train, valid, group = pooled_parts(splits)
    assert len(train) == sum(len(s.train) for s in splits.values())
    assert len(valid) == sum(len(s.valid) for s in splits.values())
    for s in splits.values():
        held = s.experiments("test")
        assert held and not held & set(zip(train.context, train.perturbation, strict=True))
        assert not held & set(zip(valid.context, valid.perturbation, strict=True))
    assert group == {"A1": "a", "A2": "a", "A3": "a", "B1": "b", "B2": "b"}


def test_pooled_parts_refuse_a_shared_context_and_a_leaked_experiment():
    a, b = _two()
    b_in_a = b.assign(context=b["context"].replace({"B1": "A2"}))
    with pytest.raises(ValueError, match="disjoint contexts"):
        pooled_parts({"a": make_split(a, "unseen-experiment", context="A1", seed=0),
                      "b": make_split(b_in_a, "unseen-experiment", context="B2", seed=0)})
    sa = make_split(a, "unseen-experiment", context="A1", seed=0)
    leaky = type(sa)(pd.concat([sa.train, sa.test]), sa.valid, sa.test, sa.description, sa.seed, sa.kind)
    with pytest.raises(ValueError, match="held-out experiments in the pooled training"):
        pooled_parts({"a": leaky, "b": make_split(b, "unseen-experiment", context="B2", seed=0)})


def test_pooled_lpm_starts_from_each_datasets_own_base():
    a, b = _two()
    cfg = LPMConfig(embed_dim=8, hidden_dim=16, encoder_hidden=16, max_epochs=1, batch_triples=100, base_choice="fixed",
                    use_compound_encoder=False, use_context_features=False, use_gene_graph=False)
    splits = {"a": make_split(a, "unseen-experiment", context="A1", seed=0),
              "b": make_split(b, "unseen-experiment", context="B2", seed=0)}
    train, valid, group = pooled_parts(splits)
    pooled = PooledLPM(cfg, side=None, seed=0, context_group=group).fit(train, valid, progress=False, device="cpu")
    naive = LPM(cfg, seed=0).fit(train, valid, progress=False, device="cpu")
    assert len(pooled.module.base.shrinks) == 2
    for s in splits.values():
        alone = LPM(cfg, seed=0).fit(s.train, s.valid, progress=False, device="cpu")
        own = alone.predict_base(s.test)
        np.testing.assert_allclose(pooled.predict_base(s.test), own, atol=1e-9)
        # one base over both datasets mixes their scales into the across-context mean of g2 and g3
        assert np.abs(naive.predict_base(s.test) - own).max() > 0.1
        assert np.isfinite(pooled.predict(s.test)).all()

import numpy as np
import pandas as pd
import pytest

from models.features import (
    Standardizer,
    Vocab,
    compound_feature_dim,
    compound_features,
    dose_features,
    table_snapshot_id,
)


def test_vocab_is_one_based_with_unknown_zero():
    v = Vocab(["b", "a", "b"])
    assert v.names == ["b", "a"] and len(v) == 2
    assert v.index(["a", "b", "zzz"]).tolist() == [2, 1, 0]


def test_compound_features_distinguish_structures_and_handle_bad_smiles():
    x = compound_features(["CCO", "c1ccccc1O", "not-a-smiles", None], fp_bits=256)
    assert x.shape == (4, compound_feature_dim(256)) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x[0, -1] == 1 and x[1, -1] == 1
    assert not np.allclose(x[0], x[1])
    assert (x[2] == 0).all() and (x[3] == 0).all()  # unparseable / missing: zero row, flag 0
    # counts are log1p'd: benzene ring repeats stay small
    assert x[:, :256].max() < np.log1p(50)


def test_dose_feature_is_log10_um():
    d = dose_features([10.0, 0.1, None, -1.0, float("nan")])
    np.testing.assert_allclose(d[:2], [[1.0, 1.0], [-1.0, 1.0]], atol=1e-6)
    assert (d[2:] == 0).all()


def test_standardizer_uses_training_stats_and_is_nan_safe():
    train = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0]])
    s = Standardizer.fit(train)
    z = s.transform(np.array([[2.0, 5.0, np.nan], [5.0, 7.0, np.inf]]))
    assert np.isfinite(z).all()
    assert z[0, 0] == pytest.approx(0.0) and z[1, 0] == pytest.approx(3.0)  # mean 2, std 1 from train only
    assert z[0, 1] == 0.0 and z[1, 1] == pytest.approx(2.0)  # constant column: std 1
    assert z[0, 2] == 0.0


def test_snapshot_id_tracks_content():
    df = pd.DataFrame({"context": ["a", "b"], "perturbation": ["p", "q"], "readout": ["g", "h"], "value": [1.0, 2.0]})
    h = table_snapshot_id(df)
    assert h == table_snapshot_id(df.copy())
    df2 = df.copy()
    df2.loc[1, "value"] = 2.5
    assert table_snapshot_id(df2) != h

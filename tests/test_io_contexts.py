"""Cell-line name normalisation and the cell-line feature matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.io.common import InputFileError
from graph.io.contexts import UNKNOWN_CONTEXT, context_record, normalise_context_name, read_cell_line_features


@pytest.mark.parametrize("raw, expected", [
    ("HEC-1-A", "HEC1A"), ("Panc 03.27", "PANC0327"), ("THP-1", "THP1"), ("MIA PaCa-2", "MIAPACA2"),
    ("LoVo", "LOVO"), ("NCI-H23", "NCIH23"), ("a375", "A375"), ("HCT 15", "HCT15"), ("\uff28\uff25\uff2b293", "HEK293"),
])
def test_normalise_context_name(raw, expected):
    assert normalise_context_name(raw) == expected


def test_unknown_context_is_flagged():
    for raw in ["", None, "-666", "NA"]:
        assert normalise_context_name(raw) == UNKNOWN_CONTEXT
    rec = context_record("", source="kd.gctx")
    assert rec.context_id == "unknown" and rec.kind == "unknown" and "kd.gctx" in rec.name
    assert context_record("THP-1").name == "THP-1" and context_record("THP-1").context_id == "THP1"


def _features(tmp_path):
    df = pd.DataFrame({
        "cell_id": ["A375", "A375", "HEC-1-A", "HEC-1-A", "HEC1A"],
        "gene_symbol": ["G1", "G2", "G1", "G2", "G2"],
        "basex_rnaseq": np.array([1.0, np.nan, 3.0, 4.0, 99.0], dtype="float32"),
        "basex_affx": np.float32(1), "copy_number": np.float32(0), "is_expressed": [True, False, True, True, True],
    })
    path = tmp_path / "features.parquet"
    df.to_parquet(path)
    return path


def test_a_tables_consensus_context_is_no_cell_line():
    """A table without a context column is context-free consensus signatures (identifiers.CONSENSUS_CONTEXT);
    its Context node was typed 'cell_line' like a real line."""
    rec = context_record("CONSENSUS", source="consensus.csv")
    assert (rec.context_id, rec.kind) == ("CONSENSUS", "consensus")
    assert context_record("A375").kind == "cell_line"


def test_feature_matrix_nan_and_duplicates(tmp_path):
    path = _features(tmp_path)
    f = read_cell_line_features(path, "basex_rnaseq")
    assert f.matrix.shape == (2, 2) and list(f.matrix.index) == ["A375", "HEC1A"]
    assert np.isnan(f.matrix.loc["A375", "G2"]) and f.missing_fraction == 0.25
    assert f.matrix.loc["HEC1A", "G2"] == 4.0  # "HEC-1-A" came first; "HEC1A" repeat counted
    assert f.report.duplicates_resolved == 1
    filled = read_cell_line_features(path, "basex_rnaseq", fill="gene_mean")
    assert filled.matrix.loc["A375", "G2"] == 4.0 and filled.missing_fraction == 0.25
    assert read_cell_line_features(path, "basex_rnaseq", fill="zero").matrix.loc["A375", "G2"] == 0.0
    sub = read_cell_line_features(path, "is_expressed", contexts=["hec-1-a", "K562"], genes=["G1"])
    assert list(sub.matrix.index) == ["HEC1A", "K562"] and sub.matrix.iloc[0, 0] == 1.0 and np.isnan(sub.matrix.iloc[1, 0])


def test_feature_errors(tmp_path):
    path = _features(tmp_path)
    with pytest.raises(ValueError, match="unknown feature"):
        read_cell_line_features(path, "mutations")
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"cell": ["A"], "basex_rnaseq": [1.0]}).to_parquet(bad)
    with pytest.raises(InputFileError, match="missing columns"):
        read_cell_line_features(bad)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(InputFileError, match="junk.parquet: not a readable parquet"):
        read_cell_line_features(junk)


@pytest.mark.shared_data
def test_real_cell_line_features(shared_data):
    f = read_cell_line_features(shared_data / "contexts" / "lincs_cell_line_features.parquet", "basex_rnaseq")
    assert f.matrix.shape[0] == 63 and f.matrix.shape[1] > 14_000
    assert f.matrix.dtypes.unique().tolist() == [np.dtype("float32")]
    assert {"THP1", "LOVO", "A375"} <= set(f.matrix.index)
    assert 0 < f.missing_fraction < 0.5
    assert f.report.read == 942_417

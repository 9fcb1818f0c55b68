"""The one validation step (graph/io/validation.py): reasons, duplicate policies, read = accepted + quarantined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.io.validation import CONFLICT, INVALID_RANK, validate_measurements


def _table(values, readouts=None, perts=None):
    n = len(values)
    return pd.DataFrame({"context": ["A"] * n, "perturbation": perts or ["p"] * n,
                         "readout": readouts or [f"G{i}" for i in range(n)], "value": values})


def _balanced(v):
    assert v.read == v.n_accepted + v.quarantined
    assert len(v.accepted) == v.n_accepted - v.duplicates_resolved
    assert (v.reason != "").sum() == v.quarantined


def test_non_finite_and_text_values_are_quarantined_with_reasons():
    v = validate_measurements(_table([1.0, np.nan, np.inf, -np.inf, "abc", "2.5"]), "f.csv")
    _balanced(v)
    assert v.accepted["value"].tolist() == [1.0, 2.5]
    assert v.reasons == {"value missing or not a number": 2, "value infinite": 2}
    assert {q.source for q in v.quarantine} == {"f.csv"} and len(v.quarantine) == 4
    assert v.quarantine[0].record_key == "A|p|G1" and v.quarantine[0].raw["readout"] == "G1"


def test_invalid_ranks():
    df = pd.DataFrame({"context": "A", "perturbation": "p", "readout": [f"G{i}" for i in range(7)],
                       "rank": [1, 0, -7, 999, 2.5, 20, 3], "n_ranked": [20, 20, 20, 20, 20, 20, 1]})
    v = validate_measurements(df, "r.parquet")
    _balanced(v)
    assert v.accepted["value"].tolist() == [1.0, -1.0]
    assert v.reasons == {INVALID_RANK: 5}
    up = validate_measurements(df, "r.parquet", score="up")
    assert up.accepted["value"].tolist() == pytest.approx([1.0, 1 / 20])


def test_duplicates_exact_collapsed_conflicting_by_policy():
    df = _table([1.0, 1.0, 2.0, 3.0, 5.0], readouts=["G1", "G1", "G2", "G2", "G3"])
    v = validate_measurements(df, "d.csv", duplicates="quarantine")
    _balanced(v)
    assert v.accepted.set_index("readout")["value"].to_dict() == {"G1": 1.0, "G3": 5.0}
    assert v.duplicates_resolved == 1 and v.reasons == {CONFLICT: 2}
    assert (v.exact_duplicate_keys, v.conflicting_keys) == (1, 1)
    assert any("1 keys with conflicting values (policy 'quarantine')" in n for n in v.notes)
    mean = validate_measurements(df, "d.csv")  # the default (DEFAULT_DUPLICATES): averaged, counted
    _balanced(mean)
    assert any("1 keys with conflicting values (policy 'mean')" in n for n in mean.notes)
    assert mean.accepted.set_index("readout")["value"].to_dict() == {"G1": 1.0, "G2": 2.5, "G3": 5.0}
    assert mean.duplicates_resolved == 2 and mean.quarantined == 0
    first = validate_measurements(df, "d.csv", duplicates="first")
    assert first.accepted.set_index("readout")["value"].to_dict() == {"G1": 1.0, "G2": 2.0, "G3": 5.0}
    with pytest.raises(ValueError, match="duplicate policy"):
        validate_measurements(df, "d.csv", duplicates="last")


def test_a_bad_copy_does_not_make_a_conflict():
    """A NaN copy is quarantined for its value; the remaining copy is then unique, not a conflict."""
    v = validate_measurements(_table([1.0, np.nan], readouts=["G1", "G1"]), "n.csv")
    assert v.accepted["value"].tolist() == [1.0] and v.reasons == {"value missing or not a number": 1}


def test_empty_keys_and_prior_reasons():
    df = _table([1.0, 2.0, 3.0, 4.0], readouts=["G1", "", "G3", "BOGUS"])
    prior = np.array(["", "", "unknown perturbation type 'x'", ""], dtype=object)
    v = validate_measurements(df, "k.csv", prior_reason=prior)
    _balanced(v)
    assert v.accepted["readout"].tolist() == ["G1", "BOGUS"]  # an unknown readout keeps its name
    assert v.reasons == {"empty readout": 1, "unknown perturbation type 'x'": 1}


def test_quarantine_listing_is_capped_but_counted():
    v = validate_measurements(_table([np.nan] * 50), "big.csv", max_records=10)
    assert v.quarantined == 50 and len(v.quarantine) == 10 and len(v.accepted) == 0
    assert any("only the first 10" in n for n in v.notes)
    assert v.report("big.csv").read == 50


def _model_rows():
    """Two datasets and replicate signatures of one (context, perturbation, readout), as the store gives them."""
    df = pd.DataFrame({"dataset": ["d1", "d1", "d1", "d2", "d1"],
                       "signature_id": ["d1:s1", "d1:s1", "d1:s2", "d2:s9", "d1:s2"],
                       "context": ["A", "A", "A", "A", "B"], "perturbation": ["p", "p", "p", "p", "p"],
                       "readout": ["G1", "G2", "G1", "G1", "G1"],
                       "value": np.array([1.0, 5.0, 2.0, 4.5, 7.0], np.float32)})
    return df.astype({c: "category" for c in ("dataset", "signature_id", "context", "perturbation", "readout")})


def test_rows_sharing_a_model_key_are_averaged_counted_and_named():
    from graph.io.validation import average_duplicate_keys

    out, counts = average_duplicate_keys(_model_rows(), "training_set")
    assert counts == {"duplicate_keys": 1, "duplicate_rows": 3, "duplicate_keys_across_datasets": 1,
                      "duplicate_examples": "A|p|G1 (3 rows)"}
    # one row per key, first copy's other columns, the table's order, the mean (not the last value 4.5)
    assert out[["signature_id", "context", "readout"]].astype(str).values.tolist() == [
        ["d1:s1", "A", "G1"], ["d1:s1", "A", "G2"], ["d1:s2", "B", "G1"]]
    assert out["value"].dtype == np.float32 and out["value"].tolist() == pytest.approx([2.5, 5.0, 7.0])
    assert list(out["signature_id"].cat.categories) == ["d1:s1", "d1:s2"]


def test_a_table_without_repeated_keys_is_returned_as_it_is():
    from graph.io.validation import average_duplicate_keys, require_one_row_per_key

    df = _model_rows().iloc[[0, 1, 4]]
    out, counts = average_duplicate_keys(df, "training_set")
    assert out is df and counts["duplicate_keys"] == 0
    require_one_row_per_key(df, "rows")
    with pytest.raises(ValueError, match=r"training rows: 1 \(context, perturbation, readout\) keys .*3 rows.*"
                                         r"A\|p\|G1 \(3 rows\).*average_duplicate_keys"):
        require_one_row_per_key(_model_rows(), "training rows")

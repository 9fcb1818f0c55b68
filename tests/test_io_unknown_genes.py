"""Genes the gene table does not resolve: one rule (graph/io/validation.GeneCheck) on every reader.

The same 3 x 3 experiment in four formats (long table, wide table, GCTX, bulk h5ad): a CRISPR
perturbation of a known gene (TP53), one of a gene the table does not know (NOTAGENE), a compound, and
readouts TP53, MYC and FAKE1 (unknown). Policy `keep` (default) accepts the 5 values involving an
unknown gene and reports them; `quarantine` rejects them with the reason; without a gene table
`quarantine` is refused with one line naming the file.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from graph.io.common import InputFileError
from graph.io.gctx import write_gctx
from graph.io.genes import GeneResolver
from graph.io.options import ReadOptions
from graph.io.readers import open_streaming_reader, read_h5ad
from graph.io.validation import UNKNOWN_READOUT, UNKNOWN_TARGET, validate_measurements
from graph.records import GeneRecord

PERTS = [("TP53", "CRISPRi"), ("NOTAGENE", "CRISPRi"), ("drugA", "compound")]
READOUTS = ["TP53", "MYC", "FAKE1"]
VALUES = np.arange(9, dtype=np.float32).reshape(3, 3) + 1.0
RESOLVER = GeneResolver([GeneRecord(7157, "TP53"), GeneRecord(4609, "MYC")])
# values with an unknown gene: NOTAGENE's row (3, its target) + FAKE1 of TP53 and drugA (2, the readout)
UNKNOWN = {UNKNOWN_TARGET: 3, UNKNOWN_READOUT: 2}


def _write(tmp_path, kind: str):
    if kind == "long_table":
        rows = [("A375", p, t, r, float(VALUES[i, j])) for i, (p, t) in enumerate(PERTS) for j, r in enumerate(READOUTS)]
        path = tmp_path / "long.csv"
        pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"]).to_csv(
            path, index=False)
    elif kind == "wide_table":
        path = tmp_path / "wide.csv"
        wide = pd.DataFrame(VALUES, columns=READOUTS)
        wide.insert(0, "perturbation_type", [t for _, t in PERTS])
        wide.insert(0, "perturbation", [p for p, _ in PERTS])
        wide.insert(0, "context", "A375")
        wide.to_csv(path, index=False)
    elif kind == "gctx":
        path = write_gctx(tmp_path / "x.gctx", VALUES, pd.DataFrame({"id": ["r1", "r2", "r3"], "pr_gene_symbol": READOUTS}),
                          pd.DataFrame({"id": ["s1", "s2", "s3"], "cell_id": "A375", "pert_iname": [p for p, _ in PERTS],
                                        "pert_type": ["trt_xpr", "trt_xpr", "trt_cp"]}))
    else:
        path = tmp_path / "bulk.h5ad"
        ad.AnnData(X=VALUES, obs=pd.DataFrame({"perturbation": [p for p, _ in PERTS], "cell_line": "A375",
                                               "perturbation_type": [t for _, t in PERTS]}, index=["s1", "s2", "s3"]),
                   var=pd.DataFrame(index=READOUTS)).write_h5ad(path)
    return path


def _read(path, kind: str, options: ReadOptions, resolver=RESOLVER):
    """(accepted long table, quarantine reasons, report notes) through the reader registry."""
    if kind == "h5ad":
        r = read_h5ad(path, "x", options, resolver=resolver, bulk=True)
        return r.long, [q.reason for q in r.quarantine], r.report.notes
    kind_ = "gctx" if kind == "gctx" else kind
    reader = open_streaming_reader(path, kind_, "x", options, resolver=resolver)
    long = pd.concat(list(reader.iter_long()), ignore_index=True)
    return long, [q.reason for q in reader.quarantine], reader.report.notes


KINDS = ["long_table", "wide_table", "gctx", "h5ad"]


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_genes_are_kept_and_counted_by_default(tmp_path, kind):
    long, reasons, notes = _read(_write(tmp_path, kind), kind, ReadOptions())
    assert len(long) == 9 and not reasons
    assert set(long["readout"].astype(str)) == set(READOUTS)
    note = next(n for n in notes if n.startswith("genes the gene table does not resolve"))
    assert "1 readouts (2 values)" in note and "1 perturbation targets (3 values)" in note, note
    assert "FAKE1" in note and "NOTAGENE" in note and "kept (unknown_genes='keep')" in note


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_genes_quarantined_with_their_reason(tmp_path, kind):
    long, reasons, notes = _read(_write(tmp_path, kind), kind, ReadOptions.parse({"unknown_genes": "quarantine"}))
    assert len(long) == 4  # TP53 and drugA on TP53 and MYC
    assert set(long["readout"].astype(str)) == {"TP53", "MYC"}
    assert not long["perturbation"].astype(str).str.contains("NOTAGENE").any()
    assert {r: reasons.count(r) for r in set(reasons)} == UNKNOWN
    assert any("quarantined (unknown_genes='quarantine')" in n for n in notes), notes


@pytest.mark.parametrize("kind", KINDS)
def test_quarantine_without_a_gene_table_is_refused_naming_the_file(tmp_path, kind):
    path = _write(tmp_path, kind)
    with pytest.raises(InputFileError, match=f"{path.name}: unknown_genes=quarantine needs a gene table"):
        _read(path, kind, ReadOptions(unknown_genes="quarantine"), resolver=None)
    long, _, notes = _read(path, kind, ReadOptions(), resolver=None)  # keep: nothing to check, nothing noted
    assert len(long) == 9 and not any("gene table does not resolve" in n for n in notes)


def test_option_values_are_checked():
    assert ReadOptions.parse({"unknown_genes": "quarantine"}).as_text() == {"unknown_genes": "quarantine"}
    with pytest.raises(ValueError, match="unknown_genes must be one of keep, quarantine"):
        ReadOptions.parse({"unknown_genes": "drop"})


def test_validation_marks_unknown_rows_by_policy():
    df = pd.DataFrame({"signature_id": "s", "readout": ["A", "B", "C", "D"], "value": [1.0, np.nan, 2.0, 3.0]})
    unknown = np.array(["", UNKNOWN_READOUT, UNKNOWN_READOUT, UNKNOWN_TARGET], dtype=object)
    keep = validate_measurements(df, "f", keys=("signature_id", "readout"), unknown=unknown)
    # kept rows are counted (the NaN one is quarantined for its value, not counted as kept)
    assert keep.n_accepted == 3 and keep.unknown_kept == {UNKNOWN_READOUT: 1, UNKNOWN_TARGET: 1}
    q = validate_measurements(df, "f", keys=("signature_id", "readout"), unknown=unknown, unknown_genes="quarantine")
    # the gene reason comes before the value check: B is quarantined as unknown
    assert q.accepted["readout"].tolist() == ["A"] and q.reasons == {UNKNOWN_READOUT: 2, UNKNOWN_TARGET: 1}
    assert q.unknown_kept == {}


@pytest.mark.shared_data
def test_real_shrna_plate_targets_named_by_clone_id(shared_data):
    """The CMap kd plate names some knock-downs by their TRC clone id (no gene): with the real gene table
    they are counted under keep, and quarantine removes exactly those values."""
    path = shared_data / "l1000" / "cmap_kd_shrna_level4_n374x976.gctx"
    resolver = GeneResolver.from_table(shared_data / "genes" / "genes_human.tsv")
    def target_values(notes: list[str]) -> int:
        note = next(n for n in notes if n.startswith("genes the gene table does not resolve"))
        assert "TRCN" in note, note
        return int(note.split("perturbation targets (")[1].split(" values")[0].replace(",", ""))

    kept, reasons, notes = _read(path, "gctx", ReadOptions(), resolver=resolver)
    n_target = target_values(notes)
    assert n_target > 0 and UNKNOWN_TARGET not in reasons
    strict, reasons, notes = _read(path, "gctx", ReadOptions(unknown_genes="quarantine"), resolver=resolver)
    # the quarantine lists the first 10,000 rejected values of a GCTX (MAX_VALUE_RECORDS); the note counts all
    assert len(kept) - len(strict) == n_target == target_values(notes) and UNKNOWN_TARGET in reasons
    assert not strict["perturbation"].astype(str).str.contains("TRCN").any()

"""Perturb-seq h5ad pseudobulk and bulk h5ad."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from graph.io.common import InputFileError
from graph.io.genes import GeneResolver
from graph.io.h5ad import detect_obs_columns, pseudobulk_h5ad, read_bulk_h5ad
from graph.io.options import ReadOptions
from graph.records import MEASUREMENT_COLUMNS, GeneRecord


def _cells(tmp_path, obs: dict, X: np.ndarray, var=("G1", "G2", "G3"), name="cells.h5ad"):
    a = ad.AnnData(X=sp.csr_matrix(X.astype(np.int32)), obs=pd.DataFrame(obs, index=[f"c{i}" for i in range(len(X))]),
                   var=pd.DataFrame(index=list(var)))
    path = tmp_path / name
    a.write_h5ad(path)
    return path


def _gears(tmp_path):
    """GEARS spelling: 'ctrl', 'A+ctrl', 'A+B'; G1 doubles under A."""
    pattern = [([10, 10, 0], "ctrl"), ([20, 10, 0], "A+ctrl"), ([10, 10, 10], "A+B")] * 4
    pattern.append(([1, 1, 1], "C+ctrl"))  # a single cell: below min_cells
    X, cond = [p[0] for p in pattern], [p[1] for p in pattern]
    return _cells(tmp_path, {"condition": cond, "cell_type": ["K562"] * len(cond)}, np.array(X))


def test_pseudobulk_values_are_log1p_cp10k_difference(tmp_path):
    r = pseudobulk_h5ad(_gears(tmp_path), "g", options=ReadOptions(perturbation_type="CRISPRi"), min_cells=3)
    assert list(r.long.columns) == list(MEASUREMENT_COLUMNS)
    v = r.long.set_index(["perturbation", "readout"])["value"]
    ctrl = np.log1p(np.array([10, 10, 0]) / 20 * 1e4)
    a = np.log1p(np.array([20, 10, 0]) / 30 * 1e4)
    assert v[("CRISPRi:A", "G1")] == pytest.approx(a[0] - ctrl[0], rel=1e-5)
    assert v[("CRISPRi:A", "G2")] == pytest.approx(a[1] - ctrl[1], rel=1e-5)
    assert ("CRISPRi:A+B", "G3") in v.index
    assert r.perturbations["CRISPRi:A+B"].target_symbols == ("A", "B")
    # groups: A, A+B accepted; C (1 cell) quarantined with the reason
    assert r.report.read == 3 and r.report.accepted == 2 and r.report.quarantined == 1
    assert "only 1 cells" in r.quarantine[0].reason
    assert r.contexts["K562"].kind == "cell_type"
    assert {s.n_replicates for s in r.signatures} == {4}


def test_zscore_drops_zero_variance_genes(tmp_path):
    r = pseudobulk_h5ad(_gears(tmp_path), "g", options=ReadOptions(perturbation_type="CRISPRi"), min_cells=3,
                        zscore=True)
    # identical control cells: every gene has zero control variance -> no values, counted
    assert len(r.long) == 0 and any("zero control variance" in n for n in r.report.notes)


def test_is_control_column_and_too_few_controls(tmp_path):
    obs = {"target_gene": ["STAT1"] * 3 + ["non-targeting"] * 2, "is_control": [False] * 3 + [True] * 2,
           "perturbation_type": ["CRISPRko"] * 5, "cell_line": ["THP-1"] * 5}
    path = _cells(tmp_path, obs, np.ones((5, 3)))
    r = pseudobulk_h5ad(path, "p", min_cells=3)
    assert r.report.quarantined == 1 and "only 2 control cells in context THP1" in r.quarantine[0].reason


def test_cell_filter_and_backed(tmp_path):
    obs = {"perturbation": ["X"] * 4 + ["control"] * 4, "multiple": [False, False, False, True] * 2}
    X = np.array([[5, 5, 0]] * 3 + [[100, 0, 0]] + [[5, 5, 0]] * 4)
    path = _cells(tmp_path, obs, X)
    r = pseudobulk_h5ad(path, "f", options=ReadOptions(perturbation_type="CRISPRko", context="RPE-1"), min_cells=2,
                        cell_filter="not multiple", backed=True, chunk_cells=3)
    assert np.allclose(r.long["value"], 0.0, atol=1e-6)  # the odd cell was filtered out
    assert any("2 of 8 cells excluded" in n for n in r.report.notes)
    assert set(r.contexts) == {"RPE1"}


def test_missing_obs_columns_listed(tmp_path):
    path = _cells(tmp_path, {"batch": ["a", "b"]}, np.ones((2, 3)))
    with pytest.raises(InputFileError, match=r"cells.h5ad: no perturbation column found .* available: \['batch'\]"):
        pseudobulk_h5ad(path, "x", options=ReadOptions(perturbation_type="CRISPRko"))
    with pytest.raises(InputFileError, match="obs has no context column 'cellline'"):
        detect_obs_columns(pd.DataFrame({"perturbation": []}), path, context="cellline")
    path2 = _cells(tmp_path, {"perturbation": ["A", "ctrl"]}, np.ones((2, 3)), name="b.h5ad")
    with pytest.raises(InputFileError, match="b.h5ad: has no perturbation type column in obs .*--perturbation-type"):
        pseudobulk_h5ad(path2, "x")
    bad = tmp_path / "bad.h5ad"
    bad.write_bytes(b"nope")
    with pytest.raises(InputFileError, match="bad.h5ad: not a readable h5ad"):
        pseudobulk_h5ad(bad, "x")


def test_negative_counts_rejected(tmp_path):
    a = ad.AnnData(X=np.array([[1.0, -2.0], [1.0, 1.0]]),
                   obs=pd.DataFrame({"perturbation": ["A", "ctrl"]}, index=["a", "b"]), var=pd.DataFrame(index=["G1", "G2"]))
    a.write_h5ad(tmp_path / "neg.h5ad")
    with pytest.raises(InputFileError, match="negative values"):
        pseudobulk_h5ad(tmp_path / "neg.h5ad", "x", options=ReadOptions(perturbation_type="CRISPRko"), min_cells=1)


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_bulk_h5ad(tmp_path):
    X = np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, 0.5], [3.0, 3.0, 3.0]], dtype=np.float32)
    a = ad.AnnData(X=X, obs=pd.DataFrame({"perturbation": ["TOMM70A", "DMSO", "TOMM70A"], "cell_line": ["A375"] * 3,
                                          "perturbation_type": ["shRNA", "control", "shRNA"]}, index=["s1", "s2", "s1"]),
                   var=pd.DataFrame({"gene_symbol": ["AAA", "TOMM70A", "AAA"]}, index=["e1", "e2", "e3"]))
    a.write_h5ad(tmp_path / "bulk.h5ad")
    resolver = GeneResolver([GeneRecord(1, "AAA"), GeneRecord(2, "TOMM70", aliases=("TOMM70A",))])
    r = read_bulk_h5ad(tmp_path / "bulk.h5ad", "b", resolver=resolver, options=ReadOptions(duplicates="quarantine"))
    assert r.report.read == 3 and r.report.accepted == 2 and r.report.quarantined == 1  # repeated obs name s1
    # The third gene repeats AAA: a duplicate (signature, readout) for the validation step, never dropped
    # silently. s1 has AAA 1.0 and 2.0 (conflicting: quarantined), s2 inf (dropped) and 0.5.
    assert set(r.long["readout"]) == {"AAA", "TOMM70"}
    assert any("NaN" in n for n in r.report.notes)
    assert any("1 genes repeat an earlier gene's readout symbol" in n and "'quarantine'" in n for n in r.report.notes)
    assert any("conflicting duplicates" in n for n in r.report.notes), r.report.notes
    assert "shRNA:TOMM70" in r.perturbations and "control:DMSO" in r.perturbations
    assert {s.source_id: s.n_readouts for s in r.signatures} == {"s2": 2}  # s1 has no value left
    first = read_bulk_h5ad(tmp_path / "bulk.h5ad", "b", resolver=resolver, options=ReadOptions(duplicates="first"))
    values = first.long.assign(sig=first.long["signature_id"].astype(str)).set_index(["sig", "readout"])["value"]
    assert values[("b:s1", "AAA")] == 1.0 and values[("b:s2", "AAA")] == 0.5
    assert {s.source_id: s.n_readouts for s in first.signatures} == {"s1": 1, "s2": 2}


@pytest.mark.shared_data
def test_real_papalexi(shared_data):
    path = shared_data / "perturbseq" / "papalexi2021_thp1_eccite_crisprko.h5ad"
    genes = [GeneRecord(220972, "MARCHF8", aliases=("MARCH8",))]
    r = pseudobulk_h5ad(path, "papalexi", min_cells=50, cell_filter="not multiple_grnas", resolver=GeneResolver(genes))
    assert r.report.read == 25 and r.report.accepted == 24  # SPI1 keeps 33 single-gRNA cells: quarantined
    assert r.quarantine[0].raw["perturbation"] == "SPI1"
    assert set(r.contexts) == {"THP1"} and "CRISPRko:MARCHF8" in r.perturbations
    v = r.long.set_index(["perturbation", "readout"])["value"]
    # knock-out of the positive-control genes lowers their own expression
    for gene in ["STAT1", "JAK2", "IFNGR2"]:
        assert v[(f"CRISPRko:{gene}", gene)] < -0.2


def test_guide_level_groups_take_targets_from_target_column(tmp_path):
    obs = {"guide_id": ["STAT1g1"] * 3 + ["STAT1g2"] * 3 + ["NTg1"] * 3,
           "target_gene": ["STAT1"] * 6 + ["non-targeting"] * 3, "is_control": [False] * 6 + [True] * 3}
    path = _cells(tmp_path, obs, np.ones((9, 3)))
    r = pseudobulk_h5ad(path, "g", columns={"perturbation": "guide_id"}, options=ReadOptions(perturbation_type="CRISPRko"),
                        min_cells=3)
    assert list(r.perturbations) == ["CRISPRko:STAT1"]
    assert sorted(s.signature_id for s in r.signatures) == ["g:unknown|STAT1g1", "g:unknown|STAT1g2"]


def _lognorm(counts: np.ndarray) -> np.ndarray:
    return np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)


def test_normalised_x_reads_the_counts_layer_or_raw_and_never_normalises_twice(tmp_path):
    """scanpy habit: log-normalised values in X, raw counts in layers['counts'] or .raw. Pseudobulking X
    would normalise twice and give silently wrong values; the counts are read instead (noted)."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, size=(40, 3)).astype(np.float32)
    obs = pd.DataFrame({"perturbation": ["ctrl"] * 20 + ["A"] * 20, "cell_line": "K562"},
                       index=[f"c{i}" for i in range(40)])
    var = pd.DataFrame(index=["G1", "G2", "G3"])
    opts = ReadOptions(perturbation_type="CRISPRi")
    ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var).write_h5ad(tmp_path / "counts.h5ad")
    expected = pseudobulk_h5ad(tmp_path / "counts.h5ad", "d", options=opts, min_cells=5).long
    ad.AnnData(X=_lognorm(counts), obs=obs, var=var, layers={"counts": sp.csr_matrix(counts)}).write_h5ad(
        tmp_path / "layer.h5ad")
    raw = ad.AnnData(X=_lognorm(counts), obs=obs, var=var)
    raw.raw = ad.AnnData(X=counts, obs=obs, var=var)
    raw.write_h5ad(tmp_path / "raw.h5ad")
    for name, where in (("layer.h5ad", "layers['counts']"), ("raw.h5ad", ".raw.X")):
        r = pseudobulk_h5ad(tmp_path / name, "d", options=opts, min_cells=5)
        pd.testing.assert_frame_equal(r.long.drop(columns="dataset"), expected.drop(columns="dataset"))
        assert any(where in n and "normalised" in n for n in r.report.notes), r.report.notes
    ad.AnnData(X=_lognorm(counts), obs=obs, var=var).write_h5ad(tmp_path / "lognorm_only.h5ad")
    with pytest.raises(InputFileError, match=r"non-integer values.*layers\['counts'\]"):
        pseudobulk_h5ad(tmp_path / "lognorm_only.h5ad", "d", options=opts, min_cells=5)


def test_each_dose_of_a_compound_is_its_own_signature(tmp_path):
    """sci-Plex / scPerturb compound files give each cell's dose (dose_value + dose_unit). Pooling the
    doses of one compound into one group averaged a 10 nM and a 10 uM response silently; each dose is
    now its own signature and perturbation (compound:<id>@<dose>uM, as the table and GCTX readers name
    it), and an unreadable dose quarantines its group with the reason."""
    rng = np.random.default_rng(1)
    counts = rng.poisson(5, size=(80, 3))
    counts[40:60, 0] += 50  # vorinostat 10 uM raises G1; 10 nM does nothing
    obs = {"perturbation": ["control"] * 20 + ["vorinostat"] * 40 + ["imatinib"] * 20,
           "dose_value": ["0"] * 20 + ["10"] * 20 + ["10000"] * 20 + ["lots"] * 20,
           "dose_unit": ["nM"] * 80, "cell_line": ["A549"] * 80}
    r = pseudobulk_h5ad(_cells(tmp_path, obs, counts), "d", options=ReadOptions(perturbation_type="compound"),
                        min_cells=5)
    v = r.long.set_index(["perturbation", "readout"])["value"]
    assert set(r.long["perturbation"].astype(str)) == {"compound:name:vorinostat@0.01uM",
                                                       "compound:name:vorinostat@10uM"}
    assert v[("compound:name:vorinostat@10uM", "G1")] > 1.0 > abs(v[("compound:name:vorinostat@0.01uM", "G1")])
    assert r.perturbations["compound:name:vorinostat@10uM"].dose_value == 10.0
    assert r.report.accepted == 2 and r.report.quarantined == 1
    assert "lots" in r.quarantine[0].reason and "dose_value" in r.quarantine[0].reason


def test_h5ad_compounds_join_compound_records_as_the_table_reader_does(tmp_path):
    """The pipeline passes every reader its compound index (name / pert_id -> compound id). The h5ad
    readers ignored it: a sci-Plex file's 'Vorinostat' stayed compound:name:vorinostat while a long table's
    joined the compound record, so one drug was two perturbations in one graph."""
    from graph.io.tables import read_long_table

    ids = {"vorinostat": "WAEXFXRVDQXREF-UHFFFAOYSA-N"}
    counts = np.random.default_rng(2).poisson(5, size=(40, 3))
    obs = {"perturbation": ["DMSO"] * 20 + ["Vorinostat"] * 20, "dose": ["0"] * 20 + ["10 uM"] * 20,
           "cell_line": ["A549"] * 40}
    r = pseudobulk_h5ad(_cells(tmp_path, obs, counts), "d", options=ReadOptions(perturbation_type="compound"),
                        min_cells=5, compound_ids=ids)
    pd.DataFrame({"context": ["A549"], "perturbation": ["Vorinostat"], "perturbation_type": ["compound"],
                  "dose": ["10 uM"], "readout": ["G1"], "value": [1.0]}).to_csv(tmp_path / "t.csv", index=False)
    table, _ = read_long_table(tmp_path / "t.csv", "t", compound_ids=ids)
    assert set(r.long["perturbation"].astype(str)) == set(table["perturbation"].astype(str)) == {
        "compound:WAEXFXRVDQXREF-UHFFFAOYSA-N@10uM"}
    bulk_obs = pd.DataFrame({"perturbation": ["Vorinostat"], "perturbation_type": ["compound"], "cell_line": ["A549"]},
                            index=["s1"])
    ad.AnnData(X=np.ones((1, 3), np.float32), obs=bulk_obs, var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(
        tmp_path / "bulk.h5ad")
    assert read_bulk_h5ad(tmp_path / "bulk.h5ad", "b", compound_ids=ids).perturbations["compound:WAEXFXRVDQXREF-UHFFFAOYSA-N"]


def test_guide_identity_column_and_the_rename_hint(tmp_path):
    """Norman-style obs name the guide column guide_identity (was: 'no perturbation column found', with
    no way to name it); a file with none of the known columns is told how to rename its own."""
    counts = np.random.default_rng(3).poisson(5, size=(40, 3))
    obs = {"guide_identity": ["NegCtrl0"] * 20 + ["STAT1"] * 20, "cell_line": ["K562"] * 40}
    r = pseudobulk_h5ad(_cells(tmp_path, obs, counts), "d", options=ReadOptions(perturbation_type="CRISPRa"),
                        min_cells=5)
    assert set(r.long["perturbation"].astype(str)) == {"CRISPRa:STAT1"} and r.report.accepted == 1
    path = _cells(tmp_path, {"my_guides": ["a", "b"]}, np.ones((2, 3)), name="odd.h5ad")
    with pytest.raises(InputFileError, match=r"rename yours in obs .*'perturbation'"):
        pseudobulk_h5ad(path, "x", options=ReadOptions(perturbation_type="CRISPRko"))


def test_one_row_per_signature_in_counts_is_told_about_the_bulk_option(tmp_path):
    """A pseudobulk h5ad of summed counts (one obs row per context x perturbation) quarantined every group
    ('only 1 cells') and was refused as 'no valid rows' with no word of what the file is or what to do."""
    obs = {"perturbation": ["ctrl", "STAT1", "JAK2"], "cell_line": ["K562"] * 3}
    with pytest.raises(InputFileError, match="one row per \\(context, perturbation\\).*--bulk"):
        pseudobulk_h5ad(_cells(tmp_path, obs, np.full((3, 3), 500)), "d", options=ReadOptions(perturbation_type="CRISPRi"))


def test_each_time_point_is_its_own_signature_against_same_time_controls(tmp_path):
    """scPerturb / sci-Plex obs give each cell's time (`time`, `timepoint`, ...). Pooling the time points
    of one perturbation averaged 24 h and 72 h cells (and their controls) into one signature silently; each
    time point is now its own group and signature ("<ctx>|<name>|24h", as the table reader names it),
    compared with the controls of the same context and time, and an unreadable time quarantines its group."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(5, size=(120, 3))
    for rows in (slice(0, 20), slice(40, 60), slice(80, 100)):  # every 72 h cell is high on G2 (a time effect)
        counts[rows, 1] += 40
    counts[60:80, 0] += 50  # STAT1 at 24 h raises G1; at 72 h it does nothing
    obs = {"perturbation": ["control"] * 40 + ["STAT1"] * 60 + ["JAK2"] * 20,
           "time": ["72"] * 20 + ["24"] * 20 + ["72"] * 20 + ["24"] * 20 + ["72"] * 20 + ["soon"] * 20,
           "time_unit": ["h"] * 120, "cell_line": ["K562"] * 120}
    r = pseudobulk_h5ad(_cells(tmp_path, obs, counts), "t", options=ReadOptions(perturbation_type="CRISPRi"),
                        min_cells=5)
    assert sorted(s.signature_id for s in r.signatures) == ["t:K562|STAT1|24h", "t:K562|STAT1|72h"]
    v = r.long.set_index(["signature_id", "readout"])["value"]
    assert v[("t:K562|STAT1|24h", "G1")] > 1.0 > abs(v[("t:K562|STAT1|72h", "G1")])
    assert abs(v[("t:K562|STAT1|72h", "G2")]) < 0.2  # against the 72 h controls: the time effect cancels
    assert r.report.accepted == 2 and r.report.quarantined == 1
    assert "soon" in r.quarantine[0].reason and "'time'" in r.quarantine[0].reason
    assert "value = log1p CP10k mean difference vs same-context and same-time-point controls" in r.report.notes
    # a time point without controls of its own is quarantined, never compared with another time's controls
    only72 = {"perturbation": ["control"] * 20 + ["STAT1"] * 20, "timepoint": ["72 h"] * 20 + ["24 h"] * 20,
              "cell_line": ["K562"] * 40}
    r = pseudobulk_h5ad(_cells(tmp_path, only72, counts[:40], name="b.h5ad"), "t",
                        options=ReadOptions(perturbation_type="CRISPRi"), min_cells=5)
    assert r.report.accepted == 0 and "0 control cells in context K562 at time 24h" in r.quarantine[0].reason
    # bare numbers without a unit column (sci-Plex writes time = 24): kept apart as written, never pooled, never
    # the whole file quarantined, and the note says how to give the unit
    bare = {**obs, "time": [t if t != "soon" else "72" for t in obs["time"]]}
    del bare["time_unit"]
    r = pseudobulk_h5ad(_cells(tmp_path, bare, counts, name="c.h5ad"), "t", options=ReadOptions(perturbation_type="CRISPRi"),
                        min_cells=5)
    assert sorted(s.signature_id for s in r.signatures) == ["t:K562|JAK2|72", "t:K562|STAT1|24", "t:K562|STAT1|72"]
    assert r.report.quarantined == 0 and any("without a unit" in n and "'time_unit'" in n for n in r.report.notes)


def test_scperturb_norman_doubles_are_combinations_in_an_h5ad_and_a_table(tmp_path):
    """Norman 2019 as scPerturb writes it: perturbation 'CEBPA_KLF1' (a double), 'CEBPA', 'control'. The double
    was one unresolved target 'CEBPA_KLF1'; with the gene table it is CRISPRa:CEBPA+KLF1 in an h5ad and in a
    table alike (identifiers.split_combination, the one combination rule)."""
    from graph.io.tables import read_long_table

    genes = GeneResolver([GeneRecord(1050, "CEBPA"), GeneRecord(10661, "KLF1"), GeneRecord(1, "G1"),
                          GeneRecord(2, "G2"), GeneRecord(3, "G3")])
    counts = np.random.default_rng(6).poisson(5, size=(60, 3))
    obs = {"perturbation": ["control"] * 20 + ["CEBPA"] * 20 + ["CEBPA_KLF1"] * 20, "perturbation_type": "CRISPRa",
           "cell_line": "K562"}
    r = pseudobulk_h5ad(_cells(tmp_path, obs, counts), "n", resolver=genes, min_cells=5)
    assert set(r.long["perturbation"].astype(str)) == {"CRISPRa:CEBPA", "CRISPRa:CEBPA+KLF1"}
    assert r.perturbations["CRISPRa:CEBPA+KLF1"].target_symbols == ("CEBPA", "KLF1")
    pd.DataFrame({"context": "K562", "perturbation": ["CEBPA_KLF1"], "perturbation_type": ["CRISPRa"],
                  "readout": ["G1"], "value": [1.0]}).to_csv(tmp_path / "t.csv", index=False)
    table, _ = read_long_table(tmp_path / "t.csv", "t", resolver=genes)
    assert set(table["perturbation"].astype(str)) == {"CRISPRa:CEBPA+KLF1"}
    no_table = pseudobulk_h5ad(_cells(tmp_path, obs, counts, name="b.h5ad"), "n", min_cells=5)
    assert "CRISPRa:CEBPA_KLF1" in set(no_table.long["perturbation"].astype(str))  # no gene table: kept whole


def test_a_bulk_h5ads_doses_are_perturbations_apart_as_in_a_table(tmp_path):
    """A bulk h5ad (one obs row per signature) with a dose column gave every dose of a compound one perturbation
    (compound:name:vorinostat), so a model averaged 10 nM and 10 uM as one experiment; a table or a single-cell
    h5ad keeps them apart (compound:...@0.01uM / @10uM). An unreadable dose quarantines its row."""
    obs = pd.DataFrame({"perturbation": ["vorinostat"] * 3, "perturbation_type": "compound", "cell_line": "A549",
                        "dose_value": ["10", "10000", "lots"], "dose_unit": "nM"}, index=["s1", "s2", "s3"])
    ad.AnnData(X=np.ones((3, 3), np.float32), obs=obs, var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(
        tmp_path / "bulk.h5ad")
    r = read_bulk_h5ad(tmp_path / "bulk.h5ad", "b")
    assert set(r.long["perturbation"].astype(str)) == {"compound:name:vorinostat@0.01uM", "compound:name:vorinostat@10uM"}
    assert r.report.accepted == 2 and r.report.quarantined == 1 and "lots" in r.quarantine[0].reason


def test_readout_key_names_the_var_column_of_the_readouts(tmp_path):
    """The readout_key option reads the readouts from that var column, mapped through the gene table, in the
    pseudobulk and the bulk reader (it was silently ignored: the symbol column or the index won); a column
    the file lacks is refused with the columns it has."""
    resolver = GeneResolver([GeneRecord(1, "AAA", ensembl_id="ENSG01"), GeneRecord(2, "BBB", ensembl_id="ENSG02")])
    var = pd.DataFrame({"gene_symbol": ["old1", "old2"], "ensembl": ["ENSG01", "ENSG02"]}, index=["r1", "r2"])
    obs = pd.DataFrame({"perturbation": ["control"] * 3 + ["AAA"] * 3, "perturbation_type": ["CRISPRi"] * 6,
                        "cell_line": ["K562"] * 6}, index=[f"c{i}" for i in range(6)])
    ad.AnnData(X=sp.csr_matrix(np.array([[5, 5], [6, 4], [5, 5], [9, 1], [8, 2], [9, 1]], np.int32)), obs=obs,
               var=var).write_h5ad(tmp_path / "cells.h5ad")
    keyed = ReadOptions(readout_key="ensembl")
    r = pseudobulk_h5ad(tmp_path / "cells.h5ad", "c", resolver=resolver, options=keyed, min_cells=3)
    assert set(r.long["readout"]) == {"AAA", "BBB"}
    assert any("var column 'ensembl' (the readout_key option)" in n for n in r.report.notes)
    assert set(pseudobulk_h5ad(tmp_path / "cells.h5ad", "c", resolver=resolver, min_cells=3).long["readout"]) == {
        "old1", "old2"}  # without the option: the symbol column, as before
    ad.AnnData(X=np.ones((1, 2), np.float32), obs=obs.iloc[3:4], var=var).write_h5ad(tmp_path / "bulk.h5ad")
    assert set(read_bulk_h5ad(tmp_path / "bulk.h5ad", "b", resolver=resolver, options=keyed).long["readout"]) == {
        "AAA", "BBB"}
    with pytest.raises(InputFileError, match=r"no var column 'entrez'.*'gene_symbol', 'ensembl'"):
        pseudobulk_h5ad(tmp_path / "cells.h5ad", "c", resolver=resolver, options=ReadOptions(readout_key="entrez"))

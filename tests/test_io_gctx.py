"""GCTX/GCT reading, writing, chunked streaming and the long-table conversion."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from graph.io.common import InputFileError
from graph.io.gctx import GctxFile, GctxToLong, gctx_to_long, read_gct, read_gctx, write_gctx
from graph.records import MEASUREMENT_COLUMNS, GeneRecord

L1000 = ["LJP005_A375_24H_level4_n377x978.gctx", "cmap_ds_level5_modz_n272x978.gctx",
         "cmap_kd_shrna_level4_n374x976.gctx", "signatureSearch_SKB_level5_n100x5000.gctx"]


def _tiny(tmp_path, matrix=None, col_ids=None, **kw):
    """4 samples x 3 genes: 2 compound doses, a DMSO control and an shRNA."""
    row = pd.DataFrame({"id": ["101", "102", "103"], "pr_gene_symbol": ["AAA", "BBB", "CCC"],
                        "pr_gene_id": [101, 102, 103], "pr_is_lm": [1, 1, 0]})
    col = pd.DataFrame({
        "id": col_ids or ["s1", "s2", "s3", "s4"], "cell_id": ["A375", "A375", "HEC-1-A", "A375"],
        "pert_type": ["trt_cp", "trt_cp", "ctl_vehicle", "trt_sh"],
        "pert_iname": ["Imatinib mesylate", "imatinib", "DMSO", "BBB"],
        "pert_id": ["BRD-1", "BRD-1", "DMSO", "TRCN1"],
        "pert_idose": ["10 uM", "500 nM", None, None], "pert_itime": ["24 h", "6 h", "24 h", "96 h"],
    })
    if matrix is None:
        matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "tiny.gctx"
    write_gctx(path, matrix, row, col, **kw)
    return path


def test_write_read_roundtrip_and_missing(tmp_path):
    path = _tiny(tmp_path)
    data = read_gctx(path)
    assert data.matrix.shape == (4, 3) and data.matrix.dtype == np.float32
    np.testing.assert_array_equal(data.matrix, np.arange(12).reshape(4, 3))
    assert list(data.col_meta.index) == ["s1", "s2", "s3", "s4"]
    assert data.col_meta["pert_idose"].isna().tolist() == [False, False, True, True]  # None -> -666 -> NA
    assert data.row_meta["pr_gene_id"].dtype == "Int64"
    with h5py.File(path) as h5:
        assert h5.attrs["version"] == b"GCTX1.0"
        assert h5["0/DATA/0/matrix"].shape == (4, 3)
        assert h5["0/META/COL/pert_idose"][2] == b"-666"


def test_select_columns_and_landmarks(tmp_path):
    with GctxFile(_tiny(tmp_path)) as g:
        assert g.select_columns({"pert_type": "trt_cp"}).tolist() == [0, 1]
        assert g.select_columns({"cell_id": ["A375"], "pert_type": ["trt_cp", "trt_sh"]}).tolist() == [0, 1, 3]
        assert g.select_columns("cell_id == 'HEC-1-A'").tolist() == [2]
        assert g.select_columns(lambda m: m["pert_iname"].str.lower() == "imatinib").tolist() == [1]
        assert g.landmark_rows().tolist() == [0, 1]
        assert g.landmark_rows(["103"]).tolist() == [2]
        with pytest.raises(InputFileError, match="no column metadata field 'dose'"):
            g.select_columns({"dose": "10 uM"})


def test_landmark_flag_missing_is_named(tmp_path):
    path = write_gctx(tmp_path / "n.gctx", np.zeros((1, 2), np.float32), pd.DataFrame({"id": ["a", "b"], "sym": ["A", "B"]}),
                      pd.DataFrame({"id": ["s"]}))
    with pytest.raises(InputFileError, match=r"n.gctx: no landmark flag .* available: \['sym'\]"):
        read_gctx(path, landmark_only=True)


def test_chunks_equal_whole_matrix(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 3)).astype(np.float32)
    path = _tiny(tmp_path, matrix=m, chunk_rows=2)
    with GctxFile(path) as g:
        for cols in ([0, 1, 2, 3], [0, 3], [1, 2], [3]):
            chunks = list(g.iter_columns(np.array(cols), np.array([0, 2]), chunk_size=1))
            assert [c[0].index[0] for c in chunks] == [f"s{i + 1}" for i in cols]
            np.testing.assert_array_equal(np.concatenate([c[1] for c in chunks]), m[cols][:, [0, 2]])


def test_write_in_blocks(tmp_path):
    row = pd.DataFrame({"id": ["g1", "g2"]})
    col = pd.DataFrame(index=pd.Index([f"c{i}" for i in range(5)], name="id"))
    blocks = (np.full((k, 2), i, np.float32) for i, k in enumerate([2, 2, 1]))
    path = write_gctx(tmp_path / "b.gctx", blocks, row, col)
    assert read_gctx(path).matrix[:, 0].tolist() == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="blocks gave 2 samples"):
        write_gctx(tmp_path / "c.gctx", iter([np.zeros((2, 2))]), row, col)


def test_wrong_dimensions_named(tmp_path):
    path = _tiny(tmp_path)
    with h5py.File(path, "a") as h5:
        del h5["0/META/COL/cell_id"]
        h5["0/META/COL/cell_id"] = np.array([b"A375"] * 3)
    with pytest.raises(InputFileError, match=r"tiny.gctx: wrong dimensions: /0/META/COL/cell_id has shape \(3,\)"):
        GctxFile(path)
    with pytest.raises(ValueError, match="matrix shape"):
        _tiny(tmp_path, matrix=np.zeros((3, 4), np.float32))


def test_truncated_and_non_hdf5(tmp_path):
    path = _tiny(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.gctx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.gctx: .*truncated"):
        read_gctx(cut)
    text = tmp_path / "text.gctx"
    text.write_text("#1.2\n1\t1\n")
    with pytest.raises(InputFileError, match="text.gctx: not a readable HDF5"):
        GctxFile(text)
    with pytest.raises(InputFileError, match="does not exist"):
        GctxFile(tmp_path / "nope.gctx")
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(InputFileError, match="missing /0/DATA/0/matrix"):
        GctxFile(empty)


def test_long_conversion_records_and_bad_values(tmp_path):
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    m[0, 0], m[1, 1], m[3, 2] = np.nan, np.inf, -666
    path = _tiny(tmp_path, matrix=m, col_ids=["s1", "s2", "s3", "s1"])
    long, conv = gctx_to_long(path, "t", chunk_size=2)
    assert list(long.columns) == list(MEASUREMENT_COLUMNS) and long["value"].dtype == np.float32
    # duplicate signature id "s1": the first (file order) is kept, the second quarantined and counted
    assert conv.report.read == 4 and conv.report.accepted == 3 and conv.report.quarantined == 1
    assert conv.report.duplicates_resolved == 1 and conv.quarantine[0].record_key == "s1"
    # 3 kept signatures x 3 genes = 9 values, NaN and inf dropped with counts (the -666 sat in the dropped column)
    assert conv.value_report.read == 9 and conv.value_report.accepted == 7
    assert conv.dropped_values == {"NaN": 1, "+-inf": 1}
    sigs = {s.signature_id: s for s in conv.signatures()}
    assert sigs["t:s1"].n_readouts == 2 and sigs["t:s3"].n_readouts == 3
    perts = conv.perturbations
    assert "compound:name:imatinib@10uM" in perts and "compound:name:imatinib@0.5uM" in perts
    assert perts["compound:name:imatinib@10uM"].dose_unit == "uM"
    assert "control:DMSO" in perts
    assert set(long["context"]) == {"A375", "HEC1A"}
    assert conv.signature_table.set_index("source_id").loc["s2", "time_value"] == 6.0


def test_long_conversion_minus666_and_shrna_context(tmp_path):
    m = np.ones((4, 3), np.float32)
    m[2, 1] = -666
    row = pd.DataFrame({"id": ["101", "102", "103"]})  # Entrez ids only, no symbols
    col = pd.DataFrame({"id": ["a", "b", "c", "d"], "pert_type": ["trt_sh"] * 3 + ["ctl_vector"],
                        "pert_iname": ["TOMM70A", "X", "Y", "EMPTY_VECTOR"]})
    path = write_gctx(tmp_path / "kd.gctx", m, row, col)
    genes = [GeneRecord(101, "AAA"), GeneRecord(102, "BBB"), GeneRecord(9868, "TOMM70", aliases=("TOMM70A",))]
    from graph.io.genes import GeneResolver

    long, conv = gctx_to_long(path, "kd", resolver=GeneResolver(genes))
    assert conv.dropped_values == {"-666": 1}
    assert set(long["readout"]) == {"AAA", "BBB", "103"}  # unresolved id kept as the source name
    assert set(long["context"]) == {"unknown"} and conv.contexts["unknown"].kind == "unknown"
    assert any("every signature gets the placeholder context 'unknown'" in n and "--context" in n
               for n in conv.report.notes)
    assert conv.perturbations["shRNA:TOMM70"].name == "TOMM70A"
    assert "control:EMPTY_VECTOR" in conv.perturbations


def test_context_option_names_the_line_of_a_gctx_without_cell_id(tmp_path):
    """The context option reaches the GCTX reader through the readers' one entry (it was silently ignored):
    it fills a file without cell_id, and a file with cell_id keeps its own, saying the option was not used."""
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader

    row = pd.DataFrame({"id": ["g1", "g2"], "pr_gene_symbol": ["AAA", "BBB"]})
    col = pd.DataFrame({"id": ["a", "b"], "pert_type": ["trt_sh", "ctl_vector"], "pert_iname": ["X", "EMPTY_VECTOR"]})
    plate = write_gctx(tmp_path / "kd.gctx", np.ones((2, 2), np.float32), row, col)
    conv = open_streaming_reader(plate, "gctx", "kd", ReadOptions(context="k-562"))
    long = pd.concat(list(conv.iter_long()))
    assert set(long["context"]) == {"K562"} and conv.contexts["K562"].kind == "cell_line"
    assert conv.contexts["K562"].name == "k-562"
    assert any("every signature gets context 'k-562' (the context option)" in n for n in conv.report.notes)
    lined = write_gctx(tmp_path / "lines.gctx", np.ones((2, 2), np.float32), row, col.assign(cell_id=["A375", "A375"]))
    conv = open_streaming_reader(lined, "gctx", "kd", ReadOptions(context="K562"))
    assert set(pd.concat(list(conv.iter_long()))["context"]) == {"A375"}
    assert any("context 'K562' not used: the file has a context column ('cell_id')" in n for n in conv.report.notes)


def test_unknown_pert_type_quarantined(tmp_path):
    row = pd.DataFrame({"id": ["g"]})
    col = pd.DataFrame({"id": ["a", "b"], "pert_type": ["trt_cp", "trt_weird"], "pert_iname": ["x", "y"]})
    path = write_gctx(tmp_path / "w.gctx", np.zeros((2, 1), np.float32), row, col)
    long, conv = gctx_to_long(path, "w")
    assert len(long) == 1 and conv.report.quarantined == 1 and "unknown perturbation type" in conv.quarantine[0].reason
    col = col.drop(columns="pert_type")
    write_gctx(tmp_path / "n.gctx", np.zeros((2, 1), np.float32), row, col)
    with pytest.raises(InputFileError, match="no pert_type"):
        GctxToLong(tmp_path / "n.gctx", "n")


def test_records_need_finished_stream(tmp_path):
    conv = GctxToLong(_tiny(tmp_path), "t")
    with pytest.raises(RuntimeError):
        conv.signatures()


GCT12 = "#1.2\n2\t3\nName\tDescription\tA\tB\tC\ng1\tgene one\t1\t2\t3\ng2\tna\t4\tNaN\t6\n"
GCT13 = ("#1.3\n2\t2\t1\t1\nid\tsymbol\tA\tB\npert_type\t-666\ttrt_cp\tctl_vehicle\n"
         "g1\tAAA\t1.5\t2\ng2\tBBB\t3\t4\n")


def test_read_gct_text(tmp_path):
    p12, p13 = tmp_path / "a.gct", tmp_path / "b.gct"
    p12.write_text(GCT12)
    p13.write_text(GCT13)
    a = read_gct(p12)
    assert a.matrix.shape == (3, 2) and a.matrix[0].tolist() == [1, 4] and np.isnan(a.matrix[1, 1])
    b = read_gct(p13)
    assert b.col_meta["pert_type"].tolist() == ["trt_cp", "ctl_vehicle"] and b.row_meta["symbol"].tolist() == ["AAA", "BBB"]
    assert b.matrix.tolist() == [[1.5, 3.0], [2.0, 4.0]]
    bad = tmp_path / "bad.gct"
    bad.write_text(GCT12.replace("g2\tna\t4\tNaN\t6\n", "g2\tna\t4\n"))
    with pytest.raises(InputFileError, match="bad.gct: wrong dimensions"):
        read_gct(bad)
    (tmp_path / "x.gct").write_text("hello\n")
    with pytest.raises(InputFileError, match="not a GCT file"):
        read_gct(tmp_path / "x.gct")


@pytest.mark.shared_data
@pytest.mark.parametrize("name", L1000)
def test_real_gctx_files(shared_data, name):
    path = shared_data / "l1000" / name
    n_samples, n_genes = (int(x) for x in name.rsplit("_n", 1)[1].removesuffix(".gctx").split("x"))
    with GctxFile(path) as g:
        assert (g.n_samples, g.n_genes) == (n_samples, n_genes)  # file name is ..._n<samples>x<genes>
    long, conv = gctx_to_long(path, "real", chunk_size=64)
    assert len(long) == conv.value_report.accepted == g.n_samples * g.n_genes  # no NaN in these files
    assert conv.report.accepted == g.n_samples and not conv.quarantine
    assert long["value"].notna().all()


@pytest.mark.shared_data
def test_real_gctx_semantics(shared_data):
    d = shared_data / "l1000"
    ljp = read_gctx(d / L1000[0], {"pert_type": "ctl_vehicle"}, landmark_only=True)
    assert ljp.matrix.shape == (26, 978) and set(ljp.col_meta["pert_iname"]) == {"DMSO"}
    _, conv = gctx_to_long(d / L1000[0], "ljp")
    doses = {p.dose_value for p in conv.perturbations.values() if p.perturbation_type == "compound"}
    assert {0.04, 0.12, 0.37, 1.11, 3.33, 10.0} <= doses  # "0.04 um" spelling
    _, ds = gctx_to_long(d / L1000[1], "ds", where={"cell_id": ["A375", "MCF7"]})
    assert ds.report.read == 42 and set(ds.contexts) == {"A375", "MCF7"}
    assert {p.dose_value for p in ds.perturbations.values()} >= {0.1, 0.5, 10.0}  # "100 nM", "500 nM"
    assert any("6 h & 4 h" in n for n in gctx_to_long(d / L1000[1], "ds")[1].report.notes)
    kd_long, kd = gctx_to_long(d / L1000[2], "kd")
    assert set(kd.contexts) == {"unknown"}
    assert {p.perturbation_type for p in kd.perturbations.values()} == {"shRNA", "control"}
    # the knocked-down gene's own readout is strongly negative (real biology, not a fixture)
    sh = kd_long[kd_long["perturbation_type"] == "shRNA"]
    target = sh["perturbation"].astype(str).str.removeprefix("shRNA:")
    own = sh[target == sh["readout"].astype(str)]
    assert len(own) > 300 and own["value"].median() < -3
    ss = read_gctx(d / L1000[3], landmark_only=True)
    assert ss.matrix.shape == (100, 400)


def _shuffled_plate(tmp_path, n=2_500, n_genes=6, *, shuffle=True):
    """n samples x n_genes with column ids out of order (the store must sort them; `shuffle=False`: in
    order) and a few bad values."""
    rng = np.random.default_rng(3)
    ids = [f"S{i:05d}" for i in (rng.permutation(n) if shuffle else np.arange(n))]
    col = pd.DataFrame({"id": ids, "cell_id": np.where(np.arange(n) % 2, "A375", "MCF7"), "pert_type": "trt_cp",
                        "pert_iname": [f"drug{i % 7}" for i in range(n)], "pert_idose": "10 uM",
                        "pert_itime": "24 h"})
    row = pd.DataFrame({"id": [str(100 + g) for g in range(n_genes)], "pr_gene_symbol": [f"G{g}" for g in range(n_genes)]})
    m = rng.standard_normal((n, n_genes)).astype(np.float32)
    m[5, 1], m[700, 2], m[2_400, 0] = np.nan, np.inf, -666
    path = write_gctx(tmp_path / "plate.gctx", m, row, col)
    sig = np.repeat([f"plate:{i}" for i in ids], n_genes)
    expected = pd.DataFrame({"signature_id": sig, "readout": np.tile(row["pr_gene_symbol"], n), "value": m.ravel()})
    expected = expected[np.isfinite(expected["value"]) & (expected["value"] != -666)]
    return path, expected.sort_values(["signature_id", "readout"]).reset_index(drop=True)


@pytest.mark.parametrize("shuffle", [True, False], ids=["ids-shuffled", "ids-sorted-first-chunk-last"])
def test_gctx_chunks_through_the_store_equal_the_whole_table(tmp_path, shuffle):
    from graph.settings import Settings
    from graph.store import measurements as store

    path, expected = _shuffled_plate(tmp_path, shuffle=shuffle)
    whole, _ = gctx_to_long(path, "plate")
    before = store.write_measurements(Settings(home=tmp_path / "a"), "plate", whole)
    in_memory = Settings(home=tmp_path / "m")  # the whole table sorted in memory, same row groups
    with store.MeasurementWriter(in_memory, "plate", row_group=4_000) as w:
        w.append(whole)
    assert w.buckets == 0
    reference = w.entry
    conv = GctxToLong(path, "plate", chunk_size=300)  # 9 chunks, out of signature order: spilled and sorted
    chunks = list(conv.iter_long())
    if not shuffle:  # in order but the first chunk arrives last: 3 row groups written in order, then spilled
        chunks = chunks[1:] + chunks[:1]
    chunked = Settings(home=tmp_path / "b")
    # A tiny memory budget: runs and buckets of <= 5,000 rows, so the multi-bucket external sort runs.
    with store.MeasurementWriter(chunked, "plate", row_group=4_000, sort_rows=5_000) as w:
        for chunk in chunks:
            w.append(chunk)
    assert w.buckets >= 3
    assert w.entry.sha256 == reference.sha256 and w.entry.n_rows == reference.n_rows
    assert w.entry.n_rows == len(expected) == 2_500 * 6 - 3 and w.entry.n_signatures == 2_500
    assert conv.dropped_values == {"NaN": 1, "+-inf": 1, "-666": 1}
    assert sorted(q.reason for q in conv.quarantine) == [
        "CMap missing value (-666)", "value infinite", "value missing or not a number"]
    got = store.load_training_table(chunked, ["plate"])
    pd.testing.assert_frame_equal(got[["signature_id", "readout"]].astype(str), expected[["signature_id", "readout"]])
    np.testing.assert_array_equal(got["value"].to_numpy(), expected["value"].to_numpy())
    # Same bytes as the whole-table write when the row groups match (defaults here: one row group).
    again = Settings(home=tmp_path / "c")
    with store.MeasurementWriter(again, "plate") as w:
        for chunk in GctxToLong(path, "plate", chunk_size=300).iter_long():
            w.append(chunk)
    assert w.entry.sha256 == before.sha256


def test_read_experiment_streams_gctx_chunks_into_the_store(tmp_path, monkeypatch):
    import graph.io.common
    from graph.settings import Settings
    from graph.store import measurements as store
    from pipelines.ingest import read_experiment
    from pipelines.inputs import spec_for

    path, expected = _shuffled_plate(tmp_path)
    whole, conv = gctx_to_long(path, "plate")
    reference = store.write_measurements(Settings(home=tmp_path / "ref"), "plate", whole)
    appended = []
    real_append = store.MeasurementWriter.append
    monkeypatch.setattr(store.MeasurementWriter, "append", lambda self, c: (appended.append(len(c)), real_append(self, c)))

    def no_whole_table(*_a, **_k):
        raise AssertionError("the ingest path must not build the whole long table")

    monkeypatch.setattr(graph.io.common, "concat_long", no_whole_table)
    settings = Settings(home=tmp_path / "home")
    spec = spec_for(path)
    bundle = read_experiment(spec, settings, progress=lambda _m: None)
    assert len(appended) == 10 and sum(appended) == len(expected)  # 2,500 signatures in chunks of 250
    assert bundle.store_entry.sha256 == reference.sha256 and bundle.store_entry.dataset_id == spec.dataset_id == "plate"
    assert len(bundle.signatures) == 2_500 and sum(s.n_readouts for s in bundle.signatures) == len(expected)
    assert bundle.value_counts == {"values_accepted": len(expected), "NaN": 1, "+-inf": 1, "-666": 1}
    assert sorted(p.name for p in (settings.store_dir / "plate").iterdir()) == ["manifest.json", "measurements.parquet"]


def _repeated_readouts(tmp_path):
    """3 samples x 4 rows; rows 0 and 2 are both AAA (row 2 via its Entrez id and the alias resolver):
    s1 conflicting (1 vs 3), s2 identical (5 and 5), s3 one copy NaN."""
    from graph.io.genes import GeneResolver

    row = pd.DataFrame({"id": ["r0", "r1", "r2", "r3"], "pr_gene_symbol": ["AAA", "BBB", "OLDA", "CCC"],
                        "pr_gene_id": [101, 102, 101, 103]})
    col = pd.DataFrame({"id": ["s1", "s2", "s3"], "cell_id": ["A375"] * 3, "pert_type": ["trt_cp"] * 3,
                        "pert_iname": ["x", "y", "z"]})
    m = np.array([[1, 2, 3, 4], [5, 6, 5, 7], [np.nan, 8, 9, 10]], dtype=np.float32)
    with h5py.File(tmp_path / "rep.gctx", "w") as h5:  # written with h5py directly: the reader, not write_gctx
        h5.create_dataset("0/DATA/0/matrix", data=m)
        for group, meta in (("0/META/ROW", row), ("0/META/COL", col)):
            for c in meta.columns:
                data = meta[c].to_numpy()
                h5.create_dataset(f"{group}/{c}", data=data.astype("S") if data.dtype == object else data)
    genes = [GeneRecord(101, "AAA", aliases=("OLDA",)), GeneRecord(102, "BBB"), GeneRecord(103, "CCC")]
    return tmp_path / "rep.gctx", GeneResolver(genes)


@pytest.mark.parametrize("policy,aaa,quarantined", [
    ("quarantine", {"s2": 5.0, "s3": 9.0}, 3),  # s1's two AAA copies (conflict) + s3's NaN
    ("mean", {"s1": 2.0, "s2": 5.0, "s3": 9.0}, 1),
    ("first", {"s1": 1.0, "s2": 5.0, "s3": 9.0}, 1),
])
def test_gctx_repeated_readout_rows_follow_the_duplicate_policy(tmp_path, policy, aaa, quarantined):
    """Two rows with one symbol after resolution are duplicates of one (signature, readout): the policy
    decides, as for h5ad genes and wide-table columns (one rule: graph/io/validation.py)."""
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader
    from graph.io.validation import CONFLICT

    path, resolver = _repeated_readouts(tmp_path)
    reader = open_streaming_reader(path, "gctx", "rep", ReadOptions(duplicates=policy), resolver=resolver,
                                   chunk_signatures=2)  # s1, s2 in one chunk, s3 in the next
    long = pd.concat(list(reader.iter_long()), ignore_index=True)
    got = long[long["readout"] == "AAA"]
    assert dict(zip(got["signature_id"].astype(str).str.removeprefix("rep:"), got["value"], strict=True)) == aaa
    assert not long[["signature_id", "readout"]].astype(str).duplicated().any()
    assert set(long["readout"]) == {"AAA", "BBB", "CCC"}
    v = reader.value_report
    # read = accepted + quarantined, a collapsed or resolved copy counted as accepted (validation.py)
    assert v.read == 12 and v.quarantined == quarantined and v.accepted == 12 - quarantined
    assert len(long) == v.accepted - v.duplicates_resolved
    # identical copies (s2) are collapsed under every policy; s1's conflict is resolved by mean / first
    assert v.duplicates_resolved == (1 if policy == "quarantine" else 2)
    reasons = sorted(q.reason for q in reader.quarantine)
    assert reasons.count(CONFLICT) == (2 if policy == "quarantine" else 0)
    notes = reader.report.notes  # the signature report: the one every entry point shows
    assert any(f"policy {policy!r}" in n and "1 rows repeat" in n for n in notes), notes
    assert any("1 keys repeated with identical values" in n and "1 keys with conflicting values" in n
               for n in notes), notes


def test_gctx_readout_notes_reach_the_ingest_report(tmp_path):
    """The pipeline keeps the reader's signature report: the repeated-row, duplicate and unknown-gene
    notes are there (and the unknown genes under quarantine are counted among the dropped values)."""
    from graph.settings import Settings
    from pipelines.ingest import read_experiment
    from pipelines.inputs import spec_for

    path, resolver = _repeated_readouts(tmp_path)
    spec = spec_for(Path(f"{path}?duplicates=first&unknown_genes=quarantine"))
    bundle = read_experiment(spec, Settings(home=tmp_path / "home"), resolver=resolver, progress=lambda _m: None)
    notes = " | ".join(bundle.report.notes)
    assert "1 rows repeat an earlier row's readout symbol" in notes and "policy 'first'" in notes
    assert "genes the gene table does not resolve" not in notes  # every gene of this file is known
    # 12 values read, the NaN dropped; the 2 resolved copies (s1 first, s2 identical) count as accepted
    assert bundle.value_counts == {"values_accepted": 11, "NaN": 1} and bundle.store_entry.n_rows == 9


def test_cmap_2020_field_names_read_like_2017(tmp_path):
    """CLUE 2020 (siginfo_beta) spells cell_id / pert_iname / pert_idose as cell_iname / cmap_name /
    pert_dose + pert_dose_unit. The 2020 names gave every signature the context 'unknown' (all cell lines
    merged) and the BRD id as the name; now both releases give one table."""
    old = gctx_to_long(_tiny(tmp_path), "d")[0]
    (tmp_path / "new").mkdir()
    row = pd.DataFrame({"id": ["101", "102", "103"], "pr_gene_symbol": ["AAA", "BBB", "CCC"],
                        "pr_gene_id": [101, 102, 103], "pr_is_lm": [1, 1, 0]})
    col = pd.DataFrame({
        "id": ["s1", "s2", "s3", "s4"], "cell_iname": ["A375", "A375", "HEC-1-A", "A375"],
        "pert_type": ["trt_cp", "trt_cp", "ctl_vehicle", "trt_sh"],
        "cmap_name": ["Imatinib mesylate", "imatinib", "DMSO", "BBB"], "pert_id": ["BRD-1", "BRD-1", "DMSO", "TRCN1"],
        "pert_dose": ["10", "500", None, None], "pert_dose_unit": ["uM", "nM", None, None],
        "pert_time": ["24", "6", "24", "96"], "pert_time_unit": ["h", "h", "h", "h"]})
    write_gctx(tmp_path / "new" / "tiny.gctx", np.arange(12, dtype=np.float32).reshape(4, 3), row, col)
    new, reader = gctx_to_long(tmp_path / "new" / "tiny.gctx", "d")
    assert set(new["context"].astype(str)) == {"A375", "HEC1A"}
    assert not any("not recorded" in n for n in reader.report.notes)
    cols = ["signature_id", "context", "perturbation", "readout", "value"]
    pd.testing.assert_frame_equal(new[cols].astype(str), old[cols].astype(str))


def _geo_gctx(folder):
    """A GCTX as GEO / CLUE publish it (column metadata: only the ids) and its two signature tables."""
    row = pd.DataFrame({"id": ["101", "102", "103"], "pr_gene_symbol": ["AAA", "BBB", "CCC"]})
    ids = ["S1", "S2", "S3", "S4"]
    path = write_gctx(folder / "geo.gctx", np.arange(12, dtype=np.float32).reshape(4, 3), row, pd.DataFrame({"id": ids}))
    common = {"sig_id": ids, "pert_id": ["BRD-1", "BRD-1", "DMSO", "BRD-2"],
              "pert_type": ["trt_cp", "trt_cp", "ctl_vehicle", "trt_cp"]}
    pd.DataFrame({**common, "pert_iname": ["vorinostat", "vorinostat", "DMSO", "imatinib"],
                  "cell_id": ["A375", "MCF7", "A375", "A375"], "pert_idose": ["10 µM", "10 µM", "-666", "500 nM"]}
                 ).to_csv(folder / "sig_info.txt", sep="\t", index=False)
    pd.DataFrame({**common, "cmap_name": ["vorinostat", "vorinostat", "DMSO", "imatinib"],
                  "cell_iname": ["A375", "MCF7", "A375", "A375"], "pert_dose": ["10", "10", "", "500"],
                  "pert_dose_unit": ["uM", "uM", "", "nM"]}).to_csv(folder / "siginfo_beta.txt.gz", sep="\t", index=False)
    return path


def test_a_geo_gctx_reads_its_fields_from_the_signature_info_table(tmp_path):
    """GEO / CLUE level-5 GCTX files carry only signature ids; pert_type, names, cell lines and doses are in
    sig_info.txt (2017) or siginfo_beta.txt (2020). Without the table the file is refused with one line
    naming the signature_info option; with either release's table it reads to the same signatures."""
    path = _geo_gctx(tmp_path)
    with pytest.raises(InputFileError, match="no pert_type.*signature_info"):
        GctxToLong(path, "d")
    old, r_old = gctx_to_long(path, "d", signature_info=tmp_path / "sig_info.txt")
    new, _ = gctx_to_long(path, "d", signature_info=tmp_path / "siginfo_beta.txt.gz")
    pd.testing.assert_frame_equal(old.astype(str), new.astype(str))
    assert set(old["perturbation"].astype(str)) == {"compound:name:vorinostat@10uM", "compound:name:imatinib@0.5uM",
                                                    "control:DMSO"}
    assert set(old["context"].astype(str)) == {"A375", "MCF7"} and len(old) == 12
    assert any("signature info table" in n for n in r_old.report.notes)
    pd.DataFrame({"sig_id": ["S1"], "pert_type": ["trt_cp"], "pert_iname": ["x"]}).to_csv(tmp_path / "part.txt", sep="\t",
                                                                                        index=False)
    part, r_part = gctx_to_long(path, "d", signature_info=tmp_path / "part.txt")
    assert r_part.report.accepted == 1 and r_part.report.quarantined == 3
    with pytest.raises(InputFileError, match="signature info table does not exist"):
        GctxToLong(path, "d", signature_info=tmp_path / "nope.txt")


def test_readout_key_names_the_row_field_of_the_readouts(tmp_path):
    """The readout_key option reads a GCTX's readouts from that row metadata field (it was silently ignored);
    a field the file lacks is refused with the fields it has."""
    from graph.io.genes import GeneResolver
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader

    row = pd.DataFrame({"id": ["g1", "g2"], "pr_gene_symbol": ["old1", "old2"], "ensembl": ["ENSG01", "ENSG02"]})
    col = pd.DataFrame({"id": ["a"], "pert_type": ["trt_cp"], "pert_iname": ["x"], "cell_id": ["A375"]})
    path = write_gctx(tmp_path / "k.gctx", np.ones((1, 2), np.float32), row, col)
    resolver = GeneResolver([GeneRecord(1, "AAA", ensembl_id="ENSG01"), GeneRecord(2, "BBB", ensembl_id="ENSG02")])
    conv = open_streaming_reader(path, "gctx", "k", ReadOptions(readout_key="ensembl"), resolver=resolver)
    assert set(pd.concat(list(conv.iter_long()))["readout"]) == {"AAA", "BBB"}
    assert any("row field 'ensembl' (the readout_key option)" in n for n in conv.report.notes)
    with pytest.raises(InputFileError, match=r"no row metadata field 'entrez'.*'ensembl', 'pr_gene_symbol'"):
        open_streaming_reader(path, "gctx", "k", ReadOptions(readout_key="entrez"))


def test_a_bare_pert_time_is_noted_as_tables_and_h5ad_note_it(tmp_path):
    """A GCTX time is a signature's metadata (each column is its own signature): a bare number without
    pert_time_unit is left unrecorded, with the readers' one note (identifiers.unitless_time_note), not
    counted as unparseable; a unit makes it a time."""
    row = pd.DataFrame({"id": ["g1"], "pr_gene_symbol": ["AAA"]})
    col = pd.DataFrame({"id": ["a", "b"], "pert_type": ["trt_cp", "trt_cp"], "pert_iname": ["x", "y"],
                        "cell_id": ["A375", "A375"], "pert_time": ["24", "6"]})
    _, conv = gctx_to_long(write_gctx(tmp_path / "bare.gctx", np.ones((2, 1), np.float32), row, col), "d")
    assert conv.signature_table["time_value"].isna().all()
    assert any("2 time value(s) without a unit ('24', '6')" in n and "a 'pert_time_unit' column" in n
               for n in conv.report.notes)
    assert not any("unparseable" in n for n in conv.report.notes)
    _, conv = gctx_to_long(write_gctx(tmp_path / "unit.gctx", np.ones((2, 1), np.float32), row,
                                      col.assign(pert_time_unit="h")), "d")
    assert list(conv.signature_table["time_value"]) == [24.0, 6.0]

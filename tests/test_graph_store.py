"""graph.store: the columnar value store (atomic, hashed, verified against the graph) and quarantine."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from graph.db import checks
from graph.db.graph_writer import GraphWriter
from graph.db.pipeline_queries import dataset_store_records
from graph.records import MEASUREMENT_COLUMNS, DatasetRecord, QuarantineRecord
from graph.settings import Settings
from graph.store import measurements as store
from graph.store import quarantine


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home")


def table(dataset="ds1", n_sigs=3, readouts=("TP53", "MYC")):
    rows = []
    for i in reversed(range(n_sigs)):
        for j, r in enumerate(readouts):
            rows.append((dataset, f"{dataset}:sig{i}", "A375", f"compound:X{i}", "compound", r, i + j / 10))
    return pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS))


def test_write_and_load_roundtrip_sorted_canonical(settings):
    entry = store.write_measurements(settings, "ds1", table())
    assert entry.n_rows == 6 and entry.n_signatures == 3
    path = settings.store_dir / "ds1" / "measurements.parquet"
    assert entry.path(settings) == path and path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json", "measurements.parquet"]
    assert json.loads((path.parent / "manifest.json").read_text())["sha256"] == entry.sha256
    assert entry.sha256 == store.sha256_file(path)
    df = store.load_training_table(settings, ["ds1"])
    assert tuple(df.columns) == MEASUREMENT_COLUMNS
    assert str(df["value"].dtype) == "float32"
    assert list(df["signature_id"]) == sorted(df["signature_id"])
    assert df.loc[(df.signature_id == "ds1:sig2") & (df.readout == "MYC"), "value"].item() == pytest.approx(2.1)


def test_identical_rewrite_keeps_entry_and_changed_content_changes_hash(settings):
    first = store.write_measurements(settings, "ds1", table())
    again = store.write_measurements(settings, "ds1", table().sample(frac=1, random_state=0))
    assert again == first
    changed = store.write_measurements(settings, "ds1", table(n_sigs=4))
    assert changed.sha256 != first.sha256 and changed.n_signatures == 4
    assert not list(settings.store_dir.rglob(".*tmp*"))  # no temp files left behind


def test_tampered_file_is_detected(settings):
    entry = store.write_measurements(settings, "ds1", table())
    with open(entry.path(settings), "ab") as f:
        f.write(b"x")
    with pytest.raises(store.StoreIntegrityError, match="sha256"):
        store.load_training_table(settings, ["ds1"])
    with pytest.raises(store.StoreIntegrityError, match="no measurements"):
        store.load_training_table(settings, ["missing"])


def test_several_datasets_and_signature_filter(settings):
    store.write_measurements(settings, "ds1", table("ds1"))
    store.write_measurements(settings, "ds2", table("ds2", n_sigs=2))
    df = store.load_training_table(settings, ["ds1", "ds2"])
    assert len(df) == 10 and set(df["dataset"]) == {"ds1", "ds2"}
    df = store.load_training_table(settings, ["ds1", "ds2"], signature_ids=["ds2:sig1"])
    assert set(df["signature_id"]) == {"ds2:sig1"} and len(df) == 2


def test_training_table_read_by_row_group_equals_the_file(settings):
    # 300 signatures (> 127: the codes widen from int8 to int16 mid-read) in 60 row groups of 100 rows.
    whole = big_table(n_sigs=300, n_readouts=20)
    with store.MeasurementWriter(settings, "ds1", row_group=100) as w:
        w.append(whole.sample(frac=1, random_state=2))
    store.write_measurements(settings, "ds2", big_table("ds2", n_sigs=5))
    path = w.entry.path(settings)
    assert pq.ParquetFile(path).metadata.num_row_groups == 60
    got = store.load_training_table(settings, ["ds1", "ds2"])
    expected = pd.concat([pq.read_table(path).to_pandas(), pq.read_table(settings.store_dir / "ds2" /
                                                                         store.MEASUREMENTS_FILE).to_pandas()])
    pd.testing.assert_frame_equal(got.astype({c: str for c in MEASUREMENT_COLUMNS if c != "value"}),
                                  expected.reset_index(drop=True))
    assert got["signature_id"].cat.codes.dtype == np.int16 and got["readout"].cat.codes.dtype == np.int8
    for c in MEASUREMENT_COLUMNS[:-1]:  # categories in code point order, only those present
        cats = list(got[c].cat.categories)
        assert cats == sorted(cats) == sorted(set(expected[c]))
    # Only the columns asked for; a signature filter reads only the row groups that can hold them.
    reads = []
    real = pq.ParquetFile.read_row_group
    pq.ParquetFile.read_row_group = lambda self, i, **kw: (reads.append(i), real(self, i, **kw))[1]
    try:
        few = store.load_training_table(settings, ["ds1"], signature_ids=["ds1:s007", "ds1:s250", "nope"],
                                        columns=["signature_id", "readout", "value"])
    finally:
        pq.ParquetFile.read_row_group = real
    assert list(few.columns) == ["signature_id", "readout", "value"] and len(few) == 40
    assert list(few["signature_id"].cat.categories) == ["ds1:s007", "ds1:s250"] and few["value"].dtype == np.float32
    assert len(reads) <= 4  # 2 signatures x 20 rows span at most 2 row groups each
    with pytest.raises(ValueError, match="unknown measurement columns"):
        store.load_training_table(settings, ["ds1"], columns=["rank"])


def big_table(dataset="ds1", n_sigs=40, n_readouts=7, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(dataset, f"{dataset}:s{i:03d}", f"C{i % 3}", f"compound:X{i % 5}", "compound", f"G{g}",
             float(rng.normal())) for i in range(n_sigs) for g in range(n_readouts)]
    return pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS))


def _chunks(df, size, *, shuffle, categorical):
    if shuffle:
        df = df.sample(frac=1, random_state=1)
    for lo in range(0, len(df), size):
        part = df.iloc[lo:lo + size]
        if categorical:  # each chunk with its own categories, in its own (unsorted) order
            part = part.astype({c: "category" for c in MEASUREMENT_COLUMNS if c != "value"})
            part["signature_id"] = part["signature_id"].cat.reorder_categories(
                part["signature_id"].cat.categories[::-1])
        yield part


@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("categorical", [False, True], ids=["text", "categorical"])
def test_chunked_write_equals_whole_write(settings, shuffle, categorical):
    whole = big_table()
    kw = {"row_group": 50, "sort_rows": 60}  # several row groups; shuffled chunks sort in 5+ buckets
    with store.MeasurementWriter(settings, "ds1", **kw) as w:
        w.append(whole)
    reference, ref_bytes = w.entry, (settings.store_dir / "ds1" / store.MEASUREMENTS_FILE).read_bytes()
    other = Settings(home=settings.home / "other")
    with store.MeasurementWriter(other, "ds1", **kw) as w:
        for part in _chunks(whole, 23, shuffle=shuffle, categorical=categorical):
            w.append(part)
    entry = w.entry
    assert w.buckets >= 5 if shuffle else w.buckets == 0  # 280 rows in buckets of <= 60 rows
    path = entry.path(other)
    assert entry.sha256 == reference.sha256 == store.sha256_file(path)
    assert path.read_bytes() == ref_bytes
    assert (entry.n_rows, entry.n_signatures) == (len(whole), 40)
    assert pq.ParquetFile(path).metadata.num_row_groups == 6  # 280 rows / 50
    got = store.load_training_table(other, ["ds1"])
    expected = whole.sort_values(["signature_id", "readout"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.astype({c: str for c in MEASUREMENT_COLUMNS if c != "value"}),
                                  expected.astype({"value": "float32"}), check_dtype=True)
    assert not list(other.store_dir.rglob(".*tmp*"))


def test_spill_after_row_groups_were_written_equals_whole_write(settings):
    # Sorted chunks, but the first arrives last: 5 row groups are already in the temp file when the
    # writer has to spill; they are read back as codes and sorted with the rest, in buckets of <= 30 rows.
    whole = big_table()
    kw = {"row_group": 25, "sort_rows": 30}
    with store.MeasurementWriter(settings, "ds1", **kw) as w:
        w.append(whole)
    reference = w.entry
    parts = list(_chunks(whole, 40, shuffle=False, categorical=True))
    other = Settings(home=settings.home / "other")
    with store.MeasurementWriter(other, "ds1", **kw) as w:
        for part in parts[1:] + parts[:1]:
            w.append(part)
    assert w.buckets >= 9 and w.entry.sha256 == reference.sha256 and w.entry.n_rows == len(whole)
    assert not list(other.store_dir.rglob(".*tmp*"))


def test_write_measurements_equals_default_chunked_writer(settings):
    whole = big_table(n_sigs=300, n_readouts=20)
    reference = store.write_measurements(settings, "ds1", whole)
    other = Settings(home=settings.home / "other")
    with store.MeasurementWriter(other, "ds1") as w:
        for part in _chunks(whole, 1000, shuffle=True, categorical=True):
            w.append(part)
    assert w.entry.sha256 == reference.sha256 and w.entry.n_signatures == 300


@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
def test_duplicates_across_chunks_are_refused_and_nothing_is_stored(settings, shuffle):
    whole = big_table()
    with pytest.raises(ValueError, match="duplicate"):
        with store.MeasurementWriter(settings, "ds1", row_group=50, sort_rows=60) as w:
            for part in _chunks(whole, 23, shuffle=shuffle, categorical=False):
                w.append(part)
            w.append(whole.iloc[[5]].assign(value=9.0))  # a repeat of an earlier key
    assert store.read_manifest(settings, "ds1") is None
    assert not (settings.store_dir / "ds1").exists()  # the folder this writer made is removed again


def test_error_mid_write_leaves_the_previous_store(settings):
    first = store.write_measurements(settings, "ds1", table())
    folder = settings.store_dir / "ds1"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def chunks():
        yield from _chunks(big_table(), 23, shuffle=True, categorical=False)  # spills, writes row groups
        raise OSError("reader failed half way")

    with pytest.raises(OSError, match="half way"):
        with store.MeasurementWriter(settings, "ds1", row_group=10, sort_rows=60) as w:
            for part in chunks():
                w.append(part)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temp file or spill left
    assert store.read_manifest(settings, "ds1") == first
    assert len(store.load_training_table(settings, ["ds1"])) == 6


_KILL_MID_WRITE = """
import os, signal, sys
import pandas as pd
sys.path.insert(0, {root!r})
from graph.store import measurements as store
from graph.settings import Settings
df = pd.read_pickle({pickle!r})
w = store.MeasurementWriter(Settings(home={home!r}), "ds1", row_group=10, sort_rows=60)
w.append(df.iloc[100:])
w.append(df.iloc[:100])   # out of order: spilled
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_crash_mid_write_marks_nothing_complete_and_next_writer_cleans_up(settings, tmp_path):
    first = store.write_measurements(settings, "ds1", table())
    whole = big_table()
    whole.to_pickle(tmp_path / "df.pkl")
    code = _KILL_MID_WRITE.format(root=str(Path(__file__).resolve().parents[1]), pickle=str(tmp_path / "df.pkl"),
                                  home=str(settings.home))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    folder = settings.store_dir / "ds1"
    assert [p.name for p in folder.glob(".*tmp-*")]  # the dead writer's temp files are still there
    assert store.read_manifest(settings, "ds1") == first  # ... but nothing new is marked complete
    assert len(store.load_training_table(settings, ["ds1"])) == 6
    entry = store.write_measurements(settings, "ds1", whole)  # the next writer removes the leftovers
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "measurements.parquet"]
    assert entry.n_rows == len(whole) and entry.sha256 != first.sha256


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.drop(columns=["readout"]), "missing"),
        (lambda d: d.assign(extra=1), "extra"),
        (lambda d: d.assign(dataset="other"), "other datasets"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "duplicate"),
    ],
)
def test_bad_tables_are_refused(settings, mutate, message):
    with pytest.raises(ValueError, match=message):
        store.write_measurements(settings, "ds1", mutate(table()))


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "x" * 300])
def test_dataset_ids_must_be_safe_file_names(settings, bad):
    with pytest.raises(ValueError):
        store.write_measurements(settings, bad, table(bad))


def test_quarantine_table_dedups_and_counts(settings):
    recs = [
        QuarantineRecord("ds1", "k1", "unparseable dose", {"dose": "10 µM?", "n": 1}),
        QuarantineRecord("ds1", "k2", "unknown gene", {"symbol": "NOTAGENE"}),
    ]
    rep = quarantine.write_quarantine(settings, "ds1", recs)
    assert rep.n_rows == 2 and rep.by_reason == {"unknown gene": 1, "unparseable dose": 1}
    assert rep.path == settings.quarantine_dir / "ds1.parquet"
    rep = quarantine.write_quarantine(settings, "ds1", recs + [QuarantineRecord("ds1", "k3", "unknown gene", {})])
    assert rep.n_rows == 3
    df = quarantine.read_quarantine(settings, "ds1")
    assert list(df.columns) == ["source", "record_key", "reason", "raw"]
    assert json.loads(df.loc[df.record_key == "k1", "raw"].item()) == {"dose": "10 µM?", "n": 1}
    quarantine.write_quarantine(settings, "ds2", [])
    assert quarantine.quarantine_counts(settings) == {"ds1": 3, "ds2": 0}


@pytest.mark.neo4j
def test_training_table_verified_against_the_graph(empty_graph, settings):
    ds = DatasetRecord("ds1", "ds one", "test", "1", "/x", "e" * 64, "CC0", "long_table")
    w = GraphWriter(empty_graph)
    w.ensure_schema()
    w.write_dataset(ds)
    entry = store.write_measurements(settings, "ds1", table())
    with pytest.raises(store.StoreIntegrityError, match="loading"):
        store.load_training_table(settings, ["ds1"], dataset_store_records(empty_graph, ["ds1"], database=None))
    w.mark_dataset_complete("ds1", store_entry=entry)
    got = checks.get_dataset(empty_graph, "ds1")
    assert got["store_sha256"] == entry.sha256 and got["store_path"] == "ds1/measurements.parquet"
    assert got["store_rows"] == 6
    assert len(store.load_training_table(settings, ["ds1"], dataset_store_records(empty_graph, ["ds1"], database=None))) == 6
    store.write_measurements(settings, "ds1", table(n_sigs=2))  # the store moved on, the graph did not
    with pytest.raises(store.StoreIntegrityError, match="graph records"):
        store.load_training_table(settings, ["ds1"], dataset_store_records(empty_graph, ["ds1"], database=None))

"""graph.store: the columnar value store (atomic, hashed, verified against the graph) and quarantine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from graph import store, writer
from graph.records import MEASUREMENT_COLUMNS, DatasetRecord, QuarantineRecord
from graph.settings import Settings


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
    rep = store.write_quarantine(settings, "ds1", recs)
    assert rep.n_rows == 2 and rep.by_reason == {"unknown gene": 1, "unparseable dose": 1}
    assert rep.path == settings.quarantine_dir / "ds1.parquet"
    rep = store.write_quarantine(settings, "ds1", recs + [QuarantineRecord("ds1", "k3", "unknown gene", {})])
    assert rep.n_rows == 3
    df = store.read_quarantine(settings, "ds1")
    assert list(df.columns) == ["source", "record_key", "reason", "raw"]
    assert json.loads(df.loc[df.record_key == "k1", "raw"].item()) == {"dose": "10 µM?", "n": 1}
    store.write_quarantine(settings, "ds2", [])
    assert store.quarantine_counts(settings) == {"ds1": 3, "ds2": 0}


@pytest.mark.neo4j
def test_training_table_verified_against_the_graph(empty_graph, settings):
    ds = DatasetRecord("ds1", "ds one", "test", "1", "/x", "e" * 64, "CC0", "long_table")
    writer.ensure_schema(empty_graph)
    writer.write_dataset(empty_graph, ds)
    entry = store.write_measurements(settings, "ds1", table())
    with pytest.raises(store.StoreIntegrityError, match="loading"):
        store.load_training_table(settings, ["ds1"], empty_graph)
    writer.mark_dataset_complete(empty_graph, "ds1", store_entry=entry)
    got = writer.get_dataset(empty_graph, "ds1")
    assert got["store_sha256"] == entry.sha256 and got["store_path"] == "ds1/measurements.parquet"
    assert got["store_rows"] == 6
    assert len(store.load_training_table(settings, ["ds1"], empty_graph)) == 6
    store.write_measurements(settings, "ds1", table(n_sigs=2))  # the store moved on, the graph did not
    with pytest.raises(store.StoreIntegrityError, match="graph records"):
        store.load_training_table(settings, ["ds1"], empty_graph)

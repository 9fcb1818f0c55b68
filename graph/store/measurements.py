"""The measurement store: one parquet file of values per dataset.

Measured values (signature x readout) never become Neo4j nodes. They live here, one parquet file
per dataset, in the canonical long format `graph.records.MEASUREMENT_COLUMNS`:

    <settings.store_dir>/<dataset_id>/measurements.parquet   sorted by (signature_id, readout)
    <settings.store_dir>/<dataset_id>/manifest.json          sha256 of the parquet file, rows, ...

Measurements are appended chunk by chunk (`MeasurementWriter`; `write_measurements` is the one-chunk
case), so ingest memory does not grow with the number of signatures. Files are written to a
temporary name in the same folder and moved into place with os.replace (atomic on POSIX), the
manifest after the data. The content hash (sha256 of the parquet bytes) is
also recorded on the Dataset node (`store_sha256`, see graph.db.graph_writer.GraphWriter.
mark_dataset_complete), so a training table can be rebuilt from a graph snapshot and checked:
`load_training_table` (the caller reads the Dataset records; this module never talks to Neo4j).
Quarantine tables: graph.store.quarantine.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from graph.io.common import sha256_file
from graph.records import MEASUREMENT_COLUMNS
from graph.settings import Settings
from graph.store.files import (
    atomic_write_text,
    check_id,
    fsync_dir,
    remove_stale_temps,
    tmp_name,
    write_error,
)

MEASUREMENTS_FILE = "measurements.parquet"
MANIFEST_FILE = "manifest.json"
_TEXT_COLUMNS = tuple(c for c in MEASUREMENT_COLUMNS if c != "value")
_ROW_GROUP = 250_000  # rows per row group: bounds the text built at once (and filter pushdown granularity)


class StoreIntegrityError(RuntimeError):
    """A stored file does not match the hash recorded in its manifest or in the graph."""


@dataclass(frozen=True)
class StoreEntry:
    dataset_id: str
    relpath: str  # relative to settings.store_dir
    sha256: str
    n_rows: int
    n_signatures: int
    written_at: str

    def path(self, settings: Settings) -> Path:
        return settings.store_dir / self.relpath



# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

# The file's bytes (hence its sha256) depend only on its rows: fixed schema (no pandas metadata, text as
# plain strings), rows in canonical order, fixed-size row groups, each written from one contiguous
# array. So a table written whole and the same rows appended in any chunks give the same file.
STORE_SCHEMA = pa.schema([(c, pa.float32() if c == "value" else pa.string()) for c in MEASUREMENT_COLUMNS])
_SORT_ROWS = 1_000_000  # rows sorted in memory at once when chunks arrive out of order
_SPILL_BATCH = 1_000_000  # <= parquet's default max row group (1,048,576): one piece = one row group


def canonical_measurements(table: pd.DataFrame, dataset_id: str) -> pd.DataFrame:
    """Validated, canonical copy: exactly MEASUREMENT_COLUMNS, text as category, value float32,
    sorted by (signature_id, readout); one row per (signature_id, readout)."""
    df = _canonical_chunk(table, dataset_id).arrow().to_pandas()
    for c in _TEXT_COLUMNS:
        df[c] = df[c].astype("category")
    return df


def _check_columns(table: pd.DataFrame) -> None:
    cols = set(table.columns)
    if cols != set(MEASUREMENT_COLUMNS):
        raise ValueError(
            f"measurement table columns {sorted(cols)} != {list(MEASUREMENT_COLUMNS)} "
            f"(missing {sorted(set(MEASUREMENT_COLUMNS) - cols)}, extra {sorted(cols - set(MEASUREMENT_COLUMNS))})"
        )


def _sorted_codes(s: pd.Series, name: str, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, categories) of a text column with the categories in lexical (code point) order."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        cats = np.asarray(s.cat.categories.astype(str), dtype=object)
        if (codes < 0).any():
            raise ValueError(f"{int((codes < 0).sum())} measurement rows of {dataset_id!r} have no {name}")
        order = np.argsort(cats, kind="stable")
        rank = np.empty(len(cats), np.int64)
        rank[order] = np.arange(len(cats))
        return rank[codes], cats[order]
    if s.isna().any():
        raise ValueError(f"{int(s.isna().sum())} measurement rows of {dataset_id!r} have no {name}")
    codes, uniques = pd.factorize(s.astype(str), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


@dataclass(frozen=True)
class _Chunk:
    """One validated chunk as sorted integer codes; text is built per slice (`arrow`), not all at once."""

    coded: dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (codes in sorted row order, categories)
    value: np.ndarray  # float32, sorted row order
    first: tuple[str, str] | None
    last: tuple[str, str] | None
    per_sig: dict[str, int]

    def __len__(self) -> int:
        return len(self.value)

    def arrow(self, lo: int = 0, hi: int | None = None) -> pa.Table:
        arrays = []
        for c in MEASUREMENT_COLUMNS:
            if c == "value":
                arrays.append(pa.array(self.value[lo:hi], pa.float32()))
            else:
                codes, cats = self.coded[c]
                arrays.append(pa.DictionaryArray.from_arrays(pa.array(codes[lo:hi], pa.int32()),
                                                             pa.array(cats, pa.string())).dictionary_decode())
        return pa.Table.from_arrays(arrays, schema=STORE_SCHEMA)


def _canonical_chunk(table: pd.DataFrame, dataset_id: str) -> _Chunk:
    """One chunk, sorted by (signature_id, readout), with its first and last key and rows per signature.
    Raises ValueError on wrong columns, other datasets, missing text, non-numeric values or a repeated
    (signature_id, readout) inside the chunk."""
    _check_columns(table)
    coded = {c: _sorted_codes(table[c], c, dataset_id) for c in _TEXT_COLUMNS}
    other = set(coded["dataset"][1][np.unique(coded["dataset"][0])]) - {dataset_id}
    if other:
        raise ValueError(f"measurement rows of other datasets in {dataset_id!r}: {sorted(other)[:5]}")
    value = pd.to_numeric(table["value"], errors="raise").to_numpy(dtype=np.float32)
    sig_cats, readout_cats = coded["signature_id"][1], coded["readout"][1]
    order = np.lexsort((coded["readout"][0], coded["signature_id"][0]))
    coded = {c: (codes[order].astype(np.int32), cats) for c, (codes, cats) in coded.items()}
    sig, readout = coded["signature_id"][0], coded["readout"][0]
    dup = (sig[1:] == sig[:-1]) & (readout[1:] == readout[:-1])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (signature_id, readout) rows in {dataset_id!r}")
    if not len(order):
        return _Chunk(coded, value, None, None, {})
    present, counts = np.unique(sig, return_counts=True)
    return _Chunk(coded, value[order], (sig_cats[sig[0]], readout_cats[readout[0]]),
                  (sig_cats[sig[-1]], readout_cats[readout[-1]]),
                  dict(zip(sig_cats[present].tolist(), counts.tolist(), strict=True)))


class MeasurementWriter:
    """Append one dataset's measurements chunk by chunk; the store file appears only at `close()`.

        with MeasurementWriter(settings, "ds1") as w:
            for chunk in reader.iter_long():
                w.append(chunk)
        entry = w.entry   # the StoreEntry to record on the Dataset node

    Rows end up sorted by (signature_id, readout) in fixed-size row groups, so the file and its sha256
    are the same as `write_measurements` of the whole table, whatever the chunking. Chunks that arrive
    in key order (a GCTX whose column ids are sorted) go straight to the temp file; once one arrives out
    of order, chunks are spilled to a temp folder and sorted at close in bounded slices (signature
    ranges of at most `sort_rows` rows), so memory does not grow with the number of signatures.
    Everything is written under temp names and moved into place at close (data first, then the
    manifest); an exception inside the `with` block, or a crash, leaves the previous store untouched
    (temp files of dead writers are removed by the next writer of that dataset).
    """

    def __init__(self, settings: Settings, dataset_id: str, *, row_group: int = _ROW_GROUP,
                 sort_rows: int = _SORT_ROWS):
        self.dataset_id = check_id(dataset_id)
        self._settings = settings
        self.folder = settings.store_dir / dataset_id
        self.path = self.folder / MEASUREMENTS_FILE
        self._row_group, self._sort_rows = row_group, sort_rows
        self._tmp = tmp_name(self.path)
        self._out: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._last: tuple[str, str] | None = None
        self._spill_dir: Path | None = None
        self._spill: pq.ParquetWriter | None = None
        self._spill_files: list[Path] = []
        self._sig_rows: dict[str, int] = {}
        self.n_rows = 0
        self.entry: StoreEntry | None = None
        self._finished = False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        remove_stale_temps(self.folder)

    def __enter__(self) -> MeasurementWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    # -- appending
    def append(self, chunk: pd.DataFrame) -> None:
        if self._finished:
            raise RuntimeError(f"measurement writer of {self.dataset_id!r} is closed")
        prepared = _canonical_chunk(chunk, self.dataset_id)
        if prepared.first is None:
            return
        self.n_rows += len(prepared)
        for sid, n in prepared.per_sig.items():
            self._sig_rows[sid] = self._sig_rows.get(sid, 0) + n
        in_order = self._spill_dir is None and (self._last is None or prepared.first > self._last)
        if not in_order and self._spill_dir is None and prepared.first == self._last:
            raise ValueError(f"1 duplicate (signature_id, readout) rows in {self.dataset_id!r}: {prepared.first}")
        if in_order:
            self._last = prepared.last
        # Strings are built one slice at a time: memory follows the row group, not the chunk.
        for lo in range(0, len(prepared), self._row_group):
            arrow = prepared.arrow(lo, lo + self._row_group)
            if in_order:
                self._emit(arrow)
            else:
                self._spill_write(arrow)

    def _emit(self, arrow: pa.Table) -> None:
        """Rows in final order -> full row groups of the temp file (the rest stays buffered)."""
        self._buffer.append(arrow)
        self._buffered += len(arrow)
        if self._buffered < self._row_group:
            return
        rows = pa.concat_tables(self._buffer)
        at = 0
        while len(rows) - at >= self._row_group:
            self._write_group(rows.slice(at, self._row_group))
            at += self._row_group
        rest = rows.slice(at)
        self._buffer, self._buffered = ([rest] if len(rest) else []), len(rest)

    def _write_group(self, rows: pa.Table) -> None:
        try:
            if self._out is None:
                self._out = pq.ParquetWriter(self._tmp, STORE_SCHEMA, compression="zstd")
            self._out.write_table(rows.combine_chunks(), row_group_size=max(1, len(rows)))
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    def _spill_write(self, arrow: pa.Table) -> None:
        try:
            if self._spill_dir is None:
                # Out of order from here on: what was written so far becomes the first spilled run.
                self._spill_dir = self.folder / f".spill.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                self._spill_dir.mkdir()
                if self._buffer:
                    self._write_group(pa.concat_tables(self._buffer))
                    self._buffer, self._buffered = [], 0
                if self._out is not None:
                    self._out.close()
                    self._out = None
                    run0 = self._spill_dir / "run-0.parquet"
                    os.replace(self._tmp, run0)
                    self._spill_files.append(run0)
            if self._spill is None:
                path = self._spill_dir / "run-1.parquet"
                self._spill = pq.ParquetWriter(path, STORE_SCHEMA, compression="lz4")
                self._spill_files.append(path)
            self._spill.write_table(arrow)
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    # -- finishing
    def _sort_spilled(self) -> None:
        """External sort of the spilled runs: split rows into signature-range buckets of at most
        sort_rows rows (row groups of one temp file), then sort each bucket in memory and emit it in order."""
        assert self._spill_dir is not None
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        sig_ids = sorted(self._sig_rows)
        bucket = np.empty(len(sig_ids), np.int64)
        b = acc = 0
        for i, sid in enumerate(sig_ids):
            n = self._sig_rows[sid]
            if acc and acc + n > self._sort_rows:
                b, acc = b + 1, 0
            bucket[i] = b
            acc += n
        n_buckets = b + 1
        if n_buckets == 1:
            frame = pa.concat_tables([pq.read_table(f, read_dictionary=list(_TEXT_COLUMNS))
                                      for f in self._spill_files]).to_pandas()
            for f in self._spill_files:
                f.unlink()
            self._emit_sorted(frame)
        else:
            # One bucket file: each piece (rows of one bucket from one spilled batch) is one row group, and
            # the row groups of each bucket are remembered. One open writer whatever the bucket count.
            value_set = pa.array(sig_ids, pa.string())
            bucket_file = self._spill_dir / "buckets.parquet"
            groups: list[list[int]] = [[] for _ in range(n_buckets)]
            writer: pq.ParquetWriter | None = None
            n_groups = 0
            try:
                for f in self._spill_files:
                    # Text stays dictionary-encoded: a bucket is found per distinct signature, not per row.
                    spilled = pq.ParquetFile(f, read_dictionary=list(_TEXT_COLUMNS))
                    for batch in spilled.iter_batches(batch_size=_SPILL_BATCH):
                        sig = batch.column("signature_id")
                        rank = pc.index_in(sig.dictionary, value_set=value_set).to_numpy(zero_copy_only=False)
                        bk = bucket[rank.astype(np.int64)[sig.indices.to_numpy(zero_copy_only=False)]]
                        order = np.argsort(bk, kind="stable")
                        present, starts = np.unique(bk[order], return_index=True)
                        ends = np.append(starts[1:], len(order))
                        for k, lo, hi in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
                            if writer is None:
                                writer = pq.ParquetWriter(bucket_file, batch.schema, compression="lz4")
                            writer.write_table(pa.Table.from_batches([batch.take(pa.array(order[lo:hi]))]),
                                               row_group_size=hi - lo)
                            groups[k].append(n_groups)
                            n_groups += 1
                    f.unlink()
            finally:
                if writer is not None:
                    writer.close()
            buckets = pq.ParquetFile(bucket_file, read_dictionary=list(_TEXT_COLUMNS))
            if buckets.metadata.num_row_groups != n_groups:  # a piece split in two would shift every index
                raise RuntimeError(f"{bucket_file}: {buckets.metadata.num_row_groups} row groups, {n_groups} written")
            for k in range(n_buckets):
                if groups[k]:
                    self._emit_sorted(buckets.read_row_groups(groups[k]).to_pandas())
            bucket_file.unlink()

    def _emit_sorted(self, frame: pd.DataFrame) -> None:
        """A bucket (categoricals) sorted on integer codes; strings are built per emitted row group."""
        prepared = _canonical_chunk(frame, self.dataset_id)
        del frame
        for lo in range(0, len(prepared), self._row_group):
            self._emit(prepared.arrow(lo, lo + self._row_group))

    def close(self) -> StoreEntry:
        """Sort what was spilled, finish the file, move it into place, then the manifest."""
        if self.entry is not None:
            return self.entry
        if self._finished:
            raise RuntimeError(f"measurement writer of {self.dataset_id!r} was aborted")
        try:
            if self._spill_dir is not None:
                self._sort_spilled()
            if self._buffer or self._out is None:
                self._write_group(pa.concat_tables(self._buffer) if self._buffer else STORE_SCHEMA.empty_table())
                self._buffer, self._buffered = [], 0
            assert self._out is not None
            try:
                self._out.close()
                self._out = None
                with open(self._tmp, "rb+") as f:
                    os.fsync(f.fileno())
                digest = sha256_file(self._tmp)
                previous = read_manifest(self._settings, self.dataset_id)
                os.replace(self._tmp, self.path)
                fsync_dir(self.folder)
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            if previous is not None and previous.sha256 == digest:
                self.entry = previous
            else:
                self.entry = StoreEntry(
                    dataset_id=self.dataset_id,
                    relpath=f"{self.dataset_id}/{MEASUREMENTS_FILE}",
                    sha256=digest,
                    n_rows=self.n_rows,
                    n_signatures=len(self._sig_rows),
                    written_at=datetime.now(UTC).isoformat(timespec="seconds"),
                )
                atomic_write_text(json.dumps(asdict(self.entry), indent=2, sort_keys=True),
                                   self.folder / MANIFEST_FILE)
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._cleanup()
        return self.entry

    def abort(self) -> None:
        """Drop everything written so far; the previous store (if any) stays as it was."""
        self._finished = True
        for w in (self._out, self._spill):
            if w is not None:
                try:
                    w.close()
                except Exception:  # closing a half-written file can fail again (disk full): it is deleted anyway
                    pass
        self._out = self._spill = None
        self._buffer = []
        self._cleanup()
        try:
            self.folder.rmdir()  # a dataset folder this writer created and left empty
        except OSError:
            pass

    def _cleanup(self) -> None:
        self._tmp.unlink(missing_ok=True)
        if self._spill_dir is not None:
            shutil.rmtree(self._spill_dir, ignore_errors=True)


def _manifest_path(settings: Settings, dataset_id: str) -> Path:
    return settings.store_dir / check_id(dataset_id) / MANIFEST_FILE


def read_manifest(settings: Settings, dataset_id: str) -> StoreEntry | None:
    path = _manifest_path(settings, dataset_id)
    if not path.exists():
        return None
    return StoreEntry(**json.loads(path.read_text(encoding="utf-8")))


def write_measurements(settings: Settings, dataset_id: str, table: pd.DataFrame) -> StoreEntry:
    """Store one dataset's whole measurement table (atomically); returns the entry to record on the
    Dataset node. Same file as MeasurementWriter fed the same rows in any chunks.

    Re-writing identical content keeps the existing file and manifest (same hash, same entry).
    """
    with MeasurementWriter(settings, dataset_id) as w:
        w.append(table)
    assert w.entry is not None
    return w.entry


def verify_entry(settings: Settings, entry: StoreEntry) -> None:
    path = entry.path(settings)
    if not path.exists():
        raise StoreIntegrityError(f"{entry.dataset_id}: store file {path} is missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise StoreIntegrityError(
            f"{entry.dataset_id}: {path} has sha256 {actual}, manifest records {entry.sha256}"
        )


def load_training_table(
    settings: Settings,
    dataset_ids: Sequence[str],
    graph_records: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    signature_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The measurements of `dataset_ids` (canonical MEASUREMENT_COLUMNS), after checking each file's
    sha256 against its manifest and, when `graph_records` is given ({dataset_id: {status,
    store_sha256, ...}} as `graph.db.pipeline_queries.dataset_store_records` reads them), against the
    Dataset node in the graph (which must be 'complete' and record the same hash). Raises
    StoreIntegrityError on any mismatch. `signature_ids` restricts the rows (predicate pushed down to
    parquet)."""
    ids = list(dict.fromkeys(dataset_ids))
    graph = graph_records or {}
    frames = []
    wanted = None if signature_ids is None else sorted(set(signature_ids))
    for dataset_id in ids:
        entry = read_manifest(settings, dataset_id)
        if entry is None:
            raise StoreIntegrityError(f"{dataset_id}: no measurements in the store ({settings.store_dir})")
        verify_entry(settings, entry)
        if graph_records is not None:
            g = graph.get(dataset_id) or {}
            if g.get("status") != "complete":
                raise StoreIntegrityError(f"{dataset_id}: Dataset node is {g.get('status')!r}, not 'complete'")
            if g.get("store_sha256") != entry.sha256:
                raise StoreIntegrityError(
                    f"{dataset_id}: graph records store sha256 {g.get('store_sha256')}, file has {entry.sha256}"
                )
        filters = None if wanted is None else [("signature_id", "in", wanted)]
        # Text read straight into dictionaries -> categoricals: no per-row Python strings are built.
        frames.append(pq.read_table(entry.path(settings), filters=filters,
                                    read_dictionary=list(_TEXT_COLUMNS)).to_pandas())
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float32" if c == "value" else "category")
                             for c in MEASUREMENT_COLUMNS})
    if len(frames) > 1:
        out = pd.DataFrame({c: (union_categoricals([f[c].astype("category") for f in frames])
                                if c in _TEXT_COLUMNS else np.concatenate([f[c].to_numpy() for f in frames]))
                            for c in MEASUREMENT_COLUMNS})
    else:
        out = frames[0]
    for c in _TEXT_COLUMNS:
        out[c] = out[c].astype("category")
    out["value"] = out["value"].astype("float32")
    return out.loc[:, list(MEASUREMENT_COLUMNS)]

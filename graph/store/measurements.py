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
_SORT_ROWS = 2_000_000  # out-of-order rows held as codes at once (a spilled run, a sorted bucket): ~30 B a row


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


class _Vocab:
    """Global integer codes of one text column while chunks are spilled: value -> code, first seen first."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def codes(self, cats: np.ndarray) -> np.ndarray:
        """Global code of each of a chunk's categories (new values get the next codes)."""
        index = self.index
        return np.fromiter((index.setdefault(v, len(index)) for v in cats.tolist()), np.int32, len(cats))

    def lexical(self) -> tuple[np.ndarray, pa.Array]:
        """(rank of each global code in code point order, the values in that order)."""
        values = np.array(list(self.index), dtype=object)
        order = np.argsort(values, kind="stable")
        rank = np.empty(len(values), np.int32)
        rank[order] = np.arange(len(values), dtype=np.int32)
        return rank, pa.array(values[order], pa.string())


# Spilled rows are integer codes (one per text column, against the writer's _Vocab) plus the value, in
# Arrow IPC files: an IPC file's footer costs 24 bytes per batch and a batch is read alone (parquet's
# reader pre-buffers every row group it is asked for, so its memory grew with the spilled file).
_SPILL_SCHEMA = pa.schema([(c, pa.float32() if c == "value" else pa.int32()) for c in MEASUREMENT_COLUMNS])
_SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class MeasurementWriter:
    """Append one dataset's measurements chunk by chunk; the store file appears only at `close()`.

        with MeasurementWriter(settings, "ds1") as w:
            for chunk in reader.iter_long():
                w.append(chunk)
        entry = w.entry   # the StoreEntry to record on the Dataset node

    Rows end up sorted by (signature_id, readout) in fixed-size row groups, so the file and its sha256
    are the same as `write_measurements` of the whole table, whatever the chunking. Chunks that arrive
    in key order (a GCTX whose column ids are sorted) go straight to the temp file. Once one arrives out
    of order, rows are spilled as integer codes (runs of `sort_rows` rows) and sorted at close by an
    external sort whose memory is bounded by `sort_rows`, not by the file: the runs are split into
    signature-range buckets of at most `sort_rows` rows, then each bucket is sorted in memory and
    emitted. Everything is written under temp names and moved into place at close (data first, then
    the manifest); an exception inside the `with` block, or a crash, leaves the previous store untouched
    (temp files of dead writers are removed by the next writer of that dataset).
    """

    def __init__(self, settings: Settings, dataset_id: str, *, row_group: int = _ROW_GROUP,
                 sort_rows: int = _SORT_ROWS):
        self.dataset_id = check_id(dataset_id)
        self._settings = settings
        self.folder = settings.store_dir / dataset_id
        self.path = self.folder / MEASUREMENTS_FILE
        self._row_group, self._sort_rows = row_group, max(1, sort_rows)
        self._tmp = tmp_name(self.path)
        self._out: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._last: tuple[str, str] | None = None
        self._spill_dir: Path | None = None
        self._spill: pa.ipc.RecordBatchFileWriter | None = None
        self._vocab: dict[str, _Vocab] = {}
        self._run: list[pa.RecordBatch] = []  # spilled rows not yet written (fewer than sort_rows)
        self._run_rows = 0
        self._sig_rows: dict[str, int] = {}
        self.n_rows = 0
        self.buckets = 0  # signature-range buckets sorted at close (0: every chunk came in order)
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
        if not in_order:
            self._spill_chunk(prepared)
            return
        self._last = prepared.last
        # Strings are built one slice at a time: memory follows the row group, not the chunk.
        for lo in range(0, len(prepared), self._row_group):
            self._emit(prepared.arrow(lo, lo + self._row_group))

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

    def _spill_chunk(self, prepared: _Chunk) -> None:
        """Out-of-order rows -> global codes, held until a run of sort_rows rows is written."""
        if self._spill_dir is None:
            self._start_spill()
        arrays = [pa.array(prepared.value, pa.float32()) if c == "value" else
                  pa.array(self._vocab[c].codes(prepared.coded[c][1])[prepared.coded[c][0]], pa.int32())
                  for c in MEASUREMENT_COLUMNS]
        self._run.append(pa.RecordBatch.from_arrays(arrays, schema=_SPILL_SCHEMA))
        self._run_rows += len(prepared)
        if self._run_rows >= self._sort_rows:
            self._flush_run()

    def _start_spill(self) -> None:
        """Out of order from here on: what was written in order so far is spilled as codes too."""
        try:
            self._spill_dir = self.folder / f".spill.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self._spill_dir.mkdir()
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self._vocab = {c: _Vocab() for c in _TEXT_COLUMNS}
        written, self._out = self._out, None
        buffered, self._buffer, self._buffered = self._buffer, [], 0
        if written is not None:
            written.close()
            # One row group at a time, without pre-buffering: memory follows the row group.
            prefix = pq.ParquetFile(self._tmp, read_dictionary=list(_TEXT_COLUMNS), pre_buffer=False)
            for i in range(prefix.num_row_groups):
                self._spill_chunk(_canonical_chunk(prefix.read_row_group(i).to_pandas(), self.dataset_id))
            prefix.close()
            self._tmp.unlink()
        for arrow in buffered:
            self._spill_chunk(_canonical_chunk(arrow.to_pandas(), self.dataset_id))

    def _flush_run(self) -> None:
        if not self._run:
            return
        try:
            if self._spill is None:
                assert self._spill_dir is not None
                self._spill = pa.ipc.new_file(self._spill_dir / "runs.arrow", _SPILL_SCHEMA, options=_SPILL_OPTIONS)
            self._spill.write_table(pa.Table.from_batches(self._run).combine_chunks())
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self._run, self._run_rows = [], 0

    # -- finishing
    def _sort_spilled(self) -> None:
        """External sort of the spilled runs: split their rows into signature-range buckets of at most
        sort_rows rows (the pieces are batches of one IPC file, remembered per bucket), then sort each
        bucket in memory on integer ranks and emit it in order. Memory: one run or one bucket of codes."""
        assert self._spill_dir is not None
        self._flush_run()
        if self._spill is None:
            return
        self._spill.close()
        self._spill = None
        runs_path = self._spill_dir / "runs.arrow"
        lexical = {c: v.lexical() for c, v in self._vocab.items()}
        sig_rank = lexical["signature_id"][0]
        # Bucket of each signature rank: consecutive signatures while the rows fit in sort_rows.
        rows = np.fromiter((self._sig_rows[s] for s in lexical["signature_id"][1].to_pylist()), np.int64,
                           len(sig_rank))
        bucket = np.empty(len(rows), np.int32)
        b = acc = 0
        for i, n in enumerate(rows.tolist()):
            if acc and acc + n > self._sort_rows:
                b, acc = b + 1, 0
            bucket[i] = b
            acc += n
        n_buckets = self.buckets = b + 1
        try:
            if n_buckets == 1:  # the runs are the one bucket's pieces
                with pa.OSFile(str(runs_path)) as src:
                    pieces_path, pieces = runs_path, [list(range(pa.ipc.open_file(src).num_record_batches))]
            else:
                pieces_path, pieces = self._spill_dir / "buckets.arrow", [[] for _ in range(n_buckets)]
                bucket_of_code = bucket[sig_rank]
                with pa.OSFile(str(runs_path)) as src, \
                        pa.ipc.new_file(pieces_path, _SPILL_SCHEMA, options=_SPILL_OPTIONS) as out:
                    runs = pa.ipc.open_file(src)
                    n_pieces = 0
                    for r in range(runs.num_record_batches):
                        run = runs.get_batch(r)
                        bk = bucket_of_code[run.column("signature_id").to_numpy()]
                        order = np.argsort(bk, kind="stable")
                        present, starts = np.unique(bk[order], return_index=True)
                        ends = np.append(starts[1:], len(order))
                        for k, lo, hi in zip(present.tolist(), starts.tolist(), ends.tolist(), strict=True):
                            out.write_batch(run.take(pa.array(order[lo:hi])))
                            pieces[k].append(n_pieces)
                            n_pieces += 1
                        del run
                runs_path.unlink()
            with pa.OSFile(str(pieces_path)) as src:
                reader = pa.ipc.open_file(src)
                for k in range(n_buckets):
                    if pieces[k]:
                        self._emit_bucket(pa.Table.from_batches([reader.get_batch(i) for i in pieces[k]],
                                                                schema=_SPILL_SCHEMA), lexical)
            pieces_path.unlink()
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    def _emit_bucket(self, bucket: pa.Table, lexical: dict[str, tuple[np.ndarray, pa.Array]]) -> None:
        """One bucket of codes sorted by (signature_id, readout) ranks; strings are built per row group."""
        ranks = {c: lexical[c][0][bucket.column(c).to_numpy()] for c in _TEXT_COLUMNS}
        value = bucket.column("value").to_numpy()
        del bucket
        order = np.lexsort((ranks["readout"], ranks["signature_id"]))
        sig, readout = ranks["signature_id"][order], ranks["readout"][order]
        dup = (sig[1:] == sig[:-1]) & (readout[1:] == readout[:-1])
        if dup.any():
            raise ValueError(f"{int(dup.sum())} duplicate (signature_id, readout) rows in {self.dataset_id!r}")
        for lo in range(0, len(order), self._row_group):
            at = order[lo:lo + self._row_group]
            arrays = [pa.array(value[at], pa.float32()) if c == "value" else lexical[c][1].take(pa.array(ranks[c][at]))
                      for c in MEASUREMENT_COLUMNS]
            self._emit(pa.Table.from_arrays(arrays, schema=STORE_SCHEMA))

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
        self._buffer, self._run = [], []
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


def _code_dtype(n_categories: int) -> type:
    """The code dtype pandas gives a Categorical of n categories (so from_codes keeps the array, no copy)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


class _CodeColumn:
    """One text column read row group by row group into a preallocated code array: the row groups'
    dictionaries map to global codes (first seen first), widened int8 -> int16 -> int32 as the
    categories grow, and sorted into code point order at the end (`categorical`)."""

    def __init__(self, n_rows: int) -> None:
        self.vocab = _Vocab()
        self.codes = np.zeros(n_rows, np.int8)

    def put(self, at: int, column: pa.ChunkedArray) -> None:
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):  # a column parquet stored without a dictionary
                chunk = chunk.dictionary_encode()
            mapping = self.vocab.codes(np.asarray(chunk.dictionary.to_pylist(), dtype=object))
            if (dtype := _code_dtype(len(self.vocab.index))) != self.codes.dtype:
                self.codes = self.codes.astype(dtype)
            self.codes[at:at + len(chunk)] = mapping[chunk.indices.to_numpy(zero_copy_only=False)]
            at += len(chunk)

    def categorical(self, n_rows: int) -> pd.Categorical:
        """The first n_rows as a Categorical whose categories are the values present, in code point order."""
        rank, values = self.vocab.lexical()
        codes = self.codes[:n_rows] if n_rows == len(self.codes) else self.codes[:n_rows].copy()
        self.codes = np.zeros(0, np.int8)
        step = 1 << 20  # slices: no second (int64) array of the column
        present = np.zeros(len(rank), bool)
        for lo in range(0, n_rows, step):
            present |= np.bincount(codes[lo:lo + step], minlength=len(rank)) > 0
        present_lex = np.zeros(len(rank), bool)
        present_lex[rank] = present  # values absent after a signature filter are dropped
        final = (np.cumsum(present_lex) - 1)[rank].astype(codes.dtype)
        for lo in range(0, n_rows, step):  # in place
            codes[lo:lo + step] = final[codes[lo:lo + step]]
        return pd.Categorical.from_codes(codes, categories=pd.Index(values.filter(pa.array(present_lex)).to_pylist(),
                                                                    dtype=object), validate=False)


def load_training_table(
    settings: Settings,
    dataset_ids: Sequence[str],
    graph_records: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    signature_ids: Iterable[str] | None = None,
    columns: Sequence[str] = MEASUREMENT_COLUMNS,
) -> pd.DataFrame:
    """The measurements of `dataset_ids` (`columns` of MEASUREMENT_COLUMNS: text as categoricals, value
    float32), after checking each file's sha256 against its manifest and, when `graph_records` is
    given ({dataset_id: {status, store_sha256, ...}} as `graph.db.pipeline_queries.dataset_store_records`
    reads them), against the Dataset node in the graph (which must be 'complete' and record the same
    hash). Raises
    StoreIntegrityError on any mismatch. `signature_ids` restricts the rows (row groups whose signature
    range holds none of them are not read).

    Read one row group at a time into arrays allocated once for the result (categorical codes and
    float32), so loading costs the returned table plus one row group, not an Arrow table plus pandas
    copies of it."""
    ids = list(dict.fromkeys(dataset_ids))
    columns = list(columns)
    if unknown := sorted(set(columns) - set(MEASUREMENT_COLUMNS)):
        raise ValueError(f"unknown measurement columns {unknown}; choose from {list(MEASUREMENT_COLUMNS)}")
    graph = graph_records or {}
    wanted = None if signature_ids is None else pa.array(sorted(set(signature_ids)), pa.string())
    files: list[tuple[pq.ParquetFile, list[int]]] = []
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
        # pre_buffer=False: parquet would otherwise buffer every requested row group ahead of use.
        f = pq.ParquetFile(entry.path(settings), read_dictionary=list(_TEXT_COLUMNS), pre_buffer=False)
        files.append((f, [i for i in range(f.num_row_groups) if _may_hold(f, i, wanted)]))
    n_max = sum(f.metadata.row_group(i).num_rows for f, groups in files for i in groups)
    text = {c: _CodeColumn(n_max) for c in columns if c != "value"}
    value = np.empty(n_max if "value" in columns else 0, np.float32)
    read = ["signature_id", *columns] if wanted is not None else columns
    at = 0
    for f, groups in files:
        for i in groups:
            rows = f.read_row_group(i, columns=list(dict.fromkeys(read)))
            if wanted is not None:
                rows = rows.filter(pc.is_in(rows.column("signature_id"), value_set=wanted))
            for c, col in text.items():
                col.put(at, rows.column(c))
            if "value" in columns:
                value[at:at + len(rows)] = rows.column("value").to_numpy()
            at += len(rows)
            del rows
        f.close()
    data: dict[str, Any] = {}
    for c in columns:  # one column at a time, each array handed to pandas as it is (copy=False)
        data[c] = text.pop(c).categorical(at) if c != "value" else (value if at == len(value) else value[:at].copy())
    return pd.DataFrame(data, columns=columns, copy=False)


def _may_hold(f: pq.ParquetFile, group: int, wanted: pa.Array | None) -> bool:
    """Whether a row group can hold a wanted signature (its min/max statistics; True when unknown)."""
    if wanted is None:
        return True
    if not len(wanted):
        return False
    stats = f.metadata.row_group(group).column(f.schema_arrow.get_field_index("signature_id")).statistics
    if stats is None or not stats.has_min_max:
        return True
    return bool(pc.any(pc.and_(pc.greater_equal(wanted, stats.min), pc.less_equal(wanted, stats.max))).as_py())

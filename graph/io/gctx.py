"""CMap GCTX 1.0 / GCT readers and writer, chunked column streaming, and conversion to the long table.

GCTX layout (HDF5): `/0/DATA/0/matrix` float32 stored (n_samples, n_genes) — the transpose of the
genes x samples GCT view; `/0/META/COL/<field>` (n_samples,) and `/0/META/ROW/<field>` (n_genes,),
each with an `id` field; text is fixed-length ASCII; -666 marks a missing value (CMap convention).
cmapPy does not run on current numpy/pandas, so this is a small h5py implementation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from graph.io.common import InputFileError, StreamedReader, clean_text, measurement_format
from graph.io.contexts import context_record, normalise_context_name
from graph.io.identifiers import canonical_gene_symbol, compound_id_for, time_point, unitless_time_note
from graph.io.options import TypeOverride, file_context
from graph.io.perturbations import parse_dose, perturbation_record
from graph.io.validation import (
    CONFLICT,
    DEFAULT_DUPLICATES,
    INFINITE,
    NOT_A_NUMBER,
    UNKNOWN_READOUT,
    UNKNOWN_TARGET,
    GeneCheck,
    duplicate_note,
    validate_measurements,
)
from graph.records import (
    MEASUREMENT_COLUMNS,
    PerturbationRecord,
    QuarantineRecord,
    ReadReport,
    SignatureRecord,
)

MATRIX = "0/DATA/0/matrix"
COL_META = "0/META/COL"
ROW_META = "0/META/ROW"
MISSING = -666
LANDMARK_FIELDS = ("pr_is_lm", "pr_is_lmark", "is_lm")
MAX_VALUE_RECORDS = 10_000  # rejected matrix values listed one by one per file; beyond, counted in the report
_MISSING_REASON = "CMap missing value (-666)"

Selection = str | Mapping[str, object] | Callable[[pd.DataFrame], object] | None


@dataclass(frozen=True)
class GctData:
    """A whole (small) matrix: row_meta indexed by gene id, col_meta by sample id, matrix (n_samples, n_genes)."""

    row_meta: pd.DataFrame
    col_meta: pd.DataFrame
    matrix: np.ndarray


def _decode(arr: np.ndarray) -> pd.Series:
    """One metadata field -> a Series with -666 as NA (text stripped and decoded, ints nullable)."""
    if arr.dtype.kind == "S":
        s = pd.Series(np.char.decode(arr, "utf-8", errors="replace"), dtype=object).str.strip()
        return s.mask(s.isin(["-666", "-666.0"]), pd.NA)
    if arr.dtype.kind == "O":
        s = pd.Series([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr], dtype=object)
        s = s.str.strip()
        return s.mask(s.isin(["-666", "-666.0"]), pd.NA)
    if arr.dtype.kind in "iu":
        return pd.Series(arr).astype("Int64").mask(lambda x: x == MISSING)
    if arr.dtype.kind == "f":
        return pd.Series(arr).mask(lambda x: x == MISSING)
    if arr.dtype.kind == "b":
        return pd.Series(arr)
    return pd.Series(arr.astype(str), dtype=object)


class GctxFile:
    """An open GCTX file. Metadata is read on first use; the matrix only by `iter_columns`.

    >>> with GctxFile(path) as g:
    ...     cols = g.select_columns({"pert_type": ["trt_cp"], "cell_id": ["A375"]})
    ...     rows = g.landmark_rows()
    ...     for meta, block in g.iter_columns(cols, rows, chunk_size=1000): ...  # block (n, len(rows))
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputFileError(self.path, "file does not exist")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputFileError(self.path, f"not a readable HDF5/GCTX file (truncated or wrong format: {exc})") from exc
        try:
            self._validate()
        except Exception:
            self._h5.close()
            raise
        self._row_meta: pd.DataFrame | None = None
        self._col_meta: pd.DataFrame | None = None

    def _validate(self) -> None:
        for name in (MATRIX, COL_META, ROW_META):
            if name not in self._h5:
                raise InputFileError(self.path, f"not a GCTX 1.0 file: missing /{name}")
        m = self._h5[MATRIX]
        if m.ndim != 2:
            raise InputFileError(self.path, f"/{MATRIX} has {m.ndim} dimensions, expected 2 (n_samples, n_genes)")
        self.n_samples, self.n_genes = int(m.shape[0]), int(m.shape[1])
        for group, n, what in ((COL_META, self.n_samples, "samples (matrix axis 0)"),
                               (ROW_META, self.n_genes, "genes (matrix axis 1)")):
            fields = self._h5[group]
            if "id" not in fields:
                raise InputFileError(self.path, f"/{group}/id is missing")
            for key, ds in fields.items():
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] != n:
                    shape = getattr(ds, "shape", "a group")
                    raise InputFileError(
                        self.path, f"wrong dimensions: /{group}/{key} has shape {shape} but the matrix "
                        f"/{MATRIX} {tuple(m.shape)} has {n} {what}")

    def __enter__(self) -> GctxFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._h5.close()

    def _meta(self, group: str) -> pd.DataFrame:
        try:
            cols = {k: _decode(ds[()]) for k, ds in self._h5[group].items()}
        except OSError as exc:
            raise InputFileError(self.path, f"cannot read /{group} (truncated file?): {exc}") from exc
        ids = cols.pop("id").astype(str)
        df = pd.DataFrame(cols)
        df.index = pd.Index(ids.to_numpy(), name="id")
        return df[sorted(df.columns)]

    @property
    def row_meta(self) -> pd.DataFrame:
        """(n_genes, fields) indexed by row id, -666 -> NA."""
        if self._row_meta is None:
            self._row_meta = self._meta(ROW_META)
        return self._row_meta

    @property
    def col_meta(self) -> pd.DataFrame:
        """(n_samples, fields) indexed by column id, -666 -> NA."""
        if self._col_meta is None:
            self._col_meta = self._meta(COL_META)
        return self._col_meta

    def select_columns(self, where: Selection = None) -> np.ndarray:
        """Sorted positions of the samples to read. `where`: None (all), a pandas query string over
        the column metadata ("cell_id == 'A375' and pert_type == 'trt_cp'"), a dict {field: allowed
        value(s)}, or a callable returning a boolean mask."""
        return _select(self.col_meta, where, self.path, "column")

    def select_rows(self, where: Selection = None) -> np.ndarray:
        return _select(self.row_meta, where, self.path, "row")

    def landmark_rows(self, ids: Iterable[str] | None = None) -> np.ndarray:
        """Positions of landmark genes: flagged 1 in pr_is_lm / pr_is_lmark / is_lm, or in `ids` when given."""
        meta = self.row_meta
        if ids is not None:
            return np.flatnonzero(meta.index.isin([str(i) for i in ids]))
        for f in LANDMARK_FIELDS:
            if f in meta.columns:
                flag = pd.to_numeric(meta[f], errors="coerce")
                return np.flatnonzero((flag == 1).fillna(False).to_numpy(bool))
        raise InputFileError(self.path, f"no landmark flag among the row metadata (looked for {LANDMARK_FIELDS}); "
                             f"available: {list(meta.columns)}; pass landmark ids instead")

    def iter_columns(self, columns: np.ndarray | None = None, rows: np.ndarray | None = None,
                     chunk_size: int = 1000, *, with_meta: bool = True,
                     ) -> Iterator[tuple[pd.DataFrame | None, np.ndarray]]:
        """Yield (col_meta_chunk, matrix_chunk (n_chunk_cols, n_rows) float32) over the selected columns
        (col_meta_chunk None with `with_meta=False`, so the column metadata need not stay in memory).

        Only one chunk is in memory at a time: a contiguous run is read as a slice, a sparse
        selection either as the covering slice (when at most 4x larger) or by h5py point selection.
        """
        ds = self._h5[MATRIX]
        cols = np.arange(self.n_samples) if columns is None else np.sort(np.asarray(columns, dtype=np.int64))
        rows = None if rows is None else np.sort(np.asarray(rows, dtype=np.int64))
        meta = self.col_meta if with_meta else None
        for start in range(0, len(cols), chunk_size):
            p = cols[start:start + chunk_size]
            lo, hi = int(p[0]), int(p[-1]) + 1
            try:
                if hi - lo == len(p):
                    block = ds[lo:hi]
                elif hi - lo <= 4 * len(p):
                    block = ds[lo:hi][p - lo]
                else:
                    block = ds[p]
            except OSError as exc:
                raise InputFileError(self.path, f"cannot read matrix columns {lo}..{hi - 1} (truncated file?): {exc}") from exc
            if rows is not None:
                block = block[:, rows]
            yield (meta.iloc[p] if meta is not None else None), np.asarray(block, dtype=np.float32)


def _select(meta: pd.DataFrame, where: Selection, path: Path, what: str) -> np.ndarray:
    if where is None:
        return np.arange(len(meta))
    if isinstance(where, str):
        try:
            mask = meta.query(where, engine="python").index
        except Exception as exc:
            raise InputFileError(path, f"{what} selection {where!r} failed ({exc}); fields: {list(meta.columns)}") from exc
        return np.flatnonzero(meta.index.isin(mask))
    if callable(where):
        return np.flatnonzero(np.asarray(where(meta), dtype=bool))
    mask = np.ones(len(meta), dtype=bool)
    for field, allowed in where.items():
        series = meta.index.to_series() if field == "id" else meta.get(field)
        if series is None:
            raise InputFileError(path, f"no {what} metadata field {field!r}; available: {list(meta.columns)}")
        values = list(allowed) if isinstance(allowed, (list, tuple, set, frozenset)) else [allowed]
        mask &= series.isin(values).to_numpy(bool)
    return np.flatnonzero(mask)


def read_gctx(path: str | Path, where: Selection = None, *, landmark_only: bool = False) -> GctData:
    """Read a (small) GCTX whole, optionally selected; for large files use GctxFile.iter_columns."""
    with GctxFile(path) as g:
        cols = g.select_columns(where)
        rows = g.landmark_rows() if landmark_only else None
        blocks = [b for _, b in g.iter_columns(cols, rows, chunk_size=max(1, len(cols)))] or [
            np.zeros((0, g.n_genes if rows is None else len(rows)), np.float32)]
        row_meta = g.row_meta if rows is None else g.row_meta.iloc[rows]
        return GctData(row_meta, g.col_meta.iloc[cols], np.concatenate(blocks))


def _encode(series: pd.Series) -> np.ndarray:
    """A metadata column -> an HDF5-friendly array with NA written as -666."""
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(series):
        return series.astype("Int64").fillna(MISSING).to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series):
        return series.fillna(MISSING).to_numpy(dtype=np.float64)
    text = series.astype(object).where(series.notna(), str(MISSING)).map(str)
    data = [t.encode("utf-8") for t in text]
    width = max((len(b) for b in data), default=1) or 1
    return np.array(data, dtype=f"S{width}")


def _write_meta(group: h5py.Group, meta: pd.DataFrame) -> None:
    ids = meta["id"] if "id" in meta.columns else pd.Series(meta.index, index=meta.index)
    group.create_dataset("id", data=_encode(ids.astype(str)))
    for col in meta.columns:
        if col != "id":
            group.create_dataset(str(col), data=_encode(meta[col]))


def write_gctx(path: str | Path, matrix: np.ndarray | Iterable[np.ndarray], row_meta: pd.DataFrame,
               col_meta: pd.DataFrame, *, chunk_rows: int = 1024, compression: str | None = None) -> Path:
    """Write a GCTX 1.0 file. matrix: (n_samples, n_genes) array, or an iterable of (k, n_genes) blocks
    written in order (for files larger than memory). Ids come from an `id` column or the index;
    NA metadata is written as -666. The dataset is chunked by `chunk_rows` samples so column reads are cheap.
    """
    path = Path(path)
    n_samples, n_genes = len(col_meta), len(row_meta)
    with h5py.File(path, "w") as h5:
        h5.attrs["version"] = np.bytes_("GCTX1.0")
        _write_meta(h5.require_group(COL_META), col_meta)
        _write_meta(h5.require_group(ROW_META), row_meta)
        shape = (n_samples, n_genes)
        chunks = (max(1, min(chunk_rows, n_samples)), max(1, n_genes)) if n_samples and n_genes else None
        if isinstance(matrix, np.ndarray):
            if matrix.shape != shape:
                raise ValueError(f"{path}: matrix shape {matrix.shape} != (len(col_meta), len(row_meta)) {shape}")
            h5.create_dataset(MATRIX, data=matrix.astype(np.float32), chunks=chunks, compression=compression)
        else:
            ds = h5.create_dataset(MATRIX, shape=shape, dtype=np.float32, chunks=chunks, compression=compression)
            at = 0
            for block in matrix:
                block = np.asarray(block, dtype=np.float32)
                if block.ndim != 2 or block.shape[1] != n_genes or at + len(block) > n_samples:
                    raise ValueError(f"{path}: block of shape {block.shape} does not fit at row {at} of {shape}")
                ds[at:at + len(block)] = block
                at += len(block)
            if at != n_samples:
                raise ValueError(f"{path}: blocks gave {at} samples, col_meta has {n_samples}")
    return path


def read_gct(path: str | Path) -> GctData:
    """Plain-text GCT #1.2 (Name, Description, samples...) or #1.3 (id, row fields..., samples...,
    then one line per column field) -> GctData with matrix (n_samples, n_genes) like GCTX."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    if len(lines) < 3 or lines[0].strip() not in {"#1.2", "#1.3"}:
        raise InputFileError(path, f"not a GCT file: first line {lines[0][:20] if lines else ''!r}, expected #1.2 or #1.3")
    version = lines[0].strip()
    try:
        dims = [int(x) for x in lines[1].split("\t") if x.strip()]
    except ValueError as exc:
        raise InputFileError(path, f"bad dimension line {lines[1]!r}") from exc
    n_rows, n_cols = dims[0], dims[1]
    n_rmeta, n_cmeta = (dims[2], dims[3]) if version == "#1.3" else (1, 0)
    header = lines[2].split("\t")
    if len(header) != 1 + n_rmeta + n_cols:
        raise InputFileError(path, f"header has {len(header)} fields, expected 1 + {n_rmeta} + {n_cols}")
    sample_ids = header[1 + n_rmeta:]
    col_meta = pd.DataFrame(index=pd.Index(sample_ids, name="id"))
    for line in lines[3:3 + n_cmeta]:
        parts = line.split("\t")
        col_meta[parts[0]] = [None if v in {"-666", "NA", ""} else v for v in parts[1 + n_rmeta:]]
    body = [line.split("\t") for line in lines[3 + n_cmeta:] if line.strip()]
    if len(body) != n_rows or any(len(r) != len(header) for r in body):
        raise InputFileError(path, f"wrong dimensions: {len(body)} data rows (expected {n_rows}) "
                             f"or a row without {len(header)} fields")
    row_meta = pd.DataFrame([r[1:1 + n_rmeta] for r in body], columns=header[1:1 + n_rmeta],
                            index=pd.Index([r[0] for r in body], name="id")).replace({"-666": None})
    try:
        values = np.array([[float(v) if v not in {"", "NA", "NaN", "nan"} else np.nan for v in r[1 + n_rmeta:]]
                           for r in body], dtype=np.float32)
    except ValueError as exc:
        raise InputFileError(path, f"non-numeric matrix value ({exc})") from exc
    return GctData(row_meta, col_meta, values.T.copy())


class GctTextFile(GctxFile):
    """A text GCT (#1.2 / #1.3) behind GctxFile's interface, so GctxToLong (the one CMap mapping: ids,
    doses, controls, value validation) reads it as it reads a GCTX. Text files are small: read whole."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputFileError(self.path, "file does not exist")
        data = read_gct(self.path)
        self._matrix = data.matrix  # (n_samples, n_genes)
        self.n_samples, self.n_genes = self._matrix.shape
        # as GctxFile._meta decodes them: missing values NA, fields sorted
        self._text_meta = {name: meta.astype(object).where(meta.notna(), pd.NA)[sorted(meta.columns)]
                           for name, meta in (("row", data.row_meta), ("col", data.col_meta))}

    def close(self) -> None:
        pass

    @property
    def row_meta(self) -> pd.DataFrame:
        return self._text_meta["row"]

    @property
    def col_meta(self) -> pd.DataFrame:
        return self._text_meta["col"]

    def iter_columns(self, columns: np.ndarray | None = None, rows: np.ndarray | None = None,
                     chunk_size: int = 1000, *, with_meta: bool = True,
                     ) -> Iterator[tuple[pd.DataFrame | None, np.ndarray]]:
        cols = np.arange(self.n_samples) if columns is None else np.sort(np.asarray(columns, dtype=np.int64))
        for start in range(0, len(cols), chunk_size):
            p = cols[start:start + chunk_size]
            block = self._matrix[p] if rows is None else self._matrix[np.ix_(p, np.sort(np.asarray(rows)))]
            yield (self.col_meta.iloc[p] if with_meta else None), np.asarray(block, dtype=np.float32)


def open_cmap_matrix(path: str | Path) -> GctxFile:
    """A CMap matrix file by its format: text GCT read whole, GCTX streamed from HDF5."""
    return GctTextFile(path) if measurement_format(path) == "gct" else GctxFile(path)


# --- conversion to the canonical long table ---------------------------------------------------------

_SYMBOL_FIELDS = ("pr_gene_symbol", "gene_symbol", "symbol", "pr_gene_name")
_ENTREZ_FIELDS = ("pr_gene_id", "gene_id", "entrez_id", "entrez")


# CMap's 2020 (CLUE "beta", siginfo_beta) names of the 2017 (GSE92742 sig_info) column fields the reader uses.
CMAP_2020_FIELDS = {"cell_iname": "cell_id", "cmap_name": "pert_iname", "nsample": "distil_nsample"}


def cmap_column_fields(meta: pd.DataFrame) -> pd.DataFrame:
    """Column metadata with the 2020 field names (cell_iname, cmap_name, nsample) under their 2017 names
    (cell_id, pert_iname, distil_nsample) when the 2017 field is absent, so both releases read alike."""
    renames = {new: old for new, old in CMAP_2020_FIELDS.items() if new in meta.columns and old not in meta.columns}
    return meta.rename(columns=renames) if renames else meta


def read_signature_info(path: str | Path) -> pd.DataFrame:
    """A CMap signature metadata table (GSE92742 sig_info.txt, CLUE siginfo_beta.txt; TSV or CSV, .gz
    allowed) indexed by its `sig_id` (or `id`) column, every field as text; InputFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "signature info table does not exist" if not path.exists() else "is not a file")
    try:
        fmt = measurement_format(path)
        info = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=True, comment=None)
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(path, f"cannot read the signature info table ({exc})") from exc
    key = next((c for c in ("sig_id", "id") if c in info.columns), None)
    if key is None:
        raise InputFileError(path, f"signature info table has no sig_id column; columns: {list(info.columns)[:12]}")
    info = info.drop_duplicates(key).set_index(key)
    return info.where(~info.isin(["-666", "-666.0"]), pd.NA)


def _first(meta: pd.DataFrame, fields: tuple[str, ...]) -> str | None:
    return next((f for f in fields if f in meta.columns), None)


class GctxToLong(StreamedReader):
    """Stream a GCTX into the long table (graph.records.MEASUREMENT_COLUMNS) plus its records.

    Mapping: pert_type trt_cp/trt_poscon -> compound, trt_sh -> shRNA, trt_xpr -> CRISPRko,
    trt_oe -> ORF, ctl_* -> control; dose from pert_idose (else pert_dose + pert_dose_unit), time from
    pert_itime (else pert_time + pert_time_unit); readouts are the row's gene symbol, resolved through
    `resolver` (Entrez id first, then symbol, then row id) when given. A file without `cell_id`
    (the CMap kd shRNA plate) gets the `context` option, else UNKNOWN_CONTEXT ("unknown", ContextRecord
    kind "unknown"), with a report note (graph/io/options.file_context, the readers' one rule).

    Counting: `report` counts signatures (selected columns): duplicates of a column id keep the first
    occurrence (file order), the others are quarantined and counted in duplicates_resolved; columns
    with an unknown pert_type are quarantined. `value_report` counts matrix values: NaN, +-inf and
    -666 are quarantined by graph.io.validation (per chunk) with the count per reason in
    `dropped_values` (the first MAX_VALUE_RECORDS listed in `quarantine`). Rows whose readout repeats
    an earlier row's (two rows with one symbol after resolution) give two values of one (signature,
    readout): the validation step resolves them by `duplicates` (mean, the default | quarantine | first), as for
    h5ad genes and wide-table columns; exact per chunk, since a column is one whole signature. Readouts
    and targets the gene table does not resolve follow `unknown_genes` (validation.GeneCheck). The notes
    on repeated rows, duplicate keys and unknown genes go to `report`, which every entry point shows.
    `perturbations`/`contexts` (dicts by id) are known at construction; `signatures()` once `iter_long()`
    is exhausted.
    """

    def __init__(self, path: str | Path, dataset_id: str, *, where: Selection = None, landmark_only: bool = False,
                 landmark_ids: Iterable[str] | None = None, resolver=None,
                 compound_ids: Mapping[str, str] | None = None, chunk_size: int = 1000,
                 duplicates: str = DEFAULT_DUPLICATES, unknown_genes: str = "keep",
                 signature_info: str | Path | None = None, perturbation_type: str | None = None,
                 context: str | None = None, readout_key: str | None = None):
        super().__init__(path, dataset_id)
        self._readout_key = readout_key
        self._context_option = context  # the context of a file without cell_id (graph/io/options.file_context)
        self._types = TypeOverride(perturbation_type, self.path)  # the option over pert_type (graph/io/options.py)
        # CMap's GEO / CLUE GCTX files hold only the signature ids; their fields come from this table.
        self._info = read_signature_info(signature_info) if signature_info else None
        self.chunk_size, self.duplicates = chunk_size, duplicates
        self._dup_keys = [0, 0]  # (signature, readout) keys repeated with identical / conflicting values
        self.genes = GeneCheck(resolver, unknown_genes, str(self.path))  # before the file is opened: may refuse
        self.gctx = open_cmap_matrix(path)  # .gct text or .gctx
        g = self.gctx
        self.dropped_values: Counter[str] = Counter()
        self.value_report = ReadReport(source=f"{self.path} (values)")
        rows = g.landmark_rows(landmark_ids) if (landmark_only or landmark_ids is not None) else np.arange(g.n_genes)
        self._rows = rows
        self.readouts, self._readout_codes = self._map_readouts(rows, resolver)
        cols = g.select_columns(where)
        self.report.read = len(cols)
        self._cols, self._sig_frame = self._map_columns(cols, resolver, compound_ids or {})
        g._col_meta = None  # everything needed is in _sig_frame; 720k columns of metadata need not stay
        self.report.accepted = len(self._cols)
        self.report.quarantined = self.report.read - self.report.accepted
        self.report.check()
        self._n_readouts = np.zeros(len(self._cols), dtype=np.int64)

    # rows -> readout symbols
    def _map_readouts(self, rows: np.ndarray, resolver) -> tuple[list[str], np.ndarray]:
        """(distinct readout symbols, per selected row the index of its symbol). Rows sharing a symbol
        stay: their values are duplicates of one (signature, readout), left to the validation step."""
        meta = self.gctx.row_meta.iloc[rows]
        sym_f, ent_f = _first(meta, _SYMBOL_FIELDS), _first(meta, _ENTREZ_FIELDS)
        if self._readout_key:  # the tables' option (graph/io/options.py): the row field holding the readout ids
            if self._readout_key not in meta.columns:
                raise InputFileError(self.path, f"has no row metadata field {self._readout_key!r} (the readout_key "
                                                f"option); row fields: {list(meta.columns)}")
            sym_f, ent_f = self._readout_key, None
            self.report.notes.append(f"readouts read from row field {self._readout_key!r} (the readout_key option)")
        ids = meta.index.astype(str)
        symbols = meta[sym_f].astype(object) if sym_f else pd.Series([None] * len(meta), index=meta.index)
        entrez = meta[ent_f].astype(object) if ent_f else pd.Series([None] * len(meta), index=meta.index)
        routes: Counter[str] = Counter()
        readouts = []
        for rid, sym, ent in zip(ids, symbols, entrez, strict=True):
            given = clean_text(sym) or rid
            name = given
            if resolver is not None:
                for q in (clean_text(ent), clean_text(sym), rid):
                    m = resolver.resolve(q) if q else None
                    if m is not None and m.ok:
                        name = m.symbol
                        routes["resolved"] += 1
                        break
                else:
                    routes["unresolved (source name kept)"] += 1
            readouts.append(name)
        if routes:
            self.value_report.notes.append(f"readouts: {dict(routes)}")
        codes, uniques = pd.factorize(pd.Series(readouts, dtype=object))
        repeated = len(readouts) - len(uniques)
        if repeated:
            self.report.notes.append(
                f"{repeated} rows repeat an earlier row's readout symbol: their values are duplicates of one "
                f"(signature, readout), resolved by the validation step (policy {self.duplicates!r})")
        return list(uniques), codes.astype(np.int64)

    # columns -> signature, perturbation and context per column
    def _with_info(self, meta: pd.DataFrame) -> pd.DataFrame:
        """The column metadata with the signature info table's fields (the file's own values win where set)."""
        if self._info is None:
            return meta
        info = self._info.reindex(meta.index.astype(str))
        missing = int(info.isna().all(axis=1).sum())
        if missing == len(meta):
            raise InputFileError(self.path, f"none of its {len(meta)} signature ids is a sig_id of the signature info "
                                            f"table (e.g. {list(meta.index[:2])})")
        if missing:
            self.report.notes.append(f"{missing} signatures are not in the signature info table (no pert_type: "
                                     "quarantined)")
        out = meta.copy()
        for c in info.columns:
            out[c] = out[c].where(out[c].notna(), info[c].to_numpy()) if c in out.columns else info[c].to_numpy()
        self.report.notes.append(f"column fields from the signature info table ({len(info.columns)} fields)")
        return out

    def _map_columns(self, cols: np.ndarray, resolver, compound_ids: Mapping[str, str]):
        meta = cmap_column_fields(self._with_info(self.gctx.col_meta.iloc[cols]))
        if "pert_type" not in meta.columns:
            raise InputFileError(self.path, f"column metadata has no pert_type; available: {list(meta.columns)}; "
                                            "CMap's GEO / CLUE GCTX files keep it in a separate table (sig_info.txt, "
                                            "siginfo_beta.txt): give it with the signature_info option "
                                            "(--signature-info FILE, FILE?signature_info=PATH)")
        src = str(self.path.name)
        ids = meta.index.astype(str).to_numpy()
        dup = pd.Series(ids).duplicated(keep="first").to_numpy()
        for pos in np.flatnonzero(dup):
            self.quarantine.append(QuarantineRecord(str(self.path), ids[pos],
                                                    "duplicate signature id; first occurrence (file order) kept",
                                                    {"position": int(cols[pos])}))
        self.report.duplicates_resolved = int(dup.sum())

        def text(field: str) -> pd.Series:
            return meta[field].map(clean_text) if field in meta.columns else pd.Series([""] * len(meta), index=meta.index)

        fill_context, context_note = file_context(self._context_option, cells=True, unit="signature",
                                                  column="cell_id" if "cell_id" in meta.columns else None)
        if context_note:
            self.report.notes.append(context_note)
        raw_contexts = text("cell_id") if fill_context is None else pd.Series([fill_context] * len(meta),
                                                                               index=meta.index)
        contexts = raw_contexts.map(normalise_context_name)
        dose_txt = text("pert_idose")
        dose_num, dose_unit = text("pert_dose"), text("pert_dose_unit")
        time_txt = text("pert_itime")
        time_num, time_unit = text("pert_time"), text("pert_time_unit")
        frame = pd.DataFrame({
            "ptype": text("pert_type"), "iname": text("pert_iname"), "pert_id": text("pert_id"),
            "dose": dose_txt.where(dose_txt != "", dose_num + "\x00" + dose_unit),
            "time": time_txt.where(time_txt != "", time_num + "\x00" + time_unit),
        })
        # Perturbations are computed once per distinct (type, name, id, dose); 720k columns have far fewer.
        pert_of: dict[tuple, tuple[PerturbationRecord | None, str]] = {}
        problems: Counter[str] = Counter()
        for key in frame.drop(columns="time").drop_duplicates().itertuples(index=False, name=None):
            pert_of[key] = self._perturbation(key, resolver, compound_ids, problems)
        self._types.check()
        if note := self._types.note():
            self.report.notes.append(note)
        # Time is a signature's metadata here (each column is its own signature): a time that cannot be read
        # is left empty, not quarantined; a bare number without a unit is noted as tables and h5ad note it.
        time_of: dict[str, tuple[float | None, str]] = {}
        unitless: list[str] = []
        for t in frame["time"].unique():
            a, _, b = t.partition("\x00")
            try:
                time_of[t], _, bare = time_point(a, b)
                if bare:
                    unitless.append(a)
            except ValueError:
                problems[f"unparseable time {t.replace(chr(0), ' ')!r} (time left empty)"] += int((frame["time"] == t).sum())
                time_of[t] = (None, "")
        if unitless:
            self.report.notes.append("pert_time: " + unitless_time_note(unitless, "pert_time_unit", "pert_time_unit = h"))
        for msg, n in sorted(problems.items()):
            self.report.notes.append(f"{n} x {msg}")

        perts = [pert_of[k] for k in frame.drop(columns="time").itertuples(index=False, name=None)]
        keep = ~dup & np.array([p[0] is not None for p in perts])
        for pos in np.flatnonzero(~dup & ~keep):
            self.quarantine.append(QuarantineRecord(str(self.path), ids[pos], perts[pos][1],
                                                    {k: str(v) for k, v in frame.iloc[pos].items()}))
        for rec, _ in perts:
            if rec is not None:
                self.perturbations.setdefault(rec.perturbation_id, rec)
        for c, raw in zip(contexts, raw_contexts, strict=True):
            if c not in self.contexts:
                self.contexts[c] = context_record(raw, source=src)
        reps = pd.to_numeric(meta["distil_nsample"], errors="coerce") if "distil_nsample" in meta.columns else None
        sig = pd.DataFrame({
            "source_id": ids, "context": contexts.to_numpy(),
            "perturbation": [p[0].perturbation_id if p[0] else "" for p in perts],
            "perturbation_type": [p[0].perturbation_type if p[0] else "" for p in perts],
            "time_value": [time_of[t][0] for t in frame["time"]],
            "n_replicates": (reps.fillna(1).astype(int).to_numpy() if reps is not None else np.ones(len(meta), int)),
        })[keep].reset_index(drop=True)
        sig["signature_id"] = self.dataset_id + ":" + sig["source_id"]
        # Few distinct values: categoricals keep the per-column state small (and give the chunk codes).
        sig["context"] = pd.Categorical(sig["context"], categories=sorted(self.contexts))
        sig["perturbation"] = pd.Categorical(sig["perturbation"], categories=sorted(self.perturbations))
        sig["perturbation_type"] = sig["perturbation_type"].astype("category")
        return cols[keep], sig

    def _perturbation(self, key, resolver, compound_ids, problems) -> tuple[PerturbationRecord | None, str]:
        ptype_raw, iname, pert_id, dose_raw = key
        try:
            ptype = self._types.type_of(ptype_raw)
        except ValueError as exc:
            return None, str(exc)
        name = iname or pert_id
        if not name:
            return None, "no pert_iname or pert_id"
        dose_value, dose_unit = None, ""
        a, _, b = dose_raw.partition("\x00")
        try:
            dose_value, dose_unit = parse_dose(a, b or None)
        except ValueError:
            problems[f"unparseable dose {dose_raw.replace(chr(0), ' ')!r} (dose left empty)"] += 1
        if ptype == "compound":
            cid = compound_id_for(name, compound_ids, pert_id)
            return perturbation_record(ptype, name, compound_id=cid, dose_value=dose_value, dose_unit=dose_unit,
                                       source=self.dataset_id), ""
        target = canonical_gene_symbol(name, resolver) if ptype != "control" else ""
        return perturbation_record(ptype, name, targets=(target,) if target else (), source=self.dataset_id), ""

    def iter_long(self) -> Iterator[pd.DataFrame]:
        """Yield long-table chunks (MEASUREMENT_COLUMNS, text columns categorical, value float32), one per
        `chunk_size` signatures, each through the shared validation step (graph.io.validation) with keys
        (signature_id, readout): a GCTX column is one signature, so checking per chunk is exact."""
        reason_names = {NOT_A_NUMBER: "NaN", INFINITE: "+-inf", _MISSING_REASON: "-666", CONFLICT: "conflicting duplicate",
                        UNKNOWN_READOUT: "unknown readout", UNKNOWN_TARGET: "unknown target"}
        n_genes = len(self._rows)
        readout_cat = pd.CategoricalDtype(self.readouts)
        frame = self._sig_frame
        pert_records = [self.perturbations.get(p) for p in frame["perturbation"].cat.categories]
        start = 0
        listed = 0
        for _, block in self.gctx.iter_columns(self._cols, self._rows, self.chunk_size, with_meta=False):
            n = len(block)
            sig = frame.iloc[start:start + n]
            flat = block.ravel()
            sig_codes = np.repeat(np.arange(n), n_genes)
            gene_codes = np.tile(self._readout_codes, n)
            chunk = pd.DataFrame({
                "dataset": pd.Categorical.from_codes(np.zeros(len(flat), np.int8), [self.dataset_id]),
                "signature_id": pd.Categorical.from_codes(sig_codes, sig["signature_id"].tolist()),
                **{c: pd.Categorical.from_codes(sig[c].cat.codes.to_numpy()[sig_codes], dtype=frame[c].dtype)
                   for c in ("context", "perturbation", "perturbation_type")},
                "readout": pd.Categorical.from_codes(gene_codes, dtype=readout_cat),
                "value": flat,
            }, columns=list(MEASUREMENT_COLUMNS))
            # -666 is the file format's missing-value marker (decoding); every other rule is the validator's.
            prior = np.full(len(flat), "", dtype=object)
            prior[flat == MISSING] = _MISSING_REASON
            unknown = self.genes.row_reasons(gene_codes, self.readouts, chunk["perturbation"].cat.codes.to_numpy(),
                                             pert_records)
            result = validate_measurements(chunk, str(self.path), keys=("signature_id", "readout"), ranked=False,
                                           duplicates=self.duplicates, prior_reason=prior, unknown=unknown,
                                           unknown_genes=self.genes.policy,
                                           max_records=max(0, MAX_VALUE_RECORDS - listed))
            self.genes.add(result)
            self._dup_keys[0] += result.exact_duplicate_keys
            self._dup_keys[1] += result.conflicting_keys
            listed += len(result.quarantine)
            self.quarantine.extend(result.quarantine)
            for why, count in result.reasons.items():
                self.dropped_values[reason_names.get(why, why)] += count
            out = result.accepted.reset_index(drop=True)
            out["value"] = out["value"].to_numpy(dtype=np.float32)
            self._n_readouts[start:start + n] = np.bincount(out["signature_id"].cat.codes.to_numpy(), minlength=n)
            self.value_report.read += result.read
            self.value_report.accepted += result.n_accepted
            self.value_report.quarantined += result.quarantined
            self.value_report.duplicates_resolved += result.duplicates_resolved
            start += n
            yield out
        self.dropped_values = Counter({k: v for k, v in self.dropped_values.items() if v})
        if self.dropped_values:
            self.value_report.notes.append(f"dropped values: {dict(self.dropped_values)}")
        if any(self._dup_keys):
            self.report.notes.append(duplicate_note(*self._dup_keys, self.duplicates))
        if note := self.genes.note():
            self.report.notes.append(note)
        n_dropped = sum(self.dropped_values.values())
        if n_dropped > listed:
            self.value_report.notes.append(f"only the first {listed:,} of {n_dropped:,} dropped values are listed "
                                           "in the quarantine")
        self.value_report.check()
        self._done = True
        self.gctx.close()

    def _signatures(self) -> list[SignatureRecord]:
        s = self._sig_frame
        return [SignatureRecord(sid, self.dataset_id, c, p, int(n), int(r), src) for sid, c, p, n, r, src in zip(
            s["signature_id"], s["context"], s["perturbation"], self._n_readouts, s["n_replicates"], s["source_id"],
            strict=True)]

    @property
    def signature_table(self) -> pd.DataFrame:
        """Per signature: signature_id, source_id, context, perturbation, perturbation_type, time_value (h)."""
        return self._sig_frame.copy()


def gctx_to_long(path: str | Path, dataset_id: str, **kwargs) -> tuple[pd.DataFrame, GctxToLong]:
    """Convenience for small files: the whole long table and the finished converter (records, reports)."""
    conv = GctxToLong(path, dataset_id, **kwargs)
    from graph.io.common import concat_long

    return concat_long(list(conv.iter_long())), conv


__all__ = ["GctData", "GctTextFile", "GctxFile", "GctxToLong", "InputFileError", "gctx_to_long", "open_cmap_matrix", "read_gct", "read_gctx", "write_gctx"]

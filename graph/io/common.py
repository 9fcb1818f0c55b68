"""Helpers shared by the readers: the input error, file hashing, result containers, quarantine output."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import pandas as pd

from graph.records import ContextRecord, PerturbationRecord, QuarantineRecord, ReadReport, SignatureRecord

T = TypeVar("T")


class InputFileError(ValueError):
    """A user-supplied file that cannot be read as promised; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class ReadResult(Generic[T]):
    """What a reader returns: accepted records, the counts, and the rejected records with reasons."""

    records: list[T]
    report: ReadReport
    quarantine: list[QuarantineRecord] = field(default_factory=list)


class StreamedReader:
    """The contract of a streamed measurement reader (graph/io/readers.open_streaming_reader; GCTX, long
    and wide tables): `iter_long()` yields MEASUREMENT_COLUMNS chunks and sets `_done` when exhausted;
    meanwhile `perturbations` and `contexts` (records by id), `quarantine` (records with reasons) and
    `report` (read = accepted + quarantined) fill; `signatures()` is complete only afterwards."""

    def __init__(self, path: str | Path, dataset_id: str):
        self.path, self.dataset_id = Path(path), dataset_id
        self.report = ReadReport(source=str(self.path))
        self.quarantine: list[QuarantineRecord] = []
        self.perturbations: dict[str, PerturbationRecord] = {}
        self.contexts: dict[str, ContextRecord] = {}
        self._done = False

    def signatures(self) -> list[SignatureRecord]:
        """The signatures read, with n_readouts = the values kept (after iter_long() is exhausted)."""
        if not self._done:
            raise RuntimeError("records are complete only after iter_long() has been exhausted")
        return self._signatures()

    def _signatures(self) -> list[SignatureRecord]:
        raise NotImplementedError


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def clean_text(value: object) -> str:
    """NFKC-normalised, stripped text ('' for None/NaN). NFKC folds the micro sign and full-width forms."""
    if type(value) is str:  # fast path: most values are plain ASCII text
        return value.strip() if value.isascii() else unicodedata.normalize("NFKC", value).strip()
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return unicodedata.normalize("NFKC", str(value)).strip()


def concat_long(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Join streamed long-table chunks into one frame (text columns categorical, as the store expects)."""
    from graph.records import MEASUREMENT_COLUMNS

    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=list(MEASUREMENT_COLUMNS))
    for col in MEASUREMENT_COLUMNS[:-1]:
        frame[col] = frame[col].astype("category")
    return frame


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
MEASUREMENT_FORMATS = ("gctx", "gct", "h5ad", "parquet", "csv", "tsv")


def measurement_format(path: str | Path) -> str:
    """Which reader a measurement file needs, from its extension checked against its first bytes:
    gctx | gct | h5ad | parquet | csv | tsv. An HDF5 or parquet file is never read as text whatever its
    name says, and a missing file, a directory or an empty file is an InputFileError naming the path."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a measurement file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not head:
        raise InputFileError(path, "is empty")
    name = path.name.lower()
    if name.endswith(".gz"):  # a gzip-compressed text table ("x.tsv.gz"): the format of the name inside
        if head[:2] != _GZIP_MAGIC:
            raise InputFileError(path, "is named .gz but is not gzip-compressed")
        name = name[:-3]
        if name.endswith((".gctx", ".h5ad", ".parquet", ".pq", ".gct")):
            raise InputFileError(path, f"is a gzip-compressed {Path(name).suffix} file; decompress it first "
                                       "(only CSV / TSV tables are read compressed)")
        return "tsv" if name.endswith((".tsv", ".txt", ".tab")) else "csv"
    if head == _HDF5_MAGIC:
        if name.endswith(".h5ad"):
            return "h5ad"
        if name.endswith(".gctx"):
            return "gctx"
        raise InputFileError(path, "is an HDF5 file; name it .gctx (CMap matrix) or .h5ad (AnnData)")
    if name.endswith((".gctx", ".h5ad")):
        raise InputFileError(path, f"is named {path.suffix} but is not an HDF5 file")
    if head[:4] == _PARQUET_MAGIC:
        return "parquet"
    if name.endswith((".parquet", ".pq")):
        raise InputFileError(path, "is named .parquet but is not a parquet file")
    if name.endswith(".gct"):
        return "gct"
    return "tsv" if name.endswith((".tsv", ".txt", ".tab")) else "csv"


# Columns that identify a wide table's rows; every other column is a readout (gene) column.
WIDE_ID_COLUMNS = ("context", "perturbation", "perturbation_type", "dose", "time", "dose_unit", "time_unit")
# Every column name a measurement table's reader looks for. A header is matched to them ignoring case,
# surrounding space and '-' / ' ' for '_' ("Perturbation", "READOUT", "Perturbation Type", "n-ranked").
MEASUREMENT_TABLE_COLUMNS = (*WIDE_ID_COLUMNS, "readout", "value", "rank", "n_ranked", "in_up_set")


def _column_key(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", clean_text(name).lower())


# Names a table or an h5ad obs gives its context column (cell line / cell type), in order of preference;
# a table without a `context` column reads the first of them as its context (graph/io/h5ad.py looks for them too).
CONTEXT_SYNONYMS = ("cell_line", "cell_type", "celltype", "cell_line_name", "cell_id", "cell_iname")


def canonical_columns(names) -> list[str]:
    """A measurement table's header with each known column (MEASUREMENT_TABLE_COLUMNS) under its canonical
    name, other names cleaned (clean_text). A name spelled exactly canonically wins; a second spelling of a
    column already present keeps its own name (so it is never read twice). Without a context column, the
    first CONTEXT_SYNONYMS column ("cell_line", "Cell Type", ...) is the context."""
    cleaned = [clean_text(n) for n in names]
    taken = set(cleaned) & set(MEASUREMENT_TABLE_COLUMNS)
    out = []
    for n in cleaned:
        key = _column_key(n)
        if n not in MEASUREMENT_TABLE_COLUMNS and key in MEASUREMENT_TABLE_COLUMNS and key not in taken:
            taken.add(key)
            n = key
        out.append(n)
    if "context" not in taken:
        keys = [_column_key(n) for n in out]
        pos = next((keys.index(c) for c in CONTEXT_SYNONYMS if c in keys), None)
        if pos is not None:
            out[pos] = "context"
    return out


def open_text(path: str | Path):
    """A CSV / TSV file opened as text (utf-8, undecodable bytes replaced; a .gz file decompressed)."""
    path = Path(path)
    if path.name.lower().endswith(".gz"):
        import gzip

        return gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace")
    return open(path, newline="", encoding="utf-8", errors="replace")


COMMENT_PREFIXES = ("#", "!")  # leading lines of a text table that are notes, not its header


def comment_lines(path: str | Path) -> int:
    """How many lines at the top of a CSV / TSV file are comments (COMMENT_PREFIXES: "# exported by ...",
    the Repurposing Hub's "!" lines); every reader of the file skips them, as table_header does."""
    n = 0
    try:
        with open_text(path) as fh:
            for line in fh:
                if not line.startswith(COMMENT_PREFIXES):
                    break
                n += 1
    except (OSError, EOFError, ValueError) as exc:
        raise InputFileError(path, f"cannot read the table ({type(exc).__name__}: {exc})") from exc
    return n


def table_header(path: str | Path) -> list[str]:
    """A parquet / CSV / TSV table's column names (InputFileError naming the file when unreadable)."""
    fmt = measurement_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return [clean_text(c) for c in pq.read_schema(path).names]
        import csv

        with open_text(path) as fh:
            for row in csv.reader(fh, delimiter="\t" if fmt == "tsv" else ","):
                if row and not row[0].startswith(COMMENT_PREFIXES):
                    return [clean_text(c) for c in row]
    except Exception as exc:
        raise InputFileError(path, f"cannot read the table header ({exc})") from exc
    return []


def table_layout(columns, readout_key: str | None = None) -> str | None:
    """How a parquet / CSV / TSV measurement table is laid out, from its header: "ranked_long_table"
    (readout, rank, n_ranked), "long_table" (readout, value), "wide_table" (a perturbation column and
    readout columns: rows = perturbations, columns = genes), or None. `readout_key` names the column
    that holds the readouts of a long table (default "readout", e.g. "ensembl_id")."""
    cols = set(canonical_columns(columns))
    key = readout_key or "readout"
    if "perturbation" in cols and key in cols and {"rank", "n_ranked"} <= cols:
        return "ranked_long_table"
    if "perturbation" in cols and key in cols and "value" in cols:
        return "long_table"
    if "perturbation" in cols and key not in cols and "value" not in cols and cols - set(WIDE_ID_COLUMNS):
        return "wide_table"
    return None


def recount_signatures(signatures, long: pd.DataFrame | dict) -> list:
    """SignatureRecords with n_readouts = the values actually kept for each (after validation or a readout
    subset); `long` is the kept table or {signature_id: n}. Signatures left with no value are dropped."""
    from dataclasses import replace

    counts = long if isinstance(long, dict) else long["signature_id"].astype(str).value_counts().to_dict()
    return [replace(s, n_readouts=int(counts[s.signature_id])) for s in signatures if counts.get(s.signature_id)]

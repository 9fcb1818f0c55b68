"""Wide tables (rows = perturbations, columns = genes) -> the canonical long table, streamed.

A wide table has a `perturbation` column, optional `context`, `perturbation_type`, `dose` and `time`
columns (graph/io/common.WIDE_ID_COLUMNS), and one numeric column per readout; the column header is the
readout name (symbol, or an Ensembl / Entrez id resolved through the gene table when a resolver is
given). Consensus signatures without a cell-line axis take `context` or identifiers.CONSENSUS_CONTEXT.

The reader is the long-table reader (graph/io/tables.LongTableReader) fed a melted view of each block
of rows, so ids, signatures, records and the validation step (graph/io/validation.py) are the same:
a non-numeric or missing cell is quarantined with its reason, and a readout column that appears twice
gives two values of one (signature, readout), resolved by the duplicate policy. Report units are
values (cells), so read = accepted + quarantined counts cells.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from graph.io.common import WIDE_ID_COLUMNS, InputFileError, canonical_columns, concat_long, open_text
from graph.io.tables import LongTableReader, with_units

_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")
TEXT_COLUMN_MIN_CELLS = 3  # filled cells, all text, more than one distinct: a names column, not values
WIDE_BATCH_VALUES = 500_000  # cells per streamed block (rows per block = this // readout columns)


class WideTableReader(LongTableReader):
    """Stream a wide table (parquet / CSV / TSV) as MEASUREMENT_COLUMNS chunks plus records; see the module
    docstring. Keyword options are LongTableReader's (resolver, compound_ids, duplicates, context,
    perturbation_type, max_rows = at most this many matrix rows)."""

    def __init__(self, path: str | Path, dataset_id: str, **kwargs):
        kwargs.pop("readout_key", None)  # a wide table's readouts are its column headers
        kwargs.setdefault("batch_size", WIDE_BATCH_VALUES)
        super().__init__(path, dataset_id, ranked=False, **kwargs)
        repeated = {name: k for name, k in Counter(self._genes).items() if k > 1}
        self.report.notes.append(f"wide table: {len(self._genes)} readout columns")
        if repeated:
            shown = ", ".join(f"{n!r} x{k}" for n, k in sorted(repeated.items())[:5])
            self.report.notes.append(f"{len(repeated)} readout columns appear more than once ({shown}); their values "
                                     f"are duplicates of one (signature, readout), policy {self.duplicates!r}")

    def _columns(self) -> list[str]:
        try:
            if self.is_parquet:
                header = list(pq.read_schema(self.path).names)
            else:
                with open_text(self.path) as fh:
                    for _ in range(self._skip):
                        next(fh)
                    header = next(csv.reader(fh, delimiter=self._sep), [])
        except Exception as exc:
            raise InputFileError(self.path, f"cannot read the table header ({exc})") from exc
        header = canonical_columns(header)  # "Perturbation", "Context" -> the id columns' names
        self._header = header
        self._id_pos = {c: i for i, c in enumerate(header) if c in WIDE_ID_COLUMNS}
        # A parquet file's unnamed pandas index ("__index_level_0__", written for a filtered frame) is no readout.
        self._gene_pos = [i for i, c in enumerate(header) if c not in WIDE_ID_COLUMNS
                          and not (self.is_parquet and _PANDAS_INDEX.match(c))]
        self._genes = [header[i] for i in self._gene_pos]
        if "perturbation" not in self._id_pos:
            raise InputFileError(self.path, f"a wide table needs a 'perturbation' column; header starts {header[:8]}")
        if not self._gene_pos:
            raise InputFileError(self.path, "has no readout columns (empty matrix)")
        if any(not g for g in self._genes):
            raise InputFileError(self.path, "has a readout column with an empty header"
                                 + (" (the first: a row index, as pandas' to_csv writes by default? write it with "
                                    "index=False)" if not self._genes[0] and self._gene_pos[0] == 0 else ""))
        return [*self._id_pos, "readout", "value"]

    def _readout_names(self) -> set[str]:
        return set(self._genes)

    def _blocks(self, rows: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """(id columns, values (n, n_genes)) per block of matrix rows, columns taken by position
        (so repeated headers stay separate)."""
        if self.is_parquet:
            for b in pq.ParquetFile(self.path).iter_batches(rows):
                ids = {c: b.column(i).to_pandas().to_numpy(dtype=object) for c, i in self._id_pos.items()}
                vals = np.column_stack([b.column(i).to_numpy(zero_copy_only=False) for i in self._gene_pos])
                yield ids, vals
            return
        # index_col=False: a row with more fields than the header is an error, never a shifted row index.
        chunks = pd.read_csv(self.path, sep=self._sep, chunksize=rows, header=0, index_col=False, skiprows=self._skip,
                             dtype={i: str for i in self._id_pos.values()}, keep_default_na=True)
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    df = next(chunks)
                except StopIteration:
                    return
                except pd.errors.ParserWarning as exc:
                    raise ValueError("a row has more fields than the header") from exc
            if df.shape[1] != len(self._header):
                raise ValueError(f"{df.shape[1]} columns, header has {len(self._header)}")
            ids = {c: df.iloc[:, i].to_numpy(dtype=object) for c, i in self._id_pos.items()}
            yield ids, df.iloc[:, self._gene_pos].to_numpy()

    def _batches(self) -> Iterator[pd.DataFrame]:
        n_genes = len(self._genes)
        rows = max(1, self.batch_size // n_genes)
        genes = pd.Categorical(self._genes)
        seen = 0
        try:
            for ids, vals in self._blocks(rows):
                if not seen:
                    self._check_text_columns(vals)
                if self.max_rows is not None:
                    ids = {c: v[: self.max_rows - seen] for c, v in ids.items()}
                    vals = vals[: self.max_rows - seen]
                n = len(vals)
                seen += n
                if n:
                    long = {c: pd.Categorical(np.repeat(v, n_genes)) for c, v in ids.items()}
                    if self._fill_context:
                        long["context"] = pd.Categorical.from_codes(np.zeros(n * n_genes, np.int8),
                                                                    [self.default_context])
                    if self._fill_type:
                        long["perturbation_type"] = pd.Categorical.from_codes(np.zeros(n * n_genes, np.int8),
                                                                              [self.default_type])
                    long["readout"] = pd.Categorical.from_codes(np.tile(genes.codes, n), genes.categories)
                    long["value"] = vals.reshape(-1)
                    yield with_units(pd.DataFrame(long))
                if self.max_rows is not None and seen >= self.max_rows:
                    return
        except InputFileError:
            raise
        except (OSError, ValueError) as exc:
            raise InputFileError(self.path, f"cannot read rows after row {seen} ({exc})") from exc

    def _check_text_columns(self, vals: np.ndarray) -> None:
        """Refuse a 'readout' column whose every filled cell of the first block is text (at least
        TEXT_COLUMN_MIN_CELLS cells, not all one word): an annotation column, or a long
        table with other column names ("gene", "logfc"), not a matrix; read cell by cell it would quarantine
        the gene names and store the value column as one readout named "logfc"."""
        if vals.dtype != object:
            return  # a numeric block: nothing to check
        frame = pd.DataFrame(vals, columns=range(len(self._genes)))
        text = []
        for j in frame.columns:
            filled = frame[j].dropna().astype(str).str.strip()
            filled = filled[filled != ""]
            # a few text cells ("high") are values to quarantine; a column of several different names is not
            if len(filled) >= TEXT_COLUMN_MIN_CELLS and filled.nunique() > 1 and pd.to_numeric(
                    filled, errors="coerce").isna().all():
                text.append(self._genes[j])
        if text:
            raise InputFileError(self.path, f"read as a wide table (no 'readout' and 'value' columns), but column(s) "
                                            f"{text[:5]} hold text, not values; a long table needs the columns "
                                            "perturbation, readout, value (rename yours, or name the readout column with "
                                            "--readout-key); a wide table has one numeric column per readout")


def read_wide_table(path: str | Path, dataset_id: str, **kwargs) -> tuple[pd.DataFrame, WideTableReader]:
    """Whole table at once (small files): the long frame and the finished reader."""
    reader = WideTableReader(path, dataset_id, **kwargs)
    return concat_long(list(reader.iter_long())), reader

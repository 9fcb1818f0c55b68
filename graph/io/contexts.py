"""Cell-line / cell-type contexts: name normalisation and the LINCS cell-line feature table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from graph.io.common import InputFileError, clean_text
from graph.io.identifiers import CONSENSUS_CONTEXT
from graph.records import ContextRecord, ReadReport

# Files that do not record the cell line (the CMap kd shRNA plate) get this context. It is lower case
# on purpose: normalised names are upper case, so it can never collide with a real cell line, and
# its ContextRecord has kind "unknown" so the graph and the model can exclude or flag it.
UNKNOWN_CONTEXT = "unknown"


def normalise_context_name(name: object) -> str:
    """Cell-line name -> LINCS-style id: upper case, punctuation and spaces removed.

    "HEC-1-A" -> "HEC1A", "Panc 03.27" -> "PANC0327", "THP-1" -> "THP1", "MIA PaCa-2" -> "MIAPACA2".
    Missing names (empty, -666, NA) -> UNKNOWN_CONTEXT.
    """
    s = clean_text(name)
    if s.lower() in {"", "-666", "na", "nan", "none", "unknown"}:
        return UNKNOWN_CONTEXT
    key = re.sub(r"[\W_]+", "", s).upper()
    return key or UNKNOWN_CONTEXT


def context_record(name: object, kind: str = "cell_line", source: str = "") -> ContextRecord:
    cid = normalise_context_name(name)
    if cid == CONSENSUS_CONTEXT:  # a table's context-free consensus signatures: no cell line of any kind
        return ContextRecord(context_id=cid, name="consensus over contexts", kind="consensus", source=source)
    if cid == UNKNOWN_CONTEXT:
        return ContextRecord(context_id=UNKNOWN_CONTEXT, name=f"not recorded ({source})" if source else "not recorded",
                             kind="unknown", source=source)
    return ContextRecord(context_id=cid, name=clean_text(name), kind=kind, source=source)


FEATURES = ("basex_affx", "basex_rnaseq", "copy_number", "is_expressed")


@dataclass(frozen=True)
class ContextFeatures:
    """A wide (n_contexts, n_genes) float32 matrix of one baseline feature.

    `matrix` rows are normalised context ids, columns gene symbols (as in the file). NaN means "not
    measured" (missing pair in the long table or a null value) unless a fill was requested;
    `missing_fraction` is measured before filling.
    """

    feature: str
    matrix: pd.DataFrame
    missing_fraction: float
    report: ReadReport


def read_cell_line_features(
    path: str | Path,
    feature: str = "basex_rnaseq",
    *,
    contexts: list[str] | None = None,
    genes: list[str] | None = None,
    fill: str = "nan",
) -> ContextFeatures:
    """Read the long cell-line feature table (cell_id, gene_symbol, <features>) as a wide matrix.

    fill: "nan" keeps NaN (the caller masks), "gene_mean" replaces NaN by the gene's mean over the
    contexts that have it (genes measured nowhere stay NaN), "zero" by 0. `is_expressed` becomes 0/1.
    `contexts`/`genes` restrict and order rows/columns (ids not in the file become all-NaN rows/columns).
    """
    path = Path(path)
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; choose one of {FEATURES}")
    if fill not in {"nan", "gene_mean", "zero"}:
        raise ValueError(f"unknown fill {fill!r}; choose nan, gene_mean or zero")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for non-parquet input
        raise InputFileError(path, f"not a readable parquet file ({exc})") from exc
    missing = {"cell_id", "gene_symbol", feature} - set(schema.names)
    if missing:
        raise InputFileError(path, f"missing columns {sorted(missing)}; available: {schema.names}")
    df = pq.read_table(path, columns=["cell_id", "gene_symbol", feature]).to_pandas()
    report = ReadReport(source=str(path), read=len(df))
    df["context"] = df["cell_id"].astype(str).map(normalise_context_name)
    values = df[feature].astype("float32") if feature != "is_expressed" else df[feature].astype("Float32")
    df["v"] = pd.to_numeric(values, errors="coerce").astype("float32")
    dup = df.duplicated(["context", "gene_symbol"], keep="first")
    if dup.any():
        # Two spellings of one cell line collapse onto one id: keep the first (file order) and count it.
        report.duplicates_resolved = int(dup.sum())
        report.notes.append(f"{int(dup.sum())} duplicate (context, gene) pairs after name normalisation; first kept")
        df = df[~dup]
    # Resolved duplicates count as accepted (merged into the kept pair), see duplicates_resolved.
    report.accepted = report.read
    wide = df.pivot(index="context", columns="gene_symbol", values="v").astype("float32")
    wide.columns = wide.columns.astype(str)
    wide.index = wide.index.astype(str)
    if contexts is not None:
        wide = wide.reindex([normalise_context_name(c) for c in contexts])
    if genes is not None:
        wide = wide.reindex(columns=list(genes))
    wide = wide.sort_index() if contexts is None else wide
    missing_fraction = float(np.isnan(wide.to_numpy()).mean()) if wide.size else 0.0
    report.notes.append(f"{feature}: {wide.shape[0]} contexts x {wide.shape[1]} genes, {missing_fraction:.1%} missing")
    if fill == "gene_mean":
        wide = wide.fillna(wide.mean(axis=0))
    elif fill == "zero":
        wide = wide.fillna(0.0)
    return ContextFeatures(feature=feature, matrix=wide.astype("float32"), missing_fraction=missing_fraction,
                           report=report)

"""Which reader a measurement file gets, with which options: one registry for every entry point.

`pipelines/ingest.read_experiment` (demo, Dagster, inbox) and `models/datasets` (train, evaluate) open
measurement files here, so a file is read with the same reader, the same `ReadOptions`
(graph/io/options.py) and the same "no valid rows" rule wherever it enters.

    open_streaming_reader(path, kind, dataset_id, options, ...)  -> GctxToLong | LongTableReader | WideTableReader
        (iter_long() yields MEASUREMENT_COLUMNS chunks; report, quarantine, records after exhaustion)
    read_h5ad(path, dataset_id, options, ...)                    -> H5adResult (pseudobulk or bulk, whole)
    gene_resolver(genes, shared_data)                            -> GeneResolver | None (which gene table applies)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from graph.io.common import InputFileError, table_header, table_layout
from graph.io.options import ReadOptions

STREAMED_KINDS = ("gctx", "gct", "long_table", "ranked_long_table", "wide_table")
CMAP_KINDS = ("gctx", "gct")  # one reader (GctxToLong) for the HDF5 and the text CMap matrix
DEFAULT_GENE_TABLE = "genes/genes_human.tsv"  # the shared data's gene table (NCBI Gene), relative to its root


def gene_resolver(genes: Sequence = (), shared_data: str | Path | None = None):
    """The one rule for which gene table resolves readouts (aliases, case, Entrez / Ensembl ids -> current
    symbols) and genetic targets, on every entry point (train, evaluate, demo, Dagster, inbox): the gene
    table among the run's own inputs (its GeneRecords) when it has one, else the shared data's
    genes/genes_human.tsv when present, else None (readouts kept as given)."""
    from graph.io.genes import GeneResolver

    if genes:
        return GeneResolver(list(genes))
    path = Path(shared_data) / DEFAULT_GENE_TABLE if shared_data else None
    if path is None or not path.is_file():
        return None
    return _default_resolver(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _default_resolver(path: str, mtime_ns: int):
    """The shared gene table read once per process (77k genes, ~1.6 s); a changed file is read again."""
    from graph.io.genes import GeneResolver

    return GeneResolver.from_table(path)


def table_kind(path: str | Path, options: ReadOptions) -> str:
    """long_table | ranked_long_table | wide_table for a parquet / CSV / TSV file (graph/io/common.table_layout);
    a header that fits none is read as a long table, whose reader names the missing columns."""
    return table_layout(table_header(path), options.readout_key) or "long_table"


# Read options that apply to some file kinds only (every other option applies to every reader). A file read
# with one that does not apply says so in its report: the CLI flags are given once for all the run's files.
OPTION_KINDS = {"bulk": ("h5ad",), "signature_info": CMAP_KINDS}


def unused_options_note(kind: str, options: ReadOptions) -> str:
    """The report line naming the given options this file kind does not use ('' when none)."""
    return "; ".join(f"option {name} not used: it applies to {' and '.join(kinds)} files, not this {kind}"
                     for name, kinds in OPTION_KINDS.items()
                     if getattr(options, name) not in (None, False) and kind not in kinds)


def open_streaming_reader(path: str | Path, kind: str, dataset_id: str, options: ReadOptions = ReadOptions(), *,
                          resolver=None, compound_ids: Mapping[str, str] | None = None,
                          chunk_signatures: int = 1000, max_rows: int | None = None):
    """The reader of a GCTX or table file, opened (header checked) but not yet read."""
    if kind not in STREAMED_KINDS:
        raise ValueError(f"{path}: kind {kind!r} is not a streamed measurement file")
    if kind in CMAP_KINDS:
        from graph.io.gctx import GctxToLong

        reader = GctxToLong(path, dataset_id, resolver=resolver, compound_ids=compound_ids,
                            chunk_size=chunk_signatures, duplicates=options.duplicates,
                            unknown_genes=options.unknown_genes, signature_info=options.signature_info,
                            perturbation_type=options.perturbation_type, context=options.context,
                            readout_key=options.readout_key)
    else:
        from graph.io.tables import LongTableReader
        from graph.io.wide import WideTableReader

        cls = WideTableReader if kind == "wide_table" else LongTableReader
        reader = cls(path, dataset_id, resolver=resolver, compound_ids=compound_ids, max_rows=max_rows,
                     duplicates=options.duplicates, perturbation_type=options.perturbation_type,
                     context=options.context, readout_key=options.readout_key, unknown_genes=options.unknown_genes)
    if note := unused_options_note(kind, options):
        reader.report.notes.append(note)
    return reader


def read_h5ad(path: str | Path, dataset_id: str, options: ReadOptions = ReadOptions(), *, resolver=None,
              compound_ids: Mapping[str, str] | None = None, bulk: bool | None = None):
    """A Perturb-seq h5ad pseudobulked against same-context controls, or a bulk h5ad read as it is
    (`bulk`, default: the `bulk` read option); compounds joined to `compound_ids` as the other readers do."""
    from graph.io.h5ad import pseudobulk_h5ad, read_bulk_h5ad

    read = read_bulk_h5ad if (options.bulk if bulk is None else bulk) else pseudobulk_h5ad
    result = read(path, dataset_id, resolver=resolver, options=options, compound_ids=compound_ids)
    if note := unused_options_note("h5ad", options):
        result.report.notes.append(note)
    return result


def no_valid_rows(source: str | Path, read: int, unit: str, reasons: Mapping[str, int]) -> InputFileError:
    """A file none of whose rows (values, signatures) was accepted: refused, with the reasons counted."""
    by = "; ".join(f"{k}: {n:,}" for k, n in reasons.items() if n)
    return InputFileError(source, f"no valid rows ({read:,} {unit} read" + (f"; {by})" if by else ")"))

"""Plain-Python ingest steps the Dagster assets (and tests) call: read → normalise → store → load.

Reading produces bundles of records plus quarantine; loading writes them through graph.db.graph_writer.
Nothing here builds Cypher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from graph.io.common import InputFileError, sha256_file
from graph.io.options import ReadOptions
from graph.records import (
    ComplexRecord,
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    PriorEdgeRecord,
    QuarantineRecord,
    ReadReport,
    SignatureRecord,
)
from graph.settings import Settings
from pipelines.inputs import InputSpec

if TYPE_CHECKING:  # the driver package loads only where the graph is written
    from graph.db.graph_writer import GraphWriter

# Order in which measurement files are read (stable across runs).
MEASUREMENT_KINDS_ORDER = ("gctx", "gct", "h5ad", "long_table", "ranked_long_table", "wide_table")
COMPOUND_KINDS = ("compound_repurposing_drugs", "compound_repurposing_samples", "compound_lincs")
NETWORK_KINDS = ("string", "corum", "dorothea", "gmt")
# GCTX columns per streamed chunk: 250 x 978 values keep a chunk's validation and store text ~100 MB
# (docs/benchmarks.md, "Ingest through the store").
GCTX_CHUNK_SIGNATURES = 250

VALUE_KIND = {
    "gctx": "CMap z-score (level 4/5 as given by the file)",
    "gct": "as given by the GCT file",
    "h5ad": "pseudobulk log1p CP10k mean difference vs same-context controls",
    "long_table": "as given by the table's value column",
    "ranked_long_table": "signed rank score s = 1 - 2(rank-1)/(n_ranked-1)",
    "wide_table": "as given by the table's cells (rows = perturbations, columns = readouts)",
}


def dataset_record(spec: InputSpec, *, version: str = "") -> DatasetRecord:
    path = Path(spec.path)
    return DatasetRecord(
        dataset_id=spec.dataset_id, name=path.name, source=spec.source or str(path),
        version=version or "", path=str(path), sha256=sha256_file(path), licence=spec.licence,
        kind=spec.kind, value_kind=VALUE_KIND.get(spec.kind, ""), simulated=spec.simulated,
    )


@dataclass
class ReferenceBundle:
    """Genes, compounds and prior knowledge from every reference file of a run."""

    datasets: list[DatasetRecord] = field(default_factory=list)
    genes: list[GeneRecord] = field(default_factory=list)
    compounds: list[CompoundRecord] = field(default_factory=list)
    prior_edges: dict[str, list[PriorEdgeRecord]] = field(default_factory=dict)  # dataset_id -> edges
    complexes: dict[str, list[ComplexRecord]] = field(default_factory=dict)
    gene_sets: dict[str, list[tuple[str, str, tuple[str, ...]]]] = field(default_factory=dict)
    context_features: dict[str, pd.DataFrame] = field(default_factory=dict)  # dataset_id -> wide matrix
    reports: list[ReadReport] = field(default_factory=list)
    quarantine: dict[str, list[QuarantineRecord]] = field(default_factory=dict)
    gene_dataset: str = ""
    compound_dataset: str = ""

    def resolver(self):
        """The run's own gene table (for the reference files; measurement files: graph/io/readers.gene_resolver
        with the shared data's table as the fallback)."""
        from graph.io.readers import gene_resolver

        return gene_resolver(self.genes)

    def compound_ids(self) -> dict[str, str]:
        from graph.io.compounds import name_index

        return name_index(self.compounds)


@dataclass
class ExperimentBundle:
    """One measurement file: its records, where its values went, and what was rejected."""

    dataset: DatasetRecord
    contexts: list[ContextRecord]
    perturbations: list[PerturbationRecord]
    signatures: list[SignatureRecord]
    store_entry: Any
    report: ReadReport
    quarantine: list[QuarantineRecord]
    value_counts: dict[str, int] = field(default_factory=dict)


# What a reader raises on a file that is not what its name and header promised (anything else is a bug
# of ours and fails the run).
UNREADABLE = (InputFileError, ValueError, KeyError, IndexError, TypeError, OSError, EOFError, pa.ArrowException)


def read_reference(specs: list[InputSpec], progress=print,
                   set_aside: Callable[[InputSpec, Exception], bool] | None = None) -> ReferenceBundle:
    """Read every reference file of a run. A file whose reader fails (UNREADABLE) is offered to
    `set_aside` (the inbox moves it to inbox/rejected/ with the reason and returns True): then it is
    left out and the others proceed; otherwise the error propagates."""
    from graph.io import compounds as comp
    from graph.io.genes import read_gene_table

    bundle = ReferenceBundle()

    def read(spec: InputSpec, what: str, reader):
        progress(f"reading {what} {spec.path}")
        try:
            result = reader()
        except UNREADABLE as exc:
            if set_aside is not None and set_aside(spec, exc):
                return None
            if isinstance(exc, InputFileError):
                raise
            raise InputFileError(spec.path, f"cannot be read as {spec.kind} ({type(exc).__name__}: {exc})") from exc
        bundle.datasets.append(dataset_record(spec))
        return result

    for spec in (s for s in specs if s.kind == "gene_table"):
        result = read(spec, "genes", lambda spec=spec: read_gene_table(spec.path, source=spec.source))
        if result is None:
            continue
        bundle.genes.extend(result.records)
        bundle.reports.append(result.report)
        bundle.quarantine[spec.dataset_id] = list(result.quarantine)
        bundle.gene_dataset = bundle.gene_dataset or spec.dataset_id
    resolver = bundle.resolver()

    entries = []
    readers = {"compound_repurposing_drugs": comp.read_repurposing_drugs,
               "compound_repurposing_samples": comp.read_repurposing_samples,
               "compound_lincs": comp.read_lincs_compoundinfo}
    for spec in (s for s in specs if s.kind in COMPOUND_KINDS):
        result = read(spec, "compounds", lambda spec=spec: readers[spec.kind](spec.path))
        if result is None:
            continue
        entries.extend(result.records)
        bundle.reports.append(result.report)
        bundle.quarantine[spec.dataset_id] = list(result.quarantine)
        bundle.compound_dataset = bundle.compound_dataset or spec.dataset_id
    if entries:
        progress(f"standardising {len(entries)} compound entries with RDKit")
        built = comp.build_compounds(entries, source="compounds")
        bundle.compounds = built.records
        bundle.reports.append(built.report)

    from graph.io import networks

    # The readers and gene table models/datasets.read_network uses too (one path for every entry point).
    for spec in (s for s in specs if s.kind in NETWORK_KINDS):
        result = read(spec, "prior network",
                      lambda spec=spec: networks.NETWORK_READERS[spec.kind](spec.path, resolver=resolver))
        if result is None:
            continue
        if spec.kind in ("string", "dorothea"):
            bundle.prior_edges[spec.dataset_id] = result.records
        elif spec.kind == "corum":
            bundle.complexes[spec.dataset_id] = result.records
        else:
            bundle.gene_sets[spec.dataset_id] = [(g.complex_id, g.name, g.member_symbols) for g in result.records]
        bundle.reports.append(result.report)
        bundle.quarantine[spec.dataset_id] = list(result.quarantine)

    handled = {"gene_table", "cell_line_features", *COMPOUND_KINDS, *NETWORK_KINDS}
    for spec in (s for s in specs if s.kind not in handled):
        # Said out loud, never silently skipped: e.g. the L1000 landmark table, whose facts the GCTX
        # reader already takes from the files' own row metadata (Entrez ids).
        bundle.reports.append(ReadReport(source=spec.path, notes=[f"kind {spec.kind!r} is not written to the graph"]))
        progress(f"not ingested: {spec.path} (kind {spec.kind} has no graph representation)")

    for spec in (s for s in specs if s.kind == "cell_line_features"):
        from graph.io.contexts import read_cell_line_features

        features = read(spec, "cell-line features",
                        lambda spec=spec: read_cell_line_features(spec.path, "basex_rnaseq", fill="gene_mean"))
        if features is None:
            continue
        bundle.context_features[spec.dataset_id] = features.matrix
        bundle.reports.append(features.report)
    return bundle


def read_options(spec: InputSpec) -> ReadOptions:
    """The spec's ReadOptions (graph/io/options.py; the run's defaults with the file's own options)."""
    from graph.io.options import OPTION_NAMES

    try:
        return ReadOptions.parse({k: v for k, v in spec.options if k in OPTION_NAMES})
    except ValueError as exc:
        raise InputFileError(spec.path, str(exc)) from None


def read_experiment(spec: InputSpec, settings: Settings, *, resolver=None,
                    compound_ids: dict[str, str] | None = None, progress=print) -> ExperimentBundle:
    """Stream one measurement file into the columnar store and collect its records.

    GCTX and long/ranked/wide tables are read chunk by chunk (each chunk validated by its reader) and
    every chunk goes straight to the store's appending writer, so memory does not grow with the number
    of signatures; only the records (signatures, perturbations, contexts) are collected. h5ad files are
    pseudobulked whole (their signatures are few) and stored in one piece. The spec's ReadOptions apply;
    a readout subset of N random readouts takes a first pass to count which readouts every signature
    has (graph/io/options.py). A file with no accepted value is refused (InputFileError), as on the CLI.
    """
    from graph.io.common import recount_signatures
    from graph.io.options import choose_readouts, keep_readouts, readout_counts, subset_note, subset_table
    from graph.io.readers import CMAP_KINDS, STREAMED_KINDS, no_valid_rows, open_streaming_reader, read_h5ad
    from graph.store.measurements import MeasurementWriter, write_measurements

    progress(f"reading measurements {spec.path} ({spec.kind})")
    options = spec.option_dict
    opts = read_options(spec)
    value_counts: dict[str, int] = {}
    if spec.kind in STREAMED_KINDS:
        def open_reader():
            return open_streaming_reader(
                spec.path, spec.kind, spec.dataset_id, opts, resolver=resolver, compound_ids=compound_ids,
                chunk_signatures=GCTX_CHUNK_SIGNATURES,
                max_rows=int(options["max_rows"]) if "max_rows" in options else None)

        keep = None
        if opts.readouts is not None:  # first pass: which readouts each accepted signature has
            progress(f"choosing the readout subset ({opts.describe_subset()})")
            counts, n_signatures = readout_counts(open_reader().iter_long())
            keep = choose_readouts(opts, counts, n_signatures)
        reader = open_reader()  # opened (and its header checked) before the store is touched
        accepted = kept = 0
        per_signature: Counter[str] = Counter()
        with MeasurementWriter(settings, spec.dataset_id) as out:
            for chunk in reader.iter_long():
                accepted += len(chunk)
                chunk = keep_readouts(chunk, keep)
                if len(chunk):
                    out.append(chunk)
                    kept += len(chunk)
                    if keep is not None:
                        per_signature.update(chunk["signature_id"].astype(str).value_counts().to_dict())
            if not accepted:
                gctx = spec.kind in CMAP_KINDS
                raise no_valid_rows(spec.path, (reader.value_report if gctx else reader.report).read,
                                    "values" if gctx or spec.kind == "wide_table" else "rows",
                                    reader.dropped_values if gctx else reader.reasons)
            if not kept:
                raise InputFileError(spec.path, f"none of the {len(keep)} requested readouts is in the data")
        entry = out.entry
        contexts, perturbations, signatures = reader.contexts, reader.perturbations, reader.signatures
        report, quarantine = reader.report, list(reader.quarantine)
        if keep is not None:
            report.notes.append(subset_note(opts, keep, len(counts), accepted - kept))
            signatures = recount_signatures(_as_list(signatures), dict(per_signature))
        if spec.kind in CMAP_KINDS:
            value_counts = {"values_accepted": reader.value_report.accepted, **dict(reader.dropped_values)}
    elif spec.kind == "h5ad":
        # Counts (Perturb-seq) are pseudobulked against same-context controls; bulk files are read as is.
        result = read_h5ad(spec.path, spec.dataset_id, opts, resolver=resolver, compound_ids=compound_ids)
        contexts, perturbations, signatures = result.contexts, result.perturbations, result.signatures
        report, quarantine = result.report, list(result.quarantine)
        if not len(result.long):
            raise no_valid_rows(spec.path, report.read, "signatures (cell groups)",
                                Counter(q.reason for q in result.quarantine))
        try:
            long = subset_table(result.long, opts, report.notes)
        except ValueError as exc:
            raise InputFileError(spec.path, str(exc)) from None
        signatures = recount_signatures(signatures, long)
        entry = write_measurements(settings, spec.dataset_id, long)
    else:
        raise ValueError(f"{spec.path}: kind {spec.kind!r} is not a measurement file")
    contexts, perturbations, signatures = _as_list(contexts), _as_list(perturbations), _as_list(signatures)
    report.check()
    return ExperimentBundle(dataset_record(spec), contexts, perturbations, signatures, entry, report, quarantine,
                            value_counts)


def _as_list(items) -> list:
    if isinstance(items, dict):
        return list(items.values())
    return list(items() if callable(items) else items)


# ----------------------------------------------------------------------------------------- load
def report_writes(stats: dict[str, Any], progress) -> None:
    """One line per writer call: rows, batches and rows/s (the ingest's progress in the run log)."""
    for s in stats.values():
        progress(f"wrote {s.what}: {s.rows:,} rows in {s.batches:,} batches, {s.seconds:.1f} s, "
                 f"{s.rows / max(s.seconds, 1e-9):,.0f} rows/s" + (f", {len(s.quarantined):,} quarantined"
                                                                   if s.quarantined else ""))


def load_reference(writer: GraphWriter, bundle: ReferenceBundle, progress=print) -> dict[str, Any]:
    """Genes, compounds and their targets, prior networks, complexes and gene sets, each Dataset marked
    complete last; quarantined links are added to `bundle.quarantine`."""
    writer.ensure_schema()
    by_id = {d.dataset_id: d for d in bundle.datasets}
    for record in bundle.datasets:
        writer.write_dataset(record)
    stats: dict[str, Any] = {}
    quarantined: Counter[str] = Counter()
    if bundle.genes:
        progress(f"loading {len(bundle.genes)} genes")
        stats["Gene"] = writer.write_genes(bundle.genes, bundle.gene_dataset)
    if bundle.compounds:
        progress(f"loading {len(bundle.compounds)} compounds and their targets")
        stats["Compound"] = writer.write_compounds(bundle.compounds, bundle.compound_dataset)
        stats["TARGETS"] = writer.write_compound_targets(bundle.compounds, bundle.compound_dataset)
        quarantined[bundle.compound_dataset] += len(stats["TARGETS"].quarantined)
        bundle.quarantine.setdefault(bundle.compound_dataset, []).extend(stats["TARGETS"].quarantined)
    for dataset_id, edges in bundle.prior_edges.items():
        progress(f"loading {len(edges)} prior edges of {dataset_id}")
        s = writer.write_prior_edges(edges, dataset_id)
        stats[f"prior:{dataset_id}"] = s
        bundle.quarantine.setdefault(dataset_id, []).extend(s.quarantined)
    for dataset_id, complexes in bundle.complexes.items():
        s = writer.write_complexes(complexes, dataset_id)
        stats[f"complexes:{dataset_id}"] = s
        bundle.quarantine.setdefault(dataset_id, []).extend(s.quarantined)
    for dataset_id, sets in bundle.gene_sets.items():
        s = writer.write_gene_sets(sets, dataset_id, source=by_id[dataset_id].source)
        stats[f"gene_sets:{dataset_id}"] = s
        bundle.quarantine.setdefault(dataset_id, []).extend(s.quarantined)
    for record in bundle.datasets:
        writer.mark_dataset_complete(record.dataset_id,
                                     n_quarantined=len(bundle.quarantine.get(record.dataset_id, [])))
    report_writes(stats, progress)
    return stats


def load_experiment(writer: GraphWriter, bundle: ExperimentBundle, progress=print) -> dict[str, Any]:
    """Contexts, perturbations and signatures of one experiment, its Dataset marked complete last
    (with the store file and hash); quarantined records are added to `bundle.quarantine`."""
    dataset_id = bundle.dataset.dataset_id
    progress(f"loading {dataset_id}: {len(bundle.signatures)} signatures")
    writer.write_dataset(bundle.dataset)
    stats = {
        "CellLine": writer.write_contexts(bundle.contexts, dataset_id),
        "Perturbation": writer.write_perturbations(bundle.perturbations, dataset_id),
    }
    stats["Signature"] = writer.write_signatures(bundle.signatures)
    for s in stats.values():
        bundle.quarantine.extend(s.quarantined)
    writer.mark_dataset_complete(dataset_id, store_entry=bundle.store_entry, n_quarantined=len(bundle.quarantine))
    report_writes(stats, progress)
    return stats

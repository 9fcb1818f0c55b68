"""Group `sources`: find the input files, read and validate them, quarantine what is bad.

Values go to the columnar store here; records travel to the `graph` group through the IO manager.
"""


from pathlib import Path

import dagster as dg
import pandas as pd

from graph.io.common import InputFileError
from graph.io.options import ReadOptions
from graph.io.readers import gene_resolver
from graph.io.validation import DEFAULT_DUPLICATES
from graph.store.quarantine import write_quarantine
from pipelines.ingest import (
    MEASUREMENT_KINDS_ORDER,
    UNREADABLE,
    ExperimentBundle,
    ReferenceBundle,
    read_experiment,
    read_reference,
)
from pipelines.inputs import MEASUREMENT_KINDS, InputSpec, reject_inbox_file, resolve_inputs
from pipelines.resources import PerturbGraphSettings

GROUP = "sources"



def _from_inbox(spec: InputSpec) -> bool:
    return spec.source.startswith("inbox:")


def _unreadable_reason(spec: InputSpec, exc: Exception) -> str:
    """One line that names the problem, never the file's content (InputFileError's problem is our text)."""
    if isinstance(exc, InputFileError):
        return exc.problem
    return f"passed the inbox's format check but its {spec.kind} reader failed ({type(exc).__name__})"


def _reject(context, settings, spec: InputSpec, exc: Exception):
    rejection = reject_inbox_file(Path(spec.path), settings.inbox_dir, _unreadable_reason(spec, exc))
    context.log.warning(f"inbox file {rejection.name} rejected: {rejection.reason}; moved to {rejection.moved_to}")
    return rejection


def _failure_line(exc: Exception, kind: str, path: str = "") -> str:
    """One line naming the file: InputFileError's own text, else the reader's failure with the path."""
    if isinstance(exc, InputFileError):
        return " ".join(str(exc).split())
    where = path or getattr(exc, "filename", "") or "an input file"
    return " ".join(f"{where}: cannot be read as {kind} ({type(exc).__name__}: {exc})".split())


def _report_table(reports) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"source": r.source, "read": r.read, "accepted": r.accepted,
                                 "quarantined": r.quarantined, "duplicates_resolved": r.duplicates_resolved})
                 for r in reports],
        schema=dg.TableSchema(columns=[dg.TableColumn("source", "string"), dg.TableColumn("read", "int"),
                                       dg.TableColumn("accepted", "int"), dg.TableColumn("quarantined", "int"),
                                       dg.TableColumn("duplicates_resolved", "int")]),
    )


class IngestConfig(dg.Config):
    """Read options of every measurement file of the run (graph/io/options.ReadOptions, the same names
    as the CLI's --perturbation-type, --context, --readout-key, --readouts, --readout-seed, --duplicates);
    a file's own options (FILE?k=v, an inbox file's <name>.options) replace them."""

    perturbation_type: str | None = None
    context: str | None = None
    readout_key: str | None = None
    readouts: str | None = None  # N random readouts of those in every signature, or a file of names
    readout_seed: int = 0
    duplicates: str = DEFAULT_DUPLICATES  # ReadOptions' default: runner.run_config leaves defaults out
    unknown_genes: str = "keep"  # genes the gene table does not resolve: keep (counted) | quarantine
    bulk: bool = False  # an h5ad of per-signature values, read as is (not pseudobulked)
    signature_info: str | None = None  # a GCTX's signature metadata table (sig_info / siginfo_beta)

    def read_options(self) -> ReadOptions:
        try:
            return ReadOptions.parse(self.model_dump())
        except (ValueError, InputFileError) as exc:
            raise dg.Failure(f"input_manifest config: {exc}", allow_retries=False) from None


@dg.asset(group_name=GROUP, kinds={"python"},
          description="The input files of this run (simulated default dataset, ../shared/data, explicit paths, "
                      "and anything in the inbox), with their detected kind, dataset id and read options.")
def input_manifest(context: dg.AssetExecutionContext, config: IngestConfig,
                   perturbgraph: PerturbGraphSettings) -> list[InputSpec]:
    try:
        specs = resolve_inputs(perturbgraph.settings(), perturbgraph.inputs, config.read_options())
    except InputFileError as exc:  # an explicit input the user named: one line that names it
        raise dg.Failure(str(exc), allow_retries=False) from None
    if not specs:
        raise dg.Failure(f"no input files found for inputs={perturbgraph.inputs!r}: set PERTURBGRAPH_INPUTS or put "
                         "files into the inbox", allow_retries=False)
    context.add_output_metadata({
        "n_files": len(specs),
        "simulated": any(s.simulated for s in specs),
        "files": dg.MetadataValue.md("\n".join(f"- `{s.dataset_id}` ({s.kind}{', SIMULATED' if s.simulated else ''}): "
                                               f"{s.path}" + (f" ({dict(s.options)})" if s.options else "")
                                               for s in specs)),
    })
    return specs


@dg.asset(group_name=GROUP, kinds={"python", "rdkit"},
          description="Genes, compounds (RDKit-standardised), prior networks and cell-line features, "
                      "validated; rejected records quarantined with a reason.")
def reference_data(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings,
                   input_manifest: list[InputSpec]) -> ReferenceBundle:
    settings = perturbgraph.settings()
    specs = [s for s in input_manifest if s.kind not in MEASUREMENT_KINDS]
    rejected = []

    def set_aside(spec: InputSpec, exc: Exception) -> bool:
        """An inbox file whose reader fails is moved aside with the reason; the others proceed."""
        if not _from_inbox(spec):
            return False
        rejected.append(_reject(context, settings, spec, exc))
        return True

    try:
        bundle = read_reference(specs, progress=context.log.info, set_aside=set_aside)
    except UNREADABLE as exc:  # an explicit input: the run stops with one line that names the file
        raise dg.Failure(_failure_line(exc, "reference"), allow_retries=False) from None
    for dataset_id, records in bundle.quarantine.items():
        write_quarantine(settings, dataset_id, records)
    context.add_output_metadata({
        "genes": len(bundle.genes),
        "compounds": len(bundle.compounds),
        "compounds_without_structure": sum(not c.has_structure for c in bundle.compounds),
        "prior_edges": sum(len(v) for v in bundle.prior_edges.values()),
        "complexes": sum(len(v) for v in bundle.complexes.values()),
        "quarantined": sum(len(v) for v in bundle.quarantine.values()),
        "read_reports": _report_table(bundle.reports),
        "inbox_rejected": dg.MetadataValue.json([{"file": r.name, "reason": r.reason} for r in rejected]),
    })
    return bundle


@dg.asset(group_name=GROUP, kinds={"python", "parquet"},
          description="Measurement files (GCTX, h5ad, long and ranked tables) streamed into the columnar "
                      "store, one parquet per dataset, with contexts, perturbations and signatures as records.")
def experiments(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings,
                input_manifest: list[InputSpec], reference_data: ReferenceBundle) -> list[ExperimentBundle]:
    settings = perturbgraph.settings()
    # The gene table every entry point uses (the run's own, else the shared one): graph/io/readers.gene_resolver.
    resolver = gene_resolver(reference_data.genes, settings.shared_data)
    compound_ids = reference_data.compound_ids()
    specs = sorted((s for s in input_manifest if s.kind in MEASUREMENT_KINDS),
                   key=lambda s: (MEASUREMENT_KINDS_ORDER.index(s.kind), s.dataset_id))
    bundles, rejected = [], []
    for i, spec in enumerate(specs, 1):
        context.log.info(f"[{i}/{len(specs)}] {spec.dataset_id}")
        try:
            bundle = read_experiment(spec, settings, resolver=resolver, compound_ids=compound_ids,
                                     progress=context.log.info)
        except UNREADABLE as exc:
            if not _from_inbox(spec):  # an explicit input: the run stops with one line that names the file
                raise dg.Failure(_failure_line(exc, spec.kind, spec.path), allow_retries=False) from None
            # One bad inbox file must not block the others: set it aside with a reason, go on.
            rejected.append(_reject(context, settings, spec, exc))
            continue
        write_quarantine(settings, spec.dataset_id, bundle.quarantine)
        bundles.append(bundle)
    context.add_output_metadata({
        "datasets": len(bundles),
        "signatures": sum(len(b.signatures) for b in bundles),
        "values": sum(b.store_entry.n_rows for b in bundles),
        "quarantined": sum(len(b.quarantine) for b in bundles),
        "read_reports": _report_table([b.report for b in bundles]),
        "inbox_rejected": dg.MetadataValue.json([{"file": r.name, "reason": r.reason} for r in rejected]),
        "store": dg.MetadataValue.md(pd.DataFrame(
            [{"dataset": b.dataset.dataset_id, "rows": b.store_entry.n_rows, "sha256": b.store_entry.sha256[:16]}
             for b in bundles]).to_markdown(index=False)),
    })
    return bundles

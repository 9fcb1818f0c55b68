"""Frozen records passed from parsing to graph writing.

Readers in `graph.io` yield these; `graph.db.graph_writer` turns them into parameter rows for the named
queries in `graph.db.queries`. Measured values never become records: they travel as long tables
(see `MEASUREMENT_COLUMNS`) into the columnar store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The canonical long table of measured values, one row per (signature, readout).
# `value` is a signed effect (z-score, log fold change or the signed rank score; the Dataset node says which).
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "dataset",  # Dataset.dataset_id
    "signature_id",  # Signature.signature_id (unique across datasets: "<dataset>:<source id>")
    "context",  # context (cell line / cell type) name, normalised
    "perturbation",  # Perturbation.perturbation_id
    "perturbation_type",  # one of PERTURBATION_TYPES
    "readout",  # gene symbol as resolved by graph.io.genes (or the source name when unresolved)
    "value",  # float32
)

PERTURBATION_TYPES: tuple[str, ...] = ("compound", "CRISPRko", "CRISPRi", "CRISPRa", "shRNA", "ORF", "control")


def as_row(record: Any) -> dict[str, Any]:
    """A record as a plain dict for Cypher parameters (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(record).items()}


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: str  # stable, e.g. "tahoe100m_ranked" or "sim_l1000"
    name: str
    source: str  # where it came from (paper, repository, "simulated")
    version: str
    path: str
    sha256: str
    licence: str
    kind: str  # "gctx", "h5ad", "long_table", "ranked_long_table", "compound_table", "gene_table", "network", ...
    value_kind: str = ""  # what `value` means for measurement datasets
    simulated: bool = False
    ingested_at: str = ""  # ISO-8601, set by the writer


@dataclass(frozen=True)
class GeneRecord:
    entrez_id: int
    symbol: str
    name: str = ""
    ensembl_id: str = ""
    aliases: tuple[str, ...] = ()
    gene_type: str = ""
    source: str = ""


@dataclass(frozen=True)
class CompoundRecord:
    compound_id: str  # InChIKey when the structure parses, else "name:<normalised name>"
    name: str
    smiles: str = ""  # canonical SMILES of the parent (salts stripped, neutralised)
    inchikey: str = ""
    inchikey_block1: str = ""  # stereo-agnostic skeleton key
    has_structure: bool = False
    structure_issue: str = ""  # why the structure is missing or was rejected
    aliases: tuple[str, ...] = ()  # pert_ids, other names
    moa: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()  # gene symbols as given by the source
    clinical_phase: str = ""
    source: str = ""


@dataclass(frozen=True)
class ContextRecord:
    context_id: str  # normalised cell-line name (upper case, punctuation removed)
    name: str
    kind: str = "cell_line"  # or "cell_type"
    source: str = ""


@dataclass(frozen=True)
class PerturbationRecord:
    perturbation_id: str  # e.g. "compound:<compound_id>@10uM" / "CRISPRi:MTOR" / "control:DMSO"
    name: str  # as the source spelled it
    perturbation_type: str  # one of PERTURBATION_TYPES
    compound_id: str = ""
    target_symbols: tuple[str, ...] = ()  # resolved gene symbols for genetic perturbations
    dose_value: float | None = None
    dose_unit: str = ""  # canonical: "uM" for concentrations
    time_value: float | None = None
    time_unit: str = ""  # canonical: "h"
    source: str = ""


@dataclass(frozen=True)
class SignatureRecord:
    signature_id: str
    dataset_id: str
    context_id: str
    perturbation_id: str
    n_readouts: int
    n_replicates: int = 1
    source_id: str = ""


@dataclass(frozen=True)
class PriorEdgeRecord:
    """A prior-knowledge gene-gene edge (STRING, DoRothEA) as INTERACTS_WITH."""

    source_symbol: str
    target_symbol: str
    source: str  # "STRING", "DoRothEA", "CORUM"
    score: float
    directed: bool = False
    sign: int = 0  # DoRothEA mode of regulation
    evidence: str = ""  # e.g. DoRothEA confidence letter


@dataclass(frozen=True)
class ComplexRecord:
    """A named set of genes: a CORUM complex (Complex node), or a gene set of a GMT file (GeneSet node;
    complex_id = the set's name, source = the file) — both written with MEMBER_OF edges."""

    complex_id: str
    name: str
    member_symbols: tuple[str, ...]
    source: str = "CORUM"


@dataclass(frozen=True)
class QuarantineRecord:
    """A rejected input record with the reason; nothing is silently dropped."""

    source: str  # file or dataset id
    record_key: str
    reason: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadReport:
    """Counts for one source: read = accepted + quarantined."""

    source: str
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates_resolved: int = 0
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.read != self.accepted + self.quarantined:
            raise AssertionError(
                f"{self.source}: read {self.read} != accepted {self.accepted} + quarantined {self.quarantined}"
            )

"""Records (graph.records) -> the parameter rows the ingest queries of graph.db.queries expect.

Blank text becomes null (absent properties, not empty strings); tuples become lists; numbers are cast
to what the property holds."""

from __future__ import annotations

from typing import Any

from graph.db.batching import now
from graph.io.identifiers import moa_terms
from graph.records import (
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    SignatureRecord,
)


def blank_to_none(value: Any) -> Any:
    return None if value == "" else value


def dataset_props(r: DatasetRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "source": r.source,
        "version": r.version,
        "path": r.path,
        "sha256": r.sha256,
        "licence": r.licence,
        "kind": r.kind,
        "value_kind": r.value_kind,
        "simulated": r.simulated,
        "ingested_at": r.ingested_at or now(),
    }


def gene_row(r: GeneRecord) -> dict[str, Any]:
    return {
        "entrez_id": int(r.entrez_id),
        "symbol": blank_to_none(r.symbol),
        "description": blank_to_none(r.name),
        "ensembl_id": blank_to_none(r.ensembl_id),
        "gene_type": blank_to_none(r.gene_type),
        "source": blank_to_none(r.source),
        "aliases": list(r.aliases),
    }


def compound_row(r: CompoundRecord) -> dict[str, Any]:
    return {
        "compound_id": r.compound_id,
        "name": r.name,
        "smiles": blank_to_none(r.smiles),
        "inchikey": blank_to_none(r.inchikey),
        "inchikey_block1": blank_to_none(r.inchikey_block1),
        "has_structure": bool(r.has_structure),
        "structure_issue": blank_to_none(r.structure_issue),
        "clinical_phase": blank_to_none(r.clinical_phase),
        "source": blank_to_none(r.source),
        "aliases": list(r.aliases),
        "moa": list(moa_terms(r.moa)),  # one spelling per mechanism, whoever built the record
        "targets": list(r.targets),
    }


def context_row(r: ContextRecord) -> dict[str, Any]:
    return {"context_id": r.context_id, "name": r.name, "kind": r.kind, "source": blank_to_none(r.source)}


def perturbation_row(r: PerturbationRecord) -> dict[str, Any]:
    return {
        "perturbation_id": r.perturbation_id,
        "name": r.name,
        "perturbation_type": r.perturbation_type,
        "compound_id": blank_to_none(r.compound_id),
        "target_symbols": list(r.target_symbols),
        "dose_value": None if r.dose_value is None else float(r.dose_value),
        "dose_unit": blank_to_none(r.dose_unit),
        "time_value": None if r.time_value is None else float(r.time_value),
        "time_unit": blank_to_none(r.time_unit),
        "source": blank_to_none(r.source),
    }


def signature_row(r: SignatureRecord) -> dict[str, Any]:
    return {
        "signature_id": r.signature_id,
        "name": f"{r.perturbation_id} in {r.context_id}",
        "dataset_id": r.dataset_id,
        "context_id": r.context_id,
        "perturbation_id": r.perturbation_id,
        "n_readouts": int(r.n_readouts),
        "n_replicates": int(r.n_replicates),
        "source_id": blank_to_none(r.source_id),
    }

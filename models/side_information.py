"""What the LPM's encoders may know about the symbols beyond the measurements: one record.

Every entry point (the evaluation registry's `Resources`, the Dagster `TrainingSet`, the CLI) builds
one `SideInformation` and hands it on unchanged; `LPM(config, side=...)` reads it. Its own module
(not models/registry.py) because models/lpm.py needs it and must not import the baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graph.io.identifiers import moa_terms

__all__ = ["CompoundAnnotation", "SideInformation", "target_genes"]


@dataclass(frozen=True)
class CompoundAnnotation:
    """What the compound tables say a compound does: annotated target genes, mechanisms of action (as
    graph/io/identifiers.normalise_moa spells them) and its parent compound (one key for salt / hydrate
    forms of one drug: the name rule of graph/io/identifiers.py, or the graph's compound_id)."""

    targets: tuple[str, ...] = ()
    moa: tuple[str, ...] = ()
    parent: str = ""

    @classmethod
    def of(cls, targets=(), moa=(), parent: str = "") -> CompoundAnnotation:
        """Table / graph values as one record: targets stripped, unique and sorted; MoA by the identifier
        rule (graph/io/identifiers.moa_terms: "MEK inhibitor" in one table and "mek inhibitor" in another
        are one)."""
        return cls(tuple(sorted({str(t).strip() for t in targets or () if str(t).strip()})), moa_terms(moa),
                   str(parent or ""))


def target_genes(perturbation: str, perturbation_type: str, perturbation_targets: Mapping[str, list[str]]) -> list[str]:
    """The genes a perturbation hits: its recorded targets (`perturbation_targets`: the store's, a loader's, or
    resources_for's), else, for a genetic perturbation, its own name (a benchmark's bare gene name; an id such
    as CRISPRi:AARS is no gene, so ids need their targets recorded); none for a compound without targets."""
    from models.evaluation.splits import GENETIC_TYPES

    return list(perturbation_targets.get(perturbation) or ([perturbation] if perturbation_type in GENETIC_TYPES else []))


# eq=False: pandas frames have no truth value, so records compare by identity.
@dataclass(frozen=True, eq=False)
class SideInformation:
    """All optional. Normalised on construction (copies; None -> empty), so holders cannot alias it."""

    compound_smiles: Mapping[str, str] = field(default_factory=dict)  # compound key -> SMILES
    gene_graph: pd.DataFrame | None = None  # source, target[, weight]: the prior gene graph
    context_features: pd.DataFrame | None = None  # index context, numeric columns (float32 once built)
    perturbation_targets: Mapping[str, list[str]] = field(default_factory=dict)  # perturbation -> target genes
    perturbation_compounds: Mapping[str, str] = field(default_factory=dict)  # perturbation -> key in compound_smiles
    perturbation_doses: Mapping[str, float] = field(default_factory=dict)  # perturbation -> dose (uM)
    # source, target[, weight]: co-complex pairs (CORUM), for corum_knn; the LPM does not read it
    complex_graph: pd.DataFrame | None = None
    # compound perturbation -> its annotation; apart from perturbation_targets, which the LPM's target
    # encoder and network_knn read as the genes a genetic perturbation hits
    compound_annotations: Mapping[str, CompoundAnnotation] = field(default_factory=dict)

    def __post_init__(self):
        put = object.__setattr__  # frozen: normalise once, here
        put(self, "compound_smiles", dict(self.compound_smiles or {}))
        put(self, "perturbation_targets", {k: list(v) for k, v in (self.perturbation_targets or {}).items()})
        put(self, "perturbation_compounds", dict(self.perturbation_compounds or {}))
        put(self, "perturbation_doses", {k: float(v) for k, v in (self.perturbation_doses or {}).items()})
        put(self, "compound_annotations", dict(self.compound_annotations or {}))
        if self.context_features is not None:
            put(self, "context_features", self.context_features.astype(np.float32))
        for name in ("gene_graph", "complex_graph"):
            graph = getattr(self, name)
            if graph is not None:
                put(self, name, graph.loc[:, [c for c in ("source", "target", "weight") if c in graph]])

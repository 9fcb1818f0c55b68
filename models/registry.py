"""Every model the platform can build, by name: one registry for the evaluation harness and production.

    model = build_model("production", seed=0, resources=Resources(...), split_kind="unseen-experiment")
    model.fit(train, valid)          # fit_model(model, train, valid) for any registered model

A name maps to a builder `(seed, resources, split_kind) -> unfitted model`. The harness evaluates any
name here, and the `lpm_model` asset fits `production` (models/predictor.py) through the same
builders, so no model exists only in the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from models.evaluation.baselines import (
    Consensus,
    ContextReadoutMean,
    GlobalMean,
    LinearPCARidge,
    MechanismKNN,
    NetworkKNN,
    NoChange,
    OtherContextsMean,
    SimilarContexts,
    SimilarPerturbations,
    TanimotoKNN,
    fit_model,
)
from models.side_information import SideInformation

__all__ = ["BASELINE_NAMES", "LPM_NAMES", "MODEL_NAMES", "PRODUCTION_CANDIDATES", "PRODUCTION_BASELINES",
           "Resources", "STACKED_MEMBERS", "ZERO_SHOT_SYMBOL_DROPOUT", "build_model", "fit_model",
           "production_members"]


@dataclass(frozen=True)
class Resources:
    """What a builder may use: the side information (handed to the LPM as one record) and LPM settings.
    `resources.gene_graph` etc. read through to `side`."""

    side: SideInformation = field(default_factory=SideInformation)
    lpm_epochs: int | None = None  # None = LPMConfig default
    lpm_config: object | None = None  # an LPMConfig; overrides lpm_epochs

    def __getattr__(self, name: str):  # only called for names not on Resources itself
        if name in _SIDE_FIELDS:
            return getattr(self.side, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_SIDE_FIELDS = frozenset(f.name for f in fields(SideInformation))


BASELINE_NAMES = ("global_mean", "no_change", "context_mean", "consensus", "other_contexts", "similar_contexts",
                  "similar_perturbations", "linear", "tanimoto_knn", "network_knn", "corum_knn", "mechanism_knn")
# lpm = LPMConfig() with every encoder; lpm_paper = the published model (learned embeddings only);
# lpm_zeroshot = lpm trained for unseen symbols: learned vectors dropped half the time (symbol_dropout).
# lpm_stacked = lpm and the simple baselines in one convex combination fitted on validation experiments.
LPM_NAMES = ("lpm", "lpm_paper", "lpm_zeroshot", "lpm_stacked")
ZERO_SHOT_SYMBOL_DROPOUT = 0.5
STACKED_MEMBERS = ("lpm", "context_mean", "other_contexts", "linear", "network_knn", "corum_knn")
# The production predictor chooses among the LPM, these baselines and their stacked combination.
# network_knn only differs from context_mean for perturbations with targets in the gene graph; corum_knn
# (the same model over CORUM co-complex pairs) for those in a complex: on Replogle validation experiments
# it adds to network_knn in the stack (docs/results.md "Production predictor").
# similar_contexts (other lines weighted by regression) beat other_contexts on the 37-line Tahoe targets
# (docs/results.md "Research: many contexts"). mechanism_knn (annotated targets / MoA) is the strongest
# unseen-compound baseline, so production must be able to choose it (a tie there, not a loss).
# similar_perturbations (similar_contexts + the target line's errors for the perturbations that respond alike
# elsewhere) beat similar_contexts on every 37-line Tahoe target (docs/results.md "Line weights by readout or
# by drug").
PRODUCTION_BASELINES = ("context_mean", "other_contexts", "similar_contexts", "similar_perturbations", "linear",
                        "network_knn", "corum_knn", "mechanism_knn")
PRODUCTION_CANDIDATES = ("lpm", *PRODUCTION_BASELINES)
MODEL_NAMES = (*LPM_NAMES, "production", *BASELINE_NAMES)

Builder = Callable[[int, Resources, str], object]


def _lpm(variant: str) -> Builder:
    def build(seed: int, resources: Resources, split_kind: str):
        from models.lpm import LPM
        from models.module import LPMConfig

        config = resources.lpm_config
        if config is None:
            config = LPMConfig() if resources.lpm_epochs is None else LPMConfig(max_epochs=resources.lpm_epochs)
        if variant == "lpm_paper":  # same training settings, every feature encoder off
            config = replace(config, use_compound_encoder=False, use_gene_graph=False, use_targets=False,
                             use_context_features=False, residual=False)
        elif variant == "lpm_zeroshot":
            config = replace(config, symbol_dropout=ZERO_SHOT_SYMBOL_DROPOUT)
        return LPM(config, side=resources.side, seed=seed)
    return build


def _linear(seed: int, resources: Resources, split_kind: str):
    """Perturbation features that exist for the split: fingerprints for unseen compounds, the target
    gene's embedding for unseen genes, the perturbation's profile in other contexts otherwise."""
    features = {"unseen-compound": "fingerprint", "unseen-gene": "target_gene"}.get(split_kind, "other_contexts")
    return LinearPCARidge(features=features, compound_smiles=resources.compound_smiles,
                          perturbation_targets=resources.perturbation_targets)


def production_members(seed: int, resources: Resources, split_kind: str = "", *, lpm=None) -> dict[str, object]:
    """The production candidates, unfitted; `lpm` replaces the LPM by one built (and fitted) elsewhere."""
    out = {name: _BUILDERS[name](seed, resources, split_kind) for name in PRODUCTION_CANDIDATES if name != "lpm"}
    return {"lpm": lpm if lpm is not None else _BUILDERS["lpm"](seed, resources, split_kind), **out}


def _stacked(seed: int, resources: Resources, split_kind: str):
    from models.evaluation.stacking import StackedLPM

    return StackedLPM({m: _BUILDERS[m](seed, resources, split_kind) for m in STACKED_MEMBERS})


def _production(seed: int, resources: Resources, split_kind: str):
    from models.predictor import ProductionPredictor

    return ProductionPredictor(production_members(seed, resources, split_kind), seed=seed)


_BUILDERS: dict[str, Builder] = {
    "lpm": _lpm("lpm"),
    "lpm_paper": _lpm("lpm_paper"),
    "lpm_zeroshot": _lpm("lpm_zeroshot"),
    "lpm_stacked": _stacked,
    "production": _production,
    "global_mean": lambda seed, resources, split_kind: GlobalMean(),
    "no_change": lambda seed, resources, split_kind: NoChange(),
    "context_mean": lambda seed, resources, split_kind: ContextReadoutMean(),
    "consensus": lambda seed, resources, split_kind: Consensus(),
    "other_contexts": lambda seed, resources, split_kind: OtherContextsMean(),
    "similar_contexts": lambda seed, resources, split_kind: SimilarContexts(),
    "similar_perturbations": lambda seed, resources, split_kind: SimilarPerturbations(),
    "linear": _linear,
    "tanimoto_knn": lambda seed, resources, split_kind: TanimotoKNN(compound_smiles=resources.compound_smiles),
    "network_knn": lambda seed, resources, split_kind: NetworkKNN(resources.gene_graph,
                                                                  resources.perturbation_targets),
    # unweighted: every co-complex pair has weight 1
    "corum_knn": lambda seed, resources, split_kind: NetworkKNN(resources.complex_graph,
                                                                resources.perturbation_targets, weighted=False),
    "mechanism_knn": lambda seed, resources, split_kind: MechanismKNN(resources.compound_annotations),
}

def build_model(name: str, *, seed: int, resources: Resources | None = None, split_kind: str = ""):
    """A fresh, unfitted model registered under `name`."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}") from None
    return builder(seed, resources or Resources(), split_kind)

"""What the `training`, `model` and `evaluation` assets compute, as functions of plain values: the
records the graph gave (dicts), tables, folders and numbers in; records out. No Dagster, no Neo4j: the
assets (pipelines/assets/training.py) read the graph, call these, log and attach metadata.

    ts, counts = build_training_set(artifacts_dir, table, datasets, side_records, prior_edges, context_frames,
                                    complexes=complex_members)
    run = train_version(ts, artifacts_dir, seed=0, valid_fraction=0.1, lpm_params={"max_epochs": 30})
    evaluation = evaluate_version(ts, artifacts_dir, split="unseen-experiment", seeds=[0], max_epochs=20)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from graph.io.validation import average_duplicate_keys, drop_controls
from models.datasets import co_complex_pairs, most_measured_readouts
from pipelines.quality import MARGIN_METRIC, finite, production_margins

CONTEXT_DESCRIPTOR_GENES = 256  # the most variable genes of the cell-line features: compact, informative


class StepFailure(ValueError):
    """A step that cannot proceed with what it was given; the message is the one line the run shows."""


@dataclass(frozen=True)
class TrainingSet:
    """What the model trains on: a parquet table and the side information read from the graph."""

    table_path: str
    snapshot_id: str  # hash of the datasets' store hashes: same graph snapshot, same id
    dataset_ids: tuple[str, ...]
    dataset_hashes: tuple[str, ...]  # store sha256 per dataset, as recorded on the Dataset nodes
    n_rows: int
    compound_smiles: dict[str, str] = field(default_factory=dict)  # compound_id -> SMILES
    perturbation_compounds: dict[str, str] = field(default_factory=dict)  # perturbation_id -> compound_id
    perturbation_doses: dict[str, float] = field(default_factory=dict)  # perturbation_id -> dose (uM)
    perturbation_targets: dict[str, list[str]] = field(default_factory=dict)  # perturbation_id -> genes
    gene_graph_path: str = ""  # parquet: source, target, weight
    context_features_path: str = ""  # parquet: index context, columns genes
    simulated: bool = False
    compound_annotations: dict = field(default_factory=dict)  # perturbation_id -> CompoundAnnotation
    complex_graph_path: str = ""  # parquet: source, target, weight (co-complex pairs, for corum_knn)

    def table(self) -> pd.DataFrame:
        return pd.read_parquet(self.table_path)

    def gene_graph(self) -> pd.DataFrame | None:
        return pd.read_parquet(self.gene_graph_path) if self.gene_graph_path else None

    def context_features(self) -> pd.DataFrame | None:
        return pd.read_parquet(self.context_features_path) if self.context_features_path else None

    def complex_graph(self) -> pd.DataFrame | None:
        # runs pickled before the field existed have none (the class default "")
        return pd.read_parquet(self.complex_graph_path) if self.complex_graph_path else None

    def side_information(self):
        """Everything above but the table, as the one record the LPM and the registry take."""
        from models.side_information import SideInformation

        return SideInformation(compound_smiles=self.compound_smiles, gene_graph=self.gene_graph(),
                               context_features=self.context_features(),
                               perturbation_targets=self.perturbation_targets,
                               perturbation_compounds=self.perturbation_compounds,
                               perturbation_doses=self.perturbation_doses, complex_graph=self.complex_graph(),
                               # runs pickled before the field existed have none
                               compound_annotations=getattr(self, "compound_annotations", {}))


@dataclass(frozen=True)
class ModelRun:
    version_id: str
    checkpoint: str
    snapshot_id: str
    config: dict
    trained_at: str
    valid_metrics: dict  # candidate -> metrics on the validation experiments: {"lpm": {...}, "context_mean": {...}, ...}
    history: list[dict]
    simulated: bool = False
    predictor_dir: str = ""  # the saved production predictor (models/predictor.py); lpm.pt is its LPM
    selection: dict = field(default_factory=dict)  # models.predictor.Selection.to_dict()
    lpm_base: str = ""  # the LPM's residual base and how it was chosen (LPM.describe_base)

    def folder(self) -> Path:
        """Where the version's files live (the predictor's folder; lpm.pt's for a run saved without one)."""
        return Path(self.predictor_dir or Path(self.checkpoint).parent)

    def predictor(self):
        """The production predictor of this version, loaded and validated (what `discoveries` predicts with)."""
        from models.predictor import ProductionPredictor

        return ProductionPredictor.load(self.predictor_dir)


# ------------------------------------------------------------------------------------ training set
def choose_datasets(datasets: list[dict], wanted: Sequence[str]) -> list[dict]:
    """The complete datasets' records (dataset_id, store_sha256, simulated) to train on: all, or `wanted`."""
    available = [r["dataset_id"] for r in datasets]
    if not available:
        raise StepFailure("no complete measurement dataset in the graph: materialize the sources and graph "
                          "groups first")
    if not wanted:
        return list(datasets)
    if missing := sorted(set(wanted) - set(available)):
        raise StepFailure(f"training_set: datasets {missing} are not complete in the graph; choose from {available}")
    return [r for r in datasets if r["dataset_id"] in set(wanted)]


def cap_readouts(table: pd.DataFrame, max_readouts: int) -> pd.DataFrame:
    """Only the `max_readouts` readouts measured in the most signatures (0 or more than there are: all)."""
    if not max_readouts or table["readout"].nunique() <= max_readouts:
        return table
    keep = most_measured_readouts(table, max_readouts)
    table = table[table["readout"].astype(str).isin(keep)].reset_index(drop=True)
    for col in table.select_dtypes("category"):
        table[col] = table[col].cat.remove_unused_categories()
    return table


def snapshot_id(datasets: list[dict], capped_to: int = 0) -> str:
    """Same datasets (store hashes) and same readout cap = same id (the cap changes what the model sees);
    `capped_to` 0 when no cap applied."""
    key = "|".join(f"{r['dataset_id']}={r['store_sha256']}" for r in datasets)
    if capped_to:
        key += f"|max_readouts={capped_to}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def side_maps(records: Iterable[dict]) -> tuple[dict[str, str], dict[str, str], dict[str, float], dict[str, list[str]]]:
    """Per-perturbation records of the graph (perturbation_id, compound_id, smiles, dose_value, dose_unit,
    targets) -> (compound SMILES, perturbation -> compound, perturbation -> dose in uM, perturbation -> target
    genes). A dose in another unit is left out (the LPM's dose feature is uM)."""
    smiles, pert_compound, doses, targets = {}, {}, {}, {}
    for r in records:
        pid = r["perturbation_id"]
        if r["compound_id"] and r["smiles"]:
            smiles[r["compound_id"]] = r["smiles"]
            pert_compound[pid] = r["compound_id"]
        if r["dose_value"] is not None and (r["dose_unit"] or "uM") == "uM":
            doses[pid] = float(r["dose_value"])
        if r["targets"]:
            targets[pid] = list(r["targets"])
    return smiles, pert_compound, doses, targets


def compound_annotation_map(records: Iterable[dict]) -> dict:
    """Per-perturbation records of the graph -> perturbation_id -> CompoundAnnotation of its compound: the
    Compound node's annotated target symbols and MoA; parent = compound_id (salt forms already merged by
    parent InChIKey). Genetic perturbations (no compound) are left out."""
    from models.side_information import CompoundAnnotation

    return {r["perturbation_id"]: CompoundAnnotation.of(r.get("compound_targets"), r.get("moa"), r["compound_id"])
            for r in records if r.get("compound_id")}


def context_descriptor(frames: Iterable[pd.DataFrame], contexts: Iterable[str],
                       n_genes: int = CONTEXT_DESCRIPTOR_GENES) -> pd.DataFrame | None:
    """Cell-line features (index context, columns genes; several sources averaged) of the given
    contexts, on their `n_genes` most variable genes, float32; None without any."""
    frames = list(frames)
    if not frames:
        return None
    ctx = pd.concat(frames).groupby(level=0).mean()
    wanted = set(contexts)
    ctx = ctx.loc[[c for c in ctx.index if c in wanted]]
    if not len(ctx):
        return None
    top = ctx.var().sort_values(ascending=False).index[:n_genes]
    return ctx[top].astype("float32")


def build_training_set(artifacts_dir: Path, table: pd.DataFrame, datasets: list[dict], side_records: list[dict],
                       prior_edges: list[dict], context_frames: Iterable[pd.DataFrame], *,
                       complexes: Mapping[str, Iterable[str]] | None = None,
                       max_readouts: int = 0) -> tuple[TrainingSet, dict]:
    """Write the training set of `datasets` (their long table, the prior gene network, the co-complex
    pairs of `complexes` (the graph's complex_id -> member symbols), the context descriptor) under
    <artifacts_dir>/training/<snapshot id>/; returns it and its counts. Signatures of one (context,
    perturbation, readout) (replicates, time points, datasets measuring one experiment) are averaged into one
    row (graph.io.validation.average_duplicate_keys), counted in `duplicate_*`. Control rows (control:DMSO, ...)
    are not experiments: dropped first (graph.io.validation.drop_controls, the CLI's rule), counted in `control_*`."""
    table, controls = drop_controls(table)  # before the cap: readouts ranked by experiment signatures only
    n_readouts_all = int(table["readout"].nunique())
    table = cap_readouts(table, max_readouts)  # on signatures: most measured = in most signatures
    n_signatures = int(table["signature_id"].nunique())
    table, duplicates = average_duplicate_keys(table, "training_set")
    capped = max_readouts if n_readouts_all > max_readouts > 0 else 0
    snapshot = snapshot_id(datasets, capped)
    out = Path(artifacts_dir) / "training" / snapshot
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "table.parquet"
    table.to_parquet(table_path, index=False)
    side_records = list(side_records)
    smiles, pert_compound, doses, targets = side_maps(side_records)
    annotations = compound_annotation_map(side_records)
    graph_path = ""
    if prior_edges:
        graph_path = str(out / "gene_graph.parquet")
        pd.DataFrame([dict(source=r["source"], target=r["target"], weight=float(r["weight"])) for r in prior_edges]) \
            .to_parquet(graph_path, index=False)
    pairs = co_complex_pairs((complexes or {}).values())
    complex_path = ""
    if len(pairs):
        complex_path = str(out / "complex_graph.parquet")
        pairs.to_parquet(complex_path, index=False)
    ctx_path = ""
    if (ctx := context_descriptor(context_frames, table["context"].astype(str).unique())) is not None:
        ctx_path = str(out / "context_features.parquet")
        ctx.to_parquet(ctx_path)
    simulated = any(bool(r["simulated"]) for r in datasets)
    ts = TrainingSet(str(table_path), snapshot, tuple(r["dataset_id"] for r in datasets),
                     tuple(r["store_sha256"] for r in datasets), len(table), smiles, pert_compound, doses, targets,
                     graph_path, ctx_path, simulated, annotations, complex_path)
    counts = {"rows": len(table), "signatures": n_signatures, **controls, **duplicates,
              "contexts": int(table["context"].nunique()), "perturbations": int(table["perturbation"].nunique()),
              "readouts": int(table["readout"].nunique()), "readouts_before_cap": n_readouts_all,
              "compounds_with_structure": len(smiles), "prior_edges": len(prior_edges), "complex_pairs": len(pairs),
              "compounds_annotated": len({a.parent for a in annotations.values() if a.targets or a.moa})}
    return ts, counts


# ------------------------------------------------------------------------------------------- model
def validation_split(table: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a random fraction of (context, perturbation) experiments, whole."""
    pairs = table[["context", "perturbation"]].astype(str).drop_duplicates()
    rng = np.random.default_rng(seed)
    held = pairs.sample(n=max(1, int(round(fraction * len(pairs)))), random_state=int(rng.integers(1 << 31)))
    key = table["context"].astype(str) + "\x1f" + table["perturbation"].astype(str)
    held_key = set(held["context"] + "\x1f" + held["perturbation"])
    mask = key.isin(held_key).to_numpy()
    return table.loc[~mask].reset_index(drop=True), table.loc[mask].reset_index(drop=True)


def build_lpm(ts: TrainingSet, *, seed: int = 0, paper_model: bool = False, **params):
    """An unfitted LPM on the training set's side information; `params` are LPMConfig fields
    (max_epochs, patience, embed_dim, hidden_dim, ...); paper_model: the published LPM (no feature encoders)."""
    from models.lpm import LPM
    from models.module import LPMConfig

    config = LPMConfig.paper(**params) if paper_model else LPMConfig(**params)
    return LPM(config, side=ts.side_information(), seed=seed)


def train_version(ts: TrainingSet, artifacts_dir: Path, *, seed: int, valid_fraction: float,
                  paper_model: bool = False, lpm_params: dict | None = None, progress=None,
                  log: Callable[[str], None] = lambda line: None) -> ModelRun:
    """A new model version: the LPM trained on the training experiments (early-stopping on the held-out
    validation experiments), then the production predictor, whose LPM member is that LPM (prefitted: one
    fit) beside the baselines fitted on the same rows, every candidate compared on the same validation
    experiments. Saved under <artifacts_dir>/models/<version id>/ (lpm.pt, the baselines, predictor.json,
    metrics.json)."""
    from models.predictor import LPM_FILE, ProductionPredictor
    from models.registry import Resources, production_members

    train, valid = validation_split(ts.table(), valid_fraction, seed)
    trained_at = datetime.now(UTC)
    version_id = f"lpm-{trained_at.strftime('%Y%m%dT%H%M%S')}-{ts.snapshot_id[:8]}"
    folder = Path(artifacts_dir) / "models" / version_id
    folder.mkdir(parents=True, exist_ok=True)
    log(f"training {version_id} on {len(train):,} triples ({len(valid):,} held out for validation)")
    model = build_lpm(ts, seed=seed, paper_model=paper_model, **(lpm_params or {}))
    model.fit(train, valid, progress=progress, checkpoint=folder / "training_state.pt", snapshot_id=ts.snapshot_id)
    log(f"LPM residual base: {model.describe_base()}")
    if (unscored := model.valid_unscored)["rows"]:
        log(f"validation: {unscored['rows']:,} rows of {unscored['readouts']:,} readouts the LPM has no gene node for "
            f"(e.g. {', '.join(unscored['examples'])}) left out of its validation loss")
    resources = Resources(side=model.side)  # the LPM's own record: the baselines read its SMILES
    predictor = ProductionPredictor(production_members(seed, resources, lpm=model), seed=seed,
                                    prefitted=("lpm",)).fit(train, valid)
    predictor.save(folder)  # writes the LPM checkpoint (lpm.pt) too
    (folder / "training_state.pt").unlink(missing_ok=True)
    log(f"production predictor: {predictor.describe()}")
    metrics = dict(predictor.selection.validation)  # lpm, context_mean and the other candidates
    history = [{k: float(v) if isinstance(v, (int, float, np.floating)) else v for k, v in h.items()}
               for h in model.history]
    (folder / "metrics.json").write_text(json.dumps({"valid": metrics, "history": history,
                                                    "lpm_valid_unscored": model.valid_unscored,
                                                    "lpm_base_selection": model.base_selection}, indent=2, default=float))
    return ModelRun(version_id, str(folder / LPM_FILE), ts.snapshot_id, model.config.to_dict(),
                    trained_at.isoformat(timespec="seconds"), metrics, history, ts.simulated, str(folder),
                    predictor.selection.to_dict(), model.describe_base())


# -------------------------------------------------------------------------------------- evaluation
EVALUATED_MODELS = ("lpm", "production", "baselines")  # lpm + production: one LPM fit per seed (the member)


@dataclass(frozen=True)
class Evaluation:
    """The harness's rows of one split (model x seed), where they were written, and production's margins."""

    split: str
    target_context: str
    results: pd.DataFrame
    json_path: Path
    md_path: Path
    margins: dict  # pipelines.quality.production_margins
    simulated: bool = False

    def means(self) -> pd.DataFrame:
        from models.evaluation.metrics import HIGHER_IS_BETTER

        cols = [c for c in self.results.columns if c in HIGHER_IS_BETTER]
        return self.results.groupby("model")[cols].mean()

    def mean_scores(self) -> dict:
        """model -> {MARGIN_METRIC, rmse}: the means over seeds, None where not finite."""
        return {m: {k: finite(float(v)) for k, v in row.items()}
                for m, row in self.means()[[MARGIN_METRIC, "rmse"]].iterrows()}

    def production_choices(self) -> dict[int, str]:
        """seed -> what the production predictor chose on that seed's validation experiments, and why
        (its harness detail), so a reader of the table knows which candidate its `production` row is."""
        rows = self.results.loc[self.results["model"] == "production"]
        details = rows["detail"].fillna("") if "detail" in rows else pd.Series("", index=rows.index)
        return {int(seed): str(detail) for seed, detail in zip(rows["seed"], details, strict=True)}

    def report(self) -> dict:
        return {"split": self.split, "context": self.target_context, "means": self.means().to_dict(orient="index"),
                "production_vs_strongest_baseline": self.margins, "production_choices": self.production_choices(),
                "simulated": self.simulated}


def most_signatures_context(table: pd.DataFrame) -> str:
    return str(table.groupby("context", observed=True)["signature_id"].nunique().idxmax())


def evaluate_version(ts: TrainingSet, artifacts_dir: Path, *, split: str, seeds: Sequence[int], max_epochs: int,
                     target_context: str = "", on_result: Callable[[dict], None] | None = None) -> Evaluation:
    """The harness on held-out experiments of the training set: the LPM, the production predictor and
    every baseline, same split per seed; the `lpm` row is production's LPM member (one LPM fit per seed).
    Written under <artifacts_dir>/evaluation/<snapshot id>/; StepFailure when any model failed."""
    from models.evaluation.harness import Resources, run_benchmark, write_results
    from models.module import LPMConfig

    table = ts.table()
    target = target_context or most_signatures_context(table)
    resources = Resources(side=ts.side_information(), lpm_config=LPMConfig(max_epochs=max_epochs))
    needs_context = split in ("unseen-experiment", "unseen-context")
    results = run_benchmark(table, split, context=target if needs_context else None, models=list(EVALUATED_MODELS),
                            seeds=seeds, resources=resources, on_result=on_result)
    failed = results.loc[results["error"] != "", ["model", "error"]]
    if len(failed):
        raise StepFailure(f"evaluation failed for {failed.to_dict('records')}")
    json_path, md_path = write_results(results, Path(artifacts_dir) / "evaluation" / ts.snapshot_id,
                                       name=f"{split}-{target}",
                                       title=f"{split} (target {target})" + (" — SIMULATED data" if ts.simulated else ""))
    return Evaluation(split, target, results, json_path, md_path, production_margins(results), ts.simulated)

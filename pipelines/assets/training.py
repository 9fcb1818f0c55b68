"""Groups `training`, `model` and `evaluation`: a reproducible training set from the graph snapshot,
the trained LPM and the production predictor (with a blocking check that what it publishes is not
below the strongest baseline on validation), and the evaluation harness on held-out experiments,
the LPM and the production predictor beside every baseline."""


import base64
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd

from graph.db import pipeline_queries as PQ
from graph.store.measurements import load_training_table
from models.datasets import most_measured_readouts
from pipelines.ingest import ReferenceBundle
from pipelines.resources import Neo4jResource, PerturbGraphSettings


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

    def table(self) -> pd.DataFrame:
        return pd.read_parquet(self.table_path)

    def gene_graph(self) -> pd.DataFrame | None:
        return pd.read_parquet(self.gene_graph_path) if self.gene_graph_path else None

    def context_features(self) -> pd.DataFrame | None:
        return pd.read_parquet(self.context_features_path) if self.context_features_path else None

    def side_information(self):
        """Everything above but the table, as the one record the LPM and the registry take."""
        from models.side_information import SideInformation

        return SideInformation(compound_smiles=self.compound_smiles, gene_graph=self.gene_graph(),
                               context_features=self.context_features(),
                               perturbation_targets=self.perturbation_targets,
                               perturbation_compounds=self.perturbation_compounds,
                               perturbation_doses=self.perturbation_doses)


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

    def predictor(self):
        """The production predictor of this version, loaded and validated (what `discoveries` predicts with)."""
        from models.predictor import ProductionPredictor

        return ProductionPredictor.load(self.predictor_dir)


class TrainingConfig(dg.Config):
    max_epochs: int = 30
    patience: int = 4
    embed_dim: int = 128
    hidden_dim: int = 256
    valid_fraction: float = 0.1
    seed: int = 0
    paper_model: bool = False  # True: the published LPM (no feature encoders)
    prior_min_score: float = 0.4
    # training_set only: which complete datasets to train on (empty = all of them), and a cap on the
    # readouts (the N measured in the most signatures; 0 = all) to bound CPU training time.
    datasets: list[str] = []
    max_readouts: int = 0


class EvaluationConfig(dg.Config):
    split: str = "unseen-experiment"
    target_context: str = ""  # empty: the context with the most signatures
    seeds: list[int] = [0]
    max_epochs: int = 20


def _png(fig) -> dg.MetadataValue:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")


# ------------------------------------------------------------------------------------------ training
@dg.asset(group_name="training", kinds={"neo4j", "parquet"},
          deps=[dg.AssetKey("graph_experiments")],
          description="The measurements of every complete dataset (hashes verified against the graph) plus the "
                      "prior gene network, compound structures, doses and genetic targets read from Neo4j.")
def training_set(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                 reference_data: ReferenceBundle, config: TrainingConfig) -> TrainingSet:
    settings = perturbgraph.settings()
    with neo4j.guarded(context) as driver:
        datasets = PQ.measurement_datasets(driver, database=neo4j.db)
        available = [r["dataset_id"] for r in datasets]
        if not available:
            raise dg.Failure("no complete measurement dataset in the graph: materialize the sources and graph "
                             "groups first", allow_retries=False)
        if config.datasets:
            if missing := sorted(set(config.datasets) - set(available)):
                raise dg.Failure(f"training_set: datasets {missing} are not complete in the graph; "
                                 f"choose from {available}", allow_retries=False)
            datasets = [r for r in datasets if r["dataset_id"] in set(config.datasets)]
        dataset_ids = [r["dataset_id"] for r in datasets]
        table = load_training_table(settings, dataset_ids,
                                    PQ.dataset_store_records(driver, dataset_ids, database=neo4j.db))
        n_readouts_all = int(table["readout"].nunique())
        if config.max_readouts and n_readouts_all > config.max_readouts:
            keep = most_measured_readouts(table, config.max_readouts)
            table = table[table["readout"].astype(str).isin(keep)].reset_index(drop=True)
            for col in table.select_dtypes("category"):
                table[col] = table[col].cat.remove_unused_categories()
        side = PQ.perturbation_side_info(driver, database=neo4j.db)
        edges = PQ.prior_gene_edges(driver, database=neo4j.db, min_score=config.prior_min_score)
    # Same datasets and same readout cap = same snapshot id (the cap changes what the model sees).
    key = "|".join(f"{r['dataset_id']}={r['store_sha256']}" for r in datasets)
    if config.max_readouts and n_readouts_all > config.max_readouts:
        key += f"|max_readouts={config.max_readouts}"
    snapshot = hashlib.sha256(key.encode()).hexdigest()[:16]
    out = settings.artifacts_dir / "training" / snapshot
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "table.parquet"
    table.to_parquet(table_path, index=False)
    smiles, pert_compound, doses, targets = {}, {}, {}, {}
    for r in side:
        pid = r["perturbation_id"]
        if r["compound_id"] and r["smiles"]:
            smiles[r["compound_id"]] = r["smiles"]
            pert_compound[pid] = r["compound_id"]
        if r["dose_value"] is not None and (r["dose_unit"] or "uM") == "uM":
            doses[pid] = float(r["dose_value"])
        if r["targets"]:
            targets[pid] = list(r["targets"])
    graph_path = ""
    if edges:
        graph_path = str(out / "gene_graph.parquet")
        pd.DataFrame([dict(source=r["source"], target=r["target"], weight=float(r["weight"])) for r in edges]) \
            .to_parquet(graph_path, index=False)
    ctx_path = ""
    if reference_data.context_features:
        frames = list(reference_data.context_features.values())
        ctx = pd.concat(frames).groupby(level=0).mean()
        contexts = set(table["context"].astype(str))
        ctx = ctx.loc[[c for c in ctx.index if c in contexts]]
        # Keep the most variable genes: a compact, informative context descriptor.
        top = ctx.var().sort_values(ascending=False).index[:256]
        if len(ctx):
            ctx_path = str(out / "context_features.parquet")
            ctx[top].astype("float32").to_parquet(ctx_path)
    simulated = any(bool(r["simulated"]) for r in datasets)
    context.add_output_metadata({
        "snapshot_id": snapshot, "rows": len(table), "datasets": dg.MetadataValue.json(dataset_ids),
        "signatures": int(table["signature_id"].nunique()), "contexts": int(table["context"].nunique()),
        "perturbations": int(table["perturbation"].nunique()), "readouts": int(table["readout"].nunique()), "readouts_before_cap": n_readouts_all,
        "compounds_with_structure": len(smiles), "prior_edges": len(edges), "simulated": simulated,
    })
    return TrainingSet(str(table_path), snapshot, tuple(dataset_ids), tuple(r["store_sha256"] for r in datasets),
                       len(table), smiles, pert_compound, doses,
                       targets, graph_path, ctx_path, simulated)


def training_log(context: dg.AssetExecutionContext):
    """LPM training progress (epoch, loss, validation loss, triples/s, ETA) into the run log, every
    PERTURBGRAPH_PROGRESS_EVERY_S seconds within an epoch and after each epoch."""
    from models.progress import LineReporter, configured_every_s

    return LineReporter(context.log.info, every_s=configured_every_s())


def validation_split(table: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a random fraction of (context, perturbation) experiments, whole."""
    pairs = table[["context", "perturbation"]].astype(str).drop_duplicates()
    rng = np.random.default_rng(seed)
    held = pairs.sample(n=max(1, int(round(fraction * len(pairs)))), random_state=int(rng.integers(1 << 31)))
    key = table["context"].astype(str) + "\x1f" + table["perturbation"].astype(str)
    held_key = set(held["context"] + "\x1f" + held["perturbation"])
    mask = key.isin(held_key).to_numpy()
    return table.loc[~mask].reset_index(drop=True), table.loc[mask].reset_index(drop=True)


def build_lpm(ts: TrainingSet, config: TrainingConfig | None = None, *, max_epochs: int | None = None, seed: int = 0):
    from models.lpm import LPM
    from models.module import LPMConfig

    cfg = config or TrainingConfig()
    params = dict(max_epochs=max_epochs or cfg.max_epochs, patience=cfg.patience, embed_dim=cfg.embed_dim,
                  hidden_dim=cfg.hidden_dim)
    lpm_config = LPMConfig.paper(**params) if cfg.paper_model else LPMConfig(**params)
    return LPM(lpm_config, side=ts.side_information(), seed=seed)


# --------------------------------------------------------------------------------------------- model
@dg.asset(group_name="model", kinds={"pytorch"},
          description="The Large Perturbation Model trained on the training set (checkpoint with weights, config, "
                      "vocabularies and the data snapshot id) and the production predictor: the LPM, context_mean, "
                      "other_contexts, linear, network_knn or their stacked combination, whichever wins on the "
                      "validation "
                      "experiments (models/predictor.py), saved beside it.")
def lpm_model(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings, training_set: TrainingSet,
              config: TrainingConfig) -> ModelRun:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.predictor import LPM_FILE, ProductionPredictor
    from models.registry import Resources, production_members

    settings = perturbgraph.settings()
    table = training_set.table()
    train, valid = validation_split(table, config.valid_fraction, config.seed)
    trained_at = datetime.now(UTC)
    version_id = f"lpm-{trained_at.strftime('%Y%m%dT%H%M%S')}-{training_set.snapshot_id[:8]}"
    folder = settings.artifacts_dir / "models" / version_id
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / LPM_FILE
    context.log.info(f"training {version_id} on {len(train):,} triples ({len(valid):,} held out for validation)")
    model = build_lpm(training_set, config, seed=config.seed)
    model.fit(train, valid, progress=training_log(context), checkpoint=folder / "training_state.pt",
              snapshot_id=training_set.snapshot_id)
    # The production predictor: the baselines fitted on the same training rows, every candidate compared
    # on the same validation experiments; saving it writes the LPM checkpoint (lpm.pt) too.
    resources = Resources(side=model.side)  # the LPM's own record: the baselines read its SMILES
    predictor = ProductionPredictor(production_members(config.seed, resources, lpm=model), seed=config.seed,
                                    prefitted=("lpm",)).fit(train, valid)
    predictor.save(folder)
    (folder / "training_state.pt").unlink(missing_ok=True)
    selection = predictor.selection.to_dict()
    context.log.info(f"production predictor: {predictor.describe()}")
    metrics = dict(predictor.selection.validation)  # lpm, context_mean (the check below), other candidates
    history = [{k: float(v) if isinstance(v, (int, float, np.floating)) else v for k, v in h.items()}
               for h in model.history]
    (folder / "metrics.json").write_text(json.dumps({"valid": metrics, "history": history}, indent=2, default=float))

    fig, ax = plt.subplots(figsize=(5, 3))
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    ax.plot(epochs, [h.get("train_loss") for h in history], label="train")
    if any(h.get("valid_loss") is not None for h in history):
        ax.plot(epochs, [h.get("valid_loss") for h in history], label="validation")
    ax.set_xlabel("epoch"), ax.set_ylabel("MSE"), ax.legend(), ax.set_title("LPM training curve")
    curve = _png(fig)
    plt.close(fig)
    context.add_output_metadata({
        "version_id": version_id, "checkpoint": str(checkpoint), "epochs": len(history),
        "valid_rmse_lpm": metrics["lpm"]["rmse"], "valid_rmse_context_mean": metrics["context_mean"]["rmse"],
        "valid_pearson_lpm": metrics["lpm"]["pearson"],
        "valid_pearson_context_mean": metrics["context_mean"]["pearson"],
        "training_curve": curve, "simulated_data": training_set.simulated,
        "production_predictor": selection["chosen"], "production_margin_over_best_baseline": selection["margin"],
        "production_best_baseline": selection["best_baseline"],
        "production_candidates": dg.MetadataValue.md(_selection_table(selection)),
        "production_stacking_weights": dg.MetadataValue.json(selection["stacking_weights"]),
    })
    return ModelRun(version_id, str(checkpoint), training_set.snapshot_id, model.config.to_dict(),
                    trained_at.isoformat(timespec="seconds"), metrics, history, training_set.simulated,
                    str(folder), selection)


def _selection_table(selection: dict) -> str:
    """Every candidate's validation metrics, the chosen one marked."""
    names = ("pearson_per_signature", "pearson", "rmse")
    lines = ["| candidate | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for cand, m in selection["validation"].items():
        mark = " (chosen)" if cand == selection["chosen"] else ""
        lines.append(f"| {cand}{mark} | " + " | ".join(f"{m[k]:.3f}" for k in names) + " |")
    return "\n".join(lines)


def published_vs_strongest_baseline(selection: dict) -> tuple[bool, dict]:
    """The rule of `production_not_below_strongest_baseline`, on a Selection record
    (models.predictor.Selection.to_dict()): what the production predictor publishes scores at least
    the strongest baseline on the validation experiments. A baseline chosen is a pass (the simple
    answer is published); an LPM candidate must not score below it. Returns (passed, metadata)."""
    metric, chosen, best = selection["metric"], selection["chosen"], selection["best_baseline"]
    scores = {c: float(m[metric]) for c, m in selection["validation"].items()}
    ours, base = scores.get(chosen, float("nan")), scores.get(best, float("nan"))
    margin = ours - base
    passed = bool(np.isfinite(margin) and margin >= 0)
    if chosen not in scores or best not in scores:
        passed, verdict = False, f"refused: the selection record has no {metric} for {chosen!r} or {best!r}"
    elif chosen == best:  # a baseline won on validation: the simple answer is what gets published
        verdict = f"published: {chosen}, the LPM did not beat it" if passed else f"refused: {chosen} has no score"
    elif passed:
        verdict = f"published: {chosen}, {margin:+.4f} {metric} over {best}"
    else:
        verdict = f"refused: {chosen} scores {margin:+.4f} {metric} below the strongest baseline {best}"
    return passed, {"verdict": verdict, "chosen": chosen, "strongest_baseline": best, "metric": metric,
                    "chosen_score": ours, "strongest_baseline_score": base, "margin": margin,
                    "recorded_margin": float(selection.get("margin", float("nan"))),
                    "validation_scores": scores}


@dg.asset_check(asset=lpm_model, blocking=True,
                description="What the production predictor publishes (its chosen candidate) must score at least the "
                            "strongest baseline on the validation experiments (mean per-signature r, its Selection "
                            "record). A baseline chosen passes: the simple answer is published. Discoveries are "
                            "not written otherwise.")
def production_not_below_strongest_baseline(lpm_model: ModelRun) -> dg.AssetCheckResult:
    passed, meta = published_vs_strongest_baseline(lpm_model.selection)
    return dg.AssetCheckResult(passed=passed, description=meta["verdict"], metadata={
        "verdict": meta["verdict"], "chosen": meta["chosen"], "strongest_baseline": meta["strongest_baseline"],
        "metric": meta["metric"], "margin": _finite(meta["margin"]),
        "validation": dg.MetadataValue.md(_selection_table(lpm_model.selection)),
        "validation_scores": dg.MetadataValue.json({k: _finite(v) for k, v in meta["validation_scores"].items()})})


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# ---------------------------------------------------------------------------------------- evaluation
MARGIN_METRIC = "pearson_per_signature"  # the production predictor's selection metric


def production_margins(results: pd.DataFrame, metric: str = MARGIN_METRIC) -> dict:
    """Per seed: the production predictor's test score minus the strongest baseline's of the same
    seed (the baseline with the best `metric` that seed; higher is better), and wins / losses / ties
    over seeds (a tie: |margin| < 1e-9, what a baseline chosen by the predictor gives)."""
    from models.registry import BASELINE_NAMES

    ok = results[results["error"] == ""] if "error" in results else results
    per_seed = []
    for seed, rows in ok.groupby("seed"):
        prod = rows.loc[rows["model"] == "production", metric]
        base = rows[rows["model"].isin(BASELINE_NAMES)].dropna(subset=[metric])
        if prod.empty or base.empty:
            continue
        best = base.loc[base[metric].idxmax()]
        margin = float(prod.iloc[0]) - float(best[metric])
        per_seed.append({"seed": int(seed), "production": float(prod.iloc[0]), "strongest_baseline": str(best["model"]),
                         "baseline_score": float(best[metric]), "margin": margin})
    margins = np.array([r["margin"] for r in per_seed])
    ties = np.abs(margins) < 1e-9
    return {"metric": metric, "per_seed": per_seed, "wins": int(((margins > 0) & ~ties).sum()),
            "losses": int(((margins < 0) & ~ties).sum()), "ties": int(ties.sum()),
            "mean_margin": float(margins.mean()) if len(margins) else None}


def _margins_table(margins: dict) -> str:
    lines = [f"| seed | production | strongest baseline | its {margins['metric']} | margin |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['production']:.4f} | {r['strongest_baseline']} | {r['baseline_score']:.4f} | "
              f"{r['margin']:+.4f} |" for r in margins["per_seed"]]
    mean = margins["mean_margin"]
    lines.append(f"\nwins {margins['wins']}, losses {margins['losses']}, ties {margins['ties']}; mean margin "
                 + ("–" if mean is None else f"{mean:+.4f}"))
    return "\n".join(lines)


@dg.asset(group_name="evaluation", kinds={"pytorch", "sklearn"},
          description="The evaluation harness on held-out experiments: the LPM and the production predictor (what "
                      "`discoveries` publishes, refitted per seed) beside every baseline, same split, same metrics "
                      "(pooled RMSE/MAE/R²/Pearson, per-signature Pearson, top-50 overlap), and production's margin "
                      "over the strongest baseline per seed.")
def evaluation_report(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings,
                      training_set: TrainingSet, config: EvaluationConfig) -> dict:
    from models.evaluation.harness import Resources, markdown_table, run_benchmark, write_results
    from models.evaluation.metrics import HIGHER_IS_BETTER
    from models.module import LPMConfig
    from models.progress import reporting_to

    settings = perturbgraph.settings()
    table = training_set.table()
    target = config.target_context or str(table.groupby("context", observed=True)["signature_id"].nunique().idxmax())
    resources = Resources(side=training_set.side_information(), lpm_config=LPMConfig(max_epochs=config.max_epochs))
    needs_context = config.split in ("unseen-experiment", "unseen-context")
    with reporting_to(training_log(context)):  # the harness's own LPM fits would be silent
        results = run_benchmark(table, config.split, context=target if needs_context else None,
                                models=["lpm", "production", "baselines"], seeds=config.seeds, resources=resources,
                                on_result=lambda r: context.log.info(
                                    f"seed {r['seed']} {r['model']}: {r['error'] or round(r['rmse'], 4)}"))
    failed = results.loc[results["error"] != "", ["model", "error"]]
    if len(failed):
        raise dg.Failure(f"evaluation failed for {failed.to_dict('records')}", allow_retries=False)
    out = settings.artifacts_dir / "evaluation" / training_set.snapshot_id
    json_path, md_path = write_results(results, out, name=f"{config.split}-{target}",
                                       title=f"{config.split} (target {target})"
                                             + (" — SIMULATED data" if training_set.simulated else ""))
    metric_cols = [c for c in results.columns if c in HIGHER_IS_BETTER]
    means = results.groupby("model")[metric_cols].mean()
    margins = production_margins(results)
    context.add_output_metadata({
        "split": config.split, "target_context": target, "seeds": dg.MetadataValue.json(list(config.seeds)),
        "metrics": dg.MetadataValue.md(markdown_table(results)), "json": str(json_path), "markdown": str(md_path),
        "mean_scores": dg.MetadataValue.json({m: {k: _finite(float(v)) for k, v in row.items()}
                                              for m, row in means[[MARGIN_METRIC, "rmse"]].iterrows()}),
        "production_vs_strongest_baseline": dg.MetadataValue.md(_margins_table(margins)),
        "production_wins": margins["wins"], "production_losses": margins["losses"], "production_ties": margins["ties"],
        "production_mean_margin": margins["mean_margin"],
    })
    return {"split": config.split, "context": target, "means": means.to_dict(orient="index"),
            "production_vs_strongest_baseline": margins, "simulated": training_set.simulated}

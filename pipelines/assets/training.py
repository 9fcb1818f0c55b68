"""Groups `training`, `model` and `evaluation`: a reproducible training set from the graph snapshot,
the trained LPM and the production predictor (with a blocking check that what it publishes is not
below the strongest baseline on validation), and the evaluation harness on held-out experiments,
the LPM and the production predictor beside every baseline.

The assets wire: they read the graph (graph/db) and their config, call pipelines/training_steps.py and
pipelines/quality.py, log and attach metadata."""


import dagster as dg

from graph.db import pipeline_queries as PQ
from graph.io.networks import GENE_PRIOR
from graph.store.measurements import load_training_table
from models.registry import PRODUCTION_CANDIDATES
from pipelines import plots
from pipelines import quality as Q
from pipelines import training_steps as steps
from pipelines.ingest import ReferenceBundle
from pipelines.resources import Neo4jResource, PerturbGraphSettings
from pipelines.training_steps import ModelRun, TrainingSet  # here too: runs stored before the move unpickle

__all__ = ["ModelRun", "TrainingSet", "evaluation_report", "lpm_model", "production_not_below_strongest_baseline",
           "training_set"]


class TrainingConfig(dg.Config):
    max_epochs: int = 30  # LPMConfig fields: max_epochs, patience, embed_dim, hidden_dim
    patience: int = 4
    embed_dim: int = 128
    hidden_dim: int = 256
    # the share of (context, perturbation) experiments held out to choose the production predictor
    valid_fraction: float = 0.1
    seed: int = 0
    paper_model: bool = False  # True: the published LPM (no feature encoders)
    # the LPM's gene prior: the networks and lowest edge score; defaults are graph/io/networks.GENE_PRIOR,
    # the one definition the benchmarks measured the LPM with (models/datasets.resources_for)
    prior_networks: list[str] = list(GENE_PRIOR.networks)
    prior_min_score: float = GENE_PRIOR.min_score
    # training_set only: which complete datasets to train on (empty = all of them), and a cap on the
    # readouts (the N measured in the most signatures; 0 = all) to bound CPU training time.
    datasets: list[str] = []
    max_readouts: int = 0

    def lpm_params(self) -> dict:
        return {"max_epochs": self.max_epochs, "patience": self.patience, "embed_dim": self.embed_dim,
                "hidden_dim": self.hidden_dim}


class EvaluationConfig(dg.Config):
    split: str = "unseen-experiment"
    target_context: str = ""  # empty: the context with the most signatures
    seeds: list[int] = [0]
    max_epochs: int = 20


def _png(png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(plots.markdown_image(png))


def _failure(exc: steps.StepFailure) -> dg.Failure:
    return dg.Failure(str(exc), allow_retries=False)


# ------------------------------------------------------------------------------------------ training
@dg.asset(group_name="training", kinds={"neo4j", "parquet"},
          deps=[dg.AssetKey("graph_experiments")],
          description="The measurements of every complete dataset (hashes verified against the graph) plus the "
                      "prior gene network, co-complex gene pairs, compound structures and annotations, doses and "
                      "genetic targets read from Neo4j.")
def training_set(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                 reference_data: ReferenceBundle, config: TrainingConfig) -> TrainingSet:
    settings = perturbgraph.settings()
    with neo4j.guarded(context) as driver:
        try:
            datasets = steps.choose_datasets(PQ.measurement_datasets(driver, database=neo4j.db), config.datasets)
        except steps.StepFailure as exc:
            raise _failure(exc) from None
        dataset_ids = [r["dataset_id"] for r in datasets]
        table = load_training_table(settings, dataset_ids,
                                    PQ.dataset_store_records(driver, dataset_ids, database=neo4j.db))
        side = PQ.perturbation_side_info(driver, database=neo4j.db)
        edges = PQ.prior_gene_edges(driver, database=neo4j.db, min_score=config.prior_min_score,
                                    networks=config.prior_networks)
        complexes = PQ.complex_member_symbols(driver, database=neo4j.db)
    ts, counts = steps.build_training_set(settings.artifacts_dir, table, datasets, side, edges,
                                          reference_data.context_features.values(), complexes=complexes,
                                          max_readouts=config.max_readouts)
    if counts["control_rows"]:
        context.log.info(f"training_set: {counts['control_rows']:,} rows of {counts['control_signatures']:,} control "
                         f"signatures ({counts['control_examples']}) left out: controls are not experiments")
    if counts["duplicate_keys"]:
        context.log.info(f"training_set: {counts['duplicate_keys']:,} (context, perturbation, readout) keys had more "
                         f"than one signature ({counts['duplicate_rows']:,} rows; "
                         f"{counts['duplicate_keys_across_datasets']:,} from several datasets), averaged to one row "
                         f"each, e.g. {counts['duplicate_examples']}")
    context.add_output_metadata({"snapshot_id": ts.snapshot_id, "datasets": dg.MetadataValue.json(dataset_ids),
                                 **counts, "simulated": ts.simulated})
    return ts


def training_log(context: dg.AssetExecutionContext):
    """LPM training progress (epoch, loss, validation loss, triples/s, ETA) into the run log, every
    PERTURBGRAPH_PROGRESS_EVERY_S seconds within an epoch and after each epoch."""
    from models.progress import LineReporter, configured_every_s

    return LineReporter(context.log.info, every_s=configured_every_s())


# --------------------------------------------------------------------------------------------- model
@dg.asset(group_name="model", kinds={"pytorch"},
          description="The Large Perturbation Model trained on the training set (checkpoint with weights, config, "
                      "vocabularies and the data snapshot id) and the production predictor: "
                      f"{', '.join(PRODUCTION_CANDIDATES)} or their stacked combination, whichever wins on the "
                      "validation experiments (models/predictor.py), saved beside it.")
def lpm_model(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings, training_set: TrainingSet,
              config: TrainingConfig) -> ModelRun:
    run = steps.train_version(training_set, perturbgraph.settings().artifacts_dir, seed=config.seed,
                              valid_fraction=config.valid_fraction, paper_model=config.paper_model,
                              lpm_params=config.lpm_params(), progress=training_log(context), log=context.log.info)
    metrics, selection = run.valid_metrics, run.selection
    context.add_output_metadata({
        "version_id": run.version_id, "checkpoint": run.checkpoint, "epochs": len(run.history),
        "lpm_residual_base": run.lpm_base,
        "valid_rmse_lpm": metrics["lpm"]["rmse"], "valid_rmse_context_mean": metrics["context_mean"]["rmse"],
        "valid_pearson_lpm": metrics["lpm"]["pearson"],
        "valid_pearson_context_mean": metrics["context_mean"]["pearson"],
        "training_curve": _png(plots.training_curve(run.history)), "simulated_data": training_set.simulated,
        "production_predictor": selection["chosen"], "production_margin_over_best_baseline": selection["margin"],
        "production_best_baseline": selection["best_baseline"],
        "production_passed_over": selection.get("passed_over") or "nothing",
        "production_candidates": dg.MetadataValue.md(Q.selection_table(selection)),
        "production_stacking_weights": dg.MetadataValue.json(selection["stacking_weights"]),
    })
    return run


@dg.asset_check(asset=lpm_model, blocking=True,
                description="What the production predictor publishes (its chosen candidate) must score at least the "
                            "strongest baseline on the validation experiments (mean per-signature r, its Selection "
                            "record). A baseline chosen passes: the simple answer is published. Discoveries are "
                            "not written otherwise.")
def production_not_below_strongest_baseline(lpm_model: ModelRun) -> dg.AssetCheckResult:
    passed, meta = Q.published_vs_strongest_baseline(lpm_model.selection)
    return dg.AssetCheckResult(passed=passed, description=meta["verdict"], metadata={
        "verdict": meta["verdict"], "chosen": meta["chosen"], "strongest_baseline": meta["strongest_baseline"],
        "metric": meta["metric"], "margin": Q.finite(meta["margin"]),
        "validation": dg.MetadataValue.md(Q.selection_table(lpm_model.selection)),
        "validation_scores": dg.MetadataValue.json({k: Q.finite(v) for k, v in meta["validation_scores"].items()})})


# ---------------------------------------------------------------------------------------- evaluation
@dg.asset(group_name="evaluation", kinds={"pytorch", "sklearn"},
          description="The evaluation harness on held-out experiments: the LPM and the production predictor (what "
                      "`discoveries` publishes, refitted per seed) beside every baseline, same split, same metrics "
                      "(pooled RMSE/MAE/R²/Pearson, per-signature Pearson, top-50 overlap), and production's margin "
                      "over the strongest baseline per seed. One LPM fit per seed: the `lpm` row is the production "
                      "predictor's own LPM member (same seed, same training rows).")
def evaluation_report(context: dg.AssetExecutionContext, perturbgraph: PerturbGraphSettings,
                      training_set: TrainingSet, config: EvaluationConfig) -> dict:
    from models.evaluation.harness import markdown_table
    from models.progress import reporting_to

    with reporting_to(training_log(context)):  # the harness's own LPM fits would be silent
        try:
            evaluation = steps.evaluate_version(
                training_set, perturbgraph.settings().artifacts_dir, split=config.split, seeds=config.seeds,
                max_epochs=config.max_epochs, target_context=config.target_context,
                on_result=lambda r: context.log.info(f"seed {r['seed']} {r['model']}: {r['error'] or round(r['rmse'], 4)}"))
        except steps.StepFailure as exc:
            raise _failure(exc) from None
    margins = evaluation.margins
    context.add_output_metadata({
        "split": config.split, "target_context": evaluation.target_context,
        "seeds": dg.MetadataValue.json(list(config.seeds)),
        "metrics": dg.MetadataValue.md(markdown_table(evaluation.results)), "json": str(evaluation.json_path),
        "markdown": str(evaluation.md_path), "mean_scores": dg.MetadataValue.json(evaluation.mean_scores()),
        "lpm_row": "the production predictor's LPM member (one LPM fit per seed, same seed and training rows)",
        "production_vs_strongest_baseline": dg.MetadataValue.md(Q.margins_table(margins)),
        "production_wins": margins["wins"], "production_losses": margins["losses"], "production_ties": margins["ties"],
        "production_mean_margin": margins["mean_margin"],
        "production_choices": dg.MetadataValue.json(evaluation.production_choices()),
    })
    return evaluation.report()

"""Group `graph`: load the validated records into Neo4j (constraints first, idempotent batches)."""


import dagster as dg

from graph.db import pipeline_queries as PQ
from graph.db.checks import check_constraints, check_no_orphans, graph_counts
from graph.db.graph_writer import GraphWriter
from graph.store.quarantine import write_quarantine
from pipelines.ingest import ExperimentBundle, ReferenceBundle, load_experiment, load_reference
from pipelines.resources import Neo4jResource, PerturbGraphSettings

GROUP = "graph"
POOL = "neo4j_writes"  # writers are serialised across runs (dagster.yaml: default pool limit 1)


def _stats_table(stats: dict) -> dg.MetadataValue:
    lines = ["| what | rows | written | nodes created | relationships created | quarantined | rows/s |",
             "|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        lines.append(f"| {name} | {s.rows} | {s.written} | {s.nodes_created} | {s.relationships_created} | "
                     f"{len(s.quarantined)} | {s.rows_per_s:,.0f} |")
    return dg.MetadataValue.md("\n".join(lines))


@dg.asset(group_name=GROUP, kinds={"neo4j"}, pool=POOL,
          description="Genes, compounds with their annotated targets, prior networks and complexes in Neo4j.")
def graph_reference(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                    reference_data: ReferenceBundle) -> dict[str, int]:
    with neo4j.guarded(context) as driver:
        stats = load_reference(GraphWriter(driver, neo4j.db), reference_data, progress=context.log.info)
        counts = graph_counts(driver, database=neo4j.db)
    settings = perturbgraph.settings()
    for dataset_id, records in reference_data.quarantine.items():
        write_quarantine(settings, dataset_id, records)
    context.add_output_metadata({"writes": _stats_table(stats), "total_nodes": counts["total_nodes"],
                                 "total_relationships": counts["total_relationships"]})
    return {k: v.written for k, v in stats.items()}


@dg.asset(group_name=GROUP, kinds={"neo4j"}, pool=POOL, deps=[graph_reference],
          description="Cell lines, perturbations and signatures (experiments) in Neo4j; each Dataset node is "
                      "marked complete only after all of its writes succeed.")
def graph_experiments(context: dg.AssetExecutionContext, neo4j: Neo4jResource, perturbgraph: PerturbGraphSettings,
                      experiments: list[ExperimentBundle]) -> dict[str, int]:
    settings = perturbgraph.settings()
    expected: dict[str, int] = {}
    all_stats = {}
    with neo4j.guarded(context) as driver:
        writer = GraphWriter(driver, neo4j.db)
        for i, bundle in enumerate(experiments, 1):
            context.log.info(f"[{i}/{len(experiments)}] loading {bundle.dataset.dataset_id}")
            stats = load_experiment(writer, bundle, progress=context.log.info)
            write_quarantine(settings, bundle.dataset.dataset_id, bundle.quarantine)
            expected[bundle.dataset.dataset_id] = stats["Signature"].written
            all_stats.update({f"{bundle.dataset.dataset_id}:{k}": v for k, v in stats.items()})
        counts = graph_counts(driver, database=neo4j.db)
    context.add_output_metadata({
        "writes": _stats_table(all_stats),
        "signatures_expected": dg.MetadataValue.json(expected),
        "nodes": dg.MetadataValue.json(counts["nodes"]),
        "relationships": dg.MetadataValue.json(counts["relationships"]),
    })
    return expected


@dg.asset_check(asset=graph_experiments, blocking=True,
                description="Signatures per dataset in Neo4j equal those the readers accepted and the writer wrote.")
def signature_counts_reconcile(context: dg.AssetCheckExecutionContext, neo4j: Neo4jResource,
                               graph_experiments: dict[str, int]) -> dg.AssetCheckResult:
    with neo4j.guarded(context) as driver:
        in_graph = PQ.signatures_per_dataset(driver, database=neo4j.db)
    mismatched = {k: (v, in_graph.get(k, 0)) for k, v in graph_experiments.items() if in_graph.get(k, 0) != v}
    return dg.AssetCheckResult(passed=not mismatched,
                               metadata={"mismatched (expected, in graph)": dg.MetadataValue.json(mismatched),
                                         "datasets": len(graph_experiments)})


@dg.asset_check(asset=graph_experiments, blocking=True,
                description="Every uniqueness constraint and index exists and is online.")
def constraints_present(context: dg.AssetCheckExecutionContext, neo4j: Neo4jResource) -> dg.AssetCheckResult:
    with neo4j.guarded(context) as driver:
        missing = check_constraints(driver, database=neo4j.db)
    return dg.AssetCheckResult(passed=not missing, metadata={"missing": dg.MetadataValue.json(missing)})


@dg.asset_check(asset=graph_experiments, blocking=True,
                description="No signature without context/perturbation/dataset, no node without provenance, "
                            "no dataset left half-written.")
def no_orphans(context: dg.AssetCheckExecutionContext, neo4j: Neo4jResource) -> dg.AssetCheckResult:
    with neo4j.guarded(context) as driver:
        problems = check_no_orphans(driver, database=neo4j.db)
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)})

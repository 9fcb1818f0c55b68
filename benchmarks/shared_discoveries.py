"""The whole loop on the real shared data: ingest, train the LPM twice, write discoveries back, query.

Not a test (it takes tens of minutes on 2 cores). It shows, on ../shared/data:

1. every shared file goes through the `ingest` job (skipped with --reuse when the graph is complete);
2. the `retrain` job (training_set -> lpm_model -> evaluation_report -> discoveries) trains on the
   Tahoe-100M drugs and the Replogle CRISPRi knock-downs together (the N readouts measured in the
   most signatures) and writes a ModelVersion with its embeddings and links; run twice with two
   seeds, so the graph holds two distinguishable versions;
3. the named queries answer on real content: the mechanism links of the two MTOR inhibitors in
   Tahoe (everolimus, temsirolimus) against the MTOR knock-down in Replogle, compounds that mimic
   the MTOR knock-down, MTOR's inferred interactions, and what the second version changed.

    nice python benchmarks/shared_discoveries.py [--home DIR] [--port 7692] [--reuse] [--epochs 8]
    python benchmarks/shared_discoveries.py --reuse --latency-only   # time the queries on that graph again

Prints JSON (also written to <home>/shared_discoveries.json); figures go to docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TRAIN_DATASETS = ["tahoe100m_ranked_signatures", "replogle2022_k562_rpe1_crispri_top1000"]
MTOR_INHIBITORS = ["Everolimus", "Temsirolimus"]


def _retrain_config(args: argparse.Namespace, seed: int) -> dict:
    return {"ops": {
        "training_set": {"config": {"datasets": TRAIN_DATASETS, "max_readouts": args.max_readouts,
                                    **({} if args.prior_min_score is None else
                                       {"prior_min_score": args.prior_min_score})}},
        "lpm_model": {"config": {"max_epochs": args.epochs, "seed": seed}},
        "evaluation_report": {"config": {"max_epochs": args.eval_epochs, "seeds": [seed],
                                         "target_context": "A498"}},
        "discoveries": {"config": {"seed": seed}},
    }}


MTOR_ENTREZ = "2475"


def _mtor_ranks(checkpoint: str, driver, database: str) -> dict:
    """Rank of the MTOR knock-down among all knock-downs for each MTOR inhibitor, scored exactly as
    the discoveries asset scores mechanism links (compound and knock-down embeddings aggregated from
    the graph's perturbation map, centred cosine), so ranks beyond the stored top-k are visible too."""
    from graph.db import discovery_reads as DR
    from models.discovery import aggregate_embeddings, mechanism_links
    from models.lpm import LPM

    emb = LPM.load(checkpoint).embeddings("perturbation")
    inputs = DR.fetch_discovery_inputs(driver, database=database)
    names = {}  # compound id -> the name asked for (the id is an InChIKey once a structure is known)
    for name in MTOR_INHIBITORS:
        rows = DR.run_named_query(driver, "mechanism", {"compound": name, "limit": 1}, database=database)
        if rows:
            names[rows[0]["compound_id"]] = name
    compounds = {p: c for p, c in inputs.perturbation_compound.items() if p in emb.index}
    genes = aggregate_embeddings(emb, {p: g for p, g in inputs.genetic_groups().items() if p in emb.index})
    links = mechanism_links(aggregate_embeddings(emb, compounds), genes, k=len(genes), n_null=200)
    hits = links[links["compound"].isin(names) & (links["gene"].astype(str) == MTOR_ENTREZ)]
    return {names[r.compound]: {"rank": int(r.rank), "of": len(genes), "score": round(float(r.score), 3)}
            for r in hits.itertuples()}


LATENCY_PARAMS = {
    "mechanism": {"compound": "Everolimus"}, "mimics": {"gene": "MTOR"}, "interactions": {"gene": "PSMB1"},
    "response": {"compound": "Everolimus", "context": "K562"}, "similar-compounds": {"compound": "Everolimus"},
    "similar-genes": {"gene": "PSMB1"}, "similar-contexts": {"context": "A498"}, "model-versions": {},
    "version-summary": {}, "version-changes": {},
}


def _latency(driver, database: str, repeats: int = 100, warmup: int = 300) -> dict:
    """p50 / p95 wall time (ms) of each named query on this graph, after `warmup` calls: a freshly started
    server is 2-4x slower for its first few hundred calls of a query (plan caching, JIT compilation);
    a deployed server is warm. The machine should be otherwise idle."""
    import numpy as np

    from graph.db.discovery_reads import run_named_query

    out = {}
    for name, params in LATENCY_PARAMS.items():
        times = []
        for i in range(repeats + warmup):
            t = time.perf_counter()
            rows = run_named_query(driver, name, params, database=database)
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1000)
        out[name] = {"p50": round(float(np.percentile(times, 50)), 1),
                     "p95": round(float(np.percentile(times, 95)), 1), "rows": len(rows)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default="/tmp/perturbgraph-shared-discoveries")
    parser.add_argument("--port", type=int, default=7692)
    parser.add_argument("--reuse", action="store_true", help="keep an existing home and skip a complete ingest")
    parser.add_argument("--latency-only", action="store_true",
                        help="with --reuse: only bring the schema up to date and time the named queries")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--eval-epochs", type=int, default=4)
    parser.add_argument("--max-readouts", type=int, default=1000)
    parser.add_argument("--prior-min-score", type=float, default=None,
                        help="prior gene edges kept for the gene encoder (STRING score / DoRothEA weight; default "
                             "the training_set's: graph/io/networks.GENE_PRIOR)")
    args = parser.parse_args()
    from shared_ingest import start_shared_server  # benchmarks/ is on sys.path when run as a script

    settings, server = start_shared_server(args.home, args.port, wipe=not args.reuse)
    import dagster as dg

    from graph.db import discovery_reads as DR
    from graph.db.connection import open_driver
    from graph.db.graph_writer import GraphWriter
    from graph.db.model_versions import ModelVersions
    from pipelines.definitions import defs

    dagster_home = Path(args.home) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(dagster_home))
    report: dict = {"args": vars(args), "versions": []}
    began = time.monotonic()
    if args.latency_only:
        if not args.reuse:
            raise SystemExit("--latency-only needs --reuse (a graph built by an earlier run)")
        from graph.db.graph_writer import GraphWriter
        from graph.db.model_versions import ModelVersions

        try:
            with open_driver(settings) as driver:
                GraphWriter(driver, settings.neo4j_database).ensure_schema()  # indexes / lookup keys of newer code
                ModelVersions(driver, database=settings.neo4j_database).backfill_summaries()
                report["latency_ms"] = _latency(driver, settings.neo4j_database)
        finally:
            server.stop()
        print(json.dumps(report, indent=1, default=str))
        return
    try:
        with open_driver(settings) as driver:
            done = {r["d"] for r in driver.execute_query(
                "MATCH (d:Dataset {status: 'complete'}) RETURN d.dataset_id AS d", database_=settings.neo4j_database
            ).records}
        if not (args.reuse and set(TRAIN_DATASETS) <= done):
            t = time.monotonic()
            result = defs.resolve_job_def("ingest").execute_in_process(instance=instance, raise_on_error=False)
            report["ingest_s"] = round(time.monotonic() - t)
            if not result.success:
                raise SystemExit("ingest failed: see the Dagster events above")
            print(f"[{time.monotonic() - began:5.0f}s] ingest done in {report['ingest_s']} s", flush=True)
        for seed in (0, 1):
            t = time.monotonic()
            result = defs.resolve_job_def("retrain").execute_in_process(
                run_config=_retrain_config(args, seed), instance=instance, raise_on_error=False)
            seconds = round(time.monotonic() - t)
            if not result.success:
                raise SystemExit(f"retrain (seed {seed}) failed after {seconds} s: see the Dagster events above")
            run, disc, ts = (result.asset_value(k) for k in ("lpm_model", "discoveries", "training_set"))
            evaluation = result.asset_value("evaluation_report")
            step_s = {}
            for event in result.all_events:
                if event.event_type_value == "STEP_SUCCESS":
                    step_s[event.step_key] = round(event.event_specific_data.duration_ms / 1000)
            report["versions"].append({
                "seed": seed, "version_id": disc["version_id"], "seconds": seconds, "step_seconds": step_s,
                "training_rows": ts.n_rows, "epochs_run": len(run.history), "valid": run.valid_metrics,
                "evaluation_means": evaluation.get("means"), "mechanism_links": disc["mechanism_links"],
                "rank1_is_annotated_target": disc["rank1_is_annotated_target"],
                "checkpoint": run.checkpoint,
            })
            print(f"[{time.monotonic() - began:5.0f}s] version {disc['version_id']} in {seconds} s", flush=True)
        queries: dict = {}
        with open_driver(settings) as driver:
            db = settings.neo4j_database
            for compound in MTOR_INHIBITORS:
                queries[f"mechanism --compound {compound}"] = DR.run_named_query(
                    driver, "mechanism", {"compound": compound, "limit": 20}, database=db)
            queries["mimics --gene MTOR"] = DR.run_named_query(driver, "mimics", {"gene": "MTOR", "limit": 10},
                                                               database=db)
            queries["interactions --gene MTOR"] = DR.run_named_query(driver, "interactions",
                                                                     {"gene": "MTOR", "limit": 10}, database=db)
            queries["interactions --gene PSMB1"] = DR.run_named_query(driver, "interactions",
                                                                      {"gene": "PSMB1", "limit": 10}, database=db)
            queries["similar-compounds --compound Everolimus"] = DR.run_named_query(
                driver, "similar-compounds", {"compound": "Everolimus", "k": 5}, database=db)
            queries["model-versions"] = DR.run_named_query(driver, "model-versions", {}, database=db)
            for version in report["versions"]:
                version["mtor_rank_among_knockdowns"] = _mtor_ranks(version["checkpoint"], driver, db)
            queries["version-summary"] = DR.run_named_query(driver, "version-summary", {}, database=db)
            report["latency_ms"] = _latency(driver, db)
        report["queries"] = queries
        report["total_s"] = round(time.monotonic() - began)
    finally:
        server.stop()
    text = json.dumps(report, indent=1, default=str)
    (Path(args.home) / "shared_discoveries.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Ingest throughput into the local Neo4j: the batched MERGE/CREATE writers vs neo4j-admin import.

Generates a synthetic PerturbGraph (genes, compounds, cell lines, dose perturbations, signatures
with three relationships each, STRING-like gene-gene edges; >= 1M relationships by default), loads
it through graph.db.graph_writer into a fresh managed server in a temporary home, re-runs the signature load
to check idempotency, then writes the same graph as CSV and times `neo4j-admin database import
full` into a second temporary home. Prints a JSON report (and writes it with --out).

    nice python benchmarks/ingest_throughput.py --signatures 300000 --prior-edges 200000 \
        --batch-size 20000 --out /tmp/ingest.json

Not a test: the numbers are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from graph.db import checks
from graph.db.batching import DEFAULT_BATCH_SIZE, WriteStats
from graph.db.bulk_import import bulk_import
from graph.db.graph_writer import GraphWriter
from graph.records import (
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    PriorEdgeRecord,
    SignatureRecord,
)
from graph.settings import Settings

DATASET = "bench_synthetic"


def generate(n_genes: int, n_contexts: int, n_compounds: int, n_doses: int, n_signatures: int,
             n_prior: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    genes = [GeneRecord(100 + i, f"G{i}", f"gene {i}", aliases=(f"ALIAS{i}",)) for i in range(n_genes)]
    contexts = [ContextRecord(f"CL{i}", f"cell line {i}") for i in range(n_contexts)]
    compounds = [CompoundRecord(f"CMPD{i:06d}", f"compound {i}", targets=(f"G{rng.randrange(n_genes)}",))
                 for i in range(n_compounds)]
    doses = [0.1 * 3**k for k in range(n_doses)]
    perts = [
        PerturbationRecord(f"compound:CMPD{i:06d}@{d:g}uM", f"compound {i}", "compound",
                           compound_id=f"CMPD{i:06d}", dose_value=d, dose_unit="uM", time_value=24.0, time_unit="h")
        for i in range(n_compounds) for d in doses
    ]
    sigs = [
        SignatureRecord(f"{DATASET}:{i}", DATASET, f"CL{rng.randrange(n_contexts)}",
                        perts[rng.randrange(len(perts))].perturbation_id, 978)
        for i in range(n_signatures)
    ]
    prior: dict[tuple[int, int], PriorEdgeRecord] = {}
    while len(prior) < n_prior:
        a, b = rng.randrange(n_genes), rng.randrange(n_genes)
        if a != b:
            prior[(min(a, b), max(a, b))] = PriorEdgeRecord(f"G{a}", f"G{b}", "STRING", rng.random())
    return {"genes": genes, "contexts": contexts, "compounds": compounds, "perturbations": perts,
            "signatures": sigs, "prior": list(prior.values())}


def phase(report: dict, name: str, stats: WriteStats) -> None:
    rate_n = stats.nodes_created / stats.seconds if stats.seconds else 0.0
    rate_r = stats.relationships_created / stats.seconds if stats.seconds else 0.0
    report["phases"][name] = {
        "rows": stats.rows, "batches": stats.batches, "seconds": round(stats.seconds, 2),
        "nodes_created": stats.nodes_created, "relationships_created": stats.relationships_created,
        "nodes_per_s": round(rate_n), "relationships_per_s": round(rate_r),
        "rows_per_s": round(stats.rows / stats.seconds) if stats.seconds else 0,
    }
    print(f"  {name:<28} {stats.rows:>9} rows {stats.seconds:7.1f} s  "
          f"{rate_n:>9.0f} nodes/s {rate_r:>9.0f} rels/s", flush=True)


def load_with_writer(driver, data: dict, batch_size: int, report: dict) -> None:
    ds = DatasetRecord(DATASET, "synthetic benchmark graph", "generated", "1", "-", "0" * 64, "CC0", "synthetic",
                       simulated=True)
    GraphWriter(driver).ensure_schema()
    GraphWriter(driver).write_dataset(ds)
    t0 = time.perf_counter()
    w = GraphWriter(driver, batch_size=batch_size)
    phase(report, "genes", w.write_genes(data["genes"], DATASET))
    phase(report, "compounds", w.write_compounds(data["compounds"], DATASET))
    phase(report, "contexts", w.write_contexts(data["contexts"], DATASET))
    phase(report, "perturbations+OF_COMPOUND",
          w.write_perturbations(data["perturbations"], DATASET))
    phase(report, "signatures (first load)",
          w.write_signatures(data["signatures"]))
    phase(report, "TARGETS", w.write_compound_targets(data["compounds"], DATASET))
    phase(report, "INTERACTS_WITH", w.write_prior_edges(data["prior"], DATASET))
    GraphWriter(driver).mark_dataset_complete(DATASET)
    total = time.perf_counter() - t0
    counts = checks.graph_counts(driver)
    report["writer_total"] = {
        "seconds": round(total, 1), "nodes": counts["total_nodes"], "relationships": counts["total_relationships"],
        "nodes_per_s": round(counts["total_nodes"] / total),
        "relationships_per_s": round(counts["total_relationships"] / total),
    }
    # Idempotency: the same signatures again go through MERGE and change nothing.
    rerun = w.write_signatures(data["signatures"])
    phase(report, "signatures (re-run, MERGE)", rerun)
    again = checks.graph_counts(driver)
    report["rerun_counts_equal"] = again == counts
    assert again == counts, "re-run changed the graph"
    assert checks.check_no_orphans(driver) == {}
    report["counts"] = counts


def merge_first_load(driver, data: dict, batch_size: int, n: int, report: dict) -> None:
    """Signatures of a second fresh dataset with mode='merge', to compare with the CREATE path."""
    ds_id = "bench_merge"
    w = GraphWriter(driver)
    w.write_dataset(DatasetRecord(ds_id, "merge path", "generated", "1", "-", "1" * 64, "CC0", "x"))
    sigs = [SignatureRecord(f"{ds_id}:{i}", ds_id, s.context_id, s.perturbation_id, 978)
            for i, s in enumerate(data["signatures"][:n])]
    phase(report, "signatures (first load, MERGE)", GraphWriter(driver, batch_size=batch_size).write_signatures(sigs, mode="merge"))
    w.mark_dataset_complete(ds_id)


def write_csvs(data: dict, folder: Path) -> tuple[dict, dict, float]:
    """The same graph as neo4j-admin import CSVs."""
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)

    def out(name: str, header: list[str], rows) -> Path:
        path = folder / name
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        return path

    nodes = {
        "Dataset": [out("dataset.csv", ["dataset_id:ID(Dataset)", "name", "status", "sources:string[]"],
                        [(DATASET, "synthetic benchmark graph", "complete", DATASET)])],
        "Gene": [out("genes.csv", ["entrez_id:ID(Gene){id-type:long}", "symbol", "name", "description",
                                   "aliases:string[]", "sources:string[]"],
                     ((g.entrez_id, g.symbol, g.symbol, g.name, ";".join(g.aliases), DATASET) for g in data["genes"]))],
        "Compound": [out("compounds.csv", ["compound_id:ID(Compound)", "name", "sources:string[]"],
                         ((c.compound_id, c.name, DATASET) for c in data["compounds"]))],
        "CellLine": [out("contexts.csv", ["context_id:ID(CellLine)", "name", "kind", "sources:string[]"],
                         ((c.context_id, c.name, c.kind, DATASET) for c in data["contexts"]))],
        "Perturbation": [out("perturbations.csv",
                             ["perturbation_id:ID(Perturbation)", "name", "perturbation_type", "compound_id",
                              "dose_value:float", "dose_unit", "time_value:float", "time_unit", "sources:string[]"],
                             ((p.perturbation_id, p.name, p.perturbation_type, p.compound_id, p.dose_value,
                               p.dose_unit, p.time_value, p.time_unit, DATASET) for p in data["perturbations"]))],
        "Signature": [out("signatures.csv",
                          ["signature_id:ID(Signature)", "name", "dataset_id", "context_id", "perturbation_id",
                           "n_readouts:int", "n_replicates:int", "sources:string[]"],
                          ((s.signature_id, f"{s.perturbation_id} in {s.context_id}", s.dataset_id, s.context_id,
                            s.perturbation_id, s.n_readouts, s.n_replicates, DATASET) for s in data["signatures"]))],
    }
    sym = {g.symbol: g.entrez_id for g in data["genes"]}
    rels = {
        "OF_COMPOUND": [out("of_compound.csv", [":START_ID(Perturbation)", ":END_ID(Compound)", "dataset"],
                            ((p.perturbation_id, p.compound_id, DATASET) for p in data["perturbations"]))],
        "IN_CONTEXT": [out("in_context.csv", [":START_ID(Signature)", ":END_ID(CellLine)", "dataset"],
                           ((s.signature_id, s.context_id, DATASET) for s in data["signatures"]))],
        "OF_PERTURBATION": [out("of_perturbation.csv", [":START_ID(Signature)", ":END_ID(Perturbation)", "dataset"],
                                ((s.signature_id, s.perturbation_id, DATASET) for s in data["signatures"]))],
        "FROM_DATASET": [out("from_dataset.csv", [":START_ID(Signature)", ":END_ID(Dataset)", "dataset"],
                             ((s.signature_id, DATASET, DATASET) for s in data["signatures"]))],
        "TARGETS": [out("targets.csv", [":START_ID(Compound)", ":END_ID(Gene)", "dataset", "source"],
                        ((c.compound_id, sym[t], DATASET, DATASET) for c in data["compounds"] for t in c.targets))],
        "INTERACTS_WITH": [out("interacts.csv", [":START_ID(Gene)", ":END_ID(Gene)", "dataset", "source",
                                                 "score:float"],
                               ((min(sym[e.source_symbol], sym[e.target_symbol]),
                                 max(sym[e.source_symbol], sym[e.target_symbol]), DATASET, e.source, e.score)
                                for e in data["prior"]))],
    }
    return nodes, rels, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--contexts", type=int, default=200)
    ap.add_argument("--compounds", type=int, default=5_000)
    ap.add_argument("--doses", type=int, default=4)
    ap.add_argument("--signatures", type=int, default=300_000)
    ap.add_argument("--prior-edges", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    ap.add_argument("--merge-compare", type=int, default=100_000,
                    help="signatures loaded with mode='merge' into a second dataset (0: skip)")
    ap.add_argument("--skip-writer", action="store_true")
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--port", type=int, default=7698)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("--pagecache", default="1g")
    ap.add_argument("--keep", action="store_true", help="keep the temporary homes")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from graph.db.connection import open_driver
    from graph.db.server import Neo4jServer

    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "phases": {},
    }
    t0 = time.perf_counter()
    data = generate(args.genes, args.contexts, args.compounds, args.doses, args.signatures, args.prior_edges)
    report["generate_s"] = round(time.perf_counter() - t0, 1)
    base = Path(tempfile.mkdtemp(prefix="pg-ingest-bench-"))
    try:
        if not args.skip_writer:
            settings = Settings(home=base / "writer", neo4j_bolt_port=args.port, neo4j_password=None,
                                neo4j_heap=args.heap, neo4j_pagecache=args.pagecache, neo4j_uri=None)
            server = Neo4jServer(settings)
            server.start()
            try:
                with open_driver(settings) as driver:
                    print(f"writer into {settings.effective_neo4j_uri} (batch {args.batch_size})", flush=True)
                    load_with_writer(driver, data, args.batch_size, report)
                    if args.merge_compare:
                        merge_first_load(driver, data, args.batch_size, args.merge_compare, report)
            finally:
                server.stop()
        if not args.skip_import:
            settings = Settings(home=base / "import", neo4j_bolt_port=args.port, neo4j_password=None,
                                neo4j_heap=args.heap, neo4j_pagecache=args.pagecache, neo4j_uri=None)
            nodes, rels, csv_s = write_csvs(data, base / "csv")
            result = bulk_import(settings, nodes, rels)
            print(f"neo4j-admin import: {result.seconds:.1f} s (+ {csv_s:.1f} s writing CSV)", flush=True)
            server = Neo4jServer(settings)
            server.start()
            try:
                with open_driver(settings) as driver:
                    t1 = time.perf_counter()
                    GraphWriter(driver).ensure_schema()
                    schema_s = time.perf_counter() - t1
                    counts = checks.graph_counts(driver)
                    # The writer on top of an imported graph is a no-op MERGE (idempotent).
                    n = min(50_000, len(data["signatures"]))
                    rerun = GraphWriter(driver, batch_size=args.batch_size).write_signatures(data["signatures"][:n])
                    same = checks.graph_counts(driver) == counts
            finally:
                server.stop()
            report["bulk_import"] = {
                "csv_write_s": round(csv_s, 1), "import_s": round(result.seconds, 1),
                "constraints_after_s": round(schema_s, 1),
                "nodes": counts["total_nodes"], "relationships": counts["total_relationships"],
                "relationships_per_s": round(counts["total_relationships"] / result.seconds),
                "nodes_per_s": round(counts["total_nodes"] / result.seconds),
                "writer_rerun_on_import_rows_per_s": round(rerun.rows / rerun.seconds),
                "writer_rerun_on_import_counts_equal": same,
                "command": " ".join(result.command[:1] + ["..."] + result.command[4:]),
                "output_tail": result.output_tail[-600:],
            }
            if "counts" in report:
                report["bulk_import"]["counts_equal_writer"] = (
                    counts["nodes"] == report["counts"]["nodes"]
                    and {k: v for k, v in counts["relationships"].items()}
                    == report["counts"]["relationships"]
                )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

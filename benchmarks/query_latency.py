"""Latency of the named discovery queries and write-back throughput, on a generated graph of
realistic size (default: 20k genes, 5k compounds, top-20 links each, 64-d embeddings).

    python benchmarks/query_latency.py [--genes 20000 --compounds 5000 --k 20 --runs 200] [--out FILE.md]  (then paste into docs/benchmarks.md)

Starts its own managed Neo4j (graph.db.server.Neo4jServer) in a temporary home on a free port and
stops it at the end. Each named query runs `--runs` times with random parameters after a warm-up;
p50 / p95 / max are reported. The goal is p95 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graph.db import discovery_reads as DR
from graph.db.connection import open_driver
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.graph_writer import GraphWriter
from graph.db.model_versions import ModelVersionRecord
from graph.db.server import Neo4jServer
from graph.records import CompoundRecord, ContextRecord, GeneRecord, PerturbationRecord, PriorEdgeRecord
from graph.settings import Settings
from models import discovery as D


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate(n_genes: int, n_compounds: int, k: int, dim: int, n_contexts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    syms = [f"GENE{i}" for i in range(n_genes)]
    genes = [GeneRecord(100000 + i, s, s) for i, s in enumerate(syms)]
    cids = [f"CMP{i:05d}" for i in range(n_compounds)]
    comps = [CompoundRecord(c, f"drug-{i}", targets=(syms[rng.integers(n_genes)],)) for i, c in enumerate(cids)]
    ctxs = [ContextRecord(f"CTX{i}", f"cell line {i}") for i in range(n_contexts)]
    perts = [PerturbationRecord(f"compound:{c}@10uM", f"drug-{i}", "compound", compound_id=c, dose_value=10.0,
                                dose_unit="uM") for i, c in enumerate(cids)]
    prior = [PriorEdgeRecord(syms[a], syms[b], "STRING", 0.9)
             for a, b in rng.integers(0, n_genes, size=(2 * n_genes, 2)) if a != b]
    gemb = pd.DataFrame(rng.normal(size=(n_genes, dim)).astype(np.float32), index=syms)
    cemb = pd.DataFrame(rng.normal(size=(n_compounds, dim)).astype(np.float32), index=cids)
    xemb = pd.DataFrame(rng.normal(size=(n_contexts, dim)).astype(np.float32), index=[c.context_id for c in ctxs])
    mech = D.mechanism_links(cemb, gemb, k=k, n_null=1000, seed=seed)
    inter = D.gene_interactions(gemb, k=k)
    preds = pd.DataFrame({"perturbation": np.repeat([p.perturbation_id for p in perts], 2 * k),
                          "context": "CTX0", "readout": np.tile(syms[:2 * k], n_compounds),
                          "value": rng.normal(size=n_compounds * 2 * k)})
    effects = D.top_effects(preds, top_n=k)
    return dict(genes=genes, comps=comps, ctxs=ctxs, perts=perts, prior=prior,
                emb={"gene_perturbation": gemb, "readout": gemb, "compound": cemb, "context": xemb},
                mech=mech, inter=inter, effects=effects)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--genes", type=int, default=20_000)
    ap.add_argument("--compounds", type=int, default=5_000)
    ap.add_argument("--contexts", type=int, default=20)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("--pagecache", default="1g")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    data = generate(args.genes, args.compounds, args.k, args.dim, args.contexts)
    t_gen = time.perf_counter() - t0
    home = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    settings = Settings(home=home, neo4j_bolt_port=free_port(), neo4j_password=None,
                        neo4j_heap=args.heap, neo4j_pagecache=args.pagecache)
    server = Neo4jServer(settings)
    server.start()
    out: dict = {"sizes": {k: v for k, v in vars(args).items() if k != "out"} | {"mechanism_links": len(data["mech"]), "interaction_links": len(data["inter"]),
                                        "effect_links": len(data["effects"])},
                 "generate_s": round(t_gen, 1), "writes": {}, "queries": {}}
    try:
        with open_driver(settings) as driver:
            w = GraphWriter(driver)
            w.ensure_schema()
            t = time.perf_counter()
            w.write_genes(data["genes"], "bench")
            w.write_compounds(data["comps"], "bench")
            w.write_compound_targets(data["comps"], "bench")
            w.write_contexts(data["ctxs"], "bench")
            w.write_perturbations(data["perts"], "bench")
            w.write_prior_edges(data["prior"], "bench")
            out["ingest_base_s"] = round(time.perf_counter() - t, 1)

            def publish(vid: str, trained_at: str, seed_shift: int = 0):
                mech = data["mech"]
                if seed_shift:  # a retrained model: a tenth of the links point elsewhere
                    mech = mech.copy()
                    idx = mech.index[::10]
                    mech.loc[idx, "gene"] = np.random.default_rng(seed_shift).choice(
                        data["emb"]["gene_perturbation"].index, size=len(idx))
                    mech = mech.drop_duplicates(["compound", "gene"])
                rec = ModelVersionRecord({"bench": vid}, trained_at=trained_at, version_id=vid)
                return DiscoveryWriter(driver).publish(rec, embeddings=data["emb"], mechanisms=mech, interactions=data["inter"], effects=data["effects"], retention=3)

            rep1 = publish("bench-v1", "2025-01-01T00:00:00")
            out["writes"]["first version"] = rep1.summary()
            rep2 = publish("bench-v2", "2025-02-01T00:00:00", seed_shift=7)
            out["writes"]["second version"] = rep2.summary()
            t = time.perf_counter()
            rep_again = publish("bench-v2", "2025-02-01T00:00:00", seed_shift=7)
            out["writes"]["second version again (idempotent)"] = rep_again.summary() | {
                "seconds": round(time.perf_counter() - t, 1)}

            rng = np.random.default_rng(1)
            gsyms = data["emb"]["gene_perturbation"].index.to_numpy()
            cids = [c.compound_id for c in data["comps"]]
            params = {
                "mechanism": lambda: {"compound": cids[rng.integers(len(cids))]},
                "mechanism (by name)": lambda: {"compound": f"drug-{rng.integers(len(cids))}"},
                "mimics": lambda: {"gene": gsyms[rng.integers(len(gsyms))]},
                "interactions": lambda: {"gene": gsyms[rng.integers(len(gsyms))]},
                "response": lambda: {"compound": cids[rng.integers(len(cids))], "context": "CTX0"},
                "similar-compounds": lambda: {"compound": cids[rng.integers(len(cids))], "k": 10},
                "similar-genes": lambda: {"gene": gsyms[rng.integers(len(gsyms))], "k": 10},
                "similar-contexts": lambda: {"context": f"CTX{rng.integers(args.contexts)}", "k": 5},
                "model-versions": lambda: {},
                "version-summary": lambda: {},
                "version-changes": lambda: {"limit": 100},
            }
            for label, make in params.items():
                name = label.split(" ")[0]
                runs = args.runs if name not in {"version-summary", "version-changes", "model-versions"} else 20
                for _ in range(5):
                    DR.run_named_query(driver, name, make())
                samples, n_rows = [], 0
                for _ in range(runs):
                    p = make()
                    t = time.perf_counter()
                    rows = DR.run_named_query(driver, name, p)
                    samples.append(time.perf_counter() - t)
                    n_rows += len(rows)
                out["queries"][label] = {"runs": runs, "p50_ms": round(percentile_ms(samples, 50), 2),
                                         "p95_ms": round(percentile_ms(samples, 95), 2),
                                         "max_ms": round(max(samples) * 1000, 2),
                                         "mean_rows": round(n_rows / runs, 1)}
                print(label, out["queries"][label], flush=True)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs visible, Neo4j heap {args.heap} / page cache {args.pagecache}"
    if args.out:
        args.out.write_text(to_markdown(out))
    print(json.dumps(out, indent=1, default=str))


def to_markdown(out: dict) -> str:
    s = out["sizes"]
    lines = ["# Discovery query latency and write-back throughput", "",
             f"Generated by `benchmarks/query_latency.py` (its own managed Neo4j 5.26, {out['machine']}; "
             "the machine is shared with other jobs, so numbers are noisy).", "",
             f"Graph: {s['genes']:,} genes, {s['compounds']:,} compounds (one dose each, one annotated target), "
             f"{s['contexts']} contexts, {2 * s['genes']:,} prior edges; per model version "
             f"{s['mechanism_links']:,} mechanism links (top-{s['k']}), {s['interaction_links']:,} predicted "
             f"interactions (top-{s['k']}), {s['effect_links']:,} predicted effects, {s['dim']}-d embeddings on "
             "genes (two kinds), compounds and contexts with cosine vector indexes. Two model versions are in the "
             "graph when the queries run (the second changes a tenth of the mechanism links).", "",
             "## Query latency (client-side, read transaction, random parameters, after 5 warm-up runs)", "",
             "| query | runs | p50 ms | p95 ms | max ms | rows | p95 < 20 ms |", "|---|---|---|---|---|---|---|"]
    for label, q in out["queries"].items():
        lines.append(f"| {label} | {q['runs']} | {q['p50_ms']} | {q['p95_ms']} | {q['max_ms']} | {q['mean_rows']} | "
                     f"{'yes' if q['p95_ms'] < 20 else '**no**'} |")
    lines += ["", "## Write-back", "", "| publish | relationship / embeddings | rows | written | created | rows/s |",
              "|---|---|---|---|---|---|"]
    for label, rep in out["writes"].items():
        for what, w in rep["writes"].items():
            lines.append(f"| {label} | {what} | {w['rows']:,} | {w['written']:,} | {w['relationships_created']:,} | "
                         f"{w['rows_per_s']:,.0f} |")
        lines.append(f"| {label} | **total publish (incl. schema, current flag, stale clean-up, pruning)** | | | | "
                     f"{rep['seconds']} s |")
    lines += ["", f"Base ingest of the generated entities took {out.get('ingest_base_s')} s; generating the "
              f"discoveries with models.discovery took {out['generate_s']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

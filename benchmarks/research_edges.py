"""Issue 17: gene-gene edges outside the prior — can a low-rank summary or a prior-free LPM beat
signature correlation? (research tool; docs/results.md, "Research: gene-gene edges outside the prior").

    PERTURBGRAPH_SHARED_DATA=... nice -n 19 python benchmarks/research_edges.py lowrank --max-readouts 200
    PERTURBGRAPH_SHARED_DATA=... nice -n 19 python benchmarks/research_edges.py lpm --max-readouts 200 \\
        --variants prior,free,free_whole --seeds 0,1,2 --store /tmp/edges/lpm

Both score through `models.edge_sources.score_edge_sources` (the publish-time scorer, the one rule) on
the knock-downs of `evaluation_discovery.discovery_training_table` (Tahoe-100M drugs + Replogle
K562/RPE1 knock-downs), against CORUM and STRING, with and without the pairs of the production gene
prior (graph/io/networks.GENE_PRIOR, STRING >= 700): "without prior" removes exactly those pairs for
every source, whether or not the source's model was given them, so every row scores the same pairs.

`lowrank` (H-E1): the knock-down x (context|readout) signature matrix signature correlation uses
(`models.discovery.knockdown_signatures`), its columns centred, truncated to rank k by SVD. Two
sources per k: `denoised_k` = Pearson correlation of the rank-k reconstruction (column means added
back; at full rank it is signature correlation exactly), `pca_k` = centred cosine of the k principal
component scores (scored as the LPM's embeddings are). k is chosen, before looking at CORUM / STRING,
by one rule: the k of the grid whose `denoised_k` ranks the prior's own pairs best (AUPRC over all
knock-down pairs with the GENE_PRIOR pairs as the positives: pairs that are model inputs, not references).

`lpm` (H-E2): LPMs trained on the same table, 10% of its rows (seeded) held out for early stopping
(validation MSE, patience 5, up to --max-epochs), cell-line features off as `train_discovery_lpm`:

* `prior`      — today's default LPMConfig (gene graph over the prior, targets, compound encoder, residual);
* `free`       — use_gene_graph and use_targets off: a knock-down's embedding is its free learned vector
                 (residual on: it encodes the deviation from the cross-context answer);
* `free_whole` — `free` with residual off (the embedding carries the whole response).

Each fit's knock-down and readout embeddings are scored beside signature correlation on the same pairs
(`edge_sources.candidate_scores`; `combined` = the rank average of the sources covering >= half the genes),
and two diagnostics: `lpm_knockdown_init` (the same embeddings under the fit's initial weights) and
`lpm_knockdown_learned` (trained minus initial: what training added).
One JSON per (variant, seed) goes to --store; `--table-only` prints the tables from stored JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # this checkout's packages, whatever is installed

KS = (8, 16, 32, 64, 128)
VARIANTS = {
    "prior": {},
    "free": {"use_gene_graph": False, "use_targets": False},
    "free_whole": {"use_gene_graph": False, "use_targets": False, "residual": False},
}
# Variants trained on the knock-downs' absent readouts too (value 0 = not in the top-1,000 up list, as
# signature correlation reads them): the default table holds only the readouts a knock-down lists, so the
# LPM never sees *which* readouts are listed, and that pattern alone scores like correlation (lowrank's
# `presence`). Not in the default --variants.
FILLED = {"prior_filled": "prior", "free_whole_filled": "free_whole"}
VALID_SHARE = 0.1


def _shared(path: Path | None) -> Path:
    from graph.settings import get_settings

    return path or get_settings().shared_data


def knockdown_data(shared: Path, max_readouts: int | None) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """(training table, knock-down signatures as signature correlation reads them, EdgeReferences)."""
    from graph.io.networks import SHARED_NETWORK_FILES
    from models import discovery as D
    from models import edge_sources as ES
    from models import evaluation_discovery as E
    from models.datasets import prior_gene_graph

    loaded = E.discovery_training_input(shared, max_readouts)
    df = loaded.frame
    # keyed by gene as the loader records it (C14ORF178 -> C14orf178): the references name genes so
    signatures = D.knockdown_signatures(df, E.knockdown_gene_of(loaded))
    genes = sorted(signatures.index)
    prior = prior_gene_graph(genes, {k: shared / f for k, f in SHARED_NETWORK_FILES.items()})
    refs = {"CORUM": E.corum_pairs(shared / SHARED_NETWORK_FILES["corum"], genes=genes),
            "STRING": E.string_pairs(shared / SHARED_NETWORK_FILES["string"], genes=genes)}
    return df, signatures, ES.EdgeReferences.build(refs, zip(prior["source"], prior["target"], strict=True))


def scored(scores: dict[str, pd.DataFrame], refs, **kw) -> dict[str, Any]:
    from models import edge_sources as ES

    return ES.score_edge_sources(scores, refs, **kw).as_dict()


# ---------------------------------------------------------------------------------------------- H-E1


def lowrank_sources(signatures: pd.DataFrame, ks=KS) -> dict[str, pd.DataFrame]:
    """denoised_k and pca_k similarity tables (module docstring) plus the full-rank pca (column-centred cosine)."""
    from models import edge_sources as ES

    x = signatures.to_numpy(np.float64)
    mu = x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    out: dict[str, pd.DataFrame] = {}
    for k in ks:
        if k >= len(s):
            continue
        recon = pd.DataFrame(mu + (u[:, :k] * s[:k]) @ vt[:k], index=signatures.index)
        out[f"denoised_{k}"] = ES.similarity(recon, "pearson")
        out[f"pca_{k}"] = ES.similarity(pd.DataFrame(u[:, :k] * s[:k], index=signatures.index), "cosine")
    out["pca_full"] = ES.similarity(pd.DataFrame(u * s, index=signatures.index), "cosine")
    return out


def presence_sources(signatures: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Correlation's two halves on Replogle (a readout a knock-down does not list is 0): `presence` = Pearson of
    the 0/1 listed pattern; `magnitude` = centred cosine of the listed values, each row centred over its
    listed cells, unlisted cells 0 (what the LPM is trained on: values of listed readouts only)."""
    from models import edge_sources as ES

    listed = signatures.ne(0)
    mag = signatures.where(listed)
    mag = mag.sub(mag.mean(axis=1), axis=0).fillna(0.0)
    return {"presence": ES.similarity(listed.astype(np.float64), "pearson"), "magnitude": ES.similarity(mag, "cosine")}


def choose_k(sources: dict[str, pd.DataFrame], refs, ks=KS) -> tuple[int, dict[int, float]]:
    """The rule fixed before scoring: the k whose denoised_k ranks the prior's own pairs best (AUPRC)."""
    from models import edge_sources as ES

    prior_as_truth = ES.EdgeReferences({"prior": refs.prior})
    names = {k: f"denoised_{k}" for k in ks if f"denoised_{k}" in sources}
    rep = scored({ES.CORRELATION: sources[ES.CORRELATION], **{n: sources[n] for n in names.values()}}, prior_as_truth)
    auprc = {k: rep["scores"][n]["prior"]["with_prior"]["auprc"] for k, n in names.items()}
    auprc[0] = rep["scores"][ES.CORRELATION]["prior"]["with_prior"]["auprc"]  # 0 = full rank (raw correlation)
    return max((k for k in auprc if k), key=lambda k: auprc[k]), auprc


def run_lowrank(args) -> dict[str, Any]:
    from models import edge_sources as ES

    t0 = time.perf_counter()
    _, signatures, refs = knockdown_data(_shared(args.shared), args.max_readouts)
    ks = tuple(int(k) for k in args.ks.split(","))
    sources = {ES.CORRELATION: ES.similarity(signatures, "pearson"), **lowrank_sources(signatures, ks),
               **presence_sources(signatures)}
    k, prior_auprc = choose_k(sources, refs, ks)
    rep = scored(sources, refs)
    # How stable is the chosen k's margin? score_edge_sources' own seeded gene sample (max_genes): 80% of
    # the knock-downs per draw, the same genes for every source within a draw.
    pick = {n: sources[n] for n in (ES.CORRELATION, f"denoised_{k}", f"pca_{k}", "presence")}
    draws = []
    for d in range(args.draws):
        sc = scored(pick, refs, max_genes=int(0.8 * len(signatures)), seed=d)["scores"]
        draws.append({n: {r: sc[n][r]["without_prior"]["auprc"] for r in ("CORUM", "STRING")} for n in pick})
    return {"what": "lowrank", "max_readouts": args.max_readouts, "shape": list(signatures.shape), "ks": list(ks),
            "chosen_k": k, "prior_auprc_by_k": prior_auprc, "edges": rep, "draws": draws,
            "seconds": time.perf_counter() - t0}


def lowrank_markdown(res: dict[str, Any]) -> str:
    e, k = res["edges"], res["chosen_k"]
    n_kd, n_col = res["shape"]
    lines = [f"Knock-down signature matrix {n_kd} x {n_col} (context|readout; max_readouts {res['max_readouts']}); "
             f"{e['genes_scored']} genes; k chosen on the prior's pairs: **{k}** "
             f"(prior-pair AUPRC by k: " + ", ".join(f"{'full' if kk == '0' or kk == 0 else kk} {v:.3f}"
                                                      for kk, v in res["prior_auprc_by_k"].items()) + ").", "",
             "| source | k | CORUM AUPRC with prior | CORUM AUROC with prior | CORUM AUPRC without | CORUM AUROC without "
             "| STRING AUPRC with prior | STRING AUROC with prior | STRING AUPRC without | STRING AUROC without |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = (["signature_correlation"] + [f"{p}_{kk}" for p in ("denoised", "pca") for kk in res["ks"]]
             + ["pca_full", "presence", "magnitude"])
    for name in order:
        if name not in e["scores"]:
            continue
        by = e["scores"][name]
        kk = name.split("_")[1] if name.startswith(("denoised_", "pca_")) and name != "pca_full" else "full"
        mark = f"**{name}**" if kk == str(k) else name
        cells = []
        for ref in ("CORUM", "STRING"):
            for part in ("with_prior", "without_prior"):
                cells += [f"{by[ref][part]['auprc']:.4f}", f"{by[ref][part]['auroc']:.3f}"]
        lines.append(f"| {mark} | {kk} | " + " | ".join(cells) + " |")
    if res.get("draws"):
        lines += ["", f"Gene subsamples ({len(res['draws'])} draws of 80% of the knock-downs, seeds 0..; AUPRC without "
                  "prior minus signature correlation's on the same draw):", "",
                  "| source | CORUM mean (sd) | CORUM draws above | STRING mean (sd) | STRING draws above |", "|---|---|---|---|---|"]
        for n in (f"denoised_{k}", f"pca_{k}", "presence"):
            cells = []
            for r in ("CORUM", "STRING"):
                d = np.array([dr[n][r] - dr["signature_correlation"][r] for dr in res["draws"]])
                cells += [f"{d.mean():+.4f} ({d.std(ddof=1):.4f})", f"{int((d > 0).sum())}/{len(d)}"]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    pos = {r: e["scores"]["signature_correlation"][r]["without_prior"]["positives"] for r in ("CORUM", "STRING")}
    lines += ["", f"Positives without prior: CORUM {pos['CORUM']}, STRING {pos['STRING']}. "
              f"Computed in {res['seconds']:.0f} s."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- H-E2


def fill_absent(df: pd.DataFrame) -> pd.DataFrame:
    """The table with every knock-down experiment given every readout of the table: absent ones value 0."""
    kd = df["perturbation_type"] == "CRISPRi"
    exps = df.loc[kd, ["context", "perturbation", "perturbation_type"]].drop_duplicates()
    readouts = pd.DataFrame({"readout": sorted(df["readout"].unique())})
    grid = exps.merge(readouts, how="cross")
    full = grid.merge(df.loc[kd], on=["context", "perturbation", "perturbation_type", "readout"], how="left")
    full["value"] = full["value"].fillna(0.0)
    return pd.concat([df.loc[~kd], full.loc[:, df.columns]], ignore_index=True)


def fit_variant(df: pd.DataFrame, variant: str, seed: int, max_epochs: int, threads: int):
    import torch

    from models.datasets import resources_for
    from models.lpm import LPM
    from models.module import LPMConfig

    torch.set_num_threads(threads)
    if variant in FILLED:
        df, variant = fill_absent(df), FILLED[variant]
    cfg = LPMConfig(max_epochs=max_epochs, **VARIANTS[variant])
    res = resources_for(df, gene_graph=cfg.use_gene_graph)
    held = np.random.default_rng(seed).random(len(df)) < VALID_SHARE
    model = LPM(cfg, side=replace(res.side, context_features=None), seed=seed)
    new_module = model._new_module

    def keep_init(*a, **k):  # the initial weights, exactly as fit drew them
        m = new_module(*a, **k)
        model.research_init_state = copy.deepcopy(m.state_dict())
        return m

    model._new_module = keep_init
    model.fit(df[~held].reset_index(drop=True), df[held].reset_index(drop=True), progress=False, device="cpu")
    del model._new_module
    return model


def initial_embeddings(model, names: list[str]) -> pd.DataFrame:
    """The perturbation embeddings of `names` under the fitted model's initial weights."""
    trained = model.module
    init = copy.deepcopy(trained)
    init.load_state_dict(model.research_init_state)
    model.module = init
    try:
        return model.embeddings("perturbation", names)
    finally:
        model.module = trained


def run_lpm_one(df, signatures, refs, variant: str, seed: int, args) -> dict[str, Any]:
    from models import edge_sources as ES

    t0 = time.perf_counter()
    model = fit_variant(df, variant, seed, args.max_epochs, args.threads)
    fit_s = time.perf_counter() - t0
    pert = model.embeddings("perturbation")
    knockdown = pert.loc[[g for g in signatures.index if g in pert.index]]
    scores = ES.candidate_scores(signatures=signatures, knockdown=knockdown, readout=model.embeddings("readout"))
    # Diagnostics (not candidates of production): a free learned vector starts N(0, 1) per coordinate and
    # moves little in training, so its centred cosine may mostly compare random starts. `lpm_knockdown_init`
    # scores the embeddings under the initial weights, `lpm_knockdown_learned` the trained minus the initial.
    init = initial_embeddings(model, list(knockdown.index))
    scores["lpm_knockdown_init"] = ES.similarity(init, "cosine")
    scores["lpm_knockdown_learned"] = ES.similarity(knockdown - init, "cosine")
    moved = float(np.linalg.norm((knockdown - init).to_numpy()) / np.linalg.norm(init.to_numpy()))
    hist = model.history
    losses = [h.get("valid_loss") for h in hist]
    best = int(np.nanargmin([np.inf if v is None else v for v in losses])) + 1 if losses else None
    return {"what": "lpm", "variant": variant, "seed": seed, "config": VARIANTS[FILLED.get(variant, variant)],
            "max_readouts": args.max_readouts, "max_epochs": args.max_epochs, "epochs_run": len(hist),
            "best_epoch": best, "valid_loss": losses, "knockdown_moved_over_init_norm": moved,
            "fit_seconds": fit_s, "edges": scored(scores, refs),
            "seconds": time.perf_counter() - t0}


def lpm_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | seed | epochs (best) | source | CORUM AUPRC with prior | CORUM AUPRC without | CORUM AUROC without "
             "| STRING AUPRC with prior | STRING AUPRC without | STRING AUROC without | minus correlation, AUPRC without "
             "(CORUM / STRING) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: ([*VARIANTS, *FILLED].index(r["variant"]), r["seed"])):
        sc = r["edges"]["scores"]
        base = sc["signature_correlation"]
        for src in ("signature_correlation", "lpm_knockdown", "lpm_readout", "combined", "lpm_knockdown_init",
                    "lpm_knockdown_learned"):
            if src not in sc:
                continue
            c, s = sc[src]["CORUM"], sc[src]["STRING"]
            d = " / ".join(f"{sc[src][ref]['without_prior']['auprc'] - base[ref]['without_prior']['auprc']:+.4f}"
                           for ref in ("CORUM", "STRING"))
            moved = r.get("knockdown_moved_over_init_norm")
            ep = f"{r['epochs_run']} ({r['best_epoch']})" + (f"; moved {moved:.2f}" if moved is not None else "")
            lines.append(f"| {r['variant']} | {r['seed']} | {ep} | {src} | "
                         f"{c['with_prior']['auprc']:.4f} | {c['without_prior']['auprc']:.4f} | "
                         f"{c['without_prior']['auroc']:.3f} | {s['with_prior']['auprc']:.4f} | "
                         f"{s['without_prior']['auprc']:.4f} | {s['without_prior']['auroc']:.3f} | {d} |")
        if r["edges"]["excluded"]:
            lines.append(f"| {r['variant']} | {r['seed']} | | excluded: "
                         + "; ".join(f"{k} ({v})" for k, v in r["edges"]["excluded"].items()) + " | | | | | | | |")
    return "\n".join(lines)


def lpm_summary(rows: list[dict[str, Any]]) -> str:
    """Per (variant, source): AUPRC without prior per seed on CORUM and STRING, and the mean difference to
    signature correlation (the same on every seed: its pairs and signatures do not depend on the fit)."""
    order = [*VARIANTS, *FILLED]
    seeds = sorted({r["seed"] for r in rows})
    head = " | ".join(f"{ref} s{s}" for ref in ("CORUM", "STRING") for s in seeds)
    lines = [f"| variant | epochs run (best) by seed | source | {head} | mean minus correlation (CORUM / STRING) |",
             "|---|---|---|" + "---|" * (2 * len(seeds)) + "---|"]
    by = {(r["variant"], r["seed"]): r for r in rows}
    for v in order:
        runs = [by.get((v, s)) for s in seeds]
        if not any(runs):
            continue
        ep = ", ".join(f"{r['epochs_run']} ({r['best_epoch']})" if r else "–" for r in runs)
        for src in ("lpm_knockdown", "lpm_readout", "combined", "lpm_knockdown_learned"):
            if not any(r and src in r["edges"]["scores"] for r in runs):
                continue
            cells, diffs = [], {"CORUM": [], "STRING": []}
            for ref in ("CORUM", "STRING"):
                for r in runs:
                    if r is None or src not in r["edges"]["scores"]:
                        cells.append("–")
                        continue
                    sc = r["edges"]["scores"]
                    a = sc[src][ref]["without_prior"]["auprc"]
                    diffs[ref].append(a - sc["signature_correlation"][ref]["without_prior"]["auprc"])
                    cells.append(f"{a:.4f}")
            d = " / ".join(f"{np.mean(diffs[ref]):+.4f}" for ref in ("CORUM", "STRING"))
            lines.append(f"| {v} | {ep} | {src} | " + " | ".join(cells) + f" | {d} |")
    base = next(iter(rows))["edges"]["scores"]["signature_correlation"] if rows else None
    if base:
        lines.append("| (any) | | signature_correlation | " + " | ".join(
            f"{base[ref]['without_prior']['auprc']:.4f}" for ref in ("CORUM", "STRING") for _ in seeds) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("lowrank", "lpm"))
    ap.add_argument("--shared", type=Path, default=None)
    ap.add_argument("--max-readouts", type=int, default=200, help="0 = all shared readouts")
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    ap.add_argument("--draws", type=int, default=20, help="lowrank: gene subsamples for the chosen k's margin")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--store", type=Path, default=None, help="lpm: one JSON per (variant, seed); reused if present")
    ap.add_argument("--table-only", action="store_true", help="lpm: print the table from --store, fit nothing")
    ap.add_argument("--summary", action="store_true", help="lpm: one row per (variant, source), seeds side by side")
    args = ap.parse_args(argv)
    args.max_readouts = args.max_readouts or None
    if args.what == "lowrank":
        res = run_lowrank(args)
        if args.store:
            args.store.mkdir(parents=True, exist_ok=True)
            (args.store / f"lowrank_r{args.max_readouts or 'all'}.json").write_text(json.dumps(res, indent=1))
        print(lowrank_markdown(res))
        return
    rows: list[dict[str, Any]] = []
    if args.store:
        args.store.mkdir(parents=True, exist_ok=True)
    todo = [(v, int(s)) for s in args.seeds.split(",") for v in args.variants.split(",")]
    data = None
    for v, s in todo:
        path = args.store / f"lpm_{v}_s{s}_r{args.max_readouts or 'all'}.json" if args.store else None
        if path is not None and path.exists():
            rows.append(json.loads(path.read_text()))
            continue
        if args.table_only:
            continue
        if data is None:
            data = knockdown_data(_shared(args.shared), args.max_readouts)
        row = run_lpm_one(*data, v, s, args)
        rows.append(row)
        if path is not None:
            path.write_text(json.dumps(row, indent=1))
        print(f"{v} seed {s}: {row['epochs_run']} epochs (best {row['best_epoch']}), {row['fit_seconds']:.0f} s fit",
              flush=True)
    print(lpm_summary(rows) if args.summary else lpm_markdown(rows))


if __name__ == "__main__":
    main()

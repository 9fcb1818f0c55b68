"""SIMULATED default dataset: a small, deterministic world written in the real data's file formats.

A fresh machine has no ../shared/data, yet the main job (ingest -> graph -> LPM -> discoveries)
should run end to end through the *real* readers and produce checkable results. This module writes
such a world. Everything in it is SIMULATED (only gene symbols/Entrez ids and drug structures/
primary targets are real facts); every file says so where its format allows.

The model, in one paragraph
---------------------------
Genes sit in pathway modules (RTK, MAPK, PI3K/mTOR, sterol synthesis, ...; fillers go to named or
anonymous modules). A sparse directed network W (n_genes x n_genes, W[i, j] = effect of regulator
i on target j) links genes mostly inside modules, a few across, with some feedback. A perturbation
is an input vector u on genes; its steady-state response is r = (I - W_c^T)^-1 u, where W_c is W
with each regulator scaled by its activity in context c (a sigmoid of its baseline expression).
A knockdown of g is u = -efficiency * activity_c[g] * e_g. A compound at dose D inhibits each
primary target t by D / (D + IC50_t) (sign flipped for agonists), plus an off-target input that is
a linear function of its Morgan fingerprint (so similar structures act alike), plus a small shared
stress response. Readouts are scaled by a context gain and readout sensitivity, Gaussian noise is
added, and values are clipped to +-10 like L1000 z-scores.

What is written (paths relative to out_dir)
-------------------------------------------
genes/genes_sim.tsv                       gene master table (columns of genes_human.tsv)
l1000/sim_knockdown_level5.gctx           trt_sh / trt_xpr knockdown signatures + ctl_vector
l1000/sim_compounds_level5.gctx           trt_cp signatures at 10 uM and 1 uM + ctl_vehicle (DMSO)
compounds/sim_compoundinfo.tsv            LINCS compoundinfo columns; some target annotations blanked
networks/sim_string_edges.tsv.gz          STRING columns: a part of the true edges + false positives
contexts/sim_cell_line_features.parquet   long table like lincs_cell_line_features.parquet
truth/ground_truth.json                   targets, withheld experiments, modules, knobs (tests only)
truth/edges.tsv                           every true edge, with `in_prior`
truth/sim_withheld_{knockdown,compounds}_level5.gctx   the signatures that were not released
README.md                                 what this is (SIMULATED)

Same seed and knobs -> byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from graph.io.drug_smiles import DRUGS, Drug
from graph.io.gctx import read_gctx, write_gctx

SIMULATED_NOTE = "SIMULATED data written by graph.io.simulated (PerturbGraph default dataset); not real measurements"
MISSING = "-666"  # CMap convention for missing text / integers

# Tissue-flavoured context ids that cannot collide with real cell lines (normalised form, upper case).
CONTEXT_NAMES = ("SIMLUNG1", "SIMBRST1", "SIMCOLN1", "SIMSKIN1", "SIMLIVR1", "SIMBLOD1", "SIMPROS1", "SIMKIDN1")
ANONYMOUS_MODULES = ("MODULE_A", "MODULE_B", "MODULE_C", "MODULE_D")
COMPOUND_DOSES_UM = (10.0, 1.0)

REL_PATHS = {
    "genes": "genes/genes_sim.tsv",
    "knockdown_gctx": "l1000/sim_knockdown_level5.gctx",
    "compound_gctx": "l1000/sim_compounds_level5.gctx",
    "compoundinfo": "compounds/sim_compoundinfo.tsv",
    "string_edges": "networks/sim_string_edges.tsv.gz",
    "cell_line_features": "contexts/sim_cell_line_features.parquet",
    "ground_truth": "truth/ground_truth.json",
    "true_edges": "truth/edges.tsv",
    "withheld_knockdown_gctx": "truth/sim_withheld_knockdown_level5.gctx",
    "withheld_compound_gctx": "truth/sim_withheld_compounds_level5.gctx",
    "readme": "README.md",
}


@dataclass
class SimulatedWorld:
    """What was generated; the same facts are in truth/ground_truth.json for later readers."""

    out_dir: Path
    paths: dict[str, Path]
    genes: pd.DataFrame  # symbol, entrez_id, module (in matrix row order)
    contexts: tuple[str, ...]
    edges: pd.DataFrame  # source, target, weight, in_prior (all true edges)
    compound_targets: dict[str, tuple[str, ...]]  # drug name -> true primary targets
    annotation_withheld: tuple[str, ...]  # drugs whose targets are blank in sim_compoundinfo.tsv
    withheld_compound_pairs: tuple[tuple[str, str], ...]  # (drug name, context) not released
    withheld_knockdown_pairs: tuple[tuple[str, str], ...]  # (gene symbol, context) not released
    knockdown_genes: tuple[str, ...]
    params: dict = field(default_factory=dict)

    @property
    def hidden_edges(self) -> pd.DataFrame:
        return self.edges[~self.edges["in_prior"]].reset_index(drop=True)

    @property
    def prior_edges(self) -> pd.DataFrame:
        return self.edges[self.edges["in_prior"]].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# genes
# ----------------------------------------------------------------------------------------------


def builtin_genes() -> pd.DataFrame:
    """The embedded real human genes: symbol, entrez_id, name, chromosome, map_location, ensembl_id,
    module ('' for fillers). Module genes come first, in pathway order (upstream genes first)."""
    rows = [line.split("\t") for line in _GENES_TSV.strip("\n").split("\n")]
    df = pd.DataFrame(rows, columns=["symbol", "entrez_id", "name", "chromosome", "map_location", "ensembl_id", "module"])
    df["entrez_id"] = df["entrez_id"].astype(np.int64)
    return df


def _select_genes(n_genes: int, rng: np.random.Generator) -> pd.DataFrame:
    """n_genes genes: all drug targets, then other module genes, then fillers, then synthetic SIMG genes."""
    table = builtin_genes()
    targets = {t for d in DRUGS for t in d.targets}
    missing = targets - set(table["symbol"])
    if missing:  # a drug was added without its target gene
        raise ValueError(f"drug targets missing from the built-in gene table: {sorted(missing)}")
    if n_genes < len(targets):
        raise ValueError(f"n_genes must be >= {len(targets)} (the number of drug targets)")
    priority = np.where(table["symbol"].isin(targets), 0, np.where(table["module"] != "", 1, 2))
    order = np.lexsort((np.arange(len(table)), priority))  # stable by priority
    keep = np.sort(order[: min(n_genes, len(table))])  # back to table order
    genes = table.iloc[keep].reset_index(drop=True)
    if n_genes > len(genes):  # synthetic genes with an Entrez range real genes do not use
        k = n_genes - len(genes)
        extra = pd.DataFrame({
            "symbol": [f"SIMG{i + 1:04d}" for i in range(k)],
            "entrez_id": np.arange(990_000_001, 990_000_001 + k, dtype=np.int64),
            "name": ["simulated gene (no real counterpart)"] * k,
            "chromosome": [""] * k, "map_location": [""] * k, "ensembl_id": [""] * k, "module": [""] * k,
        })
        genes = pd.concat([genes, extra], ignore_index=True)
    # Fillers: 60 % join a named pathway, the rest form anonymous modules.
    named = sorted(set(genes["module"]) - {""})
    fill = genes["module"] == ""
    n_fill = int(fill.sum())
    choice = np.where(rng.random(n_fill) < 0.6,
                      rng.choice(np.array(named, dtype=object), n_fill),
                      rng.choice(np.array(ANONYMOUS_MODULES, dtype=object), n_fill))
    genes.loc[fill, "module"] = choice
    return genes


def _gene_table(genes: pd.DataFrame) -> pd.DataFrame:
    """Rows in the column layout of genes/genes_human.tsv."""
    return pd.DataFrame({
        "entrez_id": genes["entrez_id"],
        "symbol": genes["symbol"],
        "name": genes["name"],
        "type": "protein-coding",
        "chromosome": genes["chromosome"],
        "map_location": genes["map_location"],
        "ensembl_id": genes["ensembl_id"],
        "aliases": "",
    }).sort_values("entrez_id", kind="stable")


# ----------------------------------------------------------------------------------------------
# network and response model
# ----------------------------------------------------------------------------------------------


def _network(genes: pd.DataFrame, rng: np.random.Generator, p_within: float, cross_ratio: float,
             feedback_ratio: float, max_inflow: float = 0.9) -> np.ndarray:
    """Sparse directed weights W (n, n). Inside a module genes are ordered (upstream first): each
    gene gets one parent from earlier genes plus further earlier parents with prob p_within. Then
    cross-module edges (cross_ratio x within count) and feedback edges (backwards, mostly negative).
    Each gene's incoming |weights| are capped at 0.9 so responses stay bounded."""
    n = len(genes)
    W = np.zeros((n, n))
    modules = genes["module"].to_numpy()

    def weight(k: int, p_pos: float = 0.65) -> np.ndarray:
        return np.where(rng.random(k) < p_pos, 1.0, -1.0) * rng.uniform(0.35, 0.9, k)

    for m in sorted(set(modules)):
        idx = np.flatnonzero(modules == m)
        for pos in range(1, len(idx)):
            j = idx[pos]
            parents = idx[:pos][rng.random(pos) < p_within]
            # the first gene of a module is its main regulator; keep modules connected through it
            first = idx[0] if pos < 4 or rng.random() < 0.3 else idx[rng.integers(0, pos)]
            parents = np.union1d(parents, [first])
            W[parents, j] = weight(len(parents))
        # every gene regulates at least two others in its module (feedback where it is last in order)
        for pos, i in enumerate(idx):
            missing = 2 - int((W[i, idx] != 0).sum())
            if missing > 0 and len(idx) > 2:
                pool = idx[pos + 1:] if len(idx) - pos - 1 >= missing else np.setdiff1d(idx, [i])
                pool = pool[W[pool, i] == 0] if len(pool) > missing else pool
                for j in rng.choice(pool, min(missing, len(pool)), replace=False):
                    W[i, j] = weight(1)[0]
    n_within = int((W != 0).sum())
    for _ in range(int(cross_ratio * n_within)):
        i, j = rng.integers(0, n, 2)
        if i != j and modules[i] != modules[j] and W[i, j] == 0 and W[j, i] == 0:
            W[i, j] = weight(1)[0]
    for _ in range(int(feedback_ratio * n_within)):
        i, j = rng.integers(0, n, 2)
        if i != j and W[i, j] == 0 and W[j, i] != 0:
            W[i, j] = weight(1, p_pos=0.2)[0] * 0.7
    inflow = np.abs(W).sum(axis=0)
    W = W / np.maximum(1.0, inflow / max_inflow)[None, :]
    rho = np.abs(np.linalg.eigvals(W)).max()  # keep (I - W^T) well conditioned despite feedback
    return W * min(1.0, 0.8 / rho) if rho > 0 else W


def _contexts(genes: pd.DataFrame, n_contexts: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-context baselines (n_contexts, n_genes): log-scale RNA-seq expression, activity in (0, 1),
    readout sensitivity and a scalar gain. Modules are switched up/down per context (tissue programs)."""
    n = len(genes)
    modules = genes["module"].to_numpy()
    mods = sorted(set(modules))
    gene_mean = np.clip(rng.normal(6.5, 1.8, n), 1.0, 13.0)
    mod_shift = rng.normal(0.0, 1.3, (n_contexts, len(mods)))
    mod_idx = np.searchsorted(mods, modules)
    rnaseq = gene_mean[None, :] + mod_shift[:, mod_idx] + rng.normal(0.0, 0.9, (n_contexts, n))
    rnaseq = np.clip(rnaseq, 0.0, 15.0)
    activity = 1.0 / (1.0 + np.exp(-(rnaseq - 4.0) / 0.8))
    return {
        "rnaseq": rnaseq,
        "activity": activity,
        "sensitivity": 0.35 + 0.65 * activity,
        "gain": rng.uniform(0.8, 1.2, n_contexts),
        "copy_number": rng.normal(0.0, 0.3, (n_contexts, n)),
        "affx": 3.0 + 0.6 * rnaseq + rng.normal(0.0, 0.5, (n_contexts, n)),
    }


def _propagators(W: np.ndarray, activity: np.ndarray) -> np.ndarray:
    """(n_contexts, n, n) matrices P_c = (I - W_c^T)^-1 with W_c = diag(activity_c) W."""
    n = W.shape[0]
    return np.stack([np.linalg.inv(np.eye(n) - (a[:, None] * W).T) for a in activity])


def _morgan_bits(smiles: str, n_bits: int = 1024) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    mol = Chem.MolFromSmiles(smiles)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)
    return gen.GetFingerprintAsNumPy(mol).astype(np.float64)


def canonical_smiles_and_inchikey(smiles: str) -> tuple[str, str]:
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol), Chem.MolToInchiKey(mol)


# ----------------------------------------------------------------------------------------------
# GCTX writing: the shared writer, plus file attributes that mark the data as simulated
# ----------------------------------------------------------------------------------------------


def _write_gctx(path: Path, matrix: np.ndarray, row_meta: pd.DataFrame, col_meta: pd.DataFrame,
                attrs: dict[str, str]) -> None:
    """graph.io.gctx.write_gctx (GCTX 1.0, no timestamps -> same bytes for same input), then
    root attributes such as simulated="true" (readers ignore unknown attributes)."""
    write_gctx(path, np.asarray(matrix, dtype=np.float32), row_meta, col_meta)
    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = np.bytes_(v.encode("ascii"))


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------


def _rng(seed: int, part: int) -> np.random.Generator:
    """Independent stream per component, so one knob does not reshuffle everything else."""
    return np.random.default_rng([seed, part])


def _withhold(items: list[str], contexts: tuple[str, ...], frac: float, rng: np.random.Generator,
              min_measured: int = 2) -> set[tuple[str, str]]:
    """(item, context) pairs held back; every item keeps >= min_measured measured contexts."""
    out: set[tuple[str, str]] = set()
    max_hold = max(0, len(contexts) - min_measured)
    for it in items:
        k = min(max_hold, rng.binomial(len(contexts), frac))
        for c in rng.choice(len(contexts), k, replace=False):
            out.add((it, contexts[int(c)]))
    return out


def _drug_sign(drug: Drug) -> float:
    moa = drug.moa.lower()
    return 1.0 if ("agonist" in moa or "activator" in moa) and "antagonist" not in moa else -1.0


def generate_default_dataset(
    out_dir: Path | str,
    *,
    seed: int = 0,
    n_genes: int = 300,
    n_contexts: int = 5,
    knockdown_fraction: float = 0.5,
    withhold_knockdown_fraction: float = 0.1,
    withhold_compound_fraction: float = 0.15,
    prior_fraction: float = 0.5,
    false_prior_ratio: float = 0.3,
    annotation_withheld_fraction: float = 0.15,
    noise_sd: float = 1.0,
    signal_scale: float = 10.0,
    offtarget_scale: float = 1.0,
    stress_scale: float = 0.5,
    p_within: float = 0.12,
    max_inflow: float = 1.8,
    crispr_contexts: int = 1,
    controls_per_context: int = 2,
) -> SimulatedWorld:
    """Write the SIMULATED default dataset into out_dir and return what was generated.

    Knobs: n_genes (>= number of drug targets, 41); n_contexts (<= 8); knockdown_fraction of the
    non-target genes get knockdowns (targets always do); the last `crispr_contexts` contexts use
    CRISPR (trt_xpr, stronger) instead of shRNA; withhold_* fractions of (perturbation, context)
    pairs are kept out of the released GCTX and written under truth/; prior_fraction of the true
    (undirected) edges go to the STRING-like prior, plus false_prior_ratio x that many false edges;
    annotation_withheld_fraction of drugs have blank targets in the compound table; noise_sd is the
    measurement noise in z units; signal_scale, offtarget_scale, stress_scale set effect sizes.
    """
    out_dir = Path(out_dir)
    if not 1 <= n_contexts <= len(CONTEXT_NAMES):
        raise ValueError(f"n_contexts must be in 1..{len(CONTEXT_NAMES)}")
    contexts = CONTEXT_NAMES[:n_contexts]
    params = {k: v for k, v in locals().items() if k not in {"out_dir", "contexts"}}

    genes = _select_genes(n_genes, _rng(seed, 1))
    n = len(genes)
    sym = genes["symbol"].to_numpy()
    gidx = {s: i for i, s in enumerate(sym)}
    W = _network(genes, _rng(seed, 2), p_within=p_within, cross_ratio=0.15, feedback_ratio=0.05,
                 max_inflow=max_inflow)
    ctx = _contexts(genes, n_contexts, _rng(seed, 3))
    P = _propagators(W, ctx["activity"])  # (C, n, n)

    def respond(c: int, u: np.ndarray) -> np.ndarray:
        """Noise-free readout (n,) of input u (n,) in context c."""
        return signal_scale * ctx["gain"][c] * ctx["sensitivity"][c] * (P[c] @ u)

    noise_rng = _rng(seed, 4)

    def measure(x: np.ndarray) -> np.ndarray:
        return np.clip(x + noise_rng.normal(0.0, noise_sd, x.shape), -10.0, 10.0)

    # --- knockdowns -----------------------------------------------------------------------------
    kd_rng = _rng(seed, 5)
    targets = sorted({t for d in DRUGS for t in d.targets})
    others = [s for s in sym if s not in set(targets)]
    n_other = int(round(knockdown_fraction * len(others)))
    kd_genes = sorted(set(targets) | set(kd_rng.choice(np.array(others, dtype=object), n_other, replace=False)),
                      key=lambda s: gidx[s])
    kd_withheld = _withhold(kd_genes, contexts, withhold_knockdown_fraction, kd_rng)
    shrna_eff = np.clip(kd_rng.normal(0.7, 0.1, len(kd_genes)), 0.4, 0.9)  # one hairpin per gene
    kd_cols, kd_mat, kd_hold_cols, kd_hold_mat = [], [], [], []
    for c, cname in enumerate(contexts):
        crispr = c >= n_contexts - crispr_contexts
        for k, g in enumerate(kd_genes):
            u = np.zeros(n)
            u[gidx[g]] = -(0.95 if crispr else shrna_eff[k]) * ctx["activity"][c, gidx[g]]
            x = measure(respond(c, u))
            ptype = "trt_xpr" if crispr else "trt_sh"
            pid = f"SIM{'XPR' if crispr else 'SH'}_{g}"
            meta = {"id": f"SIMKD_{cname}_96H:{pid}", "cell_id": cname, "pert_id": pid, "pert_idose": MISSING,
                    "pert_iname": g, "pert_itime": "96 h", "pert_type": ptype}
            (kd_hold_cols if (g, cname) in kd_withheld else kd_cols).append(meta)
            (kd_hold_mat if (g, cname) in kd_withheld else kd_mat).append(x)
        for r in range(controls_per_context):
            kd_cols.append({"id": f"SIMKD_{cname}_96H:EMPTY_VECTOR:{r + 1}", "cell_id": cname, "pert_id": "EMPTY_VECTOR",
                            "pert_idose": MISSING, "pert_iname": "EMPTY_VECTOR", "pert_itime": "96 h",
                            "pert_type": "ctl_vector"})
            kd_mat.append(measure(np.zeros(n)))

    # --- compounds ------------------------------------------------------------------------------
    cp_rng = _rng(seed, 6)
    fps = np.stack([_morgan_bits(d.smiles) for d in DRUGS])
    fps -= fps.mean(axis=0, keepdims=True)  # centred: bits every drug shares carry no specificity
    fps /= np.linalg.norm(fps, axis=1, keepdims=True)
    # off-target input: linear in the fingerprint, sparse over genes -> similar structures, similar inputs
    R = cp_rng.normal(0.0, 1.0, (fps.shape[1], n)) * (cp_rng.random((fps.shape[1], n)) < 0.05)
    off = fps @ R  # (n_drugs, n); cosine between rows ~ cosine between fingerprints
    off *= offtarget_scale / np.linalg.norm(off, axis=1, keepdims=True)  # same input norm for every drug
    stress_u = np.zeros(n)  # shared stress program: inputs on proteostasis / DNA-damage genes
    for s in ("ATF4", "DDIT3", "HSPA1A", "TP53", "CDKN1A", "GADD45A"):
        if s in gidx:
            stress_u[gidx[s]] = 1.0
    toxicity = cp_rng.uniform(0.0, 1.0, len(DRUGS))
    log_ic50 = {(d.name, t): cp_rng.uniform(-2.0, -0.7) for d in DRUGS for t in d.targets}  # log10 uM
    cp_withheld = _withhold([d.name for d in DRUGS], contexts, withhold_compound_fraction, cp_rng)
    ann_withheld = set(cp_rng.choice(np.array([d.name for d in DRUGS], dtype=object),
                                     int(round(annotation_withheld_fraction * len(DRUGS))), replace=False))
    pert_ids = {d.name: f"SIMCP{i + 1:04d}" for i, d in enumerate(DRUGS)}
    cp_cols, cp_mat, cp_hold_cols, cp_hold_mat = [], [], [], []
    for c, cname in enumerate(contexts):
        for k, d in enumerate(DRUGS):
            for dose in COMPOUND_DOSES_UM:
                u = np.zeros(n)
                for t in d.targets:
                    inhib = dose / (dose + 10 ** log_ic50[(d.name, t)])
                    u[gidx[t]] += _drug_sign(d) * 0.95 * inhib * ctx["activity"][c, gidx[t]]
                dose_frac = dose / (dose + 3.0)  # off-target and stress need high doses
                u += -dose_frac * off[k] + stress_scale * toxicity[k] * dose_frac * stress_u
                x = measure(respond(c, u))
                dose_txt = f"{dose:g} uM"
                meta = {"id": f"SIMCP_{cname}_24H:{pert_ids[d.name]}:{dose:g}", "cell_id": cname,
                        "pert_id": pert_ids[d.name], "pert_idose": dose_txt, "pert_iname": d.name,
                        "pert_itime": "24 h", "pert_type": "trt_cp"}
                hold = (d.name, cname) in cp_withheld
                (cp_hold_cols if hold else cp_cols).append(meta)
                (cp_hold_mat if hold else cp_mat).append(x)
        for r in range(controls_per_context):
            cp_cols.append({"id": f"SIMCP_{cname}_24H:DMSO:{r + 1}", "cell_id": cname, "pert_id": "DMSO",
                            "pert_idose": MISSING, "pert_iname": "DMSO", "pert_itime": "24 h", "pert_type": "ctl_vehicle"})
            cp_mat.append(measure(np.zeros(n)))

    # --- write ----------------------------------------------------------------------------------
    paths = {k: out_dir / v for k, v in REL_PATHS.items()}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    attrs = {"src": SIMULATED_NOTE, "simulated": "true", "seed": str(seed)}
    row_meta = pd.DataFrame({"id": genes["entrez_id"].astype(str), "pr_gene_id": genes["entrez_id"].astype(np.int64),
                             "pr_gene_symbol": genes["symbol"], "pr_gene_title": genes["name"],
                             "pr_is_lm": np.ones(n, dtype=np.int64)})
    for key, cols, mat in (("knockdown_gctx", kd_cols, kd_mat), ("compound_gctx", cp_cols, cp_mat),
                           ("withheld_knockdown_gctx", kd_hold_cols, kd_hold_mat),
                           ("withheld_compound_gctx", cp_hold_cols, cp_hold_mat)):
        matrix = np.stack(mat) if mat else np.zeros((0, n))
        col_meta = pd.DataFrame(cols, columns=["id", "cell_id", "pert_id", "pert_idose", "pert_iname", "pert_itime", "pert_type"])
        _write_gctx(paths[key], matrix, row_meta, col_meta, attrs)

    _write_text(paths["genes"], _gene_table(genes).to_csv(sep="\t", index=False, lineterminator="\n"))
    _write_text(paths["compoundinfo"], _compound_table(pert_ids, ann_withheld).to_csv(sep="\t", index=False, lineterminator="\n"))

    edges = _edge_table(W, genes)
    prior_rng = _rng(seed, 7)
    pairs = edges[["a", "b"]].drop_duplicates().to_numpy()
    in_prior_pair = prior_rng.random(len(pairs)) < prior_fraction
    prior_set = {(int(a), int(b)) for (a, b), keep in zip(pairs, in_prior_pair, strict=True) if keep}
    edges["in_prior"] = [(int(a), int(b)) in prior_set for a, b in zip(edges["a"], edges["b"], strict=True)]
    string = _string_table(edges, genes, W, prior_set, false_prior_ratio, prior_rng)
    _write_bytes(paths["string_edges"], _gzip(string.to_csv(sep="\t", index=False, lineterminator="\n").encode()))

    _cell_line_features(genes, contexts, ctx).to_parquet(paths["cell_line_features"], index=False, compression="zstd")

    true_edges = edges[["source", "target", "source_entrez", "target_entrez", "weight", "source_module",
                        "target_module", "in_prior"]]
    _write_text(paths["true_edges"], true_edges.to_csv(sep="\t", index=False, lineterminator="\n", float_format="%.6f"))
    world = SimulatedWorld(
        out_dir=out_dir, paths=paths, genes=genes[["symbol", "entrez_id", "module"]].copy(), contexts=contexts,
        edges=true_edges[["source", "target", "weight", "in_prior"]].reset_index(drop=True),
        compound_targets={d.name: d.targets for d in DRUGS}, annotation_withheld=tuple(sorted(ann_withheld)),
        withheld_compound_pairs=tuple(sorted(cp_withheld)), withheld_knockdown_pairs=tuple(sorted(kd_withheld)),
        knockdown_genes=tuple(kd_genes), params=params,
    )
    truth = {
        "simulated": True,
        "note": SIMULATED_NOTE,
        "params": params,
        "contexts": list(contexts),
        "crispr_contexts": list(contexts[n_contexts - crispr_contexts:]) if crispr_contexts else [],
        "knockdown_genes": list(kd_genes),
        "compound_targets": {d.name: list(d.targets) for d in DRUGS},
        "compound_pert_ids": pert_ids,
        "compound_direction": {d.name: _drug_sign(d) for d in DRUGS},  # -1 inhibits, +1 activates
        "annotation_withheld": sorted(ann_withheld),
        "withheld_compound_pairs": [list(p) for p in sorted(cp_withheld)],
        "withheld_knockdown_pairs": [list(p) for p in sorted(kd_withheld)],
        "modules": dict(zip(genes["symbol"], genes["module"], strict=True)),
        "n_true_edges": int(len(edges)),
        "n_prior_true_edges": int(edges["in_prior"].sum()),
        "n_hidden_edges": int((~edges["in_prior"]).sum()),
        "n_prior_false_edges": int(len(string) - len(prior_set)),
    }
    _write_text(paths["ground_truth"], json.dumps(truth, indent=1, sort_keys=True) + "\n")
    _write_text(paths["readme"], _readme(world, truth))
    return world


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as fh:  # no name/time in header
        fh.write(data)
    return buf.getvalue()


def _compound_table(pert_ids: dict[str, str], ann_withheld: set[str]) -> pd.DataFrame:
    """LINCS compoundinfo columns; targets '|'-joined; blank target/moa for annotation-withheld drugs."""
    rows = []
    for d in DRUGS:
        smi, key = canonical_smiles_and_inchikey(d.smiles)
        hidden = d.name in ann_withheld
        rows.append({
            "pert_id": pert_ids[d.name], "cmap_name": d.name,
            "target": "" if hidden else "|".join(d.targets), "moa": "" if hidden else d.moa,
            "canonical_smiles": smi, "inchi_key": key, "compound_aliases": "",
            "target_merged": "" if hidden else "|".join(d.targets), "moa_merged": "" if hidden else d.moa,
            "pubchem_cid": "", "chembl_id": "", "drugbank_id": "", "max_phase": "",
        })
    return pd.DataFrame(rows)


def _edge_table(W: np.ndarray, genes: pd.DataFrame) -> pd.DataFrame:
    """All true directed edges with an undirected pair key (a < b as matrix indices)."""
    i, j = np.nonzero(W)
    sym, ent, mod = genes["symbol"].to_numpy(), genes["entrez_id"].to_numpy(), genes["module"].to_numpy()
    return pd.DataFrame({
        "source": sym[i], "target": sym[j], "source_entrez": ent[i], "target_entrez": ent[j],
        "weight": W[i, j], "source_module": mod[i], "target_module": mod[j],
        "a": np.minimum(i, j), "b": np.maximum(i, j),
    })


STRING_CHANNELS = ("neighborhood", "neighborhood_transferred", "fusion", "cooccurence", "homology", "coexpression",
                   "coexpression_transferred", "experiments", "experiments_transferred", "database",
                   "database_transferred")


def _string_table(edges: pd.DataFrame, genes: pd.DataFrame, W: np.ndarray, prior_set: set[tuple[int, int]],
                  false_ratio: float, rng: np.random.Generator) -> pd.DataFrame:
    """STRING-like undirected edges: the prior part of the truth (scores rise with |weight|) plus
    false positives (half inside a module, like real co-annotation errors; lower scores on average)."""
    n = len(genes)
    modules = genes["module"].to_numpy()
    strength = np.abs(W) + np.abs(W.T)
    true_pairs = {(int(a), int(b)) for a, b in zip(edges["a"], edges["b"], strict=True)}
    pairs = sorted(prior_set)
    # true: ~800 on average (most pass the usual 700 cut); false: uniform 400-799 (a quarter pass it)
    scores = [int(np.clip(600 + 400 * min(1.0, strength[a, b]) + rng.normal(0, 80), 400, 999)) for a, b in pairs]
    n_false = int(round(false_ratio * len(pairs)))
    false: list[tuple[int, int]] = []
    while len(false) < n_false:
        a = int(rng.integers(0, n))
        if rng.random() < 0.5:
            same = np.flatnonzero(modules == modules[a])
            b = int(rng.choice(same))
        else:
            b = int(rng.integers(0, n))
        key = (min(a, b), max(a, b))
        if a != b and key not in true_pairs and key not in false:
            false.append(key)
    scores += [int(rng.integers(400, 800)) for _ in false]
    all_pairs = pairs + false
    sym, ent = genes["symbol"].to_numpy(), genes["entrez_id"].to_numpy()
    df = pd.DataFrame({
        "entrez_a": [int(ent[a]) for a, _ in all_pairs], "entrez_b": [int(ent[b]) for _, b in all_pairs],
        "symbol_a": [sym[a] for a, _ in all_pairs], "symbol_b": [sym[b] for _, b in all_pairs],
    })
    # per-channel evidence: the combined score comes mostly from curated databases and experiments
    combined = np.array(scores)
    for ch in STRING_CHANNELS:
        df[ch] = 0
    df["database"] = np.where(rng.random(len(df)) < 0.6, combined, 0)
    df["experiments"] = (combined * rng.uniform(0.2, 0.9, len(df))).astype(int)
    df["coexpression"] = (combined * rng.uniform(0.0, 0.3, len(df))).astype(int)
    df["combined_score"] = combined
    order = rng.permutation(len(df))  # do not leak truth through row order
    return df.iloc[order].reset_index(drop=True)


def _cell_line_features(genes: pd.DataFrame, contexts: tuple[str, ...], ctx: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table like lincs_cell_line_features.parquet (float32 values, categorical ids)."""
    C, n = ctx["rnaseq"].shape
    cn = ctx["copy_number"].astype(np.float32).copy()
    cn[np.abs(cn) < 0.05] = np.nan  # the real table is missing many copy-number values
    return pd.DataFrame({
        "cell_id": pd.Categorical(np.repeat(np.array(contexts), n)),
        "gene_symbol": pd.Categorical(np.tile(genes["symbol"].to_numpy(), C)),
        "basex_affx": np.round(ctx["affx"], 2).astype(np.float32).ravel(),
        "basex_rnaseq": np.round(ctx["rnaseq"], 2).astype(np.float32).ravel(),
        "copy_number": np.round(cn, 2).ravel(),
        "is_expressed": pd.array((ctx["rnaseq"] > 4.0).ravel(), dtype="boolean"),
    })


def _readme(world: SimulatedWorld, truth: dict) -> str:
    lines = [
        "# SIMULATED PerturbGraph default dataset",
        "",
        f"{SIMULATED_NOTE}.",
        "",
        "Written by `graph.io.simulated.generate_default_dataset` so a machine without real data can run the whole",
        "pipeline. Gene symbols / Entrez ids and drug structures / primary targets are real facts; every",
        "measurement, network edge, score, cell line ('SIM...') and feature value is SIMULATED.",
        "See docs/default-dataset.md in the repository for the model.",
        "",
        f"- seed: {world.params['seed']}; genes: {len(world.genes)}; contexts: {', '.join(world.contexts)}",
        f"- knockdown genes: {len(world.knockdown_genes)}; drugs: {len(world.compound_targets)}",
        f"- true edges: {truth['n_true_edges']} ({truth['n_prior_true_edges']} in the STRING-like prior, "
        f"{truth['n_hidden_edges']} hidden)",
        f"- withheld (drug, context) pairs: {len(world.withheld_compound_pairs)}; withheld (gene, context) "
        f"knockdowns: {len(world.withheld_knockdown_pairs)}; drugs with blank target annotation: "
        f"{len(world.annotation_withheld)}",
        "",
        "Files:",
        "",
    ]
    lines += [f"- `{v}`" for k, v in REL_PATHS.items() if k != "readme"]
    lines += ["", "`truth/` is the hidden answer key: do not ingest it; tests and benchmarks read it.", ""]
    return "\n".join(lines)


def read_ground_truth(out_dir: Path | str) -> dict:
    """truth/ground_truth.json plus truth/edges.tsv (as 'edges' DataFrame)."""
    out_dir = Path(out_dir)
    truth = json.loads((out_dir / REL_PATHS["ground_truth"]).read_text())
    truth["edges"] = pd.read_csv(out_dir / REL_PATHS["true_edges"], sep="\t")
    return truth


# Real human genes (NCBI Gene 2022-09-12 facts: symbol, Entrez id, name (truncated), chromosome,
# map location, first Ensembl id) and the simulation's pathway module ('' = filler, assigned at
# random). Module genes are listed upstream-first; the fillers are L1000 landmark genes.
_GENES_TSV = """
EGFR	1956	epidermal growth factor receptor	7	7p11.2	ENSG00000146648	RTK
ERBB2	2064	erb-b2 receptor tyrosine kinase 2	17	17q12	ENSG00000141736	RTK
ERBB3	2065	erb-b2 receptor tyrosine kinase 3	12	12q13.2	ENSG00000065361	RTK
MET	4233	MET proto-oncogene, receptor tyrosine kinase	7	7q31.2	ENSG00000105976	RTK
ALK	238	ALK receptor tyrosine kinase	2	2p23.2-p23.1	ENSG00000171094	RTK
KDR	3791	kinase insert domain receptor	4	4q12	ENSG00000128052	RTK
KIT	3815	KIT proto-oncogene, receptor tyrosine kinase	4	4q12	ENSG00000157404	RTK
ABL1	25	ABL proto-oncogene 1, non-receptor tyrosine kinase	9	9q34.12	ENSG00000097007	RTK
SRC	6714	SRC proto-oncogene, non-receptor tyrosine kinase	20	20q11.23	ENSG00000197122	RTK
GRB2	2885	growth factor receptor bound protein 2	17	17q25.1	ENSG00000177885	RTK
SOS1	6654	SOS Ras/Rac guanine nucleotide exchange factor 1	2	2p22.1	ENSG00000115904	RTK
SHC1	6464	SHC adaptor protein 1	1	1q21.3	ENSG00000160691	RTK
PTPN11	5781	protein tyrosine phosphatase non-receptor type 11	12	12q24.13	ENSG00000179295	RTK
CBL	867	Cbl proto-oncogene	11	11q23.3	ENSG00000110395	RTK
AREG	374	amphiregulin	4	4q13.3	ENSG00000109321	RTK
EREG	2069	epiregulin	4	4q13.3	ENSG00000124882	RTK
BRAF	673	B-Raf proto-oncogene, serine/threonine kinase	7	7q34	ENSG00000157764	MAPK
RAF1	5894	Raf-1 proto-oncogene, serine/threonine kinase	3	3p25.2	ENSG00000132155	MAPK
MAP2K1	5604	mitogen-activated protein kinase kinase 1	15	15q22.31	ENSG00000169032	MAPK
MAP2K2	5605	mitogen-activated protein kinase kinase 2	19	19p13.3	ENSG00000126934	MAPK
MAPK1	5594	mitogen-activated protein kinase 1	22	22q11.22	ENSG00000100030	MAPK
MAPK3	5595	mitogen-activated protein kinase 3	16	16p11.2	ENSG00000102882	MAPK
DUSP6	1848	dual specificity phosphatase 6	12	12q21.33	ENSG00000139318	MAPK
DUSP4	1846	dual specificity phosphatase 4	8	8p12	ENSG00000120875	MAPK
ETV4	2118	ETS variant transcription factor 4	17	17q21.31	ENSG00000175832	MAPK
ETV5	2119	ETS variant transcription factor 5	3	3q27.2	ENSG00000244405	MAPK
SPRY2	10253	sprouty RTK signaling antagonist 2	13	13q31.1	ENSG00000136158	MAPK
SPRY4	81848	sprouty RTK signaling antagonist 4	5	5q31.3	ENSG00000187678	MAPK
FOS	2353	Fos proto-oncogene, AP-1 transcription factor subunit	14	14q24.3	ENSG00000170345	MAPK
FOSL1	8061	FOS like 1, AP-1 transcription factor subunit	11	11q13.1	ENSG00000175592	MAPK
EGR1	1958	early growth response 1	5	5q31.2	ENSG00000120738	MAPK
ELK1	2002	ETS transcription factor ELK1	X	Xp11.23	ENSG00000126767	MAPK
IER3	8870	immediate early response 3	6	6p21.33	ENSG00000137331	MAPK
PHLDA1	22822	pleckstrin homology like domain family A member 1	12	12q21.2	ENSG00000139289	MAPK
PIK3CA	5290	phosphatidylinositol-4,5-bisphosphate 3-kinase catalytic sub	3	3q26.32	ENSG00000121879	PI3K_MTOR
PIK3R1	5295	phosphoinositide-3-kinase regulatory subunit 1	5	5q13.1	ENSG00000145675	PI3K_MTOR
AKT1	207	AKT serine/threonine kinase 1	14	14q32.33	ENSG00000142208	PI3K_MTOR
MTOR	2475	mechanistic target of rapamycin kinase	1	1p36.22	ENSG00000198793	PI3K_MTOR
RPTOR	57521	regulatory associated protein of MTOR complex 1	17	17q25.3	ENSG00000141564	PI3K_MTOR
RICTOR	253260	RPTOR independent companion of MTOR complex 2	5	5p13.1	ENSG00000164327	PI3K_MTOR
RPS6KB1	6198	ribosomal protein S6 kinase B1	17	17q23.1	ENSG00000108443	PI3K_MTOR
EIF4EBP1	1978	eukaryotic translation initiation factor 4E binding protein 	8	8p11.23	ENSG00000187840	PI3K_MTOR
PTEN	5728	phosphatase and tensin homolog	10	10q23.31	ENSG00000171862	PI3K_MTOR
TSC2	7249	TSC complex subunit 2	16	16p13.3	ENSG00000103197	PI3K_MTOR
RHEB	6009	Ras homolog, mTORC1 binding	7	7q36.1	ENSG00000106615	PI3K_MTOR
RPS6	6194	ribosomal protein S6	9	9p22.1	ENSG00000137154	PI3K_MTOR
HIF1A	3091	hypoxia inducible factor 1 subunit alpha	14	14q23.2	ENSG00000100644	PI3K_MTOR
VEGFA	7422	vascular endothelial growth factor A	6	6p21.1	ENSG00000112715	PI3K_MTOR
SLC2A1	6513	solute carrier family 2 member 1	1	1p34.2	ENSG00000117394	PI3K_MTOR
DDIT4	54541	DNA damage inducible transcript 4	10	10q22.1	ENSG00000168209	PI3K_MTOR
JAK1	3716	Janus kinase 1	1	1p31.3	ENSG00000162434	JAK_STAT
JAK2	3717	Janus kinase 2	9	9p24.1	ENSG00000096968	JAK_STAT
JAK3	3718	Janus kinase 3	19	19p13.11	ENSG00000105639	JAK_STAT
STAT1	6772	signal transducer and activator of transcription 1	2	2q32.2	ENSG00000115415	JAK_STAT
STAT3	6774	signal transducer and activator of transcription 3	17	17q21.2	ENSG00000168610	JAK_STAT
STAT5A	6776	signal transducer and activator of transcription 5A	17	17q21.2	ENSG00000126561	JAK_STAT
SOCS3	9021	suppressor of cytokine signaling 3	17	17q25.3	ENSG00000184557	JAK_STAT
SOCS1	8651	suppressor of cytokine signaling 1	16	16p13.13	ENSG00000185338	JAK_STAT
IRF1	3659	interferon regulatory factor 1	5	5q31.1	ENSG00000125347	JAK_STAT
CISH	1154	cytokine inducible SH2 containing protein	3	3p21.2	ENSG00000114737	JAK_STAT
IL6ST	3572	interleukin 6 cytokine family signal transducer	5	5q11.2	ENSG00000134352	JAK_STAT
IFIT1	3434	interferon induced protein with tetratricopeptide repeats 1	10	10q23.31	ENSG00000185745	JAK_STAT
ISG15	9636	ISG15 ubiquitin like modifier	1	1p36.33	ENSG00000187608	JAK_STAT
MX1	4599	MX dynamin like GTPase 1	21	21q22.3	ENSG00000157601	JAK_STAT
CDK4	1019	cyclin dependent kinase 4	12	12q14.1	ENSG00000135446	CELL_CYCLE
CDK6	1021	cyclin dependent kinase 6	7	7q21.2	ENSG00000105810	CELL_CYCLE
CCND1	595	cyclin D1	11	11q13.3	ENSG00000110092	CELL_CYCLE
RB1	5925	RB transcriptional corepressor 1	13	13q14.2	ENSG00000139687	CELL_CYCLE
E2F1	1869	E2F transcription factor 1	20	20q11.22	ENSG00000101412	CELL_CYCLE
CCNE1	898	cyclin E1	19	19q12	ENSG00000105173	CELL_CYCLE
CDK2	1017	cyclin dependent kinase 2	12	12q13.2	ENSG00000123374	CELL_CYCLE
CDKN2A	1029	cyclin dependent kinase inhibitor 2A	9	9p21.3	ENSG00000147889	CELL_CYCLE
MCM2	4171	minichromosome maintenance complex component 2	3	3q21.3	ENSG00000073111	CELL_CYCLE
MCM3	4172	minichromosome maintenance complex component 3	6	6p12.2	ENSG00000112118	CELL_CYCLE
PCNA	5111	proliferating cell nuclear antigen	20	20p12.3	ENSG00000132646	CELL_CYCLE
CCNA2	890	cyclin A2	4	4q27	ENSG00000145386	CELL_CYCLE
CCNB1	891	cyclin B1	5	5q13.2	ENSG00000134057	CELL_CYCLE
PLK1	5347	polo like kinase 1	16	16p12.2	ENSG00000166851	CELL_CYCLE
AURKA	6790	aurora kinase A	20	20q13.2	ENSG00000087586	CELL_CYCLE
BUB1	699	BUB1 mitotic checkpoint serine/threonine kinase	2	2q13	ENSG00000169679	CELL_CYCLE
CDC20	991	cell division cycle 20	1	1p34.2	ENSG00000117399	CELL_CYCLE
MKI67	4288	marker of proliferation Ki-67	10	10q26.2	ENSG00000148773	CELL_CYCLE
HDAC1	3065	histone deacetylase 1	1	1p35.2-p35.1	ENSG00000116478	CHROMATIN
HDAC2	3066	histone deacetylase 2	6	6q21	ENSG00000196591	CHROMATIN
HDAC3	8841	histone deacetylase 3	5	5q31.3	ENSG00000171720	CHROMATIN
HDAC6	10013	histone deacetylase 6	X	Xp11.23	ENSG00000094631	CHROMATIN
BRD4	23476	bromodomain containing 4	19	19p13.12	ENSG00000141867	CHROMATIN
MYC	4609	MYC proto-oncogene, bHLH transcription factor	8	8q24.21	ENSG00000136997	CHROMATIN
EP300	2033	E1A binding protein p300	22	22q13.2	ENSG00000100393	CHROMATIN
KAT2B	8850	lysine acetyltransferase 2B	3	3p24.3	ENSG00000114166	CHROMATIN
SIN3A	25942	SIN3 transcription regulator family member A	15	15q24.2	ENSG00000169375	CHROMATIN
NCOR1	9611	nuclear receptor corepressor 1	17	17p12-p11.2	ENSG00000141027	CHROMATIN
HEXIM1	10614	HEXIM P-TEFb complex subunit 1	17	17q21.31	ENSG00000186834	CHROMATIN
KDM5B	10765	lysine demethylase 5B	1	1q32.1	ENSG00000117139	CHROMATIN
SMARCA4	6597	SWI/SNF related, matrix associated, actin dependent regulato	19	19p13.2	ENSG00000127616	CHROMATIN
HMGCR	3156	3-hydroxy-3-methylglutaryl-CoA reductase	5	5q13.3	ENSG00000113161	STEROL
HMGCS1	3157	3-hydroxy-3-methylglutaryl-CoA synthase 1	5	5p12	ENSG00000112972	STEROL
SREBF2	6721	sterol regulatory element binding transcription factor 2	22	22q13.2	ENSG00000198911	STEROL
SREBF1	6720	sterol regulatory element binding transcription factor 1	17	17p11.2	ENSG00000072310	STEROL
LDLR	3949	low density lipoprotein receptor	19	19p13.2	ENSG00000130164	STEROL
INSIG1	3638	insulin induced gene 1	7	7q36.3	ENSG00000186480	STEROL
SQLE	6713	squalene epoxidase	8	8q24.13	ENSG00000104549	STEROL
FDFT1	2222	farnesyl-diphosphate farnesyltransferase 1	8	8p23.1	ENSG00000079459	STEROL
IDI1	3422	isopentenyl-diphosphate delta isomerase 1	10	10p15.3	ENSG00000067064	STEROL
MVD	4597	mevalonate diphosphate decarboxylase	16	16q24.2	ENSG00000167508	STEROL
SCD	6319	stearoyl-CoA desaturase	10	10q24.31	ENSG00000099194	STEROL
FASN	2194	fatty acid synthase	17	17q25.3	ENSG00000169710	STEROL
DHCR7	1717	7-dehydrocholesterol reductase	11	11q13.4	ENSG00000172893	STEROL
CYP51A1	1595	cytochrome P450 family 51 subfamily A member 1	7	7q21.2	ENSG00000001630	STEROL
LSS	4047	lanosterol synthase	21	21q22.3	ENSG00000160285	STEROL
PSMB5	5693	proteasome 20S subunit beta 5	14	14q11.2	ENSG00000100804	PROTEOSTASIS
PSMB1	5689	proteasome 20S subunit beta 1	6	6q27	ENSG00000008018	PROTEOSTASIS
PSMA1	5682	proteasome 20S subunit alpha 1	11	11p15.2	ENSG00000129084	PROTEOSTASIS
PSMD1	5707	proteasome 26S subunit, non-ATPase 1	2	2q37.1	ENSG00000173692	PROTEOSTASIS
PSMD4	5710	proteasome 26S subunit ubiquitin receptor, non-ATPase 4	1	1q21.3	ENSG00000159352	PROTEOSTASIS
HSP90AA1	3320	heat shock protein 90 alpha family class A member 1	14	14q32.31	ENSG00000080824	PROTEOSTASIS
HSPA1A	3303	heat shock protein family A (Hsp70) member 1A	6	6p21.33	ENSG00000204389	PROTEOSTASIS
HSPA8	3312	heat shock protein family A (Hsp70) member 8	11	11q24.1	ENSG00000109971	PROTEOSTASIS
DNAJB1	3337	DnaJ heat shock protein family (Hsp40) member B1	19	19p13.12	ENSG00000132002	PROTEOSTASIS
HSPH1	10808	heat shock protein family H (Hsp110) member 1	13	13q12.3	ENSG00000120694	PROTEOSTASIS
ATF4	468	activating transcription factor 4	22	22q13.1	ENSG00000128272	PROTEOSTASIS
DDIT3	1649	DNA damage inducible transcript 3	12	12q13.3	ENSG00000175197	PROTEOSTASIS
XBP1	7494	X-box binding protein 1	22	22q12.1|22q12	ENSG00000100219	PROTEOSTASIS
BAG3	9531	BAG cochaperone 3	10	10q26.11	ENSG00000151929	PROTEOSTASIS
SQSTM1	8878	sequestosome 1	5	5q35.3	ENSG00000161011	PROTEOSTASIS
TOP1	7150	DNA topoisomerase I	20	20q12	ENSG00000198900	DNA_DAMAGE
TOP2A	7153	DNA topoisomerase II alpha	17	17q21.2	ENSG00000131747	DNA_DAMAGE
PARP1	142	poly(ADP-ribose) polymerase 1	1	1q42.12	ENSG00000143799	DNA_DAMAGE
PARP2	10038	poly(ADP-ribose) polymerase 2	14	14q11.2	ENSG00000129484	DNA_DAMAGE
MDM2	4193	MDM2 proto-oncogene	12	12q15	ENSG00000135679	DNA_DAMAGE
TP53	7157	tumor protein p53	17	17p13.1	ENSG00000141510	DNA_DAMAGE
CDKN1A	1026	cyclin dependent kinase inhibitor 1A	6	6p21.2	ENSG00000124762	DNA_DAMAGE
GADD45A	1647	growth arrest and DNA damage inducible alpha	1	1p31.3	ENSG00000116717	DNA_DAMAGE
ATM	472	ATM serine/threonine kinase	11	11q22.3	ENSG00000149311	DNA_DAMAGE
CHEK1	1111	checkpoint kinase 1	11	11q24.2	ENSG00000149554	DNA_DAMAGE
BRCA1	672	BRCA1 DNA repair associated	17	17q21.31	ENSG00000012048	DNA_DAMAGE
RAD51	5888	RAD51 recombinase	15	15q15.1	ENSG00000051180	DNA_DAMAGE
BAX	581	BCL2 associated X, apoptosis regulator	19	19q13.33	ENSG00000087088	DNA_DAMAGE
FAS	355	Fas cell surface death receptor	10	10q23.31	ENSG00000026103	DNA_DAMAGE
DHFR	1719	dihydrofolate reductase	5	5q14.1	ENSG00000228716	NUCLEOTIDE
TYMS	7298	thymidylate synthetase	18	18p11.32	ENSG00000176890	NUCLEOTIDE
RRM1	6240	ribonucleotide reductase catalytic subunit M1	11	11p15.4	ENSG00000167325	NUCLEOTIDE
RRM2	6241	ribonucleotide reductase regulatory subunit M2	2	2p25.1	ENSG00000171848	NUCLEOTIDE
TK1	7083	thymidine kinase 1	17	17q25.3	ENSG00000167900	NUCLEOTIDE
GART	2618	phosphoribosylglycinamide formyltransferase, phosphoribosylg	21	21q22.11	ENSG00000159131	NUCLEOTIDE
PPAT	5471	phosphoribosyl pyrophosphate amidotransferase	4	4q12	ENSG00000128059	NUCLEOTIDE
UMPS	7372	uridine monophosphate synthetase	3	3q21.2	ENSG00000114491	NUCLEOTIDE
CAD	790	carbamoyl-phosphate synthetase 2, aspartate transcarbamylase	2	2p23.3	ENSG00000084774	NUCLEOTIDE
DHODH	1723	dihydroorotate dehydrogenase (quinone)	16	16q22.2	ENSG00000102967	NUCLEOTIDE
TUBB	203068	tubulin beta class I	6	6p21.33	ENSG00000196230	CYTOSKELETON
TUBA1A	7846	tubulin alpha 1a	12	12q13.12	ENSG00000167552	CYTOSKELETON
TUBB2A	7280	tubulin beta 2A class IIa	6	6p25.2	ENSG00000137267	CYTOSKELETON
STMN1	3925	stathmin 1	1	1p36.11	ENSG00000117632	CYTOSKELETON
MAP4	4134	microtubule associated protein 4	3	3p21.31	ENSG00000047849	CYTOSKELETON
KIF2C	11004	kinesin family member 2C	1	1p34.1	ENSG00000142945	CYTOSKELETON
ACTB	60	actin beta	7	7p22.1	ENSG00000075624	CYTOSKELETON
VIM	7431	vimentin	10	10p13	ENSG00000026025	CYTOSKELETON
CFL1	1072	cofilin 1	11	11q13.1	ENSG00000172757	CYTOSKELETON
TUBB6	84617	tubulin beta 6 class V	18	18p11.21	ENSG00000176014	CYTOSKELETON
ESR1	2099	estrogen receptor 1	6	6q25.1-q25.2	ENSG00000091831	NUCLEAR_RECEPTOR
AR	367	androgen receptor	X	Xq12	ENSG00000169083	NUCLEAR_RECEPTOR
NR3C1	2908	nuclear receptor subfamily 3 group C member 1	5	5q31.3	ENSG00000113580	NUCLEAR_RECEPTOR
PGR	5241	progesterone receptor	11	11q22.1	ENSG00000082175	NUCLEAR_RECEPTOR
GREB1	9687	growth regulating estrogen receptor binding 1	2	2p25.1	ENSG00000196208	NUCLEAR_RECEPTOR
TFF1	7031	trefoil factor 1	21	21q22.3	ENSG00000160182	NUCLEAR_RECEPTOR
KLK3	354	kallikrein related peptidase 3	19	19q13.33	ENSG00000142515	NUCLEAR_RECEPTOR
FKBP5	2289	FKBP prolyl isomerase 5	6	6p21.31	ENSG00000096060	NUCLEAR_RECEPTOR
TSC22D3	1831	TSC22 domain family member 3	X	Xq22.3	ENSG00000157514	NUCLEAR_RECEPTOR
PER1	5187	period circadian regulator 1	17	17p13.1	ENSG00000179094	NUCLEAR_RECEPTOR
TMPRSS2	7113	transmembrane serine protease 2	21	21q22.3	ENSG00000184012	NUCLEAR_RECEPTOR
MYB	4602	MYB proto-oncogene, transcription factor	6	6q23.3	ENSG00000118513	NUCLEAR_RECEPTOR
PTGS2	5743	prostaglandin-endoperoxide synthase 2	1	1q31.1	ENSG00000073756	INFLAMMATION
NFKB1	4790	nuclear factor kappa B subunit 1	4	4q24	ENSG00000109320	INFLAMMATION
RELA	5970	RELA proto-oncogene, NF-kB subunit	11	11q13.1	ENSG00000173039	INFLAMMATION
NFKBIA	4792	NFKB inhibitor alpha	14	14q13.2	ENSG00000100906	INFLAMMATION
TNFAIP3	7128	TNF alpha induced protein 3	6	6q23.3	ENSG00000118503	INFLAMMATION
IL1B	3553	interleukin 1 beta	2	2q14.1	ENSG00000125538	INFLAMMATION
CXCL8	3576	C-X-C motif chemokine ligand 8	4	4q13.3	ENSG00000169429	INFLAMMATION
ICAM1	3383	intercellular adhesion molecule 1	19	19p13.2	ENSG00000090339	INFLAMMATION
TNF	7124	tumor necrosis factor	6	6p21.33	ENSG00000232810	INFLAMMATION
CCL2	6347	C-C motif chemokine ligand 2	17	17q12	ENSG00000108691	INFLAMMATION
AARS1	16	alanyl-tRNA synthetase 1	16	16q22.1	ENSG00000090861	
ABCF1	23	ATP binding cassette subfamily F member 1	6	6p21.33	ENSG00000204574	
ACAA1	30	acetyl-CoA acyltransferase 1	3	3p22.2	ENSG00000060971	
ACLY	47	ATP citrate lyase	17	17q21.2	ENSG00000131473	
ADGRE5	976	adhesion G protein-coupled receptor E5	19	19p13.12	ENSG00000123146	
ADO	84890	2-aminoethanethiol dioxygenase	10	10q21.3	ENSG00000181915	
AKAP8L	26993	A-kinase anchoring protein 8 like	19	19p13.12	ENSG00000011243	
ALDOA	226	aldolase, fructose-bisphosphate A	16	16p11.2	ENSG00000149925	
ANO10	55129	anoctamin 10	3	3p22.1-p21.33	ENSG00000160746	
APP	351	amyloid beta precursor protein	21	21q21.3	ENSG00000142192	
ARHGEF12	23365	Rho guanine nucleotide exchange factor 12	11	11q23.3	ENSG00000196914	
ARL4C	10123	ADP ribosylation factor like GTPase 4C	2	2q37.1	ENSG00000188042	
ASCC3	10973	activating signal cointegrator 1 complex subunit 3	6	6q16.3	ENSG00000112249	
ATG3	64422	autophagy related 3	3	3q13.2	ENSG00000144848	
ATP2C1	27032	ATPase secretory pathway Ca2+ transporting 1	3	3q22.1	ENSG00000017260	
AXIN1	8312	axin 1	16	16p13.3	ENSG00000103126	
BAMBI	25805	BMP and activin membrane bound inhibitor	10	10p12.1	ENSG00000095739	
BECN1	8678	beclin 1	17	17q21.31	ENSG00000126581	
BIRC2	329	baculoviral IAP repeat containing 2	11	11q22.2	ENSG00000110330	
BLTP2	9703	bridge-like lipid transfer protein family member 2	17	17q11.2	ENSG00000007202	
BNIP3L	665	BCL2 interacting protein 3 like	8	8p21.2	ENSG00000104765	
BZW2	28969	basic leucine zipper and W2 domains 2	7	7p21.1	ENSG00000136261	
C5	727	complement C5	9	9q33.2	ENSG00000106804	
CAMSAP2	23271	calmodulin regulated spectrin associated protein family memb	1	1q32.1	ENSG00000118200	
CASC3	22794	CASC3 exon junction complex subunit	17	17q21.1	ENSG00000108349	
CASP3	836	caspase 3	4	4q35.1	ENSG00000164305	
CBLB	868	Cbl proto-oncogene B	3	3q13.11	ENSG00000114423	
CCDC86	79080	coiled-coil domain containing 86	11	11q12.2	ENSG00000110104	
CCND3	896	cyclin D3	6	6p21.1	ENSG00000112576	
CCP110	9738	centriolar coiled-coil protein 110	16	16p12.3	ENSG00000103540	
CD58	965	CD58 molecule	1	1p13.1	ENSG00000116815	
CDC45	8318	cell division cycle 45	22	22q11.21	ENSG00000093009	
CDK19	23097	cyclin dependent kinase 19	6	6q21	ENSG00000155111	
CEBPA	1050	CCAAT enhancer binding protein alpha	19	19q13.11	ENSG00000245848	
CENPE	1062	centromere protein E	4	4q24	ENSG00000138778	
CFLAR	8837	CASP8 and FADD like apoptosis regulator	2	2q33.1	ENSG00000003402	
CHEK2	11200	checkpoint kinase 2	22	22q12.1	ENSG00000183765	
CHMP6	79643	charged multivesicular body protein 6	17	17q25.3	ENSG00000176108	
CIAPIN1	57019	cytokine induced apoptosis inhibitor 1	16	16q21	ENSG00000005194	
CLPX	10845	caseinolytic mitochondrial matrix peptidase chaperone subuni	15	15q22.31	ENSG00000166855	
CNDP2	55748	carnosine dipeptidase 2	18	18q22.3	ENSG00000133313	
COG2	22796	component of oligomeric golgi complex 2	1	1q42.2	ENSG00000135775	
COL4A1	1282	collagen type IV alpha 1 chain	13	13q34	ENSG00000187498	
CORO1A	11151	coronin 1A	16	16p11.2	ENSG00000102879	
CREG1	8804	cellular repressor of E1A stimulated genes 1	1	1q24.2	ENSG00000143162	
CRTAP	10491	cartilage associated protein	3	3p22.3	ENSG00000170275	
CSNK1E	1454	casein kinase 1 epsilon	22	22q13.1	ENSG00000213923	
CTNND1	1500	catenin delta 1	11	11q12.1	ENSG00000198561	
CXCL2	2920	C-X-C motif chemokine ligand 2	4	4q13.3	ENSG00000081041	
CYTH1	9267	cytohesin 1	17	17q25.3	ENSG00000108669	
DCTD	1635	dCMP deaminase	4	4q35.1	ENSG00000129187	
DDX10	1662	DEAD-box helicase 10	11	11q22.3	ENSG00000178105	
DERA	51071	deoxyribose-phosphate aldolase	12	12p12.3	ENSG00000023697	
DHRS7	51635	dehydrogenase/reductase 7	14	14q23.1	ENSG00000100612	
DLD	1738	dihydrolipoamide dehydrogenase	7	7q31.1	ENSG00000091140	
DNAJB2	3300	DnaJ heat shock protein family (Hsp40) member B2	2	2q35	ENSG00000135924	
DNM1L	10059	dynamin 1 like	12	12p11.21	ENSG00000087470	
DPH2	1802	diphthamide biosynthesis 2	1	1p34.1	ENSG00000132768	
DUSP14	11072	dual specificity phosphatase 14	17	17q12	ENSG00000276023	
DYRK3	8444	dual specificity tyrosine phosphorylation regulated kinase 3	1	1q32.1	ENSG00000143479	
EBP	10682	EBP cholestenol delta-isomerase	X	Xp11.23	ENSG00000147155	
EDN1	1906	endothelin 1	6	6p24.1	ENSG00000078401	
EIF4G1	1981	eukaryotic translation initiation factor 4 gamma 1	3	3q27.1	ENSG00000114867	
ELOVL6	79071	ELOVL fatty acid elongase 6	4	4q25	ENSG00000170522	
ENOSF1	55556	enolase superfamily member 1	18	18p11.32	ENSG00000132199	
EPN2	22905	epsin 2	17	17p11.2	ENSG00000072134	
ETS1	2113	ETS proto-oncogene 1, transcription factor	11	11q24.3	ENSG00000134954	
EXT1	2131	exostosin glycosyltransferase 1	8	8q24.11	ENSG00000182197	
FAM20B	9917	FAM20B glycosaminoglycan xylosylkinase	1	1q25.2	ENSG00000116199	
FBXO11	80204	F-box protein 11	2	2p16.3	ENSG00000138081	
FEZ2	9637	fasciculation and elongation protein zeta 2	2	2p22.2	ENSG00000171055	
FHL2	2274	four and a half LIM domains 2	2	2q12.2	ENSG00000115641	
FOXJ3	22887	forkhead box J3	1	1p34.2	ENSG00000198815	
FRS2	10818	fibroblast growth factor receptor substrate 2	12	12q15	ENSG00000166225	
FZD1	8321	frizzled class receptor 1	7	7q21.13	ENSG00000157240	
GABPB1	2553	GA binding protein transcription factor subunit beta 1	15	15q21.2	ENSG00000104064	
GARRE1	9710	granule associated Rac and RHOG effector 1	19	19q13.11	ENSG00000166398	
GET1	7485	guided entry of tail-anchored proteins factor 1	21	21q22.2	ENSG00000182093	
GHR	2690	growth hormone receptor	5	5p13.1-p12	ENSG00000112964	
GMNN	51053	geminin DNA replication inhibitor	6	6p22.3	ENSG00000112312	
GNAI2	2771	G protein subunit alpha i2	3	3p21.31	ENSG00000114353	
GOLT1B	51026	golgi transport 1B	12	12p12.1	ENSG00000111711	
GRB10	2887	growth factor receptor bound protein 10	7	7p12.1	ENSG00000106070	
GSTM2	2946	glutathione S-transferase mu 2	1	1p13.3	ENSG00000213366	
GTPBP8	29083	GTP binding protein 8 (putative)	3	3q13.2	ENSG00000163607	
HACD3	51495	3-hydroxyacyl-CoA dehydratase 3	15	15q22.31	ENSG00000074696	
HEATR1	55127	HEAT repeat containing 1	1	1q43	ENSG00000119285	
HES1	3280	hes family bHLH transcription factor 1	3	3q29	ENSG00000114315	
HMG20B	10362	high mobility group 20B	19	19p13.3	ENSG00000064961	
HOMER2	9455	homer scaffold protein 2	15	15q25.2	ENSG00000103942	
HPRT1	3251	hypoxanthine phosphoribosyltransferase 1	X	Xq26.2-q26.3	ENSG00000165704	
HSPA4	3308	heat shock protein family A (Hsp70) member 4	5	5q31.1	ENSG00000170606	
HTRA1	5654	HtrA serine peptidase 1	10	10q26.13	ENSG00000166033	
ICMT	23463	isoprenylcysteine carboxyl methyltransferase	1	1p36.31	ENSG00000116237	
IFRD2	7866	interferon related developmental regulator 2	3	3p21.31	ENSG00000214706	
IGFBP3	3486	insulin like growth factor binding protein 3	7	7p12.3	ENSG00000146674	
IKZF1	10320	IKAROS family zinc finger 1	7	7p12.2	ENSG00000185811	
INPP1	3628	inositol polyphosphate-1-phosphatase	2	2q32.2	ENSG00000151689	
IQGAP1	8826	IQ motif containing GTPase activating protein 1	15	15q26.1	ENSG00000140575	
ITGB1BP1	9270	integrin subunit beta 1 binding protein 1	2	2p25.1	ENSG00000119185	
JPT2	90861	Jupiter microtubule associated homolog 2	16	16p13.3	ENSG00000206053	
KCNK1	3775	potassium two pore domain channel subfamily K member 1	1	1q42.2	ENSG00000135750	
KDM5A	5927	lysine demethylase 5A	12	12p13.33	ENSG00000073614	
KIF14	9928	kinesin family member 14	1	1q32.1	ENSG00000118193	
KLHDC2	23588	kelch domain containing 2	14	14q21.3	ENSG00000165516	
LAGE3	8270	L antigen family member 3	X	Xq28	ENSG00000196976	
LGALS8	3964	galectin 8	1	1q43	ENSG00000116977	
LIPA	3988	lipase A, lysosomal acid type	10	10q23.31	ENSG00000107798	
LRP10	26020	LDL receptor related protein 10	14	14q11.2	ENSG00000197324	
LSM6	11157	LSM6 homolog, U6 small nuclear RNA and mRNA degradation asso	4	4q31.22	ENSG00000164167	
LYRM1	57149	LYR motif containing 1	16	16p12.3	ENSG00000102897	
MAN2B1	4125	mannosidase alpha class 2B member 1	19	19p13.13	ENSG00000104774	
MAP7	9053	microtubule associated protein 7	6	6q23.3	ENSG00000135525	
MAPKAPK2	9261	MAPK activated protein kinase 2	1	1q32.1	ENSG00000162889	
MAT2A	4144	methionine adenosyltransferase 2A	2	2p11.2	ENSG00000168906	
MBTPS1	8720	membrane bound transcription factor peptidase, site 1	16	16q23.3-q24.1	ENSG00000140943	
MEF2C	4208	myocyte enhancer factor 2C	5	5q14.3	ENSG00000081189	
MFSD10	10227	major facilitator superfamily domain containing 10	4	4p16.3	ENSG00000109736	
MKNK1	8569	MAPK interacting serine/threonine kinase 1	1	1p33	ENSG00000079277	
MMP2	4313	matrix metallopeptidase 2	16	16q12.2	ENSG00000087245	
MPZL1	9019	myelin protein zero like 1	1	1q24.2	ENSG00000197965	
MRPS2	51116	mitochondrial ribosomal protein S2	9	9q34.3	ENSG00000122140	
MTERF3	51001	mitochondrial transcription termination factor 3	8	8q22.1	ENSG00000156469	
MUC1	4582	mucin 1, cell surface associated	1	1q22	ENSG00000185499	
MYCBP	26292	MYC binding protein	1	1p34.3	ENSG00000214114	
MYO10	4651	myosin X	5	5p15.1	ENSG00000145555	
NCOA3	8202	nuclear receptor coactivator 3	20	20q13.12	ENSG00000124151	
NFATC4	4776	nuclear factor of activated T cells 4	14	14q12	ENSG00000100968	
NFKBIB	4793	NFKB inhibitor beta	19	19q13.2	ENSG00000104825	
NISCH	11188	nischarin	3	3p21.1	ENSG00000010322	
NOL3	8996	nucleolar protein 3	16	16q22.1	ENSG00000140939	
NOTCH1	4851	notch receptor 1	9	9q34.3	ENSG00000148400	
NPRL2	10641	NPR2 like, GATOR1 complex subunit	3	3p21.31	ENSG00000114388	
NRIP1	8204	nuclear receptor interacting protein 1	21	21q11.2-q21.1	ENSG00000180530	
NUDCD3	23386	NudC domain containing 3	7	7p13	ENSG00000015676	
NUP85	79902	nucleoporin 85	17	17q25.1	ENSG00000125450	
NVL	4931	nuclear VCP like	1	1q42.11	ENSG00000143748	
OXSR1	9943	oxidative stress responsive kinase 1	3	3p22.2	ENSG00000172939	
PAF1	54623	PAF1 homolog, Paf1/RNA polymerase II complex component	19	19q13.2	ENSG00000006712	
PAK1	5058	p21 (RAC1) activated kinase 1	11	11q13.5-q14.1	ENSG00000149269	
PAX8	7849	paired box 8	2	2q14.1	ENSG00000125618	
PCM1	5108	pericentriolar material 1	8	8p22	ENSG00000078674	
PDHX	8050	pyruvate dehydrogenase complex component X	11	11p13	ENSG00000110435	
PECR	55825	peroxisomal trans-2-enoyl-CoA reductase	2	2q35	ENSG00000115425	
PGM1	5236	phosphoglucomutase 1	1	1p31.3	ENSG00000079739	
PHKB	5257	phosphorylase kinase regulatory subunit beta	16	16q12.1	ENSG00000102893	
PIK3C2B	5287	phosphatidylinositol-4-phosphate 3-kinase catalytic subunit 	1	1q32.1	ENSG00000133056	
PIN1	5300	peptidylprolyl cis/trans isomerase, NIMA-interacting 1	19	19p13.2	ENSG00000127445	
PLA2G4A	5321	phospholipase A2 group IVA	1	1q31.1	ENSG00000116711	
PLOD3	8985	procollagen-lysine,2-oxoglutarate 5-dioxygenase 3	7	7q22.1	ENSG00000106397	
PLSCR3	57048	phospholipid scramblase 3	17	17p13.1	ENSG00000187838	
PNP	4860	purine nucleoside phosphorylase	14	14q11.2	ENSG00000198805	
POLG2	11232	DNA polymerase gamma 2, accessory subunit	17	17q23.3	ENSG00000256525	
POP4	10775	POP4 homolog, ribonuclease P/MRP subunit	19	19q12	ENSG00000105171	
PPIE	10450	peptidylprolyl isomerase E	1	1p34.2	ENSG00000084072	
PPP2R5A	5525	protein phosphatase 2 regulatory subunit B'alpha	1	1q32.3	ENSG00000066027	
PRKACA	5566	protein kinase cAMP-activated catalytic subunit alpha	19	19p13.12	ENSG00000072062	
PRKCQ	5588	protein kinase C theta	10	10p15.1	ENSG00000065675	
PRR15L	79170	proline rich 15 like	17	17q21.32	ENSG00000167183	
PSIP1	11168	PC4 and SFRS1 interacting protein 1	9	9p22.3	ENSG00000164985	
PSMD10	5716	proteasome 26S subunit, non-ATPase 10	X	Xq22.3	ENSG00000101843	
PSME2	5721	proteasome activator subunit 2	14	14q12	ENSG00000100911	
PTK2	5747	protein tyrosine kinase 2	8	8q24.3	ENSG00000169398	
PTPN6	5777	protein tyrosine phosphatase non-receptor type 6	12	12p13.31	ENSG00000111679	
PUF60	22827	poly(U) binding splicing factor 60	8	8q24.3	ENSG00000179950	
PYCR1	5831	pyrroline-5-carboxylate reductase 1	17	17q25.3	ENSG00000183010	
RAB27A	5873	RAB27A, member RAS oncogene family	15	15q21.3	ENSG00000069974	
RAD51C	5889	RAD51 paralog C	17	17q22	ENSG00000108384	
RALA	5898	RAS like proto-oncogene A	7	7p14.1	ENSG00000006451	
RASA1	5921	RAS p21 protein activator 1	5	5q14.3	ENSG00000145715	
RBM6	10180	RNA binding motif protein 6	3	3p21.31	ENSG00000004534	
RFC5	5985	replication factor C subunit 5	12	12q24.23	ENSG00000111445	
RHOA	387	ras homolog family member A	3	3p21.31	ENSG00000067560	
RNPS1	10921	RNA binding protein with serine rich domain 1	16	16p13.3	ENSG00000205937	
RPIA	22934	ribose 5-phosphate isomerase A	2	2p11.2	ENSG00000153574	
RPS5	6193	ribosomal protein S5	19	19q13.43	ENSG00000083845	
RRP1B	23076	ribosomal RNA processing 1B	21	21q22.3	ENSG00000160208	
RSU1	6251	Ras suppressor protein 1	10	10p13	ENSG00000148484	
S100A13	6284	S100 calcium binding protein A13	1	1q21.3	ENSG00000189171	
SCAND1	51282	SCAN domain containing 1	20	20q11.23	ENSG00000171222	
SCRN1	9805	secernin 1	7	7p14.3	ENSG00000136193	
SERPINE1	5054	serpin family E member 1	7	7q22.1	ENSG00000106366	
SH3BP5	9467	SH3 domain binding protein 5	3	3p25.1	ENSG00000131370	
SKIC8	80349	SKI8 subunit of superkiller complex	15	15q25.1	ENSG00000140395	
SLC25A13	10165	solute carrier family 25 member 13	7	7q21.3	ENSG00000004864	
SLC27A3	11000	solute carrier family 27 member 3	1	1q21.3	ENSG00000143554	
SLC35B1	10237	solute carrier family 35 member B1	17	17q21.33	ENSG00000121073	
SMAD3	4088	SMAD family member 3	15	15q22.33	ENSG00000166949	
SMC3	9126	structural maintenance of chromosomes 3	10	10q25.2	ENSG00000108055	
SNCA	6622	synuclein alpha	4	4q22.1	ENSG00000145335	
SNX7	51375	sorting nexin 7	1	1p21.3	ENSG00000162627	
SOX4	6659	SRY-box transcription factor 4	6	6p22.3	ENSG00000124766	
SPEN	23013	spen family transcriptional repressor	1	1p36.21-p36.13	ENSG00000065526	
SPTAN1	6709	spectrin alpha, non-erythrocytic 1	9	9q34.11	ENSG00000197694	
ST3GAL5	8869	ST3 beta-galactoside alpha-2,3-sialyltransferase 5	2	2p11.2	ENSG00000115525	
STAMBP	10617	STAM binding protein	2	2p13.1	ENSG00000124356	
STK10	6793	serine/threonine kinase 10	5	5q35.1	ENSG00000072786	
STX4	6810	syntaxin 4	16	16p11.2	ENSG00000103496	
SUV39H1	6839	SUV39H1 histone lysine methyltransferase	X	Xp11.23	ENSG00000101945	
SYNGR3	9143	synaptogyrin 3	16	16p13.3	ENSG00000127561	
TBC1D31	93594	TBC1 domain family member 31	8	8q24.13	ENSG00000156787	
TBX2	6909	T-box transcription factor 2	17	17q23.2	ENSG00000121068	
TCERG1	10915	transcription elongation regulator 1	5	5q32	ENSG00000113649	
TENT4A	11044	terminal nucleotidyltransferase 4A	5	5p15.31	ENSG00000112941	
TESK1	7016	testis associated actin remodelling kinase 1	9	9p13.3	ENSG00000107140	
TGFB3	7043	transforming growth factor beta 3	14	14q24.3	ENSG00000119699	
TICAM1	148022	TIR domain containing adaptor molecule 1	19	19p13.3	ENSG00000127666	
TIMM9	26520	translocase of inner mitochondrial membrane 9	14	14q23.1	ENSG00000100575	
TLCD3A	79850	TLC domain containing 3A	17	17p13.3	ENSG00000167695	
TM9SF2	9375	transmembrane 9 superfamily member 2	13	13q32.3	ENSG00000125304	
TMEM109	79073	transmembrane protein 109	11	11q12.2	ENSG00000110108	
TNIP1	10318	TNFAIP3 interacting protein 1	5	5q33.1	ENSG00000145901	
TOR1A	1861	torsin family 1 member A	9	9q34.11	ENSG00000136827	
TPD52L2	7165	TPD52 like 2	20	20q13.33	ENSG00000101150	
TRAP1	10131	TNF receptor associated protein 1	16	16p13.3	ENSG00000126602	
TRIB3	57761	tribbles pseudokinase 3	20	20p13	ENSG00000101255	
TSKU	25987	tsukushi, small leucine rich proteoglycan	11	11q13.5	ENSG00000182704	
TWF2	11344	twinfilin actin binding protein 2	3	3p21.2	ENSG00000247596	
TXNRD1	7296	thioredoxin reductase 1	12	12q23.3	ENSG00000198431	
UBE2L6	9246	ubiquitin conjugating enzyme E2 L6	11	11q12.1	ENSG00000156587	
UBR7	55148	ubiquitin protein ligase E3 component n-recognin 7	14	14q32.12	ENSG00000012963	
USP14	9097	ubiquitin specific peptidase 14	18	18p11.32	ENSG00000101557	
UTP14A	10813	UTP14A small subunit processome component	X	Xq26.1	ENSG00000156697	
VDAC1	7416	voltage dependent anion channel 1	5	5q31.1	ENSG00000213585	
WASF3	10810	WASP family member 3	13	13q12.13	ENSG00000132970	
WDTC1	23038	WD and tetratricopeptide repeats 1	1	1p36.11	ENSG00000142784	
XPO7	23039	exportin 7	8	8p21.3	ENSG00000130227	
ZDHHC6	64429	zinc finger DHHC-type palmitoyltransferase 6	10	10q25.2	ENSG00000023041	
ZNF131	7690	zinc finger protein 131	5	5p12	ENSG00000172262	
ZNF451	26036	zinc finger protein 451	6	6p12.1	ENSG00000112200	
"""


# ----------------------------------------------------------------------------------------------
# recoverability: simple statistics showing the truth is in the released files
# ----------------------------------------------------------------------------------------------


def _load(path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(matrix (n_samples, n_genes), column metadata with a plain 0..n-1 index)."""
    data = read_gctx(path)
    return data.matrix, data.col_meta.reset_index(drop=True)


def _rowcorr(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of A with every row of B."""
    A = A - A.mean(1, keepdims=True)
    B = B - B.mean(1, keepdims=True)
    A /= np.linalg.norm(A, axis=1, keepdims=True) + 1e-12
    B /= np.linalg.norm(B, axis=1, keepdims=True) + 1e-12
    return A @ B.T


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    scores = np.concatenate([pos, neg])
    ranks = pd.Series(scores).rank().to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def measure_recoverability(out_dir: Path | str, seed: int = 0) -> dict[str, float]:
    """Three checks that the pipeline has signal to find, using only released files + truth:

    - target_top5 / target_median_rank: per drug (10 uM, measured contexts), correlate its signature
      with every knockdown signature of the same context, average over contexts, rank the genes; the
      best-ranked true target's rank (1 = first) across drugs;
    - hidden_edge_auroc: |correlation| of knockdown signatures (averaged over contexts) for hidden
      true edges vs random non-edge gene pairs, both among knocked-down genes;
    - heldout_r_other_contexts / heldout_mse_ratio: a withheld (drug, context, dose) signature
      predicted by the same drug's mean in its measured contexts (Pearson r; MSE relative to
      predicting zero); heldout_kd_* the same for withheld knockdowns.
    """
    out_dir = Path(out_dir)
    truth = read_ground_truth(out_dir)
    kd, kd_col = _load(out_dir / REL_PATHS["knockdown_gctx"])
    cp, cp_col = _load(out_dir / REL_PATHS["compound_gctx"])
    hold, hold_col = _load(out_dir / REL_PATHS["withheld_compound_gctx"])
    contexts = truth["contexts"]
    kd_genes = truth["knockdown_genes"]
    kd_trt = kd_col["pert_type"].isin(["trt_sh", "trt_xpr"]).to_numpy()

    # (1) drug -> target
    ranks = []
    for name, targets in truth["compound_targets"].items():
        score = pd.Series(0.0, index=kd_genes)
        count = pd.Series(0, index=kd_genes)
        for c in contexts:
            sel = (cp_col["pert_iname"] == name) & (cp_col["cell_id"] == c) & (cp_col["pert_idose"] == "10 uM")
            if not sel.any():
                continue
            kmask = kd_trt & (kd_col["cell_id"] == c).to_numpy()
            r = _rowcorr(cp[sel.to_numpy()], kd[kmask])[0]
            names = kd_col.loc[kmask, "pert_iname"].to_numpy()
            # inhibitors (direction -1) look like knockdowns of their targets; agonists the opposite
            score.loc[names] += -truth["compound_direction"][name] * r
            count.loc[names] += 1
        mean = (score / count.replace(0, np.nan)).dropna().sort_values(ascending=False)
        pos = [int(np.flatnonzero(mean.index == t)[0]) + 1 for t in targets if t in mean.index]
        if pos:
            ranks.append(min(pos))
    ranks_a = np.array(ranks)

    # (2) hidden edges vs random pairs, by knockdown-signature similarity
    kd_mean = {}
    for g in kd_genes:
        rows = kd[kd_trt & (kd_col["pert_iname"] == g).to_numpy()]
        kd_mean[g] = rows
    sim_cache: dict[tuple[str, str], float] = {}

    def sim(a: str, b: str) -> float:
        key = (a, b) if a < b else (b, a)
        if key not in sim_cache:
            ca = kd_col.loc[kd_trt & (kd_col["pert_iname"] == a).to_numpy(), "cell_id"].to_numpy()
            cb = kd_col.loc[kd_trt & (kd_col["pert_iname"] == b).to_numpy(), "cell_id"].to_numpy()
            common = [c for c in ca if c in set(cb)]
            vals = [_rowcorr(kd_mean[a][list(ca).index(c)][None], kd_mean[b][list(cb).index(c)][None])[0, 0]
                    for c in common]
            sim_cache[key] = float(np.abs(np.mean(vals))) if vals else np.nan
        return sim_cache[key]

    edges = truth["edges"]
    kd_set = set(kd_genes)
    hidden = edges[~edges["in_prior"] & edges["source"].isin(kd_set) & edges["target"].isin(kd_set)]
    true_pairs = {frozenset(p) for p in zip(edges["source"], edges["target"], strict=True)}
    rng = np.random.default_rng([seed, 99])
    neg = []
    while len(neg) < 4 * max(1, len(hidden)):
        a, b = rng.choice(kd_genes, 2, replace=False)
        if frozenset((a, b)) not in true_pairs:
            neg.append(sim(a, b))
    pos_s = np.array([sim(a, b) for a, b in zip(hidden["source"], hidden["target"], strict=True)])
    auroc = _auroc(pos_s[~np.isnan(pos_s)], np.array(neg)[~np.isnan(neg)])

    # (3) withheld signatures: the same perturbation's mean over its measured contexts vs zero
    def heldout(released: np.ndarray, rel_col: pd.DataFrame, withheld: np.ndarray, hold_meta: pd.DataFrame):
        r, mse_pred, mse_zero = [], [], []
        dose, hold_dose = rel_col["pert_idose"].fillna(""), hold_meta["pert_idose"].fillna("")  # NA = -666
        for i, row in hold_meta.iterrows():
            sel = ((rel_col["pert_iname"] == row["pert_iname"]) & (dose == hold_dose[i])).to_numpy()
            if not sel.any():
                continue
            pred, y = released[sel].mean(0), withheld[i]
            r.append(_rowcorr(pred[None], y[None])[0, 0])
            mse_pred.append(float(np.mean((pred - y) ** 2)))
            mse_zero.append(float(np.mean(y**2)))
        return len(r), float(np.mean(r)) if r else np.nan, float(np.sum(mse_pred) / max(np.sum(mse_zero), 1e-12))

    n_cp, r_cp, ratio_cp = heldout(cp, cp_col, hold, hold_col)
    kd_hold, kd_hold_col = _load(out_dir / REL_PATHS["withheld_knockdown_gctx"])
    n_kd, r_kd, ratio_kd = heldout(kd[kd_trt], kd_col[kd_trt].reset_index(drop=True), kd_hold, kd_hold_col)
    return {
        "n_drugs_ranked": int(len(ranks_a)),
        "n_knockdown_genes": int(len(kd_genes)),
        "target_top1": float(np.mean(ranks_a <= 1)),
        "target_top5": float(np.mean(ranks_a <= 5)),
        "target_median_rank": float(np.median(ranks_a)),
        "n_hidden_edges_tested": int(len(pos_s)),
        "hidden_edge_auroc": auroc,
        "n_heldout_signatures": n_cp,
        "heldout_r_other_contexts": r_cp,
        "heldout_mse_ratio": ratio_cp,
        "n_heldout_knockdowns": n_kd,
        "heldout_kd_r_other_contexts": r_kd,
        "heldout_kd_mse_ratio": ratio_kd,
    }

"""The SIMULATED default dataset: formats, determinism, labelling, and that its hidden truth is recoverable."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from rdkit import Chem, RDLogger

from graph.io.compounds import read_lincs_compoundinfo
from graph.io.contexts import read_cell_line_features
from graph.io.drug_smiles import DRUGS, DRUGS_BY_NAME, drug_targets
from graph.io.gctx import gctx_to_long, read_gctx
from graph.io.genes import read_gene_table
from graph.io.networks import read_string_edges
from graph.settings import get_settings
from graph.simulated import (
    CONTEXT_NAMES,
    REL_PATHS,
    builtin_genes,
    generate_default_dataset,
    measure_recoverability,
    read_ground_truth,
)

RDLogger.DisableLog("rdApp.*")

# Column layouts of the real files (README of the shared data), which the same readers parse.
GENE_COLUMNS = ["entrez_id", "symbol", "name", "type", "chromosome", "map_location", "ensembl_id", "aliases"]
COMPOUNDINFO_COLUMNS = ["pert_id", "cmap_name", "target", "moa", "canonical_smiles", "inchi_key", "compound_aliases",
                        "target_merged", "moa_merged", "pubchem_cid", "chembl_id", "drugbank_id", "max_phase"]
STRING_COLUMNS = ["entrez_a", "entrez_b", "symbol_a", "symbol_b", "neighborhood", "neighborhood_transferred", "fusion",
                  "cooccurence", "homology", "coexpression", "coexpression_transferred", "experiments",
                  "experiments_transferred", "database", "database_transferred", "combined_score"]
FEATURE_COLUMNS = ["cell_id", "gene_symbol", "basex_affx", "basex_rnaseq", "copy_number", "is_expressed"]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim0")
    t0 = time.process_time()  # CPU time: robust to other jobs sharing the machine
    w = generate_default_dataset(out, seed=0)
    w.params["_cpu_s"] = time.process_time() - t0
    return w


@pytest.fixture(scope="module")
def recoverability(world):
    return measure_recoverability(world.out_dir)


# --- the built-in drug table -------------------------------------------------------------------


def test_drug_table_smiles_parse_and_names_unique():
    assert len(DRUGS) >= 40
    assert len(DRUGS_BY_NAME) == len(DRUGS)
    keys = set()
    for d in DRUGS:
        mol = Chem.MolFromSmiles(d.smiles)
        assert mol is not None, d.name
        assert mol.GetNumHeavyAtoms() >= 3, d.name
        keys.add(Chem.MolToInchiKey(mol))
        assert d.targets and all(t == t.upper() and t.isalnum() for t in d.targets), d.name
    assert len(keys) == len(DRUGS)  # no structure typed twice


def test_drug_table_known_facts():
    assert DRUGS_BY_NAME["imatinib"].targets[0] == "ABL1"
    assert "MTOR" in DRUGS_BY_NAME["sirolimus"].targets
    assert DRUGS_BY_NAME["bortezomib"].targets == ("PSMB5",)
    assert DRUGS_BY_NAME["atorvastatin"].targets == ("HMGCR",)
    # the two rapalogs differ only by a hydroxyethyl group: same skeleton, different molecules
    a, b = (Chem.MolFromSmiles(DRUGS_BY_NAME[n].smiles) for n in ("sirolimus", "everolimus"))
    assert b.GetNumHeavyAtoms() - a.GetNumHeavyAtoms() == 3


def test_drug_structures_match_real_annotations_when_available():
    """Cross-check typed SMILES against the real LINCS / Repurposing Hub tables (skipped without them)."""
    shared = Path(get_settings().shared_data)
    info, samples = shared / "compounds/lincs_compoundinfo.tsv", shared / "compounds/repurposing_samples_20200324.txt"
    if not (info.exists() and samples.exists()):
        pytest.skip("real compound tables not present")
    d = pd.read_csv(info, sep="\t", dtype=str, usecols=["cmap_name", "inchi_key"])
    s = pd.read_csv(samples, sep="\t", comment="!", dtype=str, usecols=["pert_iname", "InChIKey"])
    ref = pd.concat([d.set_axis(["name", "key"], axis=1), s.set_axis(["name", "key"], axis=1)]).dropna()
    ref["name"] = ref["name"].str.lower()
    checked = 0
    for drug in DRUGS:
        keys = set(ref.loc[ref["name"] == drug.name, "key"])
        if not keys:
            continue
        checked += 1
        mine = Chem.MolToInchiKey(Chem.MolFromSmiles(drug.smiles))
        assert mine[:14] in {k[:14] for k in keys}, (drug.name, mine, sorted(keys))
    assert checked >= 50


# --- generated files ---------------------------------------------------------------------------


def test_generation_is_fast_and_small(world):
    assert world.params["_cpu_s"] < 10.0
    total = sum(p.stat().st_size for p in world.out_dir.rglob("*") if p.is_file())
    assert total < 10 * 2**20


def test_same_seed_same_bytes_other_seed_differs(world, tmp_path):
    again = generate_default_dataset(tmp_path / "again", seed=0)
    assert _hashes(again.out_dir) == _hashes(world.out_dir)
    other = _hashes(generate_default_dataset(tmp_path / "other", seed=1).out_dir)
    base = _hashes(world.out_dir)
    for key in ("knockdown_gctx", "compound_gctx", "string_edges", "cell_line_features", "true_edges"):
        assert other[REL_PATHS[key]] != base[REL_PATHS[key]], key


def test_gctx_layout_and_metadata(world):
    with h5py.File(world.paths["compound_gctx"], "r") as f:
        assert f.attrs["version"] == b"GCTX1.0"
        assert f.attrs["simulated"] == b"true"
        assert b"SIMULATED" in f.attrs["src"]
        m = f["0/DATA/0/matrix"]
        assert m.dtype == np.float32
        assert m.shape == (len(f["0/META/COL/id"]), len(f["0/META/ROW/id"]))
        assert f["0/META/COL/pert_type"].dtype.kind == "S"
    cp = read_gctx(world.paths["compound_gctx"])
    assert cp.matrix.shape[1] == len(world.genes)
    assert np.isfinite(cp.matrix).all() and np.abs(cp.matrix).max() <= 10.0
    assert set(cp.col_meta["pert_type"]) == {"trt_cp", "ctl_vehicle"}
    trt = cp.col_meta[cp.col_meta["pert_type"] == "trt_cp"]
    assert set(trt["pert_idose"]) == {"10 uM", "1 uM"} and set(trt["pert_itime"]) == {"24 h"}
    assert set(trt["pert_iname"]) == set(DRUGS_BY_NAME)
    assert set(cp.col_meta["cell_id"]) == set(world.contexts) == set(CONTEXT_NAMES[:5])
    assert cp.col_meta.index.is_unique
    assert list(cp.row_meta["pr_gene_symbol"]) == list(world.genes["symbol"])
    assert (cp.row_meta["pr_is_lm"] == 1).all()

    kd = read_gctx(world.paths["knockdown_gctx"])
    assert set(kd.col_meta["pert_type"]) == {"trt_sh", "trt_xpr", "ctl_vector"}
    assert set(kd.col_meta["pert_itime"]) == {"96 h"}
    assert kd.col_meta["pert_idose"].isna().all()  # -666 = not applicable
    # the knocked-down gene is strongly down in its own signature (like real shRNA data)
    trt = kd.col_meta["pert_type"].isin(["trt_sh", "trt_xpr"]).to_numpy()
    col = {s: i for i, s in enumerate(kd.row_meta["pr_gene_symbol"])}
    own = np.array([kd.matrix[i, col[g]] for i, g in zip(np.flatnonzero(trt), kd.col_meta["pert_iname"][trt], strict=True)])
    assert np.median(own) < -3.0
    assert np.median(kd.matrix[trt]) > -0.5  # most readouts are near zero


def test_gctx_converts_to_the_long_table(world):
    long, conv = gctx_to_long(world.paths["knockdown_gctx"], "sim_knockdown")
    assert len(long) == read_gctx(world.paths["knockdown_gctx"]).matrix.size and not conv.quarantine
    assert set(long["perturbation_type"]) == {"shRNA", "CRISPRko", "control"}
    assert set(long["context"]) == set(world.contexts)


def test_gene_table_uses_real_ids_and_parses(world):
    df = pd.read_csv(world.paths["genes"], sep="\t", dtype=str, keep_default_na=False)
    assert list(df.columns) == GENE_COLUMNS
    ids = dict(zip(df["symbol"], df["entrez_id"].astype(int), strict=True))
    # a few real NCBI Entrez ids
    assert ids["MTOR"] == 2475 and ids["EGFR"] == 1956 and ids["ABL1"] == 25 and ids["HMGCR"] == 3156
    assert set(drug_targets()) <= set(ids)
    result = read_gene_table(world.paths["genes"])
    assert len(result.records) == len(world.genes) and not result.quarantine


def test_more_genes_than_built_in_adds_synthetic_ones(tmp_path):
    n_builtin = len(builtin_genes())
    w = generate_default_dataset(tmp_path, seed=3, n_genes=n_builtin + 5, n_contexts=2,
                                 withhold_compound_fraction=0.0)
    syn = w.genes[w.genes["symbol"].str.startswith("SIMG")]
    assert len(syn) == 5 and (syn["entrez_id"] > 990_000_000).all()
    assert not w.withheld_compound_pairs
    with pytest.raises(ValueError):
        generate_default_dataset(tmp_path / "x", n_genes=10)


def test_compound_table(world):
    df = pd.read_csv(world.paths["compoundinfo"], sep="\t", dtype=str, keep_default_na=False)
    assert list(df.columns) == COMPOUNDINFO_COLUMNS
    assert len(df) == len(DRUGS) and df["pert_id"].is_unique
    for row in df.itertuples():
        mol = Chem.MolFromSmiles(row.canonical_smiles)
        assert mol is not None and Chem.MolToInchiKey(mol) == row.inchi_key
        if row.cmap_name in world.annotation_withheld:
            assert row.target == ""
        else:
            assert tuple(row.target.split("|")) == world.compound_targets[row.cmap_name]
    assert 0 < len(world.annotation_withheld) < len(DRUGS) // 3
    parsed = read_lincs_compoundinfo(world.paths["compoundinfo"])
    assert len(parsed.records) == len(DRUGS)


def test_string_prior_holds_part_of_the_truth(world):
    with gzip.open(world.paths["string_edges"], "rt") as fh:
        s = pd.read_csv(fh, sep="\t")
    assert list(s.columns) == STRING_COLUMNS
    assert s["combined_score"].between(400, 999).all()
    pairs = {frozenset(p) for p in zip(s["symbol_a"], s["symbol_b"], strict=True)}
    assert len(pairs) == len(s)  # undirected, each pair once
    prior = {frozenset(p) for p in zip(world.prior_edges["source"], world.prior_edges["target"], strict=True)}
    hidden = {frozenset(p) for p in zip(world.hidden_edges["source"], world.hidden_edges["target"], strict=True)} - prior
    assert prior <= pairs and not (hidden & pairs)
    assert 0.35 < len(prior) / (len(prior) + len(hidden)) < 0.65
    false = pairs - prior
    assert 0.15 < len(false) / len(pairs) < 0.35
    is_true = np.array([frozenset(p) in prior for p in zip(s["symbol_a"], s["symbol_b"], strict=True)])
    assert (s["combined_score"][is_true] >= 700).mean() > 0.6
    assert (s["combined_score"][~is_true] >= 700).mean() < 0.4
    # the project's STRING reader takes it (default cut 0.7) without quarantining anything
    parsed = read_string_edges(world.paths["string_edges"])
    assert not parsed.quarantine and len(parsed.records) == int((s["combined_score"] >= 700).sum())


def test_cell_line_features(world):
    df = pd.read_parquet(world.paths["cell_line_features"])
    assert list(df.columns) == FEATURE_COLUMNS
    assert str(df["is_expressed"].dtype) == "boolean" and df["basex_rnaseq"].dtype == np.float32
    assert len(df) == len(world.contexts) * len(world.genes)
    feats = read_cell_line_features(world.paths["cell_line_features"], "basex_rnaseq")
    assert feats.matrix.shape == (len(world.contexts), len(world.genes)) and feats.missing_fraction == 0
    # contexts differ in their baselines
    piv = df.pivot(index="cell_id", columns="gene_symbol", values="basex_rnaseq").to_numpy()
    assert np.abs(piv - piv.mean(0)).mean() > 0.5


def test_withheld_experiments_are_only_in_truth(world):
    cp = read_gctx(world.paths["compound_gctx"]).col_meta
    hold = read_gctx(world.paths["withheld_compound_gctx"]).col_meta
    released = set(zip(cp["pert_iname"], cp["cell_id"], strict=True))
    withheld = set(world.withheld_compound_pairs)
    assert withheld and not (withheld & released)
    assert set(zip(hold["pert_iname"], hold["cell_id"], strict=True)) == withheld
    per_drug = cp[cp["pert_type"] == "trt_cp"].groupby("pert_iname")["cell_id"].nunique()
    assert per_drug.min() >= 2
    kd = read_gctx(world.paths["knockdown_gctx"]).col_meta
    assert not set(world.withheld_knockdown_pairs) & set(zip(kd["pert_iname"], kd["cell_id"], strict=True))


def test_labelled_simulated_and_truth_round_trips(world):
    assert "SIMULATED" in world.paths["readme"].read_text()
    truth = read_ground_truth(world.out_dir)
    assert truth["simulated"] is True
    assert len(truth["edges"]) == len(world.edges)
    assert set(truth["compound_targets"]) == set(DRUGS_BY_NAME)
    assert [tuple(p) for p in truth["withheld_compound_pairs"]] == list(world.withheld_compound_pairs)
    assert json.loads(world.paths["ground_truth"].read_text())["params"]["seed"] == 0
    assert all(c.startswith("SIM") for c in world.contexts)


# --- the truth is recoverable by simple statistics --------------------------------------------


def test_compounds_match_their_targets_knockdowns(recoverability):
    # ~170 candidate knockdowns per drug; random ranking would put a target in the top 5 ~3-10 % of the time
    assert recoverability["n_drugs_ranked"] == len(DRUGS)
    assert recoverability["target_top5"] >= 0.8
    assert recoverability["target_median_rank"] <= 2


def test_hidden_edges_rank_above_random_pairs(recoverability):
    assert recoverability["n_hidden_edges_tested"] >= 50
    assert recoverability["hidden_edge_auroc"] > 0.65


def test_heldout_signatures_predictable_from_other_contexts(recoverability):
    assert recoverability["n_heldout_signatures"] >= 20
    assert recoverability["heldout_r_other_contexts"] > 0.3
    assert recoverability["heldout_mse_ratio"] < 0.9  # better than predicting zero
    # knockdown signatures are weaker (mostly the target itself + noise) but still correlate across contexts
    assert recoverability["n_heldout_knockdowns"] >= 20
    assert recoverability["heldout_kd_r_other_contexts"] > 0.1


def test_structurally_similar_drugs_act_alike(world):
    """Pairs of drugs with similar Morgan fingerprints have more similar signatures than dissimilar pairs."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = {d.name: gen.GetFingerprint(Chem.MolFromSmiles(d.smiles)) for d in DRUGS}
    cp = read_gctx(world.paths["compound_gctx"])
    meta = cp.col_meta.reset_index(drop=True)
    sig = {}
    for (name, cell), idx in meta[meta["pert_idose"] == "10 uM"].groupby(["pert_iname", "cell_id"]).groups.items():
        sig[(name, cell)] = cp.matrix[idx[0]]
    names = sorted(DRUGS_BY_NAME)
    close, far = [], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            r = [np.corrcoef(sig[(a, c)], sig[(b, c)])[0, 1] for c in world.contexts if (a, c) in sig and (b, c) in sig]
            if not r:
                continue
            t = DataStructs.TanimotoSimilarity(fps[a], fps[b])
            (close if t >= 0.4 else far if t < 0.2 else []).append(np.mean(r))
    assert len(close) >= 5
    assert np.mean(close) > np.mean(far) + 0.2

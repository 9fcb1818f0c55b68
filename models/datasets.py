"""Load the shared perturbation data sets into canonical long tables for training and evaluation.

Every loader returns one row per (context, perturbation, readout) with the columns
`context, perturbation, perturbation_type, readout, value` (strings and float32); other columns
(e.g. `dataset`, `signature_id`) may follow and are ignored by the models and the harness.

What `value` means per source (documented in docs/results.md as well):
- Tahoe-100M (full signed rankings): the signed rank score s = 1 - 2(rank-1)/(n_ranked-1), +1 = most
  up, -1 = most down. By default readouts are restricted to the 1,382 genes ranked in every one of
  the 1,071 signatures (a dense matrix), so no value is missing.
- Replogle 2022 CRISPRi: only the top-1,000 *up-regulated* end of every ranking exists, so the
  signed score would call rank 1,000 "most down" although it is still up. We use the up score
  u = 1 - (rank-1)/n_ranked in (0, 1] and keep only the readouts present in a signature: a missing
  readout is not "unchanged", so it is never scored. Evaluation therefore asks "how far up does a
  gene that is in the top-1,000 go", not "which genes go up".
- L1000 GCTX: the stored z-scores; replicate wells / doses / times of the same (cell line,
  perturbation) are averaged; controls are dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from graph.settings import get_settings

LONG_COLUMNS = ["context", "perturbation", "perturbation_type", "readout", "value"]
KEYS = ["context", "perturbation", "readout"]

# Short names accepted wherever a dataset path is (CLI --input, benchmarks).
SHARED_DATASETS: dict[str, str] = {
    "tahoe": "chemical/tahoe100m_ranked_signatures.parquet",
    "replogle": "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet",
    "l1000-ds": "l1000/cmap_ds_level5_modz_n272x978.gctx",
    "l1000-ljp005": "l1000/LJP005_A375_24H_level4_n377x978.gctx",
    "l1000-kd": "l1000/cmap_kd_shrna_level4_n374x976.gctx",
    "l1000-skb": "l1000/signatureSearch_SKB_level5_n100x5000.gctx",
}

# CMap pert_type -> PERTURBATION_TYPES (graph/records.py); anything else is a control and dropped.
_L1000_TYPES = {"trt_cp": "compound", "trt_sh": "shRNA", "trt_oe": "ORF", "trt_xpr": "CRISPRko", "trt_poscon": "compound"}


def shared_path(relative: str) -> Path:
    return Path(get_settings().shared_data) / relative


def signed_rank_score(rank: np.ndarray, n_ranked: np.ndarray) -> np.ndarray:
    """+1 for rank 1 (most up), -1 for rank n_ranked (most down), linear in between."""
    rank = np.asarray(rank, dtype=np.float64)
    n = np.asarray(n_ranked, dtype=np.float64)
    return (1.0 - 2.0 * (rank - 1.0) / np.maximum(n - 1.0, 1.0)).astype(np.float32)


def up_rank_score(rank: np.ndarray, n_ranked: np.ndarray) -> np.ndarray:
    """1 for rank 1, 1/n for the last kept rank: for lists that hold only the up-regulated end."""
    rank = np.asarray(rank, dtype=np.float64)
    return (1.0 - (rank - 1.0) / np.asarray(n_ranked, dtype=np.float64)).astype(np.float32)


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order and plain dtypes (category codes differ between tables)."""
    out = df[LONG_COLUMNS].copy()
    for c in LONG_COLUMNS[:4]:
        out[c] = out[c].astype(str)
    out["value"] = out["value"].astype(np.float32)
    return out.reset_index(drop=True)


def dense_readouts(df: pd.DataFrame) -> list[str]:
    """Readouts present in every (context, perturbation) signature."""
    n_sig = df.groupby(["context", "perturbation"], observed=True).ngroups
    counts = df.groupby("readout", observed=True).size()
    return sorted(counts.index[counts == n_sig].astype(str))


def from_ranked(df: pd.DataFrame, *, up_only: bool = False) -> pd.DataFrame:
    """A ranked long table (rank, n_ranked) -> canonical long table.

    up_only: the lists hold only the up-regulated end (Replogle); use the up score instead of the
    signed score, which would call the last kept rank "most down".
    """
    score = up_rank_score if up_only else signed_rank_score
    out = df.assign(value=score(df["rank"].to_numpy(), df["n_ranked"].to_numpy()))
    return _finish(out)


def most_measured_readouts(df: pd.DataFrame, n: int) -> list[str]:
    """The n readouts with the most rows (= signatures measuring them, one row per signature and
    readout); ties broken by name so the choice never depends on values or row order."""
    counts = df.groupby("readout", observed=True).size().reset_index(name="n")
    counts["readout"] = counts["readout"].astype(str)
    return counts.sort_values(["n", "readout"], ascending=[False, True])["readout"].head(n).tolist()


def load_tahoe(path: str | Path | None = None, *, readouts: str | int | list[str] = "dense",
               contexts: list[str] | None = None, n_random: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Tahoe-100M signed rank scores.

    readouts: "dense" (the 1,382 ranked in every signature, default), "all" (26,347; sparse), an int N
    (the N readouts present in most signatures; ties broken by name) or an explicit list.
    n_random: then keep a random subset of that many of those readouts (seeded; chosen without looking
    at values, so it cannot favour any model) to make CPU training affordable.
    """
    raw = pd.read_parquet(path or shared_path(SHARED_DATASETS["tahoe"]),
                          columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    if contexts is not None:
        raw = raw[raw["context"].isin(contexts)]
    if isinstance(readouts, str) and readouts == "dense":
        keep = dense_readouts(raw)
    elif isinstance(readouts, int):
        keep = most_measured_readouts(raw, readouts)
    elif isinstance(readouts, str) and readouts == "all":
        keep = None
    else:
        keep = list(readouts)
    if n_random is not None:
        pool = sorted(keep if keep is not None else raw["readout"].astype(str).unique())
        keep = list(np.random.default_rng(seed).choice(pool, size=min(n_random, len(pool)), replace=False))
    if keep is not None:
        raw = raw[raw["readout"].isin(keep)]
    return from_ranked(raw, up_only=False)


def load_replogle(path: str | Path | None = None, *, min_signatures: int = 1,
                  contexts: list[str] | None = None) -> pd.DataFrame:
    """Replogle CRISPRi up scores, present readouts only (see module docstring).

    min_signatures: keep readouts that are in the top-1,000 of at least this many signatures
    (fewer, better-supported readouts; 1 keeps everything).
    """
    raw = pd.read_parquet(path or shared_path(SHARED_DATASETS["replogle"]),
                          columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    if contexts is not None:
        raw = raw[raw["context"].isin(contexts)]
    if min_signatures > 1:
        counts = raw.groupby("readout", observed=True).size()
        raw = raw[raw["readout"].isin(counts.index[counts >= min_signatures])]
    return from_ranked(raw, up_only=True)


def read_gctx_long(path: str | Path) -> pd.DataFrame:
    """A GCTX file -> long table with the CMap column metadata needed for modelling (graph.io's reader).

    Returns columns sample, pert_iname, pert_type, cell_id, readout, value.
    """
    from graph.io.gctx import read_gctx

    data = read_gctx(path)
    # Metadata frames are indexed by the GCTX ids; matrix is (n_samples, n_genes).
    row, col, matrix = data.row_meta.reset_index(), data.col_meta.reset_index(), data.matrix
    n_samples, n_genes = matrix.shape

    def column(name: str, default: str) -> np.ndarray:
        if name not in col.columns:
            return np.full(n_samples, default, dtype=object)
        return col[name].astype("string").fillna(default).to_numpy(dtype=object)

    genes = (row["pr_gene_symbol"] if "pr_gene_symbol" in row.columns else row["id"]).astype(str).to_numpy()
    cell = column("cell_id", "unknown")  # kd_gct: the cell line is not recorded
    return pd.DataFrame({
        "sample": np.repeat(col["id"].astype(str).to_numpy(), n_genes),
        "pert_iname": np.repeat(column("pert_iname", "") if "pert_iname" in col.columns
                                else col["id"].astype(str).to_numpy(), n_genes),
        "pert_type": np.repeat(column("pert_type", "trt_cp"), n_genes),
        "cell_id": np.repeat(cell, n_genes),
        "readout": np.tile(genes, n_samples),
        "value": np.asarray(matrix, dtype=np.float32).reshape(-1),
    })


def load_gctx(path: str | Path) -> pd.DataFrame:
    """L1000 z-scores averaged per (cell line, perturbation, readout); control wells dropped."""
    long = read_gctx_long(path)
    long = long[long["pert_type"].isin(list(_L1000_TYPES))]
    long = long.assign(perturbation_type=long["pert_type"].map(_L1000_TYPES), context=long["cell_id"],
                       perturbation=long["pert_iname"])
    out = (long.groupby(["context", "perturbation", "perturbation_type", "readout"], observed=True)["value"]
           .mean().reset_index())
    return _finish(out)


def load_long_table(path: str | Path) -> pd.DataFrame:
    """A user's parquet / CSV / TSV: either a canonical long table (value) or a ranked one (rank, n_ranked)."""
    path = Path(path)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep="\t" if path.suffix in {".tsv", ".txt"} else ",")
    if "perturbation_type" not in df.columns:  # a table of one kind; compounds are the common case
        df = df.assign(perturbation_type="compound")
    if "value" not in df.columns:
        if {"rank", "n_ranked"} <= set(df.columns):
            return from_ranked(df)
        raise ValueError(f"{path}: needs a 'value' column or 'rank' and 'n_ranked' columns")
    missing = set(LONG_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    # Duplicate keys (replicates) are averaged so every (context, perturbation, readout) is one row.
    df = df.groupby(["context", "perturbation", "perturbation_type", "readout"], observed=True)["value"].mean().reset_index()
    return _finish(df)


def load_dataset(name_or_path: str | Path, **kwargs) -> pd.DataFrame:
    """Any input the CLI accepts: a shared dataset name (SHARED_DATASETS) or a file path."""
    key = str(name_or_path)
    from graph.settings import get_settings
    from graph.store import load_training_table, read_manifest

    is_dataset_id = key.replace("_", "").isalnum()  # store ids are [a-z0-9_]; paths never match
    if is_dataset_id and read_manifest(get_settings(), key) is not None:
        # A dataset ingested by the pipeline: its values from the columnar store (hash verified).
        return _finish(load_training_table(get_settings(), [key]).loc[:, list(LONG_COLUMNS)])
    if key == "tahoe":
        return load_tahoe(**kwargs)
    if key == "replogle":
        return load_replogle(**kwargs)
    if key in SHARED_DATASETS:
        return load_gctx(shared_path(SHARED_DATASETS[key]))
    path = Path(key)
    if not path.exists():
        raise FileNotFoundError(f"{key}: neither a file nor one of {sorted(SHARED_DATASETS)}")
    if path.suffix == ".gctx":
        return load_gctx(path)
    if path.name == Path(SHARED_DATASETS["tahoe"]).name:
        return load_tahoe(path, **kwargs)
    return load_long_table(path)


# --- side information for models: compound structures and the gene prior graph ---------------------

_SALT_WORDS = {
    "hydrochloride", "dihydrochloride", "trihydrochloride", "hcl", "mesylate", "dimesylate", "maleate",
    "sodium", "disodium", "potassium", "calcium", "hydrate", "monohydrate", "dihydrate", "sesquihydrate",
    "trihydrate", "hemihydrate", "isethionate", "disulfate", "sulfate", "hemisulfate", "bisulfate", "tartrate", "bitartrate", "citrate", "acetate",
    "diacetate", "phosphate", "diphosphate", "fumarate", "hemifumarate", "succinate", "tosylate",
    "besylate", "bromide", "hydrobromide", "chloride", "iodide", "nitrate", "lactate", "malate",
    "mesilate", "salt", "free", "base", "anhydrous", "dimaleate", "oxalate", "ammonium", "diammonium",
}


def normalise_compound_name(name: str) -> str:
    """Lower case, salt/hydrate words removed, punctuation and spaces removed: 'Berbamine dihydrochloride' -> 'berbamine'."""
    words = re.split(r"[\s,()]+", str(name).lower())
    kept = [w for w in words if w and w not in _SALT_WORDS]
    return re.sub(r"[^0-9a-z]", "", "".join(kept or words))


@lru_cache(maxsize=1)
def _smiles_table() -> dict[str, str]:
    """normalised name -> SMILES from the LINCS compound table, then the Repurposing Hub (first wins)."""
    table: dict[str, str] = {}
    lincs = pd.read_csv(shared_path("compounds/lincs_compoundinfo.tsv"), sep="\t", dtype=str,
                        usecols=["cmap_name", "canonical_smiles", "compound_aliases"])
    for name, smi, aliases in lincs.itertuples(index=False):
        if isinstance(smi, str) and smi:
            for n in [name, *(aliases.split("|") if isinstance(aliases, str) else [])]:
                table.setdefault(normalise_compound_name(n), smi)
    rep = pd.read_csv(shared_path("compounds/repurposing_samples_20200324.txt"), sep="\t", comment="!",
                      dtype=str, usecols=["pert_iname", "smiles"])
    for name, smi in rep.itertuples(index=False):
        if isinstance(smi, str) and smi:
            table.setdefault(normalise_compound_name(name), smi)
    return table


def compound_smiles(names) -> dict[str, str]:
    """SMILES for the compound names that match the shared compound tables by normalised name."""
    table = _smiles_table()
    out = {}
    for n in names:
        smi = table.get(normalise_compound_name(n))
        if smi:
            out[str(n)] = smi
    return out


def string_gene_graph(min_score: int = 700, genes=None) -> pd.DataFrame:
    """STRING v12 edges (symbols) as source, target, weight in [0, 1]; optionally within `genes`."""
    edges = pd.read_csv(shared_path("networks/string_v12_edges.tsv.gz"), sep="\t",
                        usecols=["symbol_a", "symbol_b", "combined_score"])
    edges = edges[edges["combined_score"] >= min_score]
    if genes is not None:
        genes = set(map(str, genes))
        edges = edges[edges["symbol_a"].isin(genes) & edges["symbol_b"].isin(genes)]
    return pd.DataFrame({"source": edges["symbol_a"].astype(str).to_numpy(),
                         "target": edges["symbol_b"].astype(str).to_numpy(),
                         "weight": (edges["combined_score"] / 1000.0).astype(np.float32).to_numpy()})


def cell_line_features(contexts=None, *, n_genes: int = 256, feature: str = "basex_rnaseq") -> pd.DataFrame:
    """LINCS baseline expression of the shared cell lines as a (contexts, n_genes) frame: the n_genes
    most variable genes across every line in the file (chosen without looking at any response
    data, so a held-out line leaks nothing), missing values filled with the gene's mean. Rows are
    the requested `contexts` that the file has (all lines when None)."""
    from graph.io.contexts import read_cell_line_features

    wide = read_cell_line_features(shared_path("contexts/lincs_cell_line_features.parquet"), feature,
                                   fill="gene_mean").matrix
    wide = wide.dropna(axis=1, how="any")
    top = wide.var().sort_values(ascending=False).index[:n_genes]
    out = wide[top]
    if contexts is not None:
        wanted = [str(c) for c in contexts]
        out = out.loc[[c for c in wanted if c in out.index]]
    return out.astype(np.float32)


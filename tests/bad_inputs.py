"""Generator of the bad-input corpus (written into a temporary folder; nothing binary is committed).

`write_corpus(folder)` writes one file per broken-input case and returns {case name: path}. The
expected outcome of each case (accepted, quarantined with a reason, or refused with a clear error)
is asserted in tests/test_reliability_inputs.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

# Names that try to break out of a Cypher string or identifier, or look like something they are not.
HOSTILE_NAMES: tuple[str, ...] = (
    "O'Brien's \"drug\"",
    "`Gene`) DETACH DELETE n //",
    "}) MATCH (n) DETACH DELETE n WITH 1 AS x MATCH ({",
    "x' OR '1'='1",
    "MATCH (n) RETURN n",
    "CALL dbms.killQueries([]) //",
    "$rows",
    "{name: 'x'}",
    "back\\slash\\",
    "/* comment */ // end",
    "ТР53",  # Cyrillic Т and Р: looks like TP53
    "ＭＹＣ",  # full-width letters
    "café\u0301",  # combining accent
    "zero\u200bwidth",
    "right-to-left \u202eevil",
    "emoji 🧬",
    "null",
    "NaN",
    " leading and trailing spaces ",
    "UNWIND [1,2] AS x CREATE (:Evil)",
)

# Genes of the corpus' gene table: (entrez, symbol, aliases). SEPTIN7 was SEPT7 (Excel: "7-Sep");
# MARCHF1 was MARCH1 (Excel: "1-Mar"); CCN2 was CTGF (a retired symbol kept as alias).
GENES: tuple[tuple[str, str, str], ...] = (
    ("7157", "TP53", "P53|LFS1"),
    ("4609", "MYC", "c-Myc|bHLHe39"),
    ("989", "SEPTIN7", "SEPT7|CDC10"),
    ("55016", "MARCHF1", "MARCH1|RNF171"),
    ("1490", "CCN2", "CTGF|IGFBP8"),
    ("1956", "EGFR", "ERBB1|HER1"),
)

# Readout spellings in the measurement files and the symbol each should resolve to (None: unknown).
READOUT_SPELLINGS: dict[str, str | None] = {
    "TP53": "TP53", "p53": "TP53", "7-Sep": "SEPTIN7", "SEPT7": "SEPTIN7", "1-Mar": "MARCHF1",
    "CTGF": "CCN2", "7157": "TP53", "NOT_A_GENE_XYZ": None,
}

# SMILES that must not crash or hang the compound pipeline, with the kind of rejection expected.
BAD_SMILES: dict[str, str] = {
    "": "empty",
    "C1CC": "unclosed ring",
    "C(C)(C)(C)(C)C": "pentavalent carbon",
    "c1ccccc": "aromaticity",
    "[Xx]": "unknown element",
    "C" * 5000: "huge",
    "CC(C": "unbalanced parenthesis",
    "C" + "1" * 300: "ring closures",
    "DROP DATABASE neo4j;": "not SMILES",
    "CCO\n": "trailing newline",  # clean_text strips it: accepted as ethanol
}
GOOD_SMILES: dict[str, str] = {"ethanol": "CCO", "benzene": "c1ccccc1", "aspirin": "CC(=O)Oc1ccccc1C(=O)O"}


def gene_table(folder: Path) -> Path:
    rows = [{"entrez_id": e, "symbol": s, "name": f"{s} gene", "type": "protein-coding", "ensembl_id": "",
             "aliases": a} for e, s, a in GENES]
    rows += [
        {"entrez_id": "7157", "symbol": "TP53_DUP", "name": "duplicate id", "type": "", "ensembl_id": "", "aliases": ""},
        {"entrez_id": "12a", "symbol": "BADID", "name": "non-integer id", "type": "", "ensembl_id": "", "aliases": ""},
        {"entrez_id": "-5", "symbol": "NEG", "name": "negative id", "type": "", "ensembl_id": "", "aliases": ""},
        {"entrez_id": "999999", "symbol": "", "name": "no symbol", "type": "", "ensembl_id": "", "aliases": ""},
    ]
    path = folder / "genes_bad.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def compound_samples(folder: Path) -> Path:
    """Repurposing-Hub samples layout: every bad SMILES, hostile names, duplicate and conflicting ids."""
    rows = [(f"BRD-K{i:08d}-001-01-1", f"bad{i}", smi) for i, smi in enumerate(BAD_SMILES)]
    rows += [(f"BRD-G{i:08d}-001-01-1", name, smi) for i, (name, smi) in enumerate(GOOD_SMILES.items())]
    rows += [(f"BRD-H{i:08d}-001-01-1", name, "") for i, name in enumerate(HOSTILE_NAMES)]
    rows += [
        ("BRD-K99999999-001-01-1", "conflict", "CCO"),  # the same id twice, two structures
        ("BRD-K99999999-001-01-1", "conflict", "CCN"),
        ("BRD-G00000000-001-01-1", "ethanol", "CCO"),  # an exact duplicate row
        ("", "", ""),  # nothing at all: quarantined
    ]
    path = folder / "repurposing_samples_bad.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write("!comment line as in the Hub file\n")
        f.write("broad_id\tpert_iname\tsmiles\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    return path


def long_table(folder: Path) -> tuple[Path, dict[str, int]]:
    """A value table with NaN/inf/-666, repeated and conflicting rows, hostile names, odd readouts.
    Returns the path and the number of rows expected per outcome."""
    rows = []
    good = 0
    for i, name in enumerate(HOSTILE_NAMES[:8]):
        for readout in READOUT_SPELLINGS:
            rows.append({"context": "A375", "perturbation": name, "perturbation_type": "CRISPRi",
                         "readout": readout, "value": float(i) + 0.5})
            good += 1
    bad_values = [np.nan, np.inf, -np.inf]
    for j, v in enumerate(bad_values):
        rows.append({"context": "A375", "perturbation": "TP53", "perturbation_type": "CRISPRi",
                     "readout": f"R{j}", "value": v})
    rows.append({"context": "", "perturbation": "TP53", "perturbation_type": "CRISPRi", "readout": "MYC",
                 "value": 1.0})
    rows.append({"context": "A375", "perturbation": "TP53", "perturbation_type": "teleportation", "readout": "MYC",
                 "value": 1.0})
    # A repeated (signature, readout) with a conflicting value: both copies are quarantined (default policy).
    rows.append({"context": "A375", "perturbation": HOSTILE_NAMES[0], "perturbation_type": "CRISPRi",
                 "readout": "TP53", "value": 99.0})
    path = folder / "long_bad.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path, {"good": good, "bad_value": len(bad_values), "empty": 1, "bad_type": 1, "repeat": 1}


def _gctx(folder: Path, name: str, n_samples: int = 4, n_genes: int = 3) -> Path:
    from graph.io.gctx import write_gctx

    rng = np.random.default_rng(0)
    row = pd.DataFrame({"id": [e for e, _, _ in GENES[:n_genes]], "pr_gene_symbol": [s for _, s, _ in GENES[:n_genes]]})
    col = pd.DataFrame({"id": [f"sig{i}" for i in range(n_samples)], "pert_iname": ["TP53"] * n_samples,
                        "pert_type": ["trt_sh"] * n_samples, "cell_id": ["A375"] * n_samples})
    matrix = rng.normal(size=(n_samples, n_genes)).astype(np.float32)
    matrix[0, 0], matrix[1, 1], matrix[2, 2] = np.nan, -666.0, np.inf
    return write_gctx(folder / name, matrix, row, col)


def gctx_good(folder: Path) -> Path:
    return _gctx(folder, "good.gctx")


def gctx_wrong_dimensions(folder: Path) -> Path:
    """The matrix has one column more than there are row ids."""
    import h5py

    path = _gctx(folder, "wrong_dims.gctx")
    with h5py.File(path, "r+") as h5:
        data = h5["0/DATA/0/matrix"]
        shape = data.shape
        del h5["0/DATA/0/matrix"]
        h5.create_dataset("0/DATA/0/matrix", data=np.zeros((shape[0], shape[1] + 1), dtype=np.float32))
    return path


def truncated(path: Path, keep: float = 0.5) -> Path:
    out = path.with_name(f"truncated_{path.name}")
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def h5ad_missing_obs(folder: Path) -> Path:
    import anndata as ad

    adata = ad.AnnData(X=np.ones((6, 3), dtype=np.float32),
                       obs=pd.DataFrame({"batch": ["b1"] * 6}, index=[f"c{i}" for i in range(6)]),
                       var=pd.DataFrame(index=["TP53", "MYC", "EGFR"]))
    path = folder / "missing_obs.h5ad"
    adata.write_h5ad(path)
    return path


def not_an_hdf5(folder: Path) -> Path:
    path = folder / "text_named.gctx"
    path.write_text("this is a tab separated file\twith a gctx name\n")
    return path


def write_corpus(folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = gctx_good(folder)
    table, _ = long_table(folder)
    return {
        "gene_table": gene_table(folder),
        "compounds": compound_samples(folder),
        "long_table": table,
        "gctx_good": good,
        "gctx_wrong_dimensions": gctx_wrong_dimensions(folder),
        "gctx_truncated": truncated(good),
        "gctx_not_hdf5": not_an_hdf5(folder),
        "h5ad_missing_obs": h5ad_missing_obs(folder),
        "h5ad_truncated": truncated(h5ad_missing_obs(folder), keep=0.3),
    }


# ---------------------------------------------------------------- files given to `train` / `evaluate`
LONG_HEADER = "context,perturbation,perturbation_type,readout,value\n"


def _clean_long(n_ctx: int = 3, n_pert: int = 6, n_readout: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"C{c}", f"drug{p}", "compound", f"G{r}", float(rng.normal()))
            for c in range(n_ctx) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


CLI_CASES = ("header_only", "empty_file", "directory", "missing_file", "all_nan", "text_in_every_value",
             "text_value", "nan_25_percent", "bad_ranks", "n_ranked_1", "conflicting_duplicates", "missing_columns",
             "h5ad_missing_obs", "hdf5_named_csv", "gctx_not_hdf5", "parquet_truncated", "gctx_truncated",
             "gctx_wrong_dimensions", "h5ad_truncated", "wide_duplicate_genes", "wide_text_cells",
             "wide_empty_matrix", "wide_header_only", "no_perturbation_type", "wide_no_perturbation_type")


def cli_corpus(folder: str | Path) -> dict[str, tuple[Path, str]]:
    """Hostile inputs for the CLI: {case: (path, expected)} where expected is "error" (exit 1, one line
    naming the file), "quarantine" (exit 0, the quarantined rows reported) or "averaged" (exit 0, conflicting
    copies of a key averaged by the default duplicate policy, graph/io/validation.DEFAULT_DUPLICATES; counted,
    nothing quarantined)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}

    def put(case: str, name: str, expected: str, frame: pd.DataFrame | None = None, text: str | None = None):
        path = folder / name
        if frame is not None:
            frame.to_parquet(path, index=False) if name.endswith(".parquet") else frame.to_csv(path, index=False)
        elif text is not None:
            path.write_text(text)
        out[case] = (path, expected)

    clean = _clean_long()
    put("header_only", "header_only.csv", "error", text=LONG_HEADER)
    put("empty_file", "empty.csv", "error", text="")
    (folder / "a_directory.csv").mkdir(exist_ok=True)
    out["directory"] = (folder / "a_directory.csv", "error")
    out["missing_file"] = (folder / "does_not_exist.parquet", "error")
    put("all_nan", "all_nan.csv", "error", clean.assign(value=np.nan))
    put("text_in_every_value", "text_values.csv", "error", clean.assign(value="high"))
    one_text = clean.astype({"value": object})
    one_text.loc[3, "value"] = "abc"
    put("text_value", "one_text_value.csv", "quarantine", one_text)
    nan25 = clean.copy()
    nan25.loc[nan25.index % 4 == 0, "value"] = np.where(np.arange((nan25.index % 4 == 0).sum()) % 2, np.inf, np.nan)
    put("nan_25_percent", "nan25.parquet", "quarantine", nan25)
    ranked = clean.drop(columns="value").assign(rank=(clean.index % 20) + 1, n_ranked=20)
    bad_ranks = ranked.copy()
    bad_ranks.loc[:2, "rank"] = [0, -7, 999]
    put("bad_ranks", "bad_ranks.csv", "quarantine", bad_ranks)
    put("n_ranked_1", "n_ranked_1.csv", "error", ranked.assign(rank=1, n_ranked=1))
    conflict = pd.concat([clean, clean.head(5).assign(value=clean.head(5)["value"] + 1.0)], ignore_index=True)
    put("conflicting_duplicates", "conflict.parquet", "averaged", conflict)
    put("missing_columns", "no_value.csv", "error", clean.drop(columns="value"))
    h5 = h5ad_missing_obs(folder)
    out["h5ad_missing_obs"] = (h5, "error")
    hdf_as_csv = folder / "really_hdf5.csv"
    hdf_as_csv.write_bytes(h5.read_bytes())
    out["hdf5_named_csv"] = (hdf_as_csv, "error")
    out["gctx_not_hdf5"] = (not_an_hdf5(folder), "error")
    clean.to_parquet(folder / "good.parquet", index=False)
    out["parquet_truncated"] = (truncated(folder / "good.parquet"), "error")
    out["gctx_truncated"] = (truncated(gctx_good(folder)), "error")
    out["gctx_wrong_dimensions"] = (gctx_wrong_dimensions(folder), "error")
    out["h5ad_truncated"] = (truncated(h5, keep=0.3), "error")
    # Wide tables (rows = perturbations, columns = genes).
    wide = clean.pivot_table(index=["context", "perturbation", "perturbation_type"], columns="readout",
                             values="value").reset_index()
    genes = [c for c in wide.columns if c not in ("context", "perturbation", "perturbation_type")]
    rows = []
    for _, r in wide.iterrows():  # the first gene column repeated with a different value: conflicting
        rows.append(",".join([r["context"], r["perturbation"], r["perturbation_type"],
                              *(f"{r[g]:.4f}" for g in genes), f"{r[genes[0]] + 1.0:.4f}"]))
    dup_text = (",".join(["context", "perturbation", "perturbation_type", *genes, genes[0]]) + "\n"
                + "\n".join(rows) + "\n")
    put("wide_duplicate_genes", "wide_dup_genes.csv", "averaged", text=dup_text)
    text_cells = wide.astype({genes[1]: object})
    text_cells.loc[::3, genes[1]] = "n/a?"
    put("wide_text_cells", "wide_text_cells.csv", "quarantine", text_cells)
    put("wide_empty_matrix", "wide_empty.csv", "error", text="context,perturbation,perturbation_type\nC0,drug0,compound\n")
    put("wide_header_only", "wide_header_only.csv", "error",
        text=",".join(["context", "perturbation", "perturbation_type", *genes]) + "\n")
    # No perturbation_type column and no --perturbation-type: refused everywhere (graph/io/options.py).
    put("no_perturbation_type", "no_type.csv", "error", clean.drop(columns="perturbation_type"))
    put("wide_no_perturbation_type", "wide_no_type.csv", "error", wide.drop(columns="perturbation_type"))
    return out


# ---------------------------------------------------------------- a structure worker that hangs
HANG_MARKER = "C[Hang]"


def hanging_worker(batch: list[str]) -> list[tuple[str, str, str]]:
    """Stands in for RDKit stuck on one pathological molecule (module level: it is sent to the worker)."""
    from graph.io.compounds import _standardise_batch

    if HANG_MARKER in batch:
        time.sleep(3600)
    return _standardise_batch(batch)

"""The one validation step for measurement long tables, shared by every entry point.

The ingest readers (graph/io/gctx.py per chunk, tables.py and wide.py per batch, h5ad.py) and the CLI
loaders (models/datasets.py) call `validate_measurements`. It checks, in this order, and gives each
rejected row one reason:

1. reasons the caller already found (unknown perturbation type, unparseable dose, -666, ...);
2. empty key fields;
2b. with `unknown_genes="quarantine"`: the unknown-gene reason the reader marked (GeneCheck, below);
3. the value: for ranked tables rank and n_ranked must be whole numbers with 1 <= rank <= n_ranked
   and n_ranked >= 2 (then value = the score of graph/io/identifiers.py); otherwise the value must
   be a finite number;
4. duplicates of a key: copies with the same value are collapsed to one row (counted, accepted);
   copies with different values follow the policy (DEFAULT_DUPLICATES, the one default of every route):
   "mean" (default: averaged into one row, counted as resolved), "quarantine" (every copy quarantined,
   the file disagrees with itself) or "first" (counted as resolved). Always reported.

read = accepted + quarantined, where a collapsed copy counts as accepted (and in duplicates_resolved).

Unknown genes (`GeneCheck`, the one rule for every reader): a readout, or a target of a genetic
perturbation, that the gene table does not resolve (unknown or ambiguous) is marked by the reader in
`unknown`; policy "keep" (default: real files measure readouts beyond any gene table) accepts such rows
and counts them in the report, "quarantine" rejects them with the reason. Contexts and perturbation
names are not checked against a vocabulary: a measurement file's contexts and perturbations are new
facts (they become nodes). A reader that rejects an id for another reason passes it in `prior_reason`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graph.io.common import InputFileError
from graph.io.identifiers import signed_rank_score, up_rank_score, valid_rank
from graph.records import PerturbationRecord, QuarantineRecord, ReadReport

DUPLICATE_POLICIES = ("quarantine", "mean", "first")
# The one default for conflicting copies of a key, at a reader's (signature, readout) and at the model's
# (context, perturbation, readout): averaged, counted and reported, as the pipeline's training_set averages
# several signatures of one experiment (average_duplicate_keys). graph/io/options.ReadOptions (CLI, Dagster
# config, FILE?k=v, sidecars), the readers and the benchmark loaders take it from here; "quarantine" and
# "first" stay explicit choices.
DEFAULT_DUPLICATES = "mean"
UNKNOWN_GENE_POLICIES = ("keep", "quarantine")
DEFAULT_KEYS = ("context", "perturbation", "readout")
MAX_QUARANTINE_RECORDS = 100_000  # beyond this, rows are counted by reason but not listed one by one

INVALID_RANK = "invalid rank (needs whole numbers 1 <= rank <= n_ranked, n_ranked >= 2)"
NOT_A_NUMBER = "value missing or not a number"
INFINITE = "value infinite"
CONFLICT = "conflicting duplicates: rows with one key and different values (all copies quarantined)"
UNKNOWN_READOUT = "readout not resolved by the gene table (unknown or ambiguous)"
UNKNOWN_TARGET = "perturbation target not resolved by the gene table (unknown or ambiguous)"


@dataclass(frozen=True)
class ValidationResult:
    """Accepted rows (one per key, with a float `value`) and why every other row was rejected."""

    accepted: pd.DataFrame  # index: the input position of the row kept for each key
    reason: np.ndarray  # (n_input,) object: '' for accepted rows (also collapsed copies), else the reason
    read: int
    quarantined: int
    duplicates_resolved: int  # copies collapsed or resolved by the policy (accepted, not in `accepted`)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    exact_duplicate_keys: int = 0  # keys whose copies all had one value (collapsed)
    conflicting_keys: int = 0  # keys whose copies disagreed (handled by the policy)
    unknown_kept: dict[str, int] = field(default_factory=dict)  # accepted rows with an unknown gene, by reason

    @property
    def n_accepted(self) -> int:
        return self.read - self.quarantined

    def report(self, source: str) -> ReadReport:
        r = ReadReport(source=source, read=self.read, accepted=self.n_accepted, quarantined=self.quarantined,
                       duplicates_resolved=self.duplicates_resolved, notes=list(self.notes))
        r.check()
        return r

    def summary(self) -> str:
        """One line: 'read N rows: A accepted, Q quarantined (reason: count, ...), D duplicates resolved'."""
        by = "; ".join(f"{k}: {v:,}" for k, v in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        return (f"read {self.read:,} rows: {self.n_accepted:,} accepted, {self.quarantined:,} quarantined"
                + (f" ({by})" if by else "") + f", {self.duplicates_resolved:,} duplicate rows resolved")


def _codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, blank): one hash factorisation per key column (categories reused), -1 and blank text
    (or a negative integer code, as the readers pass) marked blank. Work is per distinct value."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes, uniques = col.cat.codes.to_numpy().astype(np.int64), col.cat.categories
    else:
        codes, uniques = pd.factorize(col, sort=False)
    if pd.api.types.is_integer_dtype(getattr(uniques, "dtype", None)):
        bad_unique = np.asarray(uniques) < 0
    else:
        bad_unique = np.array([str(u).strip() == "" for u in uniques], dtype=bool)
    blank = (codes < 0) | (bad_unique[np.maximum(codes, 0)] if len(bad_unique) else True)
    return codes, blank


def _numbers(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)


def validate_measurements(
    df: pd.DataFrame,
    source: str,
    *,
    keys: Sequence[str] = DEFAULT_KEYS,
    ranked: bool | None = None,
    score: str = "signed",
    duplicates: str = DEFAULT_DUPLICATES,
    prior_reason: np.ndarray | None = None,
    unknown: np.ndarray | None = None,
    unknown_genes: str = "keep",
    raw: pd.DataFrame | None = None,
    max_records: int = MAX_QUARANTINE_RECORDS,
) -> ValidationResult:
    """Validate one long table (or one streamed chunk). See the module docstring for the rules.

    ranked: None detects rank/n_ranked columns; score "signed" or "up" (identifiers.py) for ranked
    tables. prior_reason: reasons the
    caller found already ('' = none). unknown: per row '' or UNKNOWN_READOUT / UNKNOWN_TARGET (from
    GeneCheck), handled by the `unknown_genes` policy. raw: the frame quarantine records show (defaults
    to df; the readers pass the source rows when df holds codes). `accepted` keeps df's columns, `value`
    float64.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicate policy must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    n = len(df)
    df = df.reset_index(drop=True)
    reason = np.full(n, "", dtype=object) if prior_reason is None else np.asarray(prior_reason, dtype=object).copy()

    def mark(mask: np.ndarray, why) -> None:
        sel = mask & (reason == "")
        if sel.any():
            reason[sel] = why if isinstance(why, str) else np.asarray(why, dtype=object)[sel]

    key_codes = {}
    for k in keys:
        key_codes[k], blank = _codes(df[k])
        mark(blank, f"empty {k}")
    if unknown_genes not in UNKNOWN_GENE_POLICIES:
        raise ValueError(f"unknown-gene policy must be one of {UNKNOWN_GENE_POLICIES}, got {unknown_genes!r}")
    unknown = None if unknown is None else np.asarray(unknown, dtype=object)
    if unknown is not None and unknown_genes == "quarantine":
        mark(unknown != "", unknown)
    ranked = ({"rank", "n_ranked"} <= set(df.columns)) if ranked is None else ranked
    if ranked:
        r, nr = _numbers(df["rank"]), _numbers(df["n_ranked"])
        mark(~(np.isfinite(r) & np.isfinite(nr)), "rank or n_ranked missing or not a number")
        mark(~valid_rank(r, nr), INVALID_RANK)
        value = (up_rank_score if score == "up" else signed_rank_score)(r, nr, dtype=np.float64)
    else:
        value = _numbers(df["value"])
        mark(np.isnan(value), NOT_A_NUMBER)
        mark(np.isinf(value), INFINITE)
    good = np.flatnonzero(reason == "")
    kept = df.iloc[good].assign(value=value[good])
    kept.index = good
    # Duplicates: group the good rows by key (the key columns' codes folded into one int64).
    codes = np.zeros(len(kept), dtype=np.int64)
    for k in keys:
        c = key_codes[k][good]
        codes = codes * (int(c.max(initial=0)) + 2) + (c + 1)
    group, _ = pd.factorize(codes)
    resolved = n_exact_keys = n_conflict_keys = 0
    notes = []
    if len(group) and int(group.max()) + 1 < len(group):  # factorize codes are 0..n_keys-1
        g = pd.DataFrame({"g": group, "v": kept["value"].to_numpy()})
        size = g.groupby("g")["v"].transform("size").to_numpy()
        spread = (g.groupby("g")["v"].transform("max") - g.groupby("g")["v"].transform("min")).to_numpy()
        repeated = size > 1
        conflict = repeated & (spread > 0)
        first = ~pd.Series(group).duplicated(keep="first").to_numpy()
        n_exact_keys = int((repeated & ~conflict & first).sum())
        n_conflict_keys = int((conflict & first).sum())
        keep = first.copy()
        if duplicates == "quarantine" and conflict.any():
            reason[kept.index.to_numpy()[conflict]] = CONFLICT
            keep &= ~conflict
        elif duplicates == "mean" and conflict.any():
            means = g.groupby("g")["v"].transform("mean").to_numpy()
            kept["value"] = np.where(conflict, means, kept["value"].to_numpy())
        resolved = int((repeated & ~keep & (reason[kept.index.to_numpy()] == "")).sum())
        kept = kept[keep]
        notes.append(duplicate_note(n_exact_keys, n_conflict_keys, duplicates))
    unknown_kept = {}
    if unknown is not None and unknown_genes == "keep":
        u = unknown[kept.index.to_numpy()]
        unknown_kept = dict(Counter(u[u != ""]))
    quarantined = int((reason != "").sum())
    reasons = dict(Counter(reason[reason != ""]))
    if reasons:
        notes.append(f"quarantined rows by reason: {reasons}")
    bad = np.flatnonzero(reason != "")
    show = df if raw is None else raw.reset_index(drop=True)
    records = []
    for i in bad[:max_records]:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in show.iloc[i].items()}
        key = "|".join(str(row.get(k)) for k in keys)
        records.append(QuarantineRecord(source, key, str(reason[i]), row))
    if len(bad) > max_records:
        notes.append(f"only the first {max_records:,} quarantined rows are listed")
    return ValidationResult(kept, reason, n, quarantined, resolved, records, reasons, tuple(notes),
                            n_exact_keys, n_conflict_keys, unknown_kept)


def duplicate_note(exact_keys: int, conflicting_keys: int, policy: str) -> str:
    """The report line for duplicates (readers that validate in chunks add up the counts first)."""
    return (f"{exact_keys:,} keys repeated with identical values (collapsed to one row); "
            f"{conflicting_keys:,} keys with conflicting values (policy {policy!r})")


# ------------------------------------------------------------------ one value per model key
# The ingest validates a (signature, readout) key per dataset; the model's key is (context, perturbation,
# readout). Several signatures of one experiment legitimately meet there: replicate wells and time points
# (L1000 level 4 / 5 files), two source spellings (salt forms) of one compound, or two datasets measuring
# the same compound in the same line. The training table averages them (`average_duplicate_keys`).


def duplicate_keys(df: pd.DataFrame, keys: Sequence[str] = DEFAULT_KEYS, show: int = 3) -> tuple[int, int, list[str]]:
    """(keys with more than one row, rows in those keys, up to `show` of them as 'a|b|c (n rows)')."""
    if not len(df):
        return 0, 0, []
    repeated = df.duplicated(list(keys), keep=False).to_numpy()
    if not repeated.any():
        return 0, 0, []
    rows = df.loc[repeated, list(keys)].astype(str)
    sizes = rows.groupby(list(keys), sort=False).size()
    examples = [f"{'|'.join(key)} ({n} rows)" for key, n in sizes.head(show).items()]
    return len(sizes), int(repeated.sum()), examples


def require_one_row_per_key(df: pd.DataFrame, what: str, keys: Sequence[str] = DEFAULT_KEYS) -> None:
    """ValueError naming a few keys when `df` holds more than one row of a key (a model takes one value)."""
    n_keys, n_rows, examples = duplicate_keys(df, keys)
    if n_keys:
        raise ValueError(
            f"{what}: {n_keys:,} ({', '.join(keys)}) keys have more than one row ({n_rows:,} rows), e.g. "
            f"{'; '.join(examples)}. The model takes one value per key: average the copies first "
            "(graph.io.validation.average_duplicate_keys, as the pipeline's training_set does; the CLI loaders "
            "apply the duplicate policy at this key) or key them apart (e.g. the dose in the perturbation id)")


CONTROL_TYPE = "control"  # PERTURBATION_TYPES' control: the readers type controls (identifiers.is_control_name, CMap ctl_*)


def drop_controls(table: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """What a model trains and is scored on holds experiments only: rows of a control perturbation
    (perturbation_type "control", e.g. control:DMSO, control:EMPTY_VECTOR) are the reference the signatures
    were computed against, not an experiment to predict, so they are dropped. Every route to a model applies
    this one rule (the pipeline's training_set, the CLI's GCTX files and stored datasets). A table without
    controls is returned as it is (same object). Returns (table, counts): control_rows, control_signatures
    (with a signature_id column, else 0), control_perturbations and control_examples (up to 5 ids)."""
    control = (table["perturbation_type"].astype(str) == CONTROL_TYPE).to_numpy()
    dropped = table.loc[control]
    names = sorted(dropped["perturbation"].astype(str).unique())
    counts = {"control_rows": int(control.sum()),
              "control_signatures": int(dropped["signature_id"].nunique()) if "signature_id" in table else 0,
              "control_perturbations": len(names), "control_examples": ", ".join(names[:5])}
    if not control.any():
        return table, counts
    out = table.loc[~control].reset_index(drop=True)
    for c in out.select_dtypes("category"):
        out[c] = out[c].cat.remove_unused_categories()
    return out, counts


def average_duplicate_keys(table: pd.DataFrame, source: str,
                           keys: Sequence[str] = DEFAULT_KEYS) -> tuple[pd.DataFrame, dict]:
    """The training table's rule for rows that share a model key: their values are averaged into one row
    (validate_measurements' "mean" policy: identical copies collapse, differing ones get the mean), which
    keeps the first copy's other columns (dataset, signature_id) and the table's row order. A table
    without such rows is returned as it is (same object). Returns (table, counts) with counts
    duplicate_keys (keys averaged), duplicate_rows (rows they had), duplicate_keys_across_datasets (keys
    whose copies came from more than one dataset, when a `dataset` column exists) and duplicate_examples."""
    n_keys, n_rows, examples = duplicate_keys(table, keys)
    counts: dict = {"duplicate_keys": n_keys, "duplicate_rows": n_rows, "duplicate_keys_across_datasets": 0,
                    "duplicate_examples": "; ".join(examples)}
    if not n_keys:
        return table, counts
    if "dataset" in table.columns:
        k = table[[*keys, "dataset"]].astype(str)
        per_key = k[k.duplicated(list(keys), keep=False)].groupby(list(keys))["dataset"].nunique()
        counts["duplicate_keys_across_datasets"] = int((per_key > 1).sum())
    v = validate_measurements(table, source, keys=keys, ranked=False, duplicates="mean")
    if v.quarantined:  # the store's rows were validated at ingest: a rejection here is not a duplicate
        raise ValueError(f"{source}: {v.quarantined:,} rows fail validation at the model key: {v.reasons}")
    out = v.accepted.reset_index(drop=True)
    out["value"] = out["value"].astype(table["value"].dtype)
    for c in out.select_dtypes("category"):
        out[c] = out[c].cat.remove_unused_categories()
    return out, counts


class GeneCheck:
    """The unknown-gene rule of one reader (see the module docstring), with its counts.

    A name is known when the gene table (a graph/io/genes.GeneResolver) resolves it; readouts and
    genetic targets are checked as stored (current symbol, or the source name when unresolved). The
    reader marks rows with `readout_reasons` / `target_reason`, passes them to validate_measurements
    (`unknown=`, `unknown_genes=self.policy`), adds each result with `add`, and reports `note()`.
    Without a gene table nothing can be checked: policy "keep" notes it, "quarantine" refuses the file.
    """

    def __init__(self, resolver, policy: str = "keep", path: str = ""):
        if policy not in UNKNOWN_GENE_POLICIES:
            raise ValueError(f"unknown_genes must be one of {', '.join(UNKNOWN_GENE_POLICIES)}, got {policy!r}")
        if resolver is None and policy == "quarantine":
            raise InputFileError(path, "unknown_genes=quarantine needs a gene table to tell known genes, and none "
                                       "was given (a gene table among the inputs, or the shared data's genes/genes_human.tsv)")
        self.resolver, self.policy = resolver, policy
        self._known: dict[str, bool] = {}
        self.names: dict[str, set[str]] = {UNKNOWN_READOUT: set(), UNKNOWN_TARGET: set()}
        self.values: Counter[str] = Counter()  # rows with an unknown gene, kept or quarantined

    def known(self, name: str) -> bool:
        if self.resolver is None or not name:
            return True
        if name not in self._known:
            self._known[name] = self.resolver.resolve(name).ok
        return self._known[name]

    def readout_reasons(self, names) -> np.ndarray:
        """Per readout name (e.g. a categorical's categories): '' or UNKNOWN_READOUT."""
        out = np.full(len(names), "", dtype=object)
        for i, name in enumerate(names):
            if not self.known(str(name)):
                out[i] = UNKNOWN_READOUT
                self.names[UNKNOWN_READOUT].add(str(name))
        return out

    def target_reason(self, record: PerturbationRecord | None) -> str:
        """'' or UNKNOWN_TARGET for a perturbation (compounds and controls have no gene target)."""
        if record is None or record.perturbation_type in ("compound", "control"):
            return ""
        missing = [t for t in record.target_symbols if not self.known(t)]
        self.names[UNKNOWN_TARGET].update(missing)
        return UNKNOWN_TARGET if missing else ""

    def row_reasons(self, readout_codes: np.ndarray, readout_names, perturbation_codes: np.ndarray,
                    perturbations) -> np.ndarray | None:
        """Per row '' or the reason (the perturbation's target first, then the readout), from each row's
        readout code into `readout_names` and perturbation code into `perturbations` (records or None;
        code -1: none). None without a gene table or when every name is known (no per-row work). Work is
        per distinct name."""
        if self.resolver is None:
            return None
        by_readout = np.append(self.readout_reasons(readout_names), "")
        by_pert = np.append(np.array([self.target_reason(r) for r in perturbations], dtype=object), "")
        if not (by_readout != "").any() and not (by_pert != "").any():
            return None
        target = by_pert[perturbation_codes]
        return np.where(target != "", target, by_readout[readout_codes])

    def add(self, result: ValidationResult) -> None:
        self.values.update(result.unknown_kept)
        self.values.update({k: v for k, v in result.reasons.items() if k in self.names})

    def note(self) -> str:
        """The report line ('' when nothing was checked or nothing is unknown under "keep")."""
        if self.resolver is None:  # no vocabulary: nothing is "unknown" (docs/inputs.md)
            return ""
        parts = [f"{len(self.names[r]):,} {what} ({self.values[r]:,} values)"
                 for r, what in ((UNKNOWN_READOUT, "readouts"), (UNKNOWN_TARGET, "perturbation targets"))
                 if self.names[r]]
        if not parts:
            return ""
        shown = ", ".join(sorted(set().union(*self.names.values()))[:5])
        done = "kept" if self.policy == "keep" else "quarantined"
        return (f"genes the gene table does not resolve: {'; '.join(parts)}, e.g. {shown}; {done} "
                f"(unknown_genes={self.policy!r})")

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
- L1000 GCTX: the stored z-scores; replicate wells / times of the same (cell line, perturbation) are
  averaged and controls dropped (the pipeline's training_set step); a compound's doses stay apart (one
  perturbation per compound-dose, as the store keys them).

Gene names: every loader names readouts and genetic perturbations as the ingest stores them (the gene
table, graph/io/readers.gene_resolver; the naming rule graph/io/identifiers.stored_gene_names), so a model
measured here and one trained by the pipeline see the same names; a renamed perturbation's source name is
in Loaded.perturbation_names, and names the gene table does not resolve are kept and counted in a note.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from graph.io.common import InputFileError, measurement_format
from graph.io.identifiers import compound_name_keys, dataset_id_for, lookup_compound, normalise_compound_name
from graph.io.options import ReadOptions, random_readouts, read_readout_names, subset_table  # noqa: F401 - one place
from graph.io.validation import ValidationResult, average_duplicate_keys, drop_controls, validate_measurements
from graph.records import QuarantineRecord
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
# Tahoe-100M read as one table from several ranked files (read_tahoe): "tahoe37" = the first file's 10
# lines + the 27 lines of the second, on the readouts both files rank (the second file's 12,339).
TAHOE_FILES: dict[str, tuple[str, ...]] = {
    "tahoe": (SHARED_DATASETS["tahoe"],),
    "tahoe37": (SHARED_DATASETS["tahoe"], "chemical/tahoe100m_more_lines_ranked_signatures.parquet"),
}


def shared_path(relative: str) -> Path:
    return Path(get_settings().shared_data) / relative


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order and plain dtypes (category codes differ between tables)."""
    out = df[LONG_COLUMNS].copy()
    for c in LONG_COLUMNS[:4]:
        out[c] = out[c].astype(str)
    out["value"] = out["value"].astype(np.float32)
    return out.reset_index(drop=True)


@dataclass
class LoadReport:
    """What a loader read and what the validation step (graph/io/validation.py) rejected, with reasons.
    read = accepted + quarantined; `quarantine` lists the first rejected rows."""

    source: str
    read: int = 0
    quarantined: int = 0
    duplicates_resolved: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    unit: str = "rows"  # what read/accepted/quarantined count ("signatures" for pseudobulked h5ad groups)

    @property
    def accepted(self) -> int:
        return self.read - self.quarantined

    def add(self, v: ValidationResult, *, counts_read: bool) -> None:
        """Fold in one validation pass (counts_read=False for a second pass over accepted rows)."""
        self.read += v.read if counts_read else 0
        self.quarantined += v.quarantined
        self.duplicates_resolved += v.duplicates_resolved
        for k, n in v.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + n
        self.notes += list(v.notes)
        self.quarantine += v.quarantine

    @classmethod
    def combined(cls, reports: Sequence[LoadReport]) -> LoadReport:
        """One report for several loaders' tables read as one input: counts, reasons, notes and quarantine
        records of all of them (none dropped)."""
        out = cls(" + ".join(r.source for r in reports), unit=reports[0].unit if reports else "rows")
        for r in reports:
            out.read += r.read
            out.quarantined += r.quarantined
            out.duplicates_resolved += r.duplicates_resolved
            for k, n in r.reasons.items():
                out.reasons[k] = out.reasons.get(k, 0) + n
            out.notes += list(r.notes)
            out.quarantine += list(r.quarantine)
        return out

    def summary(self) -> str:
        by = "; ".join(f"{k}: {n:,}" for k, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        return (f"{self.read:,} {self.unit} read, {self.accepted:,} accepted, {self.quarantined:,} quarantined"
                + (f" ({by})" if by else "") + f", {self.duplicates_resolved:,} duplicate rows resolved")


@dataclass(frozen=True)
class Loaded:
    """A loaded input: the canonical table, its LoadReport, and per perturbation id the source name
    (for structure lookup) and target genes recorded by the ingest reader. Kept beside the frame, not
    in DataFrame.attrs, which pandas deep-copies on every operation."""

    frame: pd.DataFrame
    report: LoadReport
    perturbation_names: dict[str, str] = field(default_factory=dict)
    perturbation_targets: dict[str, list[str]] = field(default_factory=dict)


def _attach(frame: pd.DataFrame, report: LoadReport, names: dict[str, str] | None = None,
            targets: dict[str, list[str]] | None = None) -> Loaded:
    """The frame with its report; a table with no valid row is an error naming the source (the rule of
    every entry point: graph/io/readers.no_valid_rows)."""
    if report.read and report.accepted == 0 or len(frame) == 0:
        from graph.io.readers import no_valid_rows

        raise no_valid_rows(report.source, report.read, report.unit, report.reasons)
    return Loaded(frame, report, names or {}, targets or {})


def validated(df: pd.DataFrame, source: str, *, report: LoadReport | None = None, counts_read: bool = True,
              genes=None, **kwargs) -> tuple[pd.DataFrame, LoadReport]:
    """df through graph/io/validation.validate_measurements (keys context, perturbation, readout unless
    given); returns the accepted canonical table and the report it was folded into. genes: the reader's
    GeneCheck (its rows' reasons passed as `unknown=`), whose line joins the notes."""
    report = report or LoadReport(source)
    kwargs.setdefault("keys", KEYS)
    v = validate_measurements(df, source, **kwargs)
    report.add(v, counts_read=counts_read)
    if genes is not None:
        genes.add(v)
        if note := genes.note():
            report.notes.append(note)
    return _finish(v.accepted) if set(LONG_COLUMNS) <= set(v.accepted.columns) else v.accepted, report


def dense_readouts(df: pd.DataFrame) -> list[str]:
    """Readouts present in every (context, perturbation) signature."""
    n_sig = df.groupby(["context", "perturbation"], observed=True).ngroups
    counts = df.groupby("readout", observed=True).size()
    return sorted(counts.index[counts == n_sig].astype(str))


def _subset(frame: pd.DataFrame, options: ReadOptions, notes: list[str], path) -> pd.DataFrame:
    """The readout subset of graph/io/options.py on a reader's accepted table (before any model step),
    as read_experiment applies it while streaming; an empty result is an error naming the file."""
    try:
        return subset_table(frame, options, notes)
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None


def _read_options(options: ReadOptions | None, duplicates: str | None, given: dict) -> ReadOptions:
    """options with keyword overrides (duplicates=, context=, readout_key=, perturbation_type=, ...)."""
    from dataclasses import replace

    from graph.io.options import OPTION_NAMES

    out = replace(options or ReadOptions(), **{k: v for k, v in given.items() if k in OPTION_NAMES})
    return replace(out, duplicates=duplicates) if duplicates is not None else out


def from_ranked(df: pd.DataFrame, *, up_only: bool = False, source: str = "ranked table",
                gene_names: tuple[dict[str, str], dict[str, int]] | None = None, resolver=None) -> Loaded:
    """A ranked long table (rank, n_ranked) -> canonical long table, through the validation step.

    up_only: the lists hold only the up-regulated end (Replogle); use the up score instead of the
    signed score, which would call the last kept rank "most down".
    gene_names: graph/io/identifiers.stored_gene_names over the whole file's readouts with `resolver` (the
    ingest's rule; None: names as written): readouts and genetic perturbations are renamed as the ingest
    stores them (_stored_gene_names), the names the gene table does not resolve counted in a note.
    """
    if gene_names is None:
        frame, report = validated(df, source, ranked=True, score="up" if up_only else "signed")
        return _attach(frame, report)
    stored, routes = gene_names
    df, names, targets, unknown, genes, note = _stored_gene_names(df, stored, resolver)
    report = LoadReport(source, notes=[f"{len(stored):,} distinct readouts in the file: {routes}", note])
    frame, report = validated(df, source, report=report, ranked=True, score="up" if up_only else "signed",
                              unknown=unknown, unknown_genes=genes.policy, genes=genes)
    return _attach(frame, report, names, targets)


def _stored_gene_names(df: pd.DataFrame, stored: dict[str, str], resolver):
    """A ranked table's readouts and genetic perturbations under the names the ingest stores them by
    (graph/io/tables.LongTableReader): readouts by `stored` (identifiers.stored_gene_names over the
    file's readouts), a genetic perturbation by its targets (split_combination), each the readout's
    stored name when the file measures it, else canonical_gene_symbol; the perturbation is named by
    identifiers.genetic_perturbation_name of those targets (the ingest's id without "<type>:": sorted, upper
    case, e.g. C14orf178 -> C14ORF178), the targets keep the stored spelling. Two source perturbations that
    name one gene become one perturbation, as in the ingest (their rows meet at one key: the duplicate policy).
    Returns (table, {renamed perturbation: source name}, {genetic perturbation: targets}, per-row
    unknown-gene reasons or None, the GeneCheck (graph/io/validation.py, unknown_genes="keep"))."""
    from graph.io.identifiers import canonical_gene_symbol, genetic_perturbation_name, split_combination
    from graph.io.perturbations import perturbation_record
    from graph.io.validation import GeneCheck
    from models.evaluation.splits import GENETIC_TYPES

    df = df.astype({c: "category" for c in ("readout", "perturbation", "perturbation_type")})
    df = df.assign(readout=df["readout"].cat.remove_unused_categories())  # every category is in `stored`
    readout_cats = [stored.get(str(r), str(r)) for r in df["readout"].cat.categories]
    readout = pd.Categorical.from_codes(df["readout"].cat.codes, pd.Index(readout_cats))  # never merges two
    type_cats = df["perturbation_type"].cat.categories.astype(str)
    genetic_rows = np.isin(df["perturbation_type"].cat.codes.to_numpy(),
                           np.flatnonzero(type_cats.isin(list(GENETIC_TYPES))))
    pert_codes = df["perturbation"].cat.codes.to_numpy()
    cats = [str(p) for p in df["perturbation"].cat.categories]
    ptype_of = dict(zip(pert_codes[genetic_rows], df["perturbation_type"].cat.codes.to_numpy()[genetic_rows],
                        strict=False))
    new_name, names, targets, records = {}, {}, {}, {}
    for code in sorted(ptype_of):
        src = cats[code]
        parts = split_combination(src, keep_prefix=False, resolver=resolver)  # "A_B" of two genes too, as the ingest
        members = [stored.get(m) or canonical_gene_symbol(m, resolver) for m in parts]
        new = genetic_perturbation_name(members) or src  # the ingest's id without its "<type>:" part
        new_name[code] = new
        targets.setdefault(new, members)
        if new != src:
            names.setdefault(new, src)  # two sources of one perturbation: the first name (ingest: setdefault)
        try:
            records[new] = perturbation_record(str(type_cats[ptype_of[code]]), src, targets=members)
        except ValueError:  # no target gene: the validation step rejects nothing here; nothing to check
            records[new] = None
    out_cats = list(dict.fromkeys([*cats, *new_name.values()]))
    index = {c: i for i, c in enumerate(out_cats)}
    remap = np.arange(len(cats))
    for code, new in new_name.items():
        remap[code] = index[new]
    new_codes = np.where(genetic_rows, remap[np.maximum(pert_codes, 0)], pert_codes)
    new_codes = np.where(pert_codes < 0, -1, new_codes)
    df = df.assign(readout=readout, perturbation=pd.Categorical.from_codes(new_codes, out_cats))
    genes = GeneCheck(resolver, "keep")
    unknown = genes.row_reasons(readout.codes, readout_cats, new_codes, [records.get(c) for c in out_cats])
    renamed = [f"{src}->{new}" for new, src in sorted(names.items())]
    note = (f"genetic perturbations as the ingest names them: {len(renamed):,} of {len(new_name):,} renamed (current "
            "symbols of the targets, upper case, sorted)" + (f" (e.g. {', '.join(renamed[:3])})" if renamed else ""))
    return df, names, targets, unknown, genes, note


def most_measured_readouts(df: pd.DataFrame, n: int) -> list[str]:
    """The n readouts with the most rows (= signatures measuring them, one row per signature and
    readout); ties broken by name so the choice never depends on values or row order."""
    counts = df.groupby("readout", observed=True).size().reset_index(name="n")
    counts["readout"] = counts["readout"].astype(str)
    return counts.sort_values(["n", "readout"], ascending=[False, True])["readout"].head(n).tolist()


def load_tahoe(*args, **kwargs) -> pd.DataFrame:
    """read_tahoe's table."""
    return read_tahoe(*args, **kwargs).frame


def load_replogle(*args, **kwargs) -> pd.DataFrame:
    """read_replogle's table."""
    return read_replogle(*args, **kwargs).frame


RANKED_COLUMNS = ["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"]


def _read_ranked_files(paths: list[Path]) -> pd.DataFrame:
    """Several ranked long tables as one: only the readouts every file ranks (files restricted to
    different gene sets must not make a readout look measured in some lines only); text columns stay
    categorical over the union of the files' categories (concat of unequal categories would give object)."""
    frames = [pd.read_parquet(p, columns=RANKED_COLUMNS) for p in paths]
    if len(frames) == 1:
        return frames[0]
    text = RANKED_COLUMNS[:4]
    frames = [f.astype({c: "category" for c in text}) for f in frames]  # no-op for the shared files
    common = set.intersection(*(set(f["readout"].unique().astype(str)) for f in frames))
    frames = [f[f["readout"].isin(common)] for f in frames]
    for c in text:  # recode onto the union of categories (category-level work, not per row)
        cats = sorted(set().union(*(map(str, f[c].cat.categories) for f in frames)))
        frames = [f.assign(**{c: f[c].cat.rename_categories(str).cat.set_categories(cats)}) for f in frames]
    return pd.concat(frames, ignore_index=True)


def ingest_gene_names(raw: pd.DataFrame, resolver=None) -> tuple[dict[str, str], dict[str, int]]:
    """graph/io/identifiers.stored_gene_names over a ranked table's distinct readouts with the gene table
    the pipeline uses (gene_table_resolver, unless `resolver` is given): the names the ingest stores."""
    resolver = resolver if resolver is not None else gene_table_resolver()
    from graph.io.identifiers import stored_gene_names

    return stored_gene_names(raw["readout"].astype("category").cat.categories.astype(str), resolver)


def read_tahoe(path: str | Path | list[str | Path] | None = None, *, readouts: str | int | list[str] = "dense",
               contexts: list[str] | None = None, n_random: int | None = None, seed: int = 0,
               keep_contexts: list[str] | None = None, resolver=None) -> Loaded:
    """Tahoe-100M signed rank scores, from one ranked file or several (TAHOE_FILES; readouts ranked in
    every file only).

    readouts: "dense" (ranked in every signature, default: 1,382 for the 10-line file, 700 for the 37
    lines of TAHOE_FILES["tahoe37"]), "all" (26,347 / 12,339; sparse), an int N (the N readouts present
    in most signatures; ties broken by name) or an explicit list (source or stored names).
    n_random: then keep a random subset of that many of those readouts (random_readouts: seeded,
    chosen without looking at values, so it cannot favour any model) to make CPU training affordable.
    contexts: read only these lines (before readouts are chosen); keep_contexts: choose the readouts on
    every line, then keep only these (the same readouts on fewer lines).
    Readouts are chosen by the file's names, then stored under the ingest's names (from_ranked:
    identifiers.stored_gene_names with the gene table `resolver`, default the pipeline's), so the same
    genes as before are read, named as the pipeline names them.
    """
    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path or [])] or [
        shared_path(SHARED_DATASETS["tahoe"])]
    raw = _read_ranked_files(paths)
    resolver = resolver if resolver is not None else gene_table_resolver()
    gene_names = ingest_gene_names(raw, resolver)
    if contexts is not None:
        raw = raw[raw["context"].isin(contexts)]
    if isinstance(readouts, str) and readouts == "dense":
        keep = dense_readouts(raw)
    elif isinstance(readouts, int):
        keep = most_measured_readouts(raw, readouts)
    elif isinstance(readouts, str) and readouts == "all":
        keep = None
    else:
        source_of = {v: k for k, v in gene_names[0].items()}  # stored names are distinct (never merged)
        keep = [source_of.get(str(r), str(r)) for r in readouts]
    if n_random is not None:
        keep = random_readouts(keep if keep is not None else raw["readout"].astype(str).unique(), n_random, seed)
    if keep is not None:
        raw = raw[raw["readout"].isin(keep)]
    if keep_contexts is not None:
        raw = raw[raw["context"].isin(keep_contexts)]
    return from_ranked(raw, up_only=False, source=" + ".join(map(str, paths)), gene_names=gene_names,
                       resolver=resolver)


def read_replogle(path: str | Path | None = None, *, min_signatures: int = 1,
                  contexts: list[str] | None = None, resolver=None) -> Loaded:
    """Replogle CRISPRi up scores, present readouts only (see module docstring).

    min_signatures: keep readouts that are in the top-1,000 of at least this many signatures
    (fewer, better-supported readouts; 1 keeps everything). Readouts and knock-downs are stored under
    the ingest's names (from_ranked; e.g. NARS -> NARS1, the source name in Loaded.perturbation_names).
    """
    path = path or shared_path(SHARED_DATASETS["replogle"])
    raw = pd.read_parquet(path, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    resolver = resolver if resolver is not None else gene_table_resolver()
    gene_names = ingest_gene_names(raw, resolver)
    if contexts is not None:
        raw = raw[raw["context"].isin(contexts)]
    if min_signatures > 1:
        counts = raw.groupby("readout", observed=True).size()
        raw = raw[raw["readout"].isin(counts.index[counts >= min_signatures])]
    return from_ranked(raw, up_only=True, source=str(path), gene_names=gene_names, resolver=resolver)


def _controls_note(controls: dict) -> str:
    """The report line for drop_controls' counts, one wording on every loader route."""
    signatures = f", {controls['control_signatures']:,} signatures" if controls["control_signatures"] else ""
    return (f"{controls['control_rows']:,} rows of {controls['control_perturbations']:,} control perturbations "
            f"({controls['control_examples']}{signatures}) left out, as training_set does")


def average_replicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The pipeline's model step (pipelines/training_steps.build_training_set) for an ingest reader's
    signature-level table (GCTX), with the same functions: control signatures dropped
    (graph.io.validation.drop_controls: the reference, not an experiment to predict) and the signatures of one
    (context, perturbation, readout) averaged (graph.io.validation.average_duplicate_keys): replicate wells and
    time points. A compound's doses stay apart: its id "compound:<id>@<dose>" is one perturbation per
    compound-dose, as the store keys it. Returns the table (LONG_COLUMNS) and the report line."""
    kept, controls = drop_controls(frame)
    n_sig = kept["signature_id"].nunique() if "signature_id" in kept else 0
    out, dup = average_duplicate_keys(kept, "model step")
    out = out.loc[:, LONG_COLUMNS]
    n_exp = len(out[["context", "perturbation"]].drop_duplicates())
    note = (f"model step: {controls['control_signatures']} control signatures dropped; {n_sig} signatures averaged "
            f"into {n_exp} (context, perturbation) experiments per readout (replicate wells and times; doses kept "
            f"apart; {dup['duplicate_keys']:,} keys had more than one signature), as training_set does")
    return out, note


def load_gctx(path: str | Path, *, duplicates: str | None = None, options: ReadOptions | None = None,
              resolver=None) -> Loaded:
    """A GCTX or text GCT file read by the ingest reader (graph/io/gctx.GctxToLong, as `perturbgraph demo --inputs
    FILE` stores it: value validation, readout repeats, perturbation ids), the readout subset, then
    average_replicates. Report units are matrix values; the signature-level notes are kept."""
    from graph.io.common import concat_long
    from graph.io.readers import open_streaming_reader

    path = Path(path)
    options = _read_options(options, duplicates, {})
    fmt = measurement_format(path)  # gctx | gct: one reader, one mapping (ids, doses, controls) for both
    try:
        reader = open_streaming_reader(path, fmt, dataset_id_for(path), options, resolver=resolver)
        frame = concat_long(list(reader.iter_long()))
    except InputFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"not a readable {fmt.upper()} file ({type(exc).__name__}: {exc})") from exc
    subset_notes: list[str] = []
    frame = _subset(frame, options, subset_notes, path) if len(frame) else frame
    averaged, note = average_replicates(frame)
    perturbations = reader.perturbations  # keyed by the ids the table keeps (doses apart)
    report = reader.value_report
    report.notes = [*reader.report.notes, *report.notes,
                    f"{reader.report.quarantined} of {reader.report.read} signatures quarantined", *subset_notes, note]
    return _from_records(averaged, path, report, reader.quarantine, perturbations, options.duplicates, unit="values")


def _from_records(frame: pd.DataFrame, path: Path, read_report, quarantine, perturbations,
                  duplicates: str, unit: str = "rows") -> Loaded:
    """An ingest reader's accepted table (perturbation ids, as in the store) -> the model table.

    Rows the reader accepted are validated once more at the model key (context, perturbation,
    readout): two signatures of one perturbation in one context (e.g. two salt forms) collide there
    and follow the same duplicate policy. The report adds both passes up (read = accepted + quarantined).
    """
    report = LoadReport(str(path), read=read_report.read, quarantined=read_report.quarantined,
                        duplicates_resolved=read_report.duplicates_resolved, notes=list(read_report.notes),
                        quarantine=list(quarantine), unit=unit)
    for q in quarantine:
        report.reasons[q.reason] = report.reasons.get(q.reason, 0) + 1
    if report.quarantined > len(quarantine):  # reasons beyond the listed records come from the notes
        report.reasons = {"see notes": report.quarantined}
    if len(frame) == 0:
        return _attach(frame.reindex(columns=LONG_COLUMNS), report)
    out, report = validated(frame[LONG_COLUMNS], str(path), report=report, counts_read=False, ranked=False,
                            duplicates=duplicates)
    out, controls = drop_controls(out)  # stored by the ingest, never a model's experiment (training_set's rule)
    if controls["control_rows"]:
        report.notes.append(_controls_note(controls))
    names = {pid: rec.name for pid, rec in perturbations.items()}
    targets = {pid: list(rec.target_symbols) for pid, rec in perturbations.items() if rec.target_symbols}
    return _attach(out, report, names, targets)


def load_long_table(path: str | Path, *, duplicates: str | None = None, options: ReadOptions | None = None,
                    resolver=None, **table_options) -> Loaded:
    """A user's parquet / CSV / TSV long table (value), ranked table (rank, n_ranked) or wide table, read by
    the ingest reader (graph/io/readers.py) with the same ReadOptions: the same accepted rows and
    perturbation ids as `perturbgraph demo --inputs FILE` puts in the store."""
    from graph.io.common import concat_long
    from graph.io.readers import open_streaming_reader, table_kind

    path = Path(path)
    options = _read_options(options, duplicates, table_options)
    reader = open_streaming_reader(path, table_kind(path, options), dataset_id_for(path), options, resolver=resolver)
    frame = concat_long(list(reader.iter_long()))
    frame = _subset(frame, options, reader.report.notes, path) if len(frame) else frame
    return _from_records(frame, path, reader.report, reader.quarantine, reader.perturbations, options.duplicates)


def load_h5ad(path: str | Path, *, duplicates: str | None = None, options: ReadOptions | None = None,
              resolver=None) -> Loaded:
    """A Perturb-seq h5ad pseudobulked as ingest does it (graph/io/readers.read_h5ad)."""
    from graph.io.readers import read_h5ad

    path = Path(path)
    options = _read_options(options, duplicates, {})
    result = read_h5ad(path, dataset_id_for(path), options, resolver=resolver)
    long = _subset(result.long, options, result.report.notes, path) if len(result.long) else result.long
    return _from_records(long, path, result.report, result.quarantine, result.perturbations, options.duplicates,
                         unit="signatures (cell groups)")


def load_file(path: str | Path, *, duplicates: str | None = None, options: ReadOptions | None = None,
              resolver=None, **table_options) -> Loaded:
    """Any measurement file, by its format (extension checked against the first bytes)."""
    path = Path(path)
    fmt = measurement_format(path)
    if fmt in {"gctx", "gct"}:
        return load_gctx(path, duplicates=duplicates, options=options, resolver=resolver)
    if fmt == "h5ad":
        return load_h5ad(path, duplicates=duplicates, options=options, resolver=resolver)
    if path.name in {Path(f).name for f in TAHOE_FILES["tahoe37"]}:
        return read_tahoe(path)
    return load_long_table(path, duplicates=duplicates, options=options, resolver=resolver, **table_options)


def load_dataset(name_or_path: str | Path, **kwargs) -> pd.DataFrame:
    """load_input's table."""
    return load_input(name_or_path, **kwargs).frame


def load_input(name_or_path: str | Path, *, duplicates: str | None = None, options: ReadOptions | None = None,
               resolver=None, **kwargs) -> Loaded:
    """Any input the CLI accepts: a shared dataset name (SHARED_DATASETS), an ingested dataset id or a
    file path. Every route ends in the validation step (graph/io/validation.py). Files and ingested
    datasets take ReadOptions (graph/io/options.py); tahoe / replogle their loaders' keywords."""
    key = str(name_or_path)
    from graph.settings import get_settings
    from graph.store.measurements import load_training_table, read_manifest

    is_dataset_id = key.replace("_", "").isalnum()  # store ids are [a-z0-9_]; paths never match
    if is_dataset_id and read_manifest(get_settings(), key) is not None:
        # A dataset ingested by the pipeline: its values from the columnar store (hash verified).
        options = _read_options(options, duplicates, {})
        notes: list[str] = []
        table = _subset(load_training_table(get_settings(), [key]), options, notes, key)
        # the pipeline's training_set rules: controls left out, signatures of one (context, perturbation,
        # readout) averaged
        table, controls = drop_controls(table)
        table = table.loc[:, list(LONG_COLUMNS)]
        if controls["control_rows"]:
            notes.append(_controls_note(controls))
        n_stored = len(table)
        table, dup = average_duplicate_keys(table, key)
        frame, report = validated(table, key, ranked=False, duplicates=options.duplicates)
        merged = n_stored - len(table)  # accepted copies, counted as the validation step counts collapsed ones
        report.read, report.duplicates_resolved = report.read + merged, report.duplicates_resolved + merged
        if dup["duplicate_keys"]:
            notes.append(f"{dup['duplicate_keys']:,} (context, perturbation, readout) keys with more than one "
                         f"signature ({dup['duplicate_rows']:,} rows) averaged to one row each, as training_set "
                         f"does (e.g. {dup['duplicate_examples']})")
        report.notes += notes
        return _attach(frame, report)
    if key in TAHOE_FILES:
        return read_tahoe([shared_path(f) for f in TAHOE_FILES[key]], **kwargs)
    if key == "replogle":
        return read_replogle(**kwargs)
    # Files: the gene table the pipeline would use (graph/io/readers.gene_resolver), unless one is given.
    from graph.io.readers import gene_resolver

    resolver = resolver if resolver is not None else gene_resolver((), get_settings().shared_data)
    if key in SHARED_DATASETS:
        return load_gctx(shared_path(SHARED_DATASETS[key]), duplicates=duplicates, options=options, resolver=resolver)
    path = Path(key)
    if not path.exists():
        raise InputFileError(key, f"neither a file nor one of {sorted({*SHARED_DATASETS, *TAHOE_FILES})}")
    return load_file(path, duplicates=duplicates, options=options, resolver=resolver, **kwargs)


def dataset_contexts(name_or_path: str | Path) -> list[str] | None:
    """The contexts an input will have, read cheaply (one column) before the heavy load; None when
    that cannot be known without loading (GCTX, h5ad, store datasets)."""
    import pyarrow.parquet as pq

    from graph.io.contexts import normalise_context_name

    key = str(name_or_path)
    if key in {*TAHOE_FILES, "replogle"}:
        files = TAHOE_FILES[key] if key in TAHOE_FILES else (SHARED_DATASETS[key],)
        return sorted({str(v) for f in files
                       for v in pq.read_table(shared_path(f), columns=["context"]).column(0).unique().to_pylist()})
    path = Path(key)
    if not path.is_file():
        return None
    try:
        fmt = measurement_format(path)
        if fmt == "parquet":
            values = pq.read_table(path, columns=["context"]).column(0).unique().to_pylist()
        elif fmt in {"csv", "tsv"}:
            values = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", usecols=["context"], dtype=str)["context"].unique()
        else:
            return None
    except Exception:  # the loader reports what is wrong with the file, with its name
        return None
    if path.name in {Path(f).name for f in TAHOE_FILES["tahoe37"]}:
        return sorted(str(v) for v in values if v is not None)
    return sorted({normalise_context_name(v) for v in values if v is not None and str(v).strip()})


# --- side information for models: compound structures and the gene prior graph ---------------------

@lru_cache(maxsize=1)
def _smiles_table() -> dict[str, str]:
    """normalised name -> SMILES from the LINCS compound table, then the Repurposing Hub (first wins)."""
    table: dict[str, str] = {}
    lincs = pd.read_csv(shared_path("compounds/lincs_compoundinfo.tsv"), sep="\t", dtype=str,
                        usecols=["cmap_name", "canonical_smiles", "compound_aliases"])
    for name, smi, aliases in lincs.itertuples(index=False):
        if isinstance(smi, str) and smi:
            for n in [name, *(aliases.split("|") if isinstance(aliases, str) else [])]:
                for k in compound_name_keys(n):
                    table.setdefault(k, smi)
    rep = pd.read_csv(shared_path("compounds/repurposing_samples_20200324.txt"), sep="\t", comment="!",
                      dtype=str, usecols=["pert_iname", "smiles"])
    for name, smi in rep.itertuples(index=False):
        if isinstance(smi, str) and smi:
            for k in compound_name_keys(name):
                table.setdefault(k, smi)
    return table


def compound_smiles(names) -> dict[str, str]:
    """SMILES for the compound names that match the shared compound tables by normalised name (or by
    the alias in parentheses: "Trametinib (GSK1120212)"); names without a match are left out."""
    table = _smiles_table()
    out = {}
    for n in names:
        smi = lookup_compound(n, table)
        if smi:
            out[str(n)] = smi
    return out


@lru_cache(maxsize=1)
def _annotation_table() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """normalised name or alias -> (targets, mechanisms of action), unioned over the Repurposing Hub drug
    table and the LINCS compound table as the ingest reads them (graph/io/compounds: LINCS's CLUE and
    ChEMBL-merged fields together), so the benchmarks see what the graph's Compound nodes hold."""
    from graph.io.compounds import read_lincs_compoundinfo, read_repurposing_drugs

    table: dict[str, tuple[set[str], set[str]]] = {}
    for entries in (read_repurposing_drugs(shared_path("compounds/repurposing_drugs_20200324.txt")).records,
                    read_lincs_compoundinfo(shared_path("compounds/lincs_compoundinfo.tsv")).records):
        for e in entries:
            if e.targets or e.moa:
                for n in (e.name, *e.aliases):
                    for k in compound_name_keys(n):
                        t, m = table.setdefault(k, (set(), set()))
                        t |= set(e.targets)
                        m |= set(e.moa)
    return {k: (frozenset(t), frozenset(m)) for k, (t, m) in table.items()}


def compound_annotations(names) -> dict:
    """CompoundAnnotation (targets, mechanisms of action, parent compound) for every name: the tables'
    annotation found as compound_smiles finds a SMILES (graph/io/identifiers.lookup_compound: salts,
    hydrates and an alias in parentheses), empty where none matches; the parent is the normalised name,
    so "Almonertinib hydrochloride" and "Almonertinib mesylate" share one."""
    from models.side_information import CompoundAnnotation

    table = _annotation_table()
    out = {}
    for n in names:
        targets, moa = lookup_compound(n, table) or ((), ())
        out[str(n)] = CompoundAnnotation.of(targets, moa, normalise_compound_name(n))
    return out


# --- prior networks: the ingest's readers and gene table -------------------------------------------
# The same readers (graph/io/networks.NETWORK_READERS) and the same gene table (graph/io/readers.
# gene_resolver) as the ingest, so a renamed symbol meets the same gene here and in the graph; rows whose
# genes do not resolve are quarantined with a reason (network_summary says how many and why).


def gene_table_resolver():
    """The gene table the pipeline resolves with (the shared genes_human.tsv; None without it)."""
    from graph.io.readers import gene_resolver

    return gene_resolver((), get_settings().shared_data)


def read_network(kind: str, path: str | Path | None = None, **filters):
    """A prior network (string, corum, dorothea, gmt) as the ingest reads it: graph/io/networks'
    reader for `kind` with the gene table's resolver -> ReadResult (records in current symbols,
    quarantine with reasons). path: the shared data's file of that kind by default."""
    from graph.io.networks import SHARED_NETWORK_FILES

    path = Path(path) if path is not None else shared_path(SHARED_NETWORK_FILES[kind])
    if not path.is_file():
        raise InputFileError(path, "file does not exist")
    return _read_network(kind, str(path.resolve()), path.stat().st_mtime_ns, gene_table_resolver(),
                         tuple(sorted(filters.items())))


@lru_cache(maxsize=8)
def _read_network(kind: str, path: str, mtime_ns: int, resolver, filters: tuple):
    """read_network, once per file version, gene table (the resolver object: one per table version) and
    filters (STRING with the table: ~3 s)."""
    from graph.io.networks import NETWORK_READERS

    return NETWORK_READERS[kind](path, resolver=resolver, **dict(filters))


def network_summary(kind: str, path: str | Path | None = None, **filters) -> str:
    """One line: what read_network read, accepted and quarantined, and why."""
    from graph.io.networks import quarantine_summary

    return quarantine_summary(read_network(kind, path, **filters))


def dataset_gene_names(genes: Iterable) -> dict[str, list[str]]:
    """Current symbol -> the dataset's names of that gene: how a dataset's gene names (readouts,
    genetic targets) meet the networks' current symbols, through the same gene table. The loaders store
    current symbols already; a name kept as written (the second of two names of one gene, a table without
    a gene table's renaming) still meets its gene here. A name the table does not resolve keeps its own
    spelling."""
    resolver = gene_table_resolver()
    out: dict[str, list[str]] = {}
    for g in sorted(set(map(str, genes))):
        m = resolver.resolve(g) if resolver is not None else None
        out.setdefault(m.symbol if m is not None and m.ok else g, []).append(g)
    return out


def gene_name_coverage(genes: Iterable) -> str:
    """One line: how many of the dataset's gene names the gene table renames or does not know."""
    resolver = gene_table_resolver()
    if resolver is None:
        return "gene names: no gene table; network symbols and dataset names are matched as written"
    names = sorted(set(map(str, genes)))
    matches = [resolver.resolve(g) for g in names]
    renamed = [f"{g}->{m.symbol}" for g, m in zip(names, matches, strict=True) if m.ok and m.symbol != g]
    unknown = [g for g, m in zip(names, matches, strict=True) if not m.ok]
    def examples(items: list[str]) -> str:  # no "(e.g. )" when there is nothing to show
        return f" (e.g. {', '.join(items[:3])})" if items else ""

    return (f"gene names: {len(renamed):,} of {len(names):,} met the networks under their current symbol"
            f"{examples(renamed)}, {len(unknown):,} not resolved by the gene table{examples(unknown)}"
            f"{'; they match no network gene' if unknown else ''}")


def _edge_frame(records, genes=None) -> pd.DataFrame:
    """PriorEdgeRecords -> source, target, weight (float32); with `genes`, only edges between the
    dataset's genes, named as the dataset names them (dataset_gene_names)."""
    frame = pd.DataFrame({"source": [e.source_symbol for e in records], "target": [e.target_symbol for e in records],
                          "weight": np.asarray([e.score for e in records], dtype=np.float32)})
    if genes is None:
        return frame
    names = dataset_gene_names(genes)
    frame = frame.assign(source=frame["source"].map(names), target=frame["target"].map(names)).dropna()
    frame = frame.explode("source").explode("target")  # a gene the dataset names twice: both names
    frame = frame[frame["source"] != frame["target"]]
    return frame.astype({"source": str, "target": str, "weight": np.float32}).reset_index(drop=True)


def string_gene_graph(min_score: int = 700, genes=None, path: str | Path | None = None) -> pd.DataFrame:
    """STRING edges (read_network: current symbols) with combined score >= min_score (0-1000) as source,
    target, weight in [0, 1]; optionally only between `genes`, in the dataset's names."""
    return _edge_frame(read_network("string", path, min_score=min_score / 1000.0).records, genes)


def prior_gene_graph(genes=None, paths: dict[str, str | Path] | None = None, prior=None) -> pd.DataFrame:
    """The LPM's gene prior (graph/io/networks.GENE_PRIOR unless `prior`: its networks read with its
    filters, as the pipeline's training_set reads them from the graph) as source, target, weight;
    optionally only between `genes`, in the dataset's names. paths: network kind -> file (default the
    shared data's)."""
    from graph.io.networks import GENE_PRIOR

    prior = prior or GENE_PRIOR
    frames = [_edge_frame(read_network(kind, (paths or {}).get(kind), **prior.filters(kind)).records, genes)
              for kind in prior.networks]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def dorothea_gene_graph(confidence: str = "ABC", genes=None, path: str | Path | None = None) -> pd.DataFrame:
    """DoRothEA TF -> target edges (read_network) of the given confidence letters, weight by letter;
    optionally only between `genes`, in the dataset's names."""
    return _edge_frame(read_network("dorothea", path, confidence=confidence).records, genes)


def co_complex_pairs(member_lists: Iterable[Iterable[str]], genes=None) -> pd.DataFrame:
    """Complexes' member symbols -> the complex graph corum_knn reads (source, target, weight 1): the
    pairs of graph/io/networks.complex_pairs (the one pairing rule) over the members as text; the
    benchmarks' corum_gene_graph and the pipeline's training set (the graph's Complex nodes) call it."""
    from graph.io.networks import complex_pairs

    ordered = complex_pairs(([str(g) for g in m] for m in member_lists),
                            None if genes is None else {str(g) for g in genes})
    return pd.DataFrame({"source": [a for a, _ in ordered], "target": [b for _, b in ordered],
                         "weight": np.ones(len(ordered), dtype=np.float32)})


def corum_gene_graph(genes=None, path: str | Path | None = None) -> pd.DataFrame:
    """CORUM (human) co-complex pairs (read_network: members in current symbols; co_complex_pairs),
    optionally only between `genes`, in the dataset's names."""
    members = [c.member_symbols for c in read_network("corum", path).records]
    if genes is not None:
        names = dataset_gene_names(genes)
        members = [[n for m in ms for n in names.get(m, ())] for ms in members]
    return co_complex_pairs(members)


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


# --- side information for the CLI and the benchmarks ------------------------------------------------
# Cell-line features are attached when they describe at least this share of a dataset's contexts
# (all but a few L1000 lines; Tahoe has 1 of 10, Replogle none: there they would describe one line
# and leave the rest to learned vectors).
MIN_CONTEXT_FEATURE_COVERAGE = 0.5


def _stderr(prefix: str):
    def say(message: str) -> None:
        print(prefix + " ".join(str(message).split()), file=sys.stderr, flush=True)
    return say


def resources_for(df: pd.DataFrame, *, gene_graph: bool = True, epochs: int | None = None,
                  perturbation_names: dict[str, str] | None = None,
                  perturbation_targets: dict[str, list[str]] | None = None,
                  info=_stderr(""), warn=_stderr("warning: ")):
    """Side information for the shared data: SMILES and annotations (targets, mechanism of action,
    parent compound) by compound name, the LPM's gene prior (prior_gene_graph: graph/io/networks.GENE_PRIOR,
    what the pipeline's training_set gives it) among
    the readouts and genetic targets and CORUM co-complex pairs among them, each genetic perturbation's
    targets (its own name, or the target
    genes the reader recorded), and LINCS baseline expression of the cell lines (when it covers most
    of the dataset's contexts). Every piece is optional: a missing one is a warning, not an error.
    perturbation_names / _targets: per perturbation id, the source name and target genes (Loaded).
    info / warn: where the coverage lines and the warnings go (stderr)."""
    from models.evaluation.harness import Resources
    from models.evaluation.splits import GENETIC_TYPES
    from models.side_information import SideInformation, target_genes

    names = perturbation_names or {}  # perturbation id -> source name (ingest readers)
    types = df["perturbation_type"].astype(str)
    compounds = df.loc[types == "compound", "perturbation"].astype(str).unique()
    pairs = df.loc[types.isin(GENETIC_TYPES), ["perturbation", "perturbation_type"]].drop_duplicates("perturbation")
    # a genetic perturbation's genes: its recorded targets, else its own name (target_genes, the one rule)
    targets = {p: target_genes(p, t, perturbation_targets or {})
               for p, t in zip(pairs["perturbation"].astype(str), pairs["perturbation_type"].astype(str), strict=True)}
    side: dict = {}  # SideInformation fields found

    def optional(what: str, make):
        try:
            return make()
        except Exception as exc:  # missing shared folder, a file without these columns, ...
            warn(f"no {what}: {exc}")
            return None

    if len(compounds):
        by_name = optional("compound structures", lambda: compound_smiles({names.get(p, p) for p in compounds})) or {}
        side["compound_smiles"] = {p: by_name[names.get(p, p)] for p in compounds if names.get(p, p) in by_name}
        info(f"compound structures: {len(side['compound_smiles'])} of {len(compounds)} compounds matched "
             "a SMILES by name or alias")
        by_name = optional("compound annotations",
                           lambda: compound_annotations({names.get(p, p) for p in compounds})) or {}
        side["compound_annotations"] = {p: by_name[names.get(p, p)] for p in compounds if names.get(p, p) in by_name}
        annotated = [a for a in side["compound_annotations"].values() if a.targets or a.moa]
        info(f"compound annotations: {len(annotated)} of {len(compounds)} compounds matched targets or a "
             f"mechanism of action by name or alias ({sum(bool(a.targets) for a in annotated)} with targets)")
    if gene_graph:
        genes = (set(df["readout"].astype(str).unique()) | {g for t in targets.values() for g in t}
                 | {g for t in (perturbation_targets or {}).values() for g in t})  # recorded ones of any type
        side["gene_graph"] = optional("gene graph", lambda: prior_gene_graph(genes=genes))
        side["complex_graph"] = optional("complex graph", lambda: corum_gene_graph(genes=genes))
        if side["gene_graph"] is not None or side["complex_graph"] is not None:
            # What the networks lost to the gene table, and how the dataset's names met it: said, not dropped.
            info(gene_name_coverage(genes))
            from graph.io.networks import GENE_PRIOR

            for kind, filters in (*((k, GENE_PRIOR.filters(k)) for k in GENE_PRIOR.networks), ("corum", {})):
                optional(f"{kind} summary", lambda kind=kind, filters=filters: info(network_summary(kind, **filters)))
    contexts = df["context"].astype(str).unique()
    features = optional("cell-line features", lambda: cell_line_features(contexts))
    if features is not None and len(features) >= MIN_CONTEXT_FEATURE_COVERAGE * len(contexts):
        side["context_features"] = features
    elif features is not None and len(features) < len(contexts) and len(features):
        warn(f"cell-line features cover {len(features)} of {len(contexts)} contexts; not used")
    if targets:
        side["perturbation_targets"] = targets
    return Resources(side=SideInformation(**side), lpm_epochs=epochs)


def resources_for_input(loaded: Loaded, **kwargs):
    """resources_for a loaded input with what its reader recorded (per perturbation id the source name, for
    structures and annotations by name, and the target genes): the benchmarks' route, as the CLI's."""
    return resources_for(loaded.frame, perturbation_names=loaded.perturbation_names,
                         perturbation_targets=loaded.perturbation_targets, **kwargs)

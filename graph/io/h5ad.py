"""AnnData h5ad readers: single-cell Perturb-seq counts -> pseudobulk signatures, and bulk h5ad.

Pseudobulk value: "log1p CP10k mean difference vs same-context controls". Each cell's counts are scaled
to 10,000 per cell (over all genes), log1p-transformed, averaged per (context, perturbation) group, and
the mean of the control cells of the same context is subtracted. With `zscore=True` the difference is
divided by the per-gene standard deviation of those control cells (genes with zero control variance
give no value; counted). Groups (and contexts' controls) with fewer than `min_cells` cells are
quarantined with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.io.common import CONTEXT_SYNONYMS, InputFileError, clean_text, recount_signatures
from graph.io.contexts import UNKNOWN_CONTEXT, context_record, normalise_context_name
from graph.io.identifiers import (
    canonical_gene_symbol,
    compound_id_for,
    format_dose,
    is_control_name,
    parse_dose,
    split_combination,
    time_point,
    unitless_time_note,
)
from graph.io.options import TYPE_OPTION_HINT, ReadOptions, TypeOverride, file_context
from graph.io.perturbations import perturbation_record
from graph.io.validation import GeneCheck, validate_measurements
from graph.records import (
    MEASUREMENT_COLUMNS,
    ContextRecord,
    PerturbationRecord,
    QuarantineRecord,
    ReadReport,
    SignatureRecord,
)

# scPerturb / GEARS / common spellings, in order of preference (gene-level before guide-level).
PERTURBATION_COLUMNS = ("perturbation", "condition", "target_gene", "gene", "target", "gene_target", "guide_id",
                        "sgRNA", "guide", "guide_identity")
CONTEXT_COLUMNS = (*CONTEXT_SYNONYMS, "context")  # graph/io/common.py: the tables' rule too
CONTROL_COLUMNS = ("is_control", "control")
TYPE_COLUMNS = ("perturbation_type", "perturbation_kind", "perttype")
SYMBOL_COLUMNS = ("gene_symbol", "gene_symbols", "gene_name", "symbol", "feature_name")
# A compound screen's dose per cell (sci-Plex / scPerturb: dose_value + dose_unit): each dose is its own group.
DOSE_COLUMNS = ("dose", "dose_value", "dose_val", "pert_dose", "concentration")
DOSE_UNIT_COLUMNS = ("dose_unit", "dose_units", "pert_dose_unit")
# A time course's time per cell (scPerturb / sci-Plex `time`, pereggrn `timepoint`; unit from a time-unit column
# or the value, as tables' time + time_unit): each time point is its own group, against controls of its time.
TIME_COLUMNS = ("time", "timepoint", "time_point", "time_h", "hours", "pert_time")
TIME_UNIT_COLUMNS = ("time_unit", "time_units", "pert_time_unit")
HOUR_COLUMNS = ("time_h", "hours")  # bare numbers are hours by the column's name
BULK_HINT = ("a file of per-signature values (one obs row per signature: log fold changes, z-scores) is read "
             "with the bulk option (--bulk, FILE?bulk=true, bulk=true in an inbox .options file)")
BACKED_ABOVE_BYTES = 1 << 30  # open files above 1 GiB in backed mode


@dataclass(frozen=True)
class ObsColumns:
    perturbation: str
    context: str | None
    control: str | None
    perturbation_type: str | None


def _missing_type(path: Path, obs: pd.DataFrame) -> InputFileError:
    """The perturbation-type rule of graph/io/options.py, for obs (looked-for columns listed)."""
    return InputFileError(path, f"has no perturbation type column in obs (looked for {list(TYPE_COLUMNS)}; "
                                f"obs columns: {list(obs.columns)}); {TYPE_OPTION_HINT}")


def detect_obs_columns(obs: pd.DataFrame, path: str | Path = "", *, perturbation: str | None = None,
                       context: str | None = None, control: str | None = None,
                       perturbation_type: str | None = None) -> ObsColumns:
    """Pick the obs columns (given names are checked; missing ones -> InputFileError listing the columns)."""
    available = list(obs.columns)

    def pick(given: str | None, candidates: tuple[str, ...], what: str, required: bool) -> str | None:
        if given is not None:
            if given not in obs.columns:
                raise InputFileError(path, f"obs has no {what} column {given!r}; available: {available}")
            return given
        found = next((c for c in candidates if c in obs.columns), None)
        if found is None and required:
            raise InputFileError(path, f"no {what} column found (looked for {list(candidates)}); available: {available}; "
                                       f"rename yours in obs (adata.obs.rename(columns={{'<yours>': '{candidates[0]}'}}))")
        return found

    return ObsColumns(
        perturbation=pick(perturbation, PERTURBATION_COLUMNS, "perturbation", True),
        context=pick(context, CONTEXT_COLUMNS, "context", False),
        control=pick(control, CONTROL_COLUMNS, "control", False),
        perturbation_type=pick(perturbation_type, TYPE_COLUMNS, "perturbation type", False),
    )


@dataclass
class H5adResult:
    """Long table (MEASUREMENT_COLUMNS) plus the records and counts of one h5ad file."""

    long: pd.DataFrame
    signatures: list[SignatureRecord]
    perturbations: dict[str, PerturbationRecord]
    contexts: dict[str, ContextRecord]
    report: ReadReport
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    groups: pd.DataFrame | None = None  # per group: context, label, n_cells, status


def _open(path: Path, backed: bool | None) -> ad.AnnData:
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    if backed is None:
        backed = path.stat().st_size > BACKED_ABOVE_BYTES
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:
        raise InputFileError(path, f"not a readable h5ad file ({type(exc).__name__}: {exc})") from exc


# Layers that hold raw counts when X holds normalised values (scanpy / scPerturb / CellxGene habits).
COUNT_LAYERS = ("counts", "raw_counts", "umi_counts", "umis", "count", "raw")
COUNT_CHECK_CELLS = 2_000  # cells sampled to tell counts from normalised values before the read


def _whole_numbers(block) -> bool:
    data = block.data if sp.issparse(block) else np.asarray(block)
    return bool(np.all(np.isfinite(data)) and np.all(data == np.round(data)))


def _counts_source(adata: ad.AnnData, path: Path):
    """(matrix, var, note) of the raw counts to pseudobulk: X when it holds whole numbers, else the first of
    layers COUNT_LAYERS, then .raw, that does (a note says which); a normalised X with no counts anywhere
    is refused, since log1p CP10k of normalised values would be silently wrong."""
    if _whole_numbers(_rows(adata.X, 0, min(adata.n_obs, COUNT_CHECK_CELLS))):
        return adata.X, adata.var, ""
    candidates = [(f"layers[{k!r}]", adata.layers[k], adata.var) for k in COUNT_LAYERS if k in adata.layers]
    if adata.raw is not None:
        candidates.append((".raw.X", adata.raw.X, adata.raw.var))
    for where, matrix, var in candidates:
        if _whole_numbers(_rows(matrix, 0, min(adata.n_obs, COUNT_CHECK_CELLS))):
            return matrix, var, f"X holds non-integer (normalised) values: raw counts read from {where}"
    raise InputFileError(path, "X holds non-integer values (normalised or log-transformed?) and no raw counts were "
                               f"found (looked for layers {list(COUNT_LAYERS)} and .raw; layers present: "
                               f"{list(adata.layers.keys())}); pseudobulk needs raw UMI counts: put them in X or in "
                               f"layers['counts']; {BULK_HINT}")


def _readouts(var: pd.DataFrame, resolver, path: Path, readout_key: str | None,
              report: ReadReport) -> tuple[list[str], np.ndarray, int]:
    """Readout symbol per gene of `var` (the readout_key option's column, else its symbol column, else its
    index), a mask of the genes with a name, and how many genes repeat an earlier gene's symbol. Repeats are
    kept: the validation step resolves them by the duplicate policy."""
    if readout_key:  # the tables' option (graph/io/options.py): the var column holding the readout ids
        if readout_key not in var.columns:
            raise InputFileError(path, f"has no var column {readout_key!r} (the readout_key option); var columns: "
                                       f"{list(var.columns)}")
        report.notes.append(f"readouts read from var column {readout_key!r} (the readout_key option)"
                            + ("" if resolver is not None else "; no gene table: kept as written"))
    col = readout_key or next((c for c in SYMBOL_COLUMNS if c in var.columns), None)
    names = [canonical_gene_symbol(x, resolver) for x in (var[col] if col else var.index)]
    named = np.array(names, dtype=object) != ""
    repeated = pd.Series(names).duplicated(keep="first").to_numpy() & named
    return names, named, int(repeated.sum())


def _readout_dtype(names: list[str], keep: np.ndarray) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(dict.fromkeys(n for n, k in zip(names, keep, strict=True) if k)))


def _repeat_note(repeated: int, unnamed: int, duplicates: str) -> str:
    return (f"{repeated} genes repeat an earlier gene's readout symbol: their values are duplicates of one "
            f"(signature, readout), resolved by the validation step (policy {duplicates!r}; see the 'values' note)"
            + (f"; {unnamed} genes without a symbol not used" if unnamed else ""))


def _validated(frames: list[pd.DataFrame], path: Path, report: ReadReport, duplicates: str, genes: GeneCheck,
               perturbations: dict[str, PerturbationRecord], quarantine: list[QuarantineRecord]) -> pd.DataFrame:
    """The signatures' values through the shared validation step (graph/io/validation.py), keyed by
    (signature, readout) with the duplicate policy and the unknown-gene rule. The report counts
    signatures, so rejected values and resolved repeats are counted in its notes; the rejected values
    are listed in `quarantine` with their reasons (as the GCTX reader lists its values)."""
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(MEASUREMENT_COLUMNS))
    if len(long):
        readout, pert = long["readout"].astype("category"), long["perturbation"].astype("category")
        unknown = genes.row_reasons(readout.cat.codes.to_numpy(), list(readout.cat.categories),
                                    pert.cat.codes.to_numpy(), [perturbations.get(p) for p in pert.cat.categories])
        v = validate_measurements(long, str(path), keys=("signature_id", "readout"), ranked=False,
                                  duplicates=duplicates, unknown=unknown, unknown_genes=genes.policy)
        genes.add(v)
        quarantine.extend(v.quarantine)
        if v.quarantined or v.duplicates_resolved or v.conflicting_keys or v.exact_duplicate_keys:
            report.notes.append(f"values: {v.summary()}; {v.notes[0] if v.notes else ''}".rstrip("; "))
        if note := genes.note():
            report.notes.append(note)
        long = v.accepted.reset_index(drop=True)
        long["value"] = long["value"].astype(np.float32)
    for col in MEASUREMENT_COLUMNS[:-1]:
        long[col] = long[col].astype("category")
    return long[list(MEASUREMENT_COLUMNS)]


@contextmanager
def _opened(path: Path, backed: bool | None, resolver, options: ReadOptions, columns: Mapping[str, str]):
    """(AnnData, its ObsColumns, the unknown-gene check) for one read; a backed file is closed afterwards.
    The check comes first: `unknown_genes=quarantine` without a gene table refuses before opening."""
    genes = GeneCheck(resolver, options.unknown_genes, str(path))
    adata = _open(path, backed)
    try:
        yield adata, detect_obs_columns(adata.obs, path, **columns), genes
    finally:
        if adata.isbacked:
            adata.file.close()


def _rows(X, start: int, stop: int):
    block = X[start:stop]
    if hasattr(block, "to_memory"):
        block = block.to_memory()
    return sp.csr_matrix(block) if sp.issparse(block) else np.asarray(block)


GUIDE_COLUMNS = ("guide_id", "sgRNA", "guide", "guide_identity")
TARGET_COLUMNS = ("target_gene", "gene", "target", "gene_target")


def _perturbation_record(label: str, ptype: str, resolver, dataset_id: str, target: str = "",
                         dose: tuple[float | None, str] = (None, ""),
                         compound_ids: Mapping[str, str] | None = None,
                         time: tuple[float | None, str] = (None, "")) -> PerturbationRecord:
    """A group's perturbation (graph/io/perturbations.perturbation_record): genetic targets from `target`
    (a guide's gene) or the label, each part of a combination resolved through the gene table; a
    compound's dose (value, unit) from the obs dose column and its compound by identifiers.compound_id_for
    (the lookup of every reader)."""
    targets = () if ptype in ("control", "compound") else tuple(
        canonical_gene_symbol(t, resolver) for t in split_combination(target or label, keep_prefix=False,
                                                                      resolver=resolver))
    cid = compound_id_for(label, compound_ids) if ptype == "compound" else ""
    return perturbation_record(ptype, label, targets=targets, source=dataset_id, dose_value=dose[0], dose_unit=dose[1],
                               compound_id=cid, time_value=time[0], time_unit=time[1])


def _dose_labels(obs: pd.DataFrame, labels: np.ndarray, is_ctrl: np.ndarray, report: ReadReport):
    """Labels with "@<dose>" for the non-control cells of a file with a dose column (DOSE_COLUMNS, unit from
    DOSE_UNIT_COLUMNS or the value: identifiers.parse_dose), so two doses of one compound are two groups,
    never one average; and {label: (name, (value, unit), problem)}, problem = why a dose is unusable."""
    col = next((c for c in DOSE_COLUMNS if c in obs.columns), None)
    if col is None:
        return labels, {}
    unit_col = next((c for c in DOSE_UNIT_COLUMNS if c in obs.columns), None)
    raw = obs[col].astype(object).to_numpy()
    units = obs[unit_col].astype(object).to_numpy() if unit_col else np.full(len(obs), None, dtype=object)
    out, info, parsed = labels.copy(), {}, {}
    for i in np.flatnonzero(~is_ctrl):
        key = (raw[i], units[i])
        if key not in parsed:
            try:
                dose = parse_dose(raw[i], units[i])
                parsed[key] = (dose, f"@{format_dose(*dose)}" if dose[0] is not None else "", "")
            except ValueError as exc:
                parsed[key] = ((None, ""), f"@{clean_text(raw[i])}", f"{exc} (obs column {col!r})")
        dose, suffix, problem = parsed[key]
        out[i] = labels[i] + suffix
        info.setdefault(out[i], (labels[i], dose, problem))
    report.notes.append(f"dose column {col!r}" + (f" (unit {unit_col!r})" if unit_col else "")
                        + ": each dose of a perturbation is its own signature")
    return out, info


def _time_suffixes(obs: pd.DataFrame, report: ReadReport) -> tuple[np.ndarray, dict[str, tuple]]:
    """Per cell (controls too) "|<time>h" of a file with a time column (TIME_COLUMNS, unit from TIME_UNIT_COLUMNS
    or the value, identifiers.parse_time as for tables), "" without one; and {suffix: ((value, unit), problem)},
    problem = why a time is unusable (the groups with it are quarantined). A label + its suffix is a group, and
    a group is compared with the controls of its context and suffix, so two time points are never one average."""
    col = next((c for c in TIME_COLUMNS if c in obs.columns), None)
    if col is None:
        return np.full(len(obs), "", dtype=object), {}
    unit_col = next((c for c in TIME_UNIT_COLUMNS if c in obs.columns), None)
    raw = obs[col].astype(object).map(clean_text)
    units = (obs[unit_col].astype(object).map(clean_text) if unit_col else
             pd.Series("h" if col in HOUR_COLUMNS else "", index=obs.index, dtype=object))
    codes, pairs = pd.factorize(raw + "\x1f" + units)  # not "\x00": pandas' hash table ends a string there
    suffix_of, info, unitless = [], {}, []
    for pair in pairs:
        text, _, unit = pair.partition("\x1f")
        try:
            t, suffix, bare = time_point(text, unit)  # the tables' rule: a bare number is kept apart as written
            problem = ""
            if bare:
                unitless.append(text)
        except ValueError as exc:
            t, suffix, problem = (None, ""), f"|{text}", f"{exc} (obs column {col!r})"
        suffix_of.append(suffix)
        info.setdefault(suffix, (t, problem))
    report.notes.append(f"time column {col!r}" + (f" (unit {unit_col!r})" if unit_col else "")
                        + ": each time point of a perturbation is its own signature, against the controls of its "
                          "context and time point")
    if unitless:
        report.notes.append(f"time column {col!r}: " + unitless_time_note(unitless, TIME_UNIT_COLUMNS[0],
                                                                              f"adata.obs[{TIME_UNIT_COLUMNS[0]!r}] = 'h'"))
    return np.array(suffix_of, dtype=object)[codes] if len(pairs) else np.full(len(obs), "", dtype=object), info


def pseudobulk_h5ad(
    path: str | Path,
    dataset_id: str,
    *,
    columns: Mapping[str, str] | None = None,
    target_col: str | None = None,
    control_values: tuple[str, ...] | None = None,
    cell_filter: str | None = None,
    min_cells: int = 20,
    zscore: bool = False,
    resolver=None,
    backed: bool | None = None,
    chunk_cells: int = 20_000,
    options: ReadOptions = ReadOptions(),
    compound_ids: Mapping[str, str] | None = None,
) -> H5adResult:
    """Single-cell counts -> one signature per (context, perturbation) against same-context controls.

    `columns` names obs columns instead of the detected ones (detect_obs_columns), by role: perturbation,
    context, control, perturbation_type (e.g. {"perturbation": "guide_id"}).
    Controls: the boolean control column (auto: is_control) when present, else perturbation labels that
    are control spellings (ctrl, non-targeting, NTC, DMSO, ...) or in `control_values`. GEARS labels
    "A+ctrl" mean A alone, "A+B" a combination. `cell_filter` is a pandas query over obs selecting the
    cells to use (e.g. "not multiple_grnas"); the excluded count goes into the report notes. When the
    groups are guides (perturbation column guide_id/sgRNA/guide) the target genes come from `target_col`
    (auto: target_gene/gene/target), so each guide is its own signature of the gene's Perturbation.
    The report counts groups (non-control (context, perturbation) pairs): accepted or quarantined.
    `compound_ids` ({normalised name or pert_id: compound_id}) joins compound groups to compound records, as
    the table and GCTX readers do (identifiers.compound_id_for).
    `options` (graph/io/options.ReadOptions) gives the type of every cell without a type column
    (`perturbation_type`), the context without a context column (`context`), the duplicate policy for
    genes that repeat a readout symbol (`duplicates`, validation.py) and the rule for genes and targets
    the gene table does not resolve (`unknown_genes`, validation.GeneCheck).
    """
    path = Path(path)
    perturbation_type, default_context, duplicates = options.perturbation_type, options.context, options.duplicates
    with _opened(path, backed, resolver, options, columns or {}) as (adata, cols, genes):
        obs = adata.obs
        report = ReadReport(source=str(path))
        quarantine: list[QuarantineRecord] = []
        use = np.ones(adata.n_obs, dtype=bool)
        if cell_filter:
            try:
                use = obs.eval(cell_filter, engine="python").to_numpy(dtype=bool)
            except Exception as exc:
                raise InputFileError(path, f"cell_filter {cell_filter!r} failed ({exc}); obs columns: {list(obs.columns)}") from exc
            report.notes.append(f"{int((~use).sum())} of {adata.n_obs} cells excluded by cell_filter {cell_filter!r}")
        labels = obs[cols.perturbation].astype(object).map(clean_text).to_numpy()
        fill_context, context_note = file_context(default_context, column=cols.context, cells=True)
        if context_note:
            report.notes.append(context_note)
        if cols.context:
            contexts = obs[cols.context].astype(object).map(normalise_context_name).to_numpy()
            raw_context = dict(zip(contexts, obs[cols.context].astype(object).map(clean_text), strict=True))
        else:
            ctx = normalise_context_name(fill_context)
            contexts = np.full(adata.n_obs, ctx, dtype=object)
            raw_context = {ctx: default_context or ""}
        extra = {c.lower() for c in (control_values or ())}
        by_name = np.array([is_control_name(x) or x.lower() in extra for x in labels], dtype=bool)
        if cols.control:
            flag = obs[cols.control]
            is_ctrl = (flag.astype(str).str.lower().isin(["true", "1", "yes"]) if flag.dtype == object or
                       isinstance(flag.dtype, pd.CategoricalDtype) else flag.fillna(False).astype(bool)).to_numpy()
            disagree = int((is_ctrl != by_name).sum())
            if disagree:
                report.notes.append(f"{disagree} cells where {cols.control!r} and the control spelling of the label disagree; "
                                    f"{cols.control!r} wins")
        else:
            is_ctrl = by_name
        labels, dose_info = _dose_labels(obs, labels, is_ctrl, report)
        times, time_info = _time_suffixes(obs, report)
        base_of = dict(zip(labels + times, zip(labels, times, strict=True), strict=True))  # label -> (dose label, time)
        labels = labels + times
        unlabelled = (labels == "") & ~is_ctrl & use
        if unlabelled.any():
            report.notes.append(f"{int(unlabelled.sum())} cells without a perturbation label not used")
            use &= ~unlabelled
        if cols.perturbation_type is None and perturbation_type is None:
            raise _missing_type(path, obs)

        # Group index per cell: controls get one group per (context, time point), others one per (context, label).
        # "\x02ctrl", not "\x00ctrl": pandas' factorize ends a string at "\x00" (two time points' controls were one).
        keys = np.where(is_ctrl, "\x02ctrl" + times, labels).astype(object)
        group_key = pd.Series(contexts, dtype=object) + "\x01" + pd.Series(keys, dtype=object)
        group_key[~use] = None
        codes, uniq = pd.factorize(group_key)
        n_groups = len(uniq)
        matrix, var, source_note = _counts_source(adata, path)
        if source_note:
            report.notes.append(source_note)
        names, keep_genes, repeated = _readouts(var, resolver, path, options.readout_key, report)
        if repeated or not keep_genes.all():
            report.notes.append(_repeat_note(repeated, int((~keep_genes).sum()), duplicates))
        n_genes = len(var)
        sums = np.zeros((n_groups, n_genes), dtype=np.float64)
        sumsq = np.zeros((n_groups, n_genes), dtype=np.float64) if zscore else None
        counts = np.bincount(codes[codes >= 0], minlength=n_groups)
        for start in range(0, adata.n_obs, chunk_cells):
            stop = min(start + chunk_cells, adata.n_obs)
            block = _rows(matrix, start, stop)
            c = codes[start:stop]
            lib = np.asarray(block.sum(axis=1)).ravel()
            if (lib < 0).any() or (sp.issparse(block) and (block.data < 0).any()) or (
                    not sp.issparse(block) and (block < 0).any()):
                raise InputFileError(path, f"X holds negative values; pseudobulk needs raw counts; {BULK_HINT}")
            if not _whole_numbers(block):
                raise InputFileError(path, f"the counts matrix holds non-integer values in cells {start}-{stop - 1}; "
                                           "pseudobulk needs raw UMI counts")
            scale = np.divide(1e4, lib, out=np.zeros_like(lib, dtype=np.float64), where=lib > 0)
            if sp.issparse(block):
                norm = sp.diags(scale) @ block.astype(np.float64)
                norm.data = np.log1p(norm.data)
            else:
                norm = np.log1p(block.astype(np.float64) * scale[:, None])
            sel = np.flatnonzero(c >= 0)
            ind = sp.csr_matrix((np.ones(len(sel)), (c[sel], sel)), shape=(n_groups, stop - start))
            sums += np.asarray((ind @ norm).todense() if sp.issparse(norm) else ind @ norm)
            if zscore:
                sq = norm.multiply(norm) if sp.issparse(norm) else norm ** 2
                sumsq += np.asarray((ind @ sq).todense() if sp.issparse(sq) else ind @ sq)
        means = sums / np.maximum(counts, 1)[:, None]

        ptype_of: dict[str, str] = {}
        if cols.perturbation_type:
            t = pd.DataFrame({"g": codes, "t": obs[cols.perturbation_type].astype(str).to_numpy()})
            t = t[t.g >= 0].groupby("g")["t"].agg(lambda x: x.value_counts().index[0])
            ptype_of = {uniq[g]: v for g, v in t.items()}

        target_of: dict[str, str] = {}
        if target_col is None and cols.perturbation in GUIDE_COLUMNS:
            target_col = next((c for c in TARGET_COLUMNS if c in obs.columns), None)
        if target_col is not None:
            if target_col not in obs.columns:
                raise InputFileError(path, f"obs has no target column {target_col!r}; available: {list(obs.columns)}")
            t = pd.DataFrame({"g": codes, "t": obs[target_col].astype(str).to_numpy()})
            t = t[t.g >= 0].groupby("g")["t"].agg(lambda x: x.value_counts().index[0])
            target_of = {uniq[g]: v for g, v in t.items()}

        ctrl_index = {k: i for i, k in enumerate(uniq) if "\x01\x02ctrl" in k}  # per (context, time point)
        types = TypeOverride(perturbation_type if cols.perturbation_type else None, path)  # the option over the column
        perturbations: dict[str, PerturbationRecord] = {}
        context_records: dict[str, ContextRecord] = {}
        signatures: list[SignatureRecord] = []
        frames, group_rows = [], []
        readout_cat = _readout_dtype(names, keep_genes)
        dropped_zero_sd = 0
        for i, key in enumerate(uniq):
            ctx, label = key.split("\x01")
            if label.startswith("\x02ctrl"):
                group_rows.append((ctx, "<control>" + label[len("\x02ctrl"):], int(counts[i]), "control"))
                continue
            report.read += 1
            dose_label, time = base_of.get(label, (label, ""))
            ctrl_key = f"{ctx}\x01\x02ctrl{time}"
            n_ctrl = int(counts[ctrl_index[ctrl_key]]) if ctrl_key in ctrl_index else 0
            time_value, time_problem = time_info.get(time, ((None, ""), ""))
            reason = ""
            if counts[i] < min_cells:
                reason = f"only {int(counts[i])} cells (< min_cells {min_cells})"
            elif n_ctrl < min_cells and not time_problem:
                reason = (f"only {n_ctrl} control cells in context {ctx}" + (f" at time {time[1:]}" if time else "")
                          + f" (< min_cells {min_cells})" + ("; controls are matched by context and time" if time else ""))
            try:
                ptype = types.type_of(ptype_of.get(key, perturbation_type or ""))
            except ValueError as exc:
                reason = reason or str(exc)
            name, dose, dose_problem = dose_info.get(dose_label, (dose_label, (None, ""), ""))
            reason = reason or dose_problem or time_problem
            if reason:
                report.quarantined += 1
                quarantine.append(QuarantineRecord(str(path), f"{ctx}|{label}", reason,
                                                   {"context": ctx, "perturbation": label, "n_cells": int(counts[i]),
                                                    "n_control_cells": n_ctrl}))
                group_rows.append((ctx, label, int(counts[i]), reason))
                continue
            j = ctrl_index[ctrl_key]
            diff = means[i] - means[j]
            if zscore:
                var = sumsq[j] / counts[j] - means[j] ** 2
                sd = np.sqrt(np.maximum(var, 0) * counts[j] / max(counts[j] - 1, 1))
                with np.errstate(divide="ignore", invalid="ignore"):
                    diff = np.where(sd > 0, diff / sd, np.nan)
            ok = keep_genes & np.isfinite(diff)
            dropped_zero_sd += int((keep_genes & ~np.isfinite(diff)).sum())
            rec = _perturbation_record(name, ptype, resolver, dataset_id, target_of.get(key, ""),
                                       dose if ptype == "compound" else (None, ""), compound_ids, time_value)
            perturbations.setdefault(rec.perturbation_id, rec)
            if ctx not in context_records:
                kind = "cell_type" if cols.context and "type" in cols.context else "cell_line"
                context_records[ctx] = context_record(raw_context.get(ctx, ctx), kind=kind, source=path.name)
                if ctx == UNKNOWN_CONTEXT:
                    context_records[ctx] = context_record("", source=path.name)
            sig_id = f"{dataset_id}:{ctx}|{label}"
            signatures.append(SignatureRecord(sig_id, dataset_id, ctx, rec.perturbation_id, int(ok.sum()),
                                              int(counts[i]), f"{ctx}|{label}"))
            frames.append(pd.DataFrame({
                "dataset": dataset_id, "signature_id": sig_id, "context": ctx, "perturbation": rec.perturbation_id,
                "perturbation_type": rec.perturbation_type,
                "readout": pd.Categorical(np.array(names, dtype=object)[ok], dtype=readout_cat),
                "value": diff[ok].astype(np.float32),
            }))
            report.accepted += 1
            group_rows.append((ctx, label, int(counts[i]), "accepted"))
        types.check()
        if note := types.note():
            report.notes.append(note)
        if zscore and dropped_zero_sd:
            report.notes.append(f"{dropped_zero_sd} values dropped: zero control variance (z-score undefined)")
        if report.read and not report.accepted and counts.max(initial=0) <= 1:
            raise InputFileError(path, f"every group holds one obs row (below min_cells {min_cells}): this looks like a "
                                       "file of one row per (context, perturbation), not single cells; "
                                       f"{BULK_HINT}; values are used as they are (not counts)")
        report.notes.append("value = log1p CP10k mean difference vs same-context" + (" and same-time-point" if time_info else "")
                            + " controls" + (", / control sd" if zscore else ""))
        report.check()
        long = _validated(frames, path, report, duplicates, genes, perturbations, quarantine)
        signatures = recount_signatures(signatures, long)
        groups = pd.DataFrame(group_rows, columns=["context", "perturbation", "n_cells", "status"])
        return H5adResult(long[list(MEASUREMENT_COLUMNS)], signatures, perturbations, context_records, report,
                          quarantine, groups)


def read_bulk_h5ad(
    path: str | Path,
    dataset_id: str,
    *,
    columns: Mapping[str, str] | None = None,
    resolver=None,
    backed: bool | None = None,
    options: ReadOptions = ReadOptions(),
    compound_ids: Mapping[str, str] | None = None,
) -> H5adResult:
    """Bulk h5ad: one obs row = one signature, X values used as they are (e.g. z-scores or log fold changes).

    NaN/inf values are dropped and counted; repeated obs names keep the first row (later ones quarantined).
    The report counts rows (signatures); `columns` (no control role) and `options` as in pseudobulk_h5ad.
    """
    path = Path(path)
    perturbation_type, default_context, duplicates = options.perturbation_type, options.context, options.duplicates
    roles = {k: v for k, v in (columns or {}).items() if k != "control"}
    with _opened(path, backed, resolver, options, roles) as (adata, cols, genes):
        obs = adata.obs
        if cols.perturbation_type is None and perturbation_type is None:
            raise _missing_type(path, obs)
        report = ReadReport(source=str(path), read=adata.n_obs)
        quarantine: list[QuarantineRecord] = []
        names, keep_genes, repeated = _readouts(adata.var, resolver, path, options.readout_key, report)
        readout_cat = _readout_dtype(names, keep_genes)
        dup = pd.Series(adata.obs_names).duplicated(keep="first").to_numpy()
        perturbations: dict[str, PerturbationRecord] = {}
        contexts: dict[str, ContextRecord] = {}
        signatures, frames = [], []
        dropped: Counter[str] = Counter()
        fill_context, context_note = file_context(default_context, column=cols.context, cells=True)
        if context_note:
            report.notes.append(context_note)
        types = TypeOverride(perturbation_type if cols.perturbation_type else None, path)  # the option over the column
        # A dose column: each dose of a compound its own perturbation, as in pseudobulk_h5ad and the tables.
        row_labels = obs[cols.perturbation].astype(object).map(clean_text).to_numpy()
        dose_labels, dose_info = _dose_labels(obs, row_labels, np.array([is_control_name(x) for x in row_labels],
                                                                        dtype=bool), report)
        X = _rows(adata.X, 0, adata.n_obs)
        X = X.toarray() if sp.issparse(X) else X
        for i, obs_name in enumerate(adata.obs_names):
            label = clean_text(obs[cols.perturbation].iloc[i])
            raw_ctx = obs[cols.context].iloc[i] if cols.context else fill_context
            ctx = normalise_context_name(raw_ctx)
            reason = "repeated obs name; first row kept" if dup[i] else ("empty perturbation label" if not label else "")
            ptype = ""
            if not reason:
                try:
                    ptype = types.type_of(obs[cols.perturbation_type].iloc[i] if cols.perturbation_type
                                          else perturbation_type)
                except ValueError as exc:
                    reason = str(exc)
            _, dose, dose_problem = dose_info.get(dose_labels[i], (label, (None, ""), ""))
            reason = reason or dose_problem
            if reason:
                quarantine.append(QuarantineRecord(str(path), str(obs_name), reason, {"perturbation": label}))
                continue
            if is_control_name(label):
                ptype = "control"
            rec = _perturbation_record(label, ptype, resolver, dataset_id, compound_ids=compound_ids,
                                       dose=dose if ptype == "compound" else (None, ""))
            perturbations.setdefault(rec.perturbation_id, rec)
            contexts.setdefault(ctx, context_record(raw_ctx or "", source=path.name))
            row = np.asarray(X[i], dtype=np.float64).ravel()
            dropped["NaN"] += int(np.isnan(row[keep_genes]).sum())
            dropped["+-inf"] += int(np.isinf(row[keep_genes]).sum())
            ok = keep_genes & np.isfinite(row)
            sig_id = f"{dataset_id}:{obs_name}"
            signatures.append(SignatureRecord(sig_id, dataset_id, ctx, rec.perturbation_id, int(ok.sum()), 1, str(obs_name)))
            frames.append(pd.DataFrame({
                "dataset": dataset_id, "signature_id": sig_id, "context": ctx, "perturbation": rec.perturbation_id,
                "perturbation_type": rec.perturbation_type,
                "readout": pd.Categorical(np.array(names, dtype=object)[ok], dtype=readout_cat),
                "value": row[ok].astype(np.float32),
            }))
        types.check()
        if note := types.note():
            report.notes.append(note)
        report.quarantined = len(quarantine)
        report.accepted = len(signatures)
        report.duplicates_resolved = int(dup.sum())
        if any(dropped.values()):
            report.notes.append(f"dropped values: {dict((k, v) for k, v in dropped.items() if v)}")
        if repeated or not keep_genes.all():
            report.notes.append(_repeat_note(repeated, int((~keep_genes).sum()), duplicates))
        report.check()
        long = _validated(frames, path, report, duplicates, genes, perturbations, quarantine)
        signatures = recount_signatures(signatures, long)
        return H5adResult(long[list(MEASUREMENT_COLUMNS)], signatures, perturbations, contexts, report, quarantine)

"""Long tables (parquet/CSV) of values or ranked signatures -> the canonical long table, streamed.

Value tables: context, perturbation, perturbation_type, readout, value (+ optional dose, time).
Ranked tables: context, perturbation, perturbation_type, readout, rank, n_ranked (+ in_up_set), where
rank 1 = most up-regulated and rank n_ranked = most down-regulated; `value` becomes the signed score
    s = 1 - 2 (rank - 1) / (n_ranked - 1)        (+1 most up, 0 middle, -1 most down).
Parquet is read by pyarrow record batches (the 12.4M-row Tahoe file is never loaded whole); CSV by
pandas chunks. Text columns are mapped per distinct value (categories), not per row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from graph.io.common import (
    InputFileError,
    StreamedReader,
    canonical_columns,
    clean_text,
    comment_lines,
    measurement_format,
)
from graph.io.contexts import context_record, normalise_context_name
from graph.io.identifiers import (
    canonical_gene_symbol,
    compound_id_for,
    format_dose,
    is_bare_number,
    parse_dose,
    split_combination,
    stored_gene_names,
    time_point,
    unitless_time_note,
)
from graph.io.options import TypeOverride, file_context, missing_type_error
from graph.io.perturbations import perturbation_record, type_in_id
from graph.io.validation import DEFAULT_DUPLICATES, GeneCheck, duplicate_note, validate_measurements
from graph.records import MEASUREMENT_COLUMNS, SignatureRecord

BASE_COLUMNS = ("context", "perturbation", "perturbation_type", "readout")
RANK_COLUMNS = ("rank", "n_ranked")
MAX_QUARANTINE_ROWS = 100_000
SEEN_BUDGET = 300_000_000  # bools (300 MB) for the repeat check across batches  # bad rows beyond this are counted in the report, not listed one by one


def _map_categorical(series: pd.Series, func) -> pd.Categorical:
    """Apply `func` to each distinct value of a (categorical) column; NA stays NA."""
    cat = series.astype("category") if not isinstance(series.dtype, pd.CategoricalDtype) else series
    mapped = np.array([func(x) for x in cat.cat.categories], dtype=object)
    if len(mapped) == 0:
        return pd.Categorical([None] * len(cat))
    uniq, inv = np.unique(mapped.astype(str), return_inverse=True)
    codes = cat.cat.codes.to_numpy()
    out = np.where(codes >= 0, inv[np.maximum(codes, 0)], -1)
    return pd.Categorical.from_codes(out, categories=uniq)


def _canonical_suffix(dose: str, time: str) -> str:
    """"@10uM|24h" for a signature label, so "10 uM" and "10uM" rows are one signature; a bare-number time
    is kept as written ("|24", identifiers.time_point)."""
    out = ""
    try:
        out += f"@{format_dose(*parse_dose(dose))}" if dose else ""
        out += time_point(time)[1]
    except ValueError:
        out += f"@{dose}|{time}"  # these rows are quarantined (the perturbation fails to parse too)
    return out


def with_units(df: pd.DataFrame) -> pd.DataFrame:
    """A batch's dose / time text with its `dose_unit` / `time_unit` column joined to bare numbers ("10" +
    "nM" -> "10 nM", as CMap's pert_dose + pert_dose_unit and sci-Plex's dose_value + dose_unit are read);
    the unit columns dropped. Text that already names a unit, and blanks, are left as they are."""
    for col in ("dose", "time"):
        unit = f"{col}_unit"
        if unit not in df:
            continue
        if col in df:
            pairs = pd.DataFrame({"v": df[col].astype(object).map(clean_text), "u": df[unit].astype(object).map(clean_text)})
            joined = np.where(pairs["v"].map(is_bare_number) & (pairs["u"] != ""),
                              pairs["v"] + " " + pairs["u"], pairs["v"])
            df = df.assign(**{col: pd.Categorical(joined)})
        df = df.drop(columns=unit)
    return df


def _factorize_rows(codes: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small-integer code matrix (n, k) (-1 = NA) via one int64 key and a hash
    factorisation (np.unique(axis=0) sorts and is ~10x slower). Returns (inverse (n,), unique rows)."""
    key = np.zeros(len(codes), dtype=np.int64)
    for j, size in enumerate(sizes):
        key = key * (size + 1) + (codes[:, j] + 1)
    inv, uniq_keys = pd.factorize(key)
    return inv.astype(np.int64), codes[pd.Series(inv).drop_duplicates().index.to_numpy()] if len(codes) else codes


class LongTableReader(StreamedReader):
    """Stream a value or ranked long table into MEASUREMENT_COLUMNS chunks plus records.

    `ranked=None` detects a ranked table by its rank/n_ranked columns. Contexts are normalised;
    perturbations get stable ids (compound names via `compound_ids` {normalised name or pert_id:
    compound_id} when given; genetic targets and readouts through `resolver` when given, the source
    name kept when unresolved). Signature id: "<dataset>:<context>|<source perturbation name>[@<dose>uM][|<time>h]"
    (source spelling, so two salt forms of one drug stay two signatures of the same Perturbation).

    Report units are rows. Each batch goes through graph/io/validation.validate_measurements: rows with
    an unknown perturbation type, an empty key field, a non-finite value or an invalid rank are
    quarantined with the reason; copies of a (signature, readout) with the same value are collapsed,
    copies with different values follow `duplicates` ("mean", the default; "quarantine" all copies; "first").
    A (signature, readout) already accepted in an earlier batch is dropped (first kept, counted in
    duplicates_resolved; one bool per signature x readout; Tahoe: 1,071 x 26,347 = 28 MB; beyond
    SEEN_BUDGET only repeats inside a batch are caught, with a note). `max_rows` reads only the first
    rows (tests, previews).

    `readout_key` names the column holding the readouts (e.g. "ensembl_id", "entrez_id"; default
    "readout"), mapped to symbols through `resolver`. A table without a context column gets `context`
    (e.g. a cell line) or, when none is given, identifiers.CONSENSUS_CONTEXT (noted in the report).
    """

    def __init__(self, path: str | Path, dataset_id: str, *, ranked: bool | None = None, resolver=None,
                 compound_ids: Mapping[str, str] | None = None, batch_size: int = 500_000,
                 max_rows: int | None = None, duplicates: str = DEFAULT_DUPLICATES,
                 perturbation_type: str | None = None, readout_key: str | None = None,
                 context: str | None = None, unknown_genes: str = "keep"):
        super().__init__(path, dataset_id)
        self.default_type = perturbation_type  # used (and noted) when the file has no perturbation_type column
        self.duplicates = duplicates
        self._dup_keys = [0, 0]  # (signature, readout) keys repeated with identical / conflicting values
        self._compound_names: dict[str, bool] = {}  # compound name -> matched a compound record
        self._unitless_times: set[str] = set()  # bare-number times kept apart as written (identifiers.time_point)
        self.resolver, self.compound_ids = resolver, compound_ids or {}
        self.batch_size, self.max_rows = batch_size, max_rows
        fmt = measurement_format(self.path)  # missing file, directory, empty file: InputFileError
        if fmt not in {"parquet", "csv", "tsv"}:
            raise InputFileError(self.path, f"is a {fmt} file, not a long table")
        self.genes = GeneCheck(resolver, unknown_genes, str(self.path))  # the unknown-gene rule (validation.py)
        self.is_parquet = fmt == "parquet"
        self._sep = "\t" if fmt == "tsv" else ","
        self._skip = 0 if self.is_parquet else comment_lines(self.path)  # "# exported by ..." lines above the header
        raw_columns = self._columns()  # the file's names; self.columns: the canonical names (common.canonical_columns)
        self.columns = canonical_columns(raw_columns)
        self._source = dict(zip(self.columns, raw_columns, strict=True))  # canonical name -> the file's name
        self._readout_col = readout_key or self._source.get("readout", "readout")  # the file's column read as `readout`
        if self._readout_col != self._source.get("readout", "readout"):
            if self._readout_col not in raw_columns:
                raise InputFileError(self.path, f"has no readout key column {self._readout_col!r}; "
                                                f"available: {raw_columns}")
            self.columns = [c for c in self.columns if c != "readout"]
            self.columns = ["readout" if self._source.get(c) == self._readout_col else c for c in self.columns]
            self._source["readout"] = self._readout_col
        available = list(raw_columns)  # for messages: the file's own names
        if "context" in self._source and self._source["context"].lower() != "context":
            self.report.notes.append(f"column {self._source['context']!r} read as the context")
        self._fill_context = "context" not in self.columns
        self.default_context, context_note = file_context(
            context, column=None if self._fill_context else self._source.get("context", "context"), cells=False)
        if self._fill_context:
            self.columns.append("context")
        self._fill_type = "perturbation_type" not in self.columns and perturbation_type is not None
        if self._fill_type:
            self.columns.append("perturbation_type")
        self._types = TypeOverride(None if self._fill_type else perturbation_type, self.path)  # option over the column
        missing = set(BASE_COLUMNS) - set(self.columns)
        self.ranked = set(RANK_COLUMNS) <= set(self.columns) if ranked is None else ranked
        missing |= (set(RANK_COLUMNS) if self.ranked else {"value"}) - set(self.columns)
        if missing == {"perturbation_type"}:  # the one rule (graph/io/options.py): no guessed type
            raise missing_type_error(self.path)
        if missing:
            other = next((sep for sep in (";", "\t", ",", "|") if sep != self._sep and len(available) == 1
                          and sep in available[0]), None)
            hint = (f" (the header is one column holding {other!r}: the file looks {other!r}-separated; save it as "
                    "CSV with ',' or as TSV named .tsv)" if other else "")
            raise InputFileError(self.path, f"missing columns {sorted(missing)}; available: {available}{hint}")
        if self._fill_type:
            self.report.notes.append(f"no perturbation_type column: every row taken as {perturbation_type!r} "
                                     "(the perturbation_type option)")
        if context_note:
            self.report.notes.append(context_note)
        self.reasons: Counter[str] = Counter()
        self._sig: dict[str, list] = {}  # signature_id -> [context, perturbation_id, n_readouts]
        self._pert_cache: dict[tuple, str | None] = {}
        self._readout_cache: dict[str, str] = {}
        self._bad_reason: dict[tuple, str] = {}
        self._seen: dict[str, np.ndarray] | None = {}  # signature_id -> readouts already emitted
        self._readout_index: dict[str, int] = {}
        if resolver is not None:
            self._prepare_readouts()

    def _columns(self) -> list[str]:
        try:
            if self.is_parquet:
                return list(pq.read_schema(self.path).names)
            return list(pd.read_csv(self.path, nrows=0, sep=self._sep, skiprows=self._skip).columns)
        except Exception as exc:
            raise InputFileError(self.path, f"cannot read the table header ({exc})") from exc

    def _batches(self) -> Iterator[pd.DataFrame]:
        wanted = [c for c in (*BASE_COLUMNS, "value", *RANK_COLUMNS, "dose", "time", "dose_unit", "time_unit")
                  if c in self.columns
                  and not (c == "perturbation_type" and self._fill_type) and not (c == "context" and self._fill_context)]
        wanted = [self._source.get(c, c) for c in wanted]  # the file's names of the canonical columns
        renamed = {self._source.get(c, c): c for c in self.columns}
        seen = 0
        try:
            if self.is_parquet:
                # ignore_metadata: a column pandas wrote as the index ("readout" of df.set_index) stays a column
                it = (b.to_pandas(ignore_metadata=True)
                      for b in pq.ParquetFile(self.path).iter_batches(self.batch_size, columns=wanted))
            else:
                it = pd.read_csv(self.path, sep=self._sep, usecols=wanted, chunksize=self.batch_size, skiprows=self._skip,
                                 dtype={self._source.get(c, c): "category"
                                        for c in (*BASE_COLUMNS, "dose", "time", "dose_unit", "time_unit")
                                        if self._source.get(c, c) in wanted},
                                 keep_default_na=True)
            for df in it:
                if self.max_rows is not None:
                    df = df.iloc[: self.max_rows - seen]
                df = with_units(df.rename(columns=renamed))
                if self._fill_context:
                    df = df.assign(context=pd.Categorical([self.default_context] * len(df)))
                if self._fill_type:
                    df = df.assign(perturbation_type=pd.Categorical([self.default_type] * len(df)))
                seen += len(df)
                if len(df):
                    yield df
                if self.max_rows is not None and seen >= self.max_rows:
                    return
        except (OSError, ValueError) as exc:
            raise InputFileError(self.path, f"cannot read rows after row {seen} ({exc})") from exc

    def _readout(self, name: object) -> str:
        s = clean_text(name)
        if s not in self._readout_cache:
            self._readout_cache[s] = canonical_gene_symbol(s, self.resolver)
        return self._readout_cache[s]

    def _prepare_readouts(self) -> None:
        """Resolve every distinct readout of the file once, by identifiers.stored_gene_names (the one rule:
        two source names never merge into one). Counted in the report notes."""
        names = self._readout_names()
        stored, routes = stored_gene_names(names, self.resolver)
        self._readout_cache.update(stored)
        self.report.notes.append(f"{len(names)} distinct readouts: {routes}")

    def _readout_names(self) -> set[str]:
        """Every distinct source readout name in the file."""
        names: set[str] = set()
        if self.is_parquet:
            for b in pq.ParquetFile(self.path).iter_batches(self.batch_size, columns=[self._readout_col]):
                col = b.column(0)
                names.update(str(x) for x in (col.dictionary if hasattr(col, "dictionary") else col.unique()).to_pylist()
                             if x is not None)
        else:
            for chunk in pd.read_csv(self.path, sep=self._sep, usecols=[self._readout_col], chunksize=self.batch_size,
                                     skiprows=self._skip,
                                     dtype=str):
                names.update(chunk[self._readout_col].dropna().unique())
        return names

    def _perturbation(self, name: str, ptype_raw: str, dose: str, time: str) -> str | None:
        key = (name, ptype_raw, dose, time)
        if key in self._pert_cache:
            return self._pert_cache[key]
        pid = None
        try:
            ptype = self._types.type_of(ptype_raw)
            dv, du = parse_dose(dose) if dose else (None, "")
            (tv, tu), _, bare = time_point(time)  # a bare number: kept apart as written, no time recorded
            if bare:
                self._unitless_times.add(time)
            cid, targets = "", ()
            if ptype == "compound":
                cid = compound_id_for(name, self.compound_ids)
                self._compound_names[name] = bool(cid)
            elif ptype != "control":
                targets = tuple(self._readout(t) for t in split_combination(name, keep_prefix=False,
                                                                            resolver=self.resolver))
            rec = perturbation_record(ptype, name, compound_id=cid, targets=targets, dose_value=dv, dose_unit=du,
                                      time_value=tv, time_unit=tu, source=self.dataset_id)
            pid = rec.perturbation_id
            self.perturbations.setdefault(pid, rec)
        except ValueError as exc:  # unknown type, bad dose/time: the rows are quarantined with this reason
            self._pert_cache[key] = None
            self._bad_reason[key] = str(exc)
            return None
        self._pert_cache[key] = pid
        return pid

    def _first_time(self, sig_ids, sig_inv, rcodes, categories, keep) -> np.ndarray:
        """False for rows whose (signature, readout) was already emitted by an earlier batch.

        One bool per (signature, readout seen so far) is kept; above SEEN_BUDGET cells the check stops
        (noted in the report) and only repeats inside one batch are caught.
        """
        new = np.ones(len(rcodes), dtype=bool)
        if self._seen is None:
            return new
        gidx = np.array([self._readout_index.setdefault(c, len(self._readout_index)) for c in categories], dtype=np.int64)
        n_total = len(self._readout_index)
        if len(set(self._seen) | set(sig_ids)) * n_total > SEEN_BUDGET:
            self._seen = None
            self.report.notes.append(f"repeat check across batches stopped above {SEEN_BUDGET:,} signature x readout "
                                     "cells; later repeats are caught only inside a batch")
            return new
        idx = np.flatnonzero(keep)
        order = idx[np.argsort(sig_inv[idx], kind="stable")]
        bounds = np.flatnonzero(np.diff(sig_inv[order])) + 1
        g = gidx[rcodes]
        for grp in np.split(order, bounds):
            if not len(grp):
                continue
            sid = sig_ids[sig_inv[grp[0]]]
            seen = self._seen.get(sid)
            if seen is None or len(seen) < n_total:
                seen = np.concatenate([seen if seen is not None else np.zeros(0, bool), np.zeros(n_total - (0 if seen is None else len(seen)), bool)])
            hit = seen[g[grp]]
            new[grp[hit]] = False
            seen[g[grp]] = True
            self._seen[sid] = seen
        return new

    def iter_long(self) -> Iterator[pd.DataFrame]:
        """Yield MEASUREMENT_COLUMNS chunks (text columns categorical, value float32), one per input batch."""
        for df in self._batches():
            df = df.reset_index(drop=True)
            n = len(df)
            self.report.read += n
            ctx = _map_categorical(df["context"], normalise_context_name)
            for raw in df["context"].astype("category").cat.categories:
                c = normalise_context_name(raw)
                if c not in self.contexts:
                    self.contexts[c] = context_record(raw, source=self.path.name)
            readout = _map_categorical(df["readout"], self._readout)
            # Perturbation ids per distinct (name, type, dose, time).
            parts = [df[c].astype("category") if c in df else pd.Series(pd.Categorical([None] * n))
                     for c in ("perturbation", "perturbation_type", "dose", "time")]
            codes = np.stack([p.cat.codes.to_numpy().astype(np.int64) for p in parts], axis=1)
            inv, uniq = _factorize_rows(codes, [len(p.cat.categories) for p in parts])
            pids, labels = [], []
            for row in uniq:
                vals = [clean_text(p.cat.categories[c]) if c >= 0 else "" for p, c in zip(parts, row, strict=True)]
                pids.append(self._perturbation(*vals) if vals[0] else None)
                # The signature keeps the source spelling: "Pyridoxine" and "Pyridoxine hydrochloride" are
                # two experiments on one parent compound (same Perturbation), not one signature.
                labels.append(vals[0] + _canonical_suffix(vals[2], vals[3]))
            self._types.check()  # the perturbation_type option over several of the file's treatment types: refused
            reason = np.full(n, "", dtype=object)
            bad_pert = np.array([p is None for p in pids], dtype=bool)[inv]
            if bad_pert.any():
                for j, row in enumerate(uniq):
                    if pids[j] is None:
                        vals = [clean_text(p.cat.categories[c]) if c >= 0 else "" for p, c in zip(parts, row, strict=True)]
                        reason[inv == j] = self._bad_reason.get(tuple(vals), "empty perturbation name")
            empty_cat = np.asarray(readout.categories) == ""
            empty = (ctx.codes < 0) | (readout.codes < 0) | empty_cat[np.maximum(readout.codes, 0)]
            reason[empty & (reason == "")] = "empty context or readout"
            # Signature per row (rows already rejected get a label of their own, never merged).
            pid_list = [p or "" for p in pids]
            sig_pairs = np.stack([ctx.codes.astype(np.int64), inv.astype(np.int64)], axis=1)
            sig_inv, sig_uniq = _factorize_rows(sig_pairs, [len(ctx.categories), len(pids)])
            ctx_cats = list(ctx.categories)
            sig_ids = [f"{self.dataset_id}:{ctx_cats[c]}|{labels[p]}" if c >= 0 and pids[p] else f"\x00{j}"
                       for j, (c, p) in enumerate(sig_uniq)]
            sig_ctx = [ctx_cats[c] if c >= 0 else "" for c, _ in sig_uniq]
            sig_pert = [pid_list[p] for _, p in sig_uniq]
            # Different spellings of one dose/time ("10uM", "10 uM") give one signature id: merge them.
            remap, uniq_ids = pd.factorize(pd.Series(sig_ids, dtype=object))
            if len(uniq_ids) < len(sig_ids):
                first = pd.Series(np.arange(len(sig_ids))).groupby(remap).first().to_numpy()
                sig_ids = list(uniq_ids)
                sig_ctx = [sig_ctx[i] for i in first]
                sig_pert = [sig_pert[i] for i in first]
                sig_uniq = sig_uniq[first]
                sig_inv = remap[sig_inv]
            # The shared validation step: values / ranks, duplicates of (signature, readout) by policy.
            checked = pd.DataFrame({"signature": sig_inv, "readout": readout.codes.astype(np.int64)})
            for c in (RANK_COLUMNS if self.ranked else ("value",)):
                checked[c] = df[c].to_numpy()
            res = validate_measurements(checked, str(self.path), keys=("signature", "readout"), ranked=self.ranked,
                                        duplicates=self.duplicates, prior_reason=reason, raw=df,
                                        unknown=self.genes.row_reasons(
                                            readout.codes, list(readout.categories), inv,
                                            [self.perturbations.get(p) if p else None for p in pids]),
                                        unknown_genes=self.genes.policy,
                                        max_records=max(0, MAX_QUARANTINE_ROWS - len(self.quarantine)))
            self.genes.add(res)
            self.quarantine.extend(res.quarantine)
            self.reasons.update(res.reasons)
            self._dup_keys[0] += res.exact_duplicate_keys
            self._dup_keys[1] += res.conflicting_keys
            good = res.accepted.index.to_numpy()
            sig_inv = sig_inv[good]
            rcodes = readout.codes[good].astype(np.int64)
            value = res.accepted["value"].to_numpy(dtype=np.float32)
            keep = self._first_time(sig_ids, sig_inv, rcodes, list(readout.categories), np.ones(len(good), bool))
            self.report.duplicates_resolved += res.duplicates_resolved + int((~keep).sum())
            self.report.accepted += res.n_accepted
            self.report.quarantined += res.quarantined
            sig_inv, rcodes, value = sig_inv[keep], rcodes[keep], value[keep]
            pert_cats = sorted(set(sig_pert))
            type_of = {p: type_in_id(p) or "" for p in pert_cats}  # the type make_perturbation_id wrote in the id
            type_cats = sorted(set(type_of.values()))
            pert_code = np.array([pert_cats.index(p) for p in sig_pert], dtype=np.int64)
            type_code = np.array([type_cats.index(type_of[p]) for p in sig_pert], dtype=np.int64)
            ctx_code = sig_uniq[:, 0] if len(sig_uniq) else np.zeros(0, np.int64)
            counts = np.bincount(sig_inv, minlength=len(sig_ids))
            for j, sid in enumerate(sig_ids):
                if sid in self._sig:
                    self._sig[sid][2] += int(counts[j])
                elif counts[j]:
                    self._sig[sid] = [sig_ctx[j], sig_pert[j], int(counts[j])]
            out = pd.DataFrame({
                "dataset": pd.Categorical.from_codes(np.zeros(len(sig_inv), np.int8), [self.dataset_id]),
                "signature_id": pd.Categorical.from_codes(sig_inv, sig_ids),
                "context": pd.Categorical.from_codes(ctx_code[sig_inv], ctx_cats),
                "perturbation": pd.Categorical.from_codes(pert_code[sig_inv], pert_cats),
                "perturbation_type": pd.Categorical.from_codes(type_code[sig_inv], type_cats),
                "readout": pd.Categorical.from_codes(rcodes, readout.categories),
                "value": value,
            }, columns=list(MEASUREMENT_COLUMNS))
            yield out
        reasons = {k: v for k, v in self.reasons.items() if v}
        if reasons:
            self.report.notes.append(f"quarantined rows by reason: {reasons}")
        if self.report.quarantined > len(self.quarantine):
            self.report.notes.append(f"only the first {len(self.quarantine)} quarantined rows are listed")
        if any(self._dup_keys):
            self.report.notes.append(duplicate_note(*self._dup_keys, self.duplicates))
        if note := self._types.note():
            self.report.notes.append(note)
        if note := self.genes.note():
            self.report.notes.append(note)
        if self._unitless_times:
            self.report.notes.append("column 'time': " + unitless_time_note(sorted(self._unitless_times),
                                                                            "time_unit", "time_unit = h"))
        if self._compound_names:  # structure coverage: names joined to a compound record (by name or alias)
            self.report.notes.append(f"compound names matched to a compound record: {sum(self._compound_names.values())} "
                                     f"of {len(self._compound_names)}")
        if self.report.duplicates_resolved:
            self.report.notes.append(f"{self.report.duplicates_resolved} repeated (signature, readout) rows resolved: "
                                     f"identical copies collapsed, conflicting ones by policy {self.duplicates!r}, "
                                     "and repeats of a row accepted in an earlier batch dropped (first kept)")
        self.report.check()
        self._done = True

    def _signatures(self) -> list[SignatureRecord]:
        return [SignatureRecord(sid, self.dataset_id, c, p, n, 1, sid.split(":", 1)[1])
                for sid, (c, p, n) in sorted(self._sig.items())]


def read_long_table(path: str | Path, dataset_id: str, **kwargs) -> tuple[pd.DataFrame, LongTableReader]:
    """Whole table at once (small files / with max_rows): the long frame and the finished reader."""
    reader = LongTableReader(path, dataset_id, **kwargs)
    from graph.io.common import concat_long

    return concat_long(list(reader.iter_long())), reader

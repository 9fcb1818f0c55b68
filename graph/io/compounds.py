"""Compound tables (Repurposing Hub drugs/samples, LINCS compoundinfo) and RDKit structure normalisation.

Identity is the InChIKey of the standardised parent (largest organic fragment, neutralised);
a compound without a usable structure is kept by name ("name:<normalised name>", has_structure False,
structure_issue says why). Structures are untrusted input: cheap pre-checks reject absurd strings and
RDKit runs in a worker process with a per-molecule time limit, so one pathological SMILES cannot hang
or crash the pipeline.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from graph.io.common import InputFileError, ReadResult, clean_text
from graph.io.identifiers import compound_name_keys, moa_terms, normalise_compound_name, split_gene_list
from graph.records import CompoundRecord, QuarantineRecord, ReadReport


@dataclass(frozen=True)
class Structure:
    """Standardised parent structure of one input SMILES; `issue` is non-empty when rejected."""

    input_smiles: str
    smiles: str = ""
    inchikey: str = ""
    issue: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.inchikey) and not self.issue

    @property
    def block1(self) -> str:
        return self.inchikey.split("-")[0] if self.inchikey else ""


MAX_SMILES_LENGTH = 1500
STARTUP_TIMEOUT_S = 120.0
MAX_RING_CLOSURES = 60
_SMILES_CHARS = re.compile(r"^[A-Za-z0-9@+\-\[\]()=#$%:/\\.*~&!?>^,]+$")


def precheck_smiles(smiles: str) -> str:
    """Cheap checks before RDKit sees the string; returns the problem or ''."""
    if not smiles:
        return "empty SMILES"
    if len(smiles) > MAX_SMILES_LENGTH:
        return f"SMILES longer than {MAX_SMILES_LENGTH} characters ({len(smiles)})"
    if not _SMILES_CHARS.match(smiles):
        return "characters that cannot occur in SMILES"
    closures = len(re.findall(r"%\d\d|(?<![\[\d@A-Za-z+\-])\d", re.sub(r"\[[^\]]*\]", "", smiles)))
    if closures > 2 * MAX_RING_CLOSURES:
        return f"more than {MAX_RING_CLOSURES} ring closures"
    return ""


@lru_cache(maxsize=1)
def _rdkit_tools():
    """RDKit and the standardisers, set up once per process (RDKit's error log silenced: issues are returned)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.MolStandardize import rdMolStandardize

    RDLogger.DisableLog("rdApp.*")
    return Chem, rdMolStandardize.LargestFragmentChooser(preferOrganic=True), rdMolStandardize.Uncharger()


def _standardise(smiles: str) -> tuple[str, str, str]:
    """(canonical parent SMILES, InChIKey, issue). Runs in the worker: RDKit only, no shared state."""
    Chem, chooser, uncharger = _rdkit_tools()
    try:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return "", "", "RDKit could not parse the SMILES (syntax, valence or aromaticity error)"
        if mol.GetNumAtoms() == 0:
            return "", "", "SMILES has no atoms"
        parent = uncharger.uncharge(chooser.choose(mol))
        Chem.SanitizeMol(parent)
        key = Chem.MolToInchiKey(parent)
        if not key:
            return "", "", "no InChIKey could be computed"
        return Chem.MolToSmiles(parent), key, ""
    except Exception as exc:  # RDKit raises many types on odd input; the molecule is rejected, not the run
        return "", "", f"RDKit error: {type(exc).__name__}: {exc}"[:300]


def _standardise_batch(smiles: list[str]) -> list[tuple[str, str, str]]:
    return [_standardise(s) for s in smiles]


def _serve(conn, worker) -> None:
    """Worker process loop: batches in, results out, until the pipe closes."""
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        conn.send(worker(batch))


class StructureStandardiser:
    """Standardise SMILES with a per-molecule time limit.

    `timeout_s=None` runs in-process (trusted input). Otherwise one spawned worker process handles
    batches over a pipe; a batch that overruns (timeout_s + 20 ms per molecule) is redone molecule by
    molecule, and a molecule that overruns timeout_s is rejected ("standardisation exceeded ...") and
    the worker killed (SIGKILL, bounded join) and restarted. A plain process rather than
    multiprocessing.Pool: Pool.terminate() can hang when a worker is replaced while the pool shuts
    down, which stalled an ingest under heavy load.
    """

    def __init__(self, timeout_s: float | None = 10.0, batch_size: int = 200, worker=None):
        self.timeout_s, self.batch_size = timeout_s, batch_size
        self.worker = worker or _standardise_batch  # a module-level function (it is pickled to the worker)
        self._proc = None
        self._conn = None
        self.timeouts = 0

    def __enter__(self) -> StructureStandardiser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
            self._proc = None

    def start(self) -> None:
        """Start the worker now (otherwise the first batch does): a fresh interpreter importing
        RDKit takes seconds, which must not count against a molecule's limit."""
        if self._proc is None:
            ctx = mp.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child, self.worker), daemon=True)
            self._proc.start()
            child.close()
            self._conn.send(["C"])
            if not self._conn.poll(STARTUP_TIMEOUT_S):
                self.close()
                raise RuntimeError(f"the RDKit worker did not start within {STARTUP_TIMEOUT_S} s")
            self._conn.recv()

    def _run(self, batch: list[str], timeout: float) -> list[tuple[str, str, str]] | None:
        self.start()
        self._conn.send(batch)
        if self._conn.poll(timeout):
            try:
                return self._conn.recv()
            except EOFError:  # the worker died (e.g. RDKit crashed on a molecule)
                pass
        self.close()  # stuck or dead: kill it, a fresh one starts on the next call
        return None

    def standardise(self, smiles_list: Iterable[str]) -> dict[str, Structure]:
        out: dict[str, Structure] = {}
        todo = []
        for s in dict.fromkeys(clean_text(x) for x in smiles_list):
            problem = precheck_smiles(s)
            if problem:
                out[s] = Structure(s, issue=problem)
            else:
                todo.append(s)
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            if self.timeout_s is None:
                results = self.worker(batch)
            else:
                results = self._run(batch, self.timeout_s + 0.02 * len(batch) + 5.0)
            if results is None:
                results = []
                for s in batch:
                    r = self._run([s], self.timeout_s)
                    if r is None:
                        self.timeouts += 1
                        r = [("", "", f"standardisation exceeded {self.timeout_s:g} s")]
                    results.append(r[0])
            for s, (smi, key, issue) in zip(batch, results, strict=True):
                out[s] = Structure(s, smi, key, issue)
        return out


def standardise_smiles(smiles: str, timeout_s: float | None = 10.0) -> Structure:
    """One molecule (convenience; use StructureStandardiser for many)."""
    with StructureStandardiser(timeout_s) as st:
        return st.standardise([smiles])[clean_text(smiles)]


@dataclass(frozen=True)
class CompoundEntry:
    """One compound row of one source, before merging."""

    name: str  # verbatim (quotes, braces, unicode kept)
    source: str
    row_key: str
    smiles: str = ""
    aliases: tuple[str, ...] = ()  # pert_ids, broad ids, other names
    moa: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    clinical_phase: str = ""


def _split(value: object, sep: str = "|") -> tuple[str, ...]:
    return tuple(p for p in (clean_text(x) for x in clean_text(value).split(sep)) if p)


def _read_tsv(path: Path) -> pd.DataFrame:
    """TSV with optional leading '!' comment lines (Repurposing Hub) and CRLF; fields kept verbatim."""
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        skip = 0
        for line in fh:
            if not line.startswith("!"):
                break
            skip += 1
    try:
        return pd.read_csv(path, sep="\t", skiprows=skip, dtype=str, keep_default_na=False,
                           quoting=csv.QUOTE_NONE, encoding="utf-8", encoding_errors="replace")
    except Exception as exc:
        raise InputFileError(path, f"not a readable TSV ({exc})") from exc


def _require(df: pd.DataFrame, path: Path, cols: set[str]) -> None:
    missing = cols - set(df.columns)
    if missing:
        raise InputFileError(path, f"missing columns {sorted(missing)}; available: {list(df.columns)}")


def _entries(df: pd.DataFrame, path: Path, make) -> ReadResult[CompoundEntry]:
    report = ReadReport(source=str(path), read=len(df))
    entries, quarantine = [], []
    for i, row in enumerate(df.itertuples(index=False)):
        e = make(row, i)
        if not clean_text(e.name) and not e.smiles:
            quarantine.append(QuarantineRecord(str(path), e.row_key, "no name and no structure", row._asdict()))
        else:
            entries.append(e)
    report.accepted, report.quarantined = len(entries), len(quarantine)
    report.check()
    return ReadResult(entries, report, quarantine)


def read_repurposing_drugs(path: str | Path) -> ReadResult[CompoundEntry]:
    """Repurposing Hub drugs file: pert_iname, clinical_phase, moa, target ('|'-separated)."""
    path = Path(path)
    df = _read_tsv(path)
    _require(df, path, {"pert_iname", "clinical_phase", "moa", "target"})
    return _entries(df, path, lambda r, i: CompoundEntry(
        name=r.pert_iname, source="repurposing_drugs", row_key=f"line{i}:{r.pert_iname}", moa=_split(r.moa),
        targets=split_gene_list(r.target), clinical_phase=clean_text(r.clinical_phase)))


def read_repurposing_samples(path: str | Path) -> ReadResult[CompoundEntry]:
    """Repurposing Hub samples file: broad_id (first 13 characters = L1000 pert_id), pert_iname, smiles, ..."""
    path = Path(path)
    df = _read_tsv(path)
    _require(df, path, {"broad_id", "pert_iname", "smiles"})
    return _entries(df, path, lambda r, i: CompoundEntry(
        name=r.pert_iname, source="repurposing_samples", row_key=r.broad_id or f"line{i}",
        smiles=clean_text(r.smiles),
        aliases=tuple(a for a in dict.fromkeys([clean_text(r.broad_id)[:13], clean_text(r.broad_id)]) if a)))


def read_lincs_compoundinfo(path: str | Path, nrows: int | None = None) -> ReadResult[CompoundEntry]:
    """LINCS compoundinfo: pert_id, cmap_name, target, moa, canonical_smiles, inchi_key, compound_aliases, ..."""
    path = Path(path)
    df = _read_tsv(path)
    _require(df, path, {"pert_id", "cmap_name", "canonical_smiles"})
    if nrows is not None:
        df = df.head(nrows)
    get = lambda r, c: getattr(r, c, "")  # noqa: E731 - optional columns
    return _entries(df, path, lambda r, i: CompoundEntry(
        name=r.cmap_name or r.pert_id, source="lincs_compoundinfo", row_key=r.pert_id or f"line{i}",
        smiles=clean_text(r.canonical_smiles),
        aliases=tuple(dict.fromkeys(a for a in (clean_text(r.pert_id), *_split(get(r, "compound_aliases"))) if a)),
        moa=tuple(dict.fromkeys(_split(get(r, "moa")) + _split(get(r, "moa_merged")))),
        targets=tuple(dict.fromkeys(split_gene_list(get(r, "target")) + split_gene_list(get(r, "target_merged")))),
        clinical_phase=clean_text(get(r, "max_phase"))))


def _phase_rank(phase: str) -> float:
    p = phase.lower()
    if "launched" in p or p in {"4", "4.0", "approved"}:
        return 4.0
    nums = re.findall(r"\d(?:\.\d)?", p)
    return max((float(n) for n in nums), default=0.0 if p else -1.0)


def stereo_representative(keys: Iterable[str]) -> str | None:
    """The one InChIKey that stands for `keys`: the only one, or, when all are stereo variants of one
    skeleton (same first block), the variant with defined stereo and then the smallest key; None
    when they are different molecules (a name shared by those is ambiguous, not guessed)."""
    keys = sorted(set(keys))
    if not keys or len({k.split("-")[0] for k in keys}) != 1:
        return None
    return min(keys, key=lambda k: (k.split("-")[1:2] == ["UHFFFAOYSA"], k))


def build_compounds(entries: Iterable[CompoundEntry], *, timeout_s: float | None = 10.0,
                    source: str = "compounds") -> ReadResult[CompoundRecord]:
    """Standardise and merge entries from any number of sources into one CompoundRecord per compound.

    Entries with a usable structure merge by parent InChIKey. An entry without one joins a structured
    compound when its normalised name or one of its aliases points at exactly one InChIKey; otherwise it
    becomes "name:<normalised name>" with has_structure False and the reason. Merging is order-free:
    names/aliases/moa/targets are unioned and sorted (moa in graph/io/identifiers.normalise_moa's spelling,
    so "MEK inhibitor" from one table and "mek inhibitor" from another are one), the display name is the alphabetically first name of
    the earliest source (sources ranked by first appearance, so pass files in a fixed order), and
    clinical_phase the most advanced. compound_ids do not depend on the order at all.
    The report counts entries: all become part of a record (accepted); none is quarantined here.
    """
    entries = list(entries)
    report = ReadReport(source=source, read=len(entries))
    with StructureStandardiser(timeout_s) as st:
        structures = st.standardise(e.smiles for e in entries if e.smiles)
    keys: list[str | None] = []
    name_to_keys: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        s = structures.get(e.smiles)
        key = s.inchikey if s is not None and s.ok else None
        keys.append(key)
        if key:
            for n in (e.name, *e.aliases):
                for k in compound_name_keys(n):  # the name and its "(alias)"
                    name_to_keys[k].add(key)
    groups: dict[str, list[int]] = defaultdict(list)
    issues: dict[str, str] = {}
    for i, e in enumerate(entries):
        key = keys[i]
        if key is None:
            found = set()
            for n in (e.name, *e.aliases):
                for k in compound_name_keys(n):
                    found |= name_to_keys.get(k, set())
            if (rep := stereo_representative(found)) is not None:
                key = rep  # one structure, or stereo variants of one skeleton: the same drug
            else:
                norm = normalise_compound_name(e.name) or normalise_compound_name(e.aliases[0] if e.aliases else "")
                key = f"name:{norm}"
                why = (structures[e.smiles].issue if e.smiles and e.smiles in structures else "no SMILES given")
                if len(found) > 1:
                    why = f"name matches {len(found)} structures: {', '.join(sorted(found))}"
                issues.setdefault(key, why)
        groups[key].append(i)
    source_order = {s: k for k, s in enumerate(dict.fromkeys(e.source for e in entries))}
    by_key: dict[str, Structure] = {s.inchikey: s for s in structures.values() if s.ok}
    records = []
    for key in sorted(groups):
        members = sorted((entries[i] for i in groups[key]), key=lambda e: (source_order[e.source], e.name, e.row_key))
        first_source = members[0].source
        name = min(e.name for e in members if e.source == first_source)
        names = {e.name for e in members} | {a for e in members for a in e.aliases}
        phases = [e.clinical_phase for e in members if e.clinical_phase]
        struct = by_key.get(key)
        records.append(CompoundRecord(
            compound_id=key, name=name,
            smiles=struct.smiles if struct else "", inchikey=struct.inchikey if struct else "",
            inchikey_block1=struct.block1 if struct else "", has_structure=struct is not None,
            structure_issue="" if struct else issues.get(key, "no SMILES given"),
            aliases=tuple(sorted(names - {name})),
            moa=moa_terms(m for e in members for m in e.moa),  # one spelling per mechanism in the graph
            targets=tuple(sorted({t for e in members for t in e.targets})),
            clinical_phase=max(phases, key=lambda p: (_phase_rank(p), p)) if phases else "",
            source="|".join(sorted({e.source for e in members}, key=source_order.get)),
        ))
    report.accepted = len(entries)
    report.duplicates_resolved = len(entries) - len(records)
    n_flagged = sum(not r.has_structure for r in records)
    report.notes.append(f"{len(records)} compounds from {len(entries)} entries; {n_flagged} without a usable structure"
                        f"; {st.timeouts} standardisation timeouts")
    report.check()
    return ReadResult(records, report, [])


def name_index(records: Iterable[CompoundRecord]) -> dict[str, str]:
    """{normalised name or alias: compound_id} for joining signature tables by drug name or pert_id.

    A key shared by several compounds is left out (not guessed), except when all of them are stereo
    variants of one skeleton (same InChIKey first block: LINCS lists everolimus three times with
    different or missing stereo): then the name means that drug and joins `stereo_representative`,
    the same compound that structure-less entries of that name merged into in `build_compounds`."""
    records = list(records)
    by_id = {r.compound_id: r for r in records}
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for n in (r.name, *r.aliases):
            for k in compound_name_keys(n):
                seen[k].add(r.compound_id)
            if n and n != k:
                seen[n].add(r.compound_id)  # raw pert_ids ("BRD-K76022557") match verbatim too

    def resolve(ids: set[str]) -> str | None:
        if len(ids) == 1:
            return next(iter(ids))
        if any(not by_id[i].inchikey for i in ids):  # a structure-less namesake: ambiguous
            return None
        return stereo_representative(ids)

    return {k: rep for k, v in seen.items() if (rep := resolve(v)) is not None}

"""The gene master table and a resolver from any gene spelling to one Entrez id and current symbol."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from graph.io.common import InputFileError, ReadResult, clean_text
from graph.io.identifiers import gene_key
from graph.records import GeneRecord, QuarantineRecord, ReadReport

GENE_TABLE_COLUMNS = ("entrez_id", "symbol", "name", "type", "ensembl_id", "aliases")


def read_gene_table(path: str | Path, source: str = "NCBI Gene") -> ReadResult[GeneRecord]:
    """genes_human.tsv (entrez_id, symbol, name, type, ..., ensembl_id, aliases '|'-joined) -> GeneRecords.

    Rows without an integer Entrez id or a symbol, and repeated Entrez ids, are quarantined.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except Exception as exc:
        raise InputFileError(path, f"not a readable TSV gene table ({exc})") from exc
    missing = {"entrez_id", "symbol"} - set(df.columns)
    if missing:
        raise InputFileError(path, f"missing columns {sorted(missing)}; available: {list(df.columns)}")
    for col in GENE_TABLE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    report = ReadReport(source=str(path), read=len(df))
    records: list[GeneRecord] = []
    quarantine: list[QuarantineRecord] = []
    seen: set[int] = set()
    for row in df.itertuples(index=False):
        entrez, symbol = row.entrez_id.strip(), clean_text(row.symbol)
        reason = ""
        if not entrez.isdigit():
            reason = f"entrez_id {entrez!r} is not a positive integer"
        elif not symbol:
            reason = "empty symbol"
        elif int(entrez) in seen:
            reason = f"entrez_id {entrez} repeated; first row kept"
        if reason:
            quarantine.append(QuarantineRecord(str(path), entrez or symbol, reason, row._asdict()))
            continue
        seen.add(int(entrez))
        records.append(GeneRecord(
            entrez_id=int(entrez), symbol=symbol, name=row.name, ensembl_id=row.ensembl_id,
            aliases=tuple(a for a in (clean_text(x) for x in row.aliases.split("|")) if a),
            gene_type=row.type, source=source,
        ))
    report.accepted, report.quarantined = len(records), len(quarantine)
    report.check()
    return ReadResult(records, report, quarantine)


@dataclass(frozen=True)
class GeneMatch:
    """Outcome of resolving one name. `entrez_id`/`symbol` are None when unresolved or ambiguous;
    `how` says which route matched ("symbol", "entrez", "loc", "ensembl", "alias", "excel:<route>")."""

    query: str
    entrez_id: int | None
    symbol: str | None
    how: str = ""
    candidates: tuple[str, ...] = ()  # "SYMBOL (entrez)" for ambiguous names
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.entrez_id is not None


# Excel turns SEPT1 into "1-Sep"/"Sep-01", MARCH1 into "1-Mar", DEC1 into "1-Dec", OCT4 into "4-Oct".
_MONTH_PREFIX = {"SEP": "SEPT", "SEPT": "SEPT", "MAR": "MARCH", "DEC": "DEC", "OCT": "OCT", "NOV": "NOV",
                 "FEB": "FEB", "APR": "APR"}
_EXCEL_A = re.compile(r"^0*(\d{1,2})-([A-Z]{3,4})$")  # 1-Sep, 01-SEPT
_EXCEL_B = re.compile(r"^([A-Z]{3,4})-0*(\d{1,2})$")  # Sep-01
# HGNC renamed the septins and MARCH genes (SEPT1 -> SEPTIN1, MARCH1 -> MARCHF1) partly because of Excel.
_RENAMED_FAMILY = {"SEPT": "SEPTIN", "MARCH": "MARCHF"}
# Mitochondrially encoded genes: HGNC (CORUM, Replogle) writes MT-CO1, MT-ND1; NCBI Gene's symbols are COX1,
# ND1 with the aliases MTCO1, MTND1 (no dash), so MT-X is looked up as MTX.
_MITO = re.compile(r"^MT-([A-Z0-9]+)$")


class GeneResolver:
    """Resolve gene symbols, aliases / previous symbols, Ensembl ids, Entrez ids (and LOC<entrez>)
    to one Entrez id and the current symbol. Case-insensitive, dict-based (O(1) per name).

    Order: current symbol, Entrez id, LOC<entrez>, Ensembl id, alias; then the Excel-mangled
    reading ("1-Sep" -> SEPT1 -> SEPTIN1), then HGNC's mitochondrial spelling (MT-CO1 -> alias MTCO1 -> COX1). A name that is the symbol of several genes, or (without
    an exact symbol) an alias of several genes, is ambiguous: not guessed, the candidates are returned.
    """

    def __init__(self, genes: list[GeneRecord]):
        self._by_entrez: dict[int, GeneRecord] = {g.entrez_id: g for g in genes}
        self._symbol: dict[str, list[int]] = defaultdict(list)
        self._alias: dict[str, list[int]] = defaultdict(list)
        self._ensembl: dict[str, list[int]] = defaultdict(list)
        for g in genes:
            self._symbol[gene_key(g.symbol)].append(g.entrez_id)
            for a in g.aliases:
                if g.entrez_id not in self._alias[gene_key(a)]:
                    self._alias[gene_key(a)].append(g.entrez_id)
            for e in g.ensembl_id.split("|"):
                if e.strip():
                    self._ensembl[gene_key(e).split(".")[0]].append(g.entrez_id)
        self._cache: dict[str, GeneMatch] = {}

    @classmethod
    def from_table(cls, path: str | Path) -> GeneResolver:
        return cls(read_gene_table(path).records)

    def __len__(self) -> int:
        return len(self._by_entrez)

    def gene(self, entrez_id: int) -> GeneRecord | None:
        return self._by_entrez.get(entrez_id)

    def _hit(self, query: str, ids: list[int], how: str) -> GeneMatch:
        if len(ids) == 1:
            return GeneMatch(query, ids[0], self._by_entrez[ids[0]].symbol, how)
        cands = tuple(sorted(f"{self._by_entrez[i].symbol} ({i})" for i in ids))
        return GeneMatch(query, None, None, how, cands, f"ambiguous {how}: {len(ids)} genes")

    def _direct(self, key: str) -> GeneMatch | None:
        if key in self._symbol:
            return self._hit(key, self._symbol[key], "symbol")
        if key.isdigit() and int(key) in self._by_entrez:
            return self._hit(key, [int(key)], "entrez")
        m = re.fullmatch(r"LOC(\d+)", key)
        if m and int(m.group(1)) in self._by_entrez:
            return self._hit(key, [int(m.group(1))], "loc")
        if key.startswith("ENSG"):
            ids = self._ensembl.get(key.split(".")[0])
            if ids:
                return self._hit(key, ids, "ensembl")
        if key in self._alias:
            return self._hit(key, self._alias[key], "alias")
        return None

    def _excel(self, key: str) -> GeneMatch | None:
        m = _EXCEL_A.match(key) or _EXCEL_B.match(key)
        if m:
            num, month = (m.group(1), m.group(2)) if m.re is _EXCEL_A else (m.group(2), m.group(1))
            prefix = _MONTH_PREFIX.get(month)
            if prefix is None:
                return None
            candidates = [f"{prefix}{int(num)}"]
        else:
            candidates = []
        # Old family names the table may only know under the new spelling (SEPT7 -> SEPTIN7).
        for old, new in _RENAMED_FAMILY.items():
            for c in candidates or [key]:
                mm = re.fullmatch(rf"{old}(\d+)", c)
                if mm:
                    candidates.append(f"{new}{mm.group(1)}")
        for c in candidates:
            if c == key:
                continue
            hit = self._direct(c)
            if hit is not None:
                return GeneMatch(key, hit.entrez_id, hit.symbol, f"excel:{hit.how}", hit.candidates, hit.reason)
        return None

    def _mito(self, key: str) -> GeneMatch | None:
        m = _MITO.match(key)
        hit = self._direct("MT" + m.group(1)) if m else None
        return None if hit is None else GeneMatch(key, hit.entrez_id, hit.symbol, f"mito:{hit.how}", hit.candidates,
                                                  hit.reason)

    def resolve(self, name: object) -> GeneMatch:
        key = gene_key(name)
        if key in self._cache:
            return self._cache[key]
        if not key:
            match = GeneMatch(key, None, None, reason="empty gene name")
        else:
            match = (self._direct(key) or self._excel(key) or self._mito(key)
                     or GeneMatch(key, None, None, reason="unknown gene name"))
        self._cache[key] = match
        return match

    def resolve_many(self, names, source: str = "") -> tuple[dict[str, GeneMatch], list[QuarantineRecord]]:
        """Resolve distinct names; returns {name: match} for resolved ones and quarantine records for the rest."""
        resolved: dict[str, GeneMatch] = {}
        quarantine: list[QuarantineRecord] = []
        for name in dict.fromkeys(names):
            m = self.resolve(name)
            if m.ok:
                resolved[name] = m
            else:
                quarantine.append(QuarantineRecord(source, str(name), m.reason,
                                                   {"name": name, "candidates": list(m.candidates)}))
        return resolved, quarantine

    def symbol_map(self, names) -> dict[str, str]:
        """{name: current symbol} for the names that resolve (unresolved ones are left out)."""
        return {n: m.symbol for n in dict.fromkeys(names) if (m := self.resolve(n)).ok}


def read_landmarks(path: str | Path) -> pd.DataFrame:
    """geneinfo_landmark.tsv (id, symbol, entrez, ..., symbol_ncbi_2022, ensembl_id) as a DataFrame
    with `entrez` as int; raises InputFileError on missing columns or non-integer Entrez ids."""
    path = Path(path)
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"id", "symbol", "entrez"} - set(df.columns)
    if missing:
        raise InputFileError(path, f"missing columns {sorted(missing)}; available: {list(df.columns)}")
    bad = ~df["entrez"].str.fullmatch(r"\d+")
    if bad.any():
        raise InputFileError(path, f"{int(bad.sum())} rows with a non-integer entrez id, e.g. {df.loc[bad, 'entrez'].iloc[0]!r}")
    df["entrez"] = df["entrez"].astype(int)
    return df

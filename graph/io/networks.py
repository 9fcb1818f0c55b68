"""Prior networks: STRING edges, CORUM complexes, DoRothEA regulons, GMT gene sets.

With a GeneResolver every gene is mapped to its current symbol (STRING through its Entrez ids);
genes that do not resolve (unknown or ambiguous) put their record in quarantine with the reason.
Rows removed by the caller's own filter (min score, organism, confidence) are not "read": they are
counted in the report notes.

Every entry point reads a network through these readers with the same GeneResolver (the gene table,
graph/io/readers.gene_resolver): the ingest before the graph, models/datasets for the CLI and the
benchmarks. `complex_pairs` is the one co-complex pairing rule (the training set, the benchmarks'
corum_knn graph, the discovery references read back from the graph).
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from graph.io.common import InputFileError, ReadResult, clean_text
from graph.records import ComplexRecord, PriorEdgeRecord, QuarantineRecord, ReadReport

DOROTHEA_SCORE = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2}  # confidence letter -> edge score


@dataclass(frozen=True)
class GenePrior:
    """Which prior networks give the LPM's gene encoder its gene-gene edges, and the lowest edge score
    kept (STRING: combined score / 1000; DoRothEA: its confidence letter's DOROTHEA_SCORE)."""

    networks: tuple[str, ...]
    min_score: float

    def filters(self, kind: str) -> dict:
        """The NETWORK_READERS keywords that read network `kind` of this prior."""
        if kind == "string":
            return {"min_score": self.min_score}
        if kind == "dorothea":
            return {"confidence": "".join(k for k, v in DOROTHEA_SCORE.items() if v >= self.min_score)}
        raise ValueError(f"{kind!r} is not a gene-gene prior network (string, dorothea)")

    def describe(self) -> str:
        """"STRING >= 700" (combined score), "DoRothEA ABC" (confidence letters), joined by " + "."""
        return " + ".join(f"STRING >= {round(self.min_score * 1000)}" if k == "string"
                          else f"DoRothEA {self.filters(k)['confidence']}" for k in self.networks)


# The LPM's gene prior, the one definition: the pipeline's training_set (its TrainingConfig defaults,
# graph/db/pipeline_queries.prior_gene_edges), the CLI / benchmarks (models/datasets.prior_gene_graph in
# resources_for) and the discovery scoring's "outside the prior" (models/evaluation_discovery) read it.
# STRING >= 0.7 alone is what every LPM row of docs/results.md was measured with (the pipeline used to add
# STRING >= 0.4 and DoRothEA A-C, never measured; the ingest stores STRING >= 0.7 only: read_string_edges).
GENE_PRIOR = GenePrior(networks=("string",), min_score=0.7)

# The shared data's network files, relative to its root (models/datasets reads them by kind).
SHARED_NETWORK_FILES = {"string": "networks/string_v12_edges.tsv.gz",
                        "corum": "networks/corum_allComplexes_2018-06-27.txt",
                        "dorothea": "networks/dorothea_hs.tsv.gz"}


def _read(path: Path, required: set[str], **kw) -> pd.DataFrame:
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, **kw)
    except Exception as exc:
        raise InputFileError(path, f"not a readable TSV ({exc})") from exc
    missing = required - set(df.columns)
    if missing:
        raise InputFileError(path, f"missing columns {sorted(missing)}; available: {list(df.columns)}")
    return df


def _symbols(resolver, names: list[str], entrez: list[str] | None = None) -> list[tuple[str | None, str]]:
    """(symbol or None, reason) per gene; without a resolver the given symbol is used as it is."""
    out: list[tuple[str | None, str]] = []
    memo: dict[tuple[str, str], tuple[str | None, str]] = {}
    for i, n in enumerate(names):
        key = (n, entrez[i] if entrez else "")
        if key in memo:
            out.append(memo[key])
            continue
        if resolver is None:
            out.append((clean_text(n) or None, "" if clean_text(n) else "empty gene name"))
            continue
        m = resolver.resolve(entrez[i]) if entrez and clean_text(entrez[i]) else None
        if m is None or not m.ok:
            m = resolver.resolve(n)
        memo[key] = (m.symbol, "") if m.ok else (None, f"gene {n!r}: {m.reason}" + (f" {list(m.candidates)}" if m.candidates else ""))
        out.append(memo[key])
    return out


def _members(path: Path, set_id: str, genes: list[str], resolver, what: str,
             raw: dict[str, str]) -> tuple[list[str], list[QuarantineRecord]]:
    """A complex's or gene set's members: resolved symbols in file order, each once, and one quarantine
    record per member that does not resolve (the set keeps the others)."""
    members: list[str] = []
    unresolved = []
    for g, (sym, why) in zip(genes, _symbols(resolver, genes), strict=True):
        if sym is None:
            unresolved.append(QuarantineRecord(str(path), f"{set_id}:{g}", f"{what} member unresolved: {why}",
                                               {**raw, "member": g}))
        elif sym not in members:
            members.append(sym)
    return members, unresolved


def read_string_edges(path: str | Path, *, min_score: float = 0.7, resolver=None) -> ReadResult[PriorEdgeRecord]:
    """STRING TSV(.gz) (entrez_a, entrez_b, symbol_a, symbol_b, channels..., combined_score 0-1000)
    -> undirected PriorEdgeRecords with score = combined_score / 1000, kept when score >= min_score.
    The channel scores are kept in `evidence` as "channel=score" for the non-zero channels."""
    path = Path(path)
    df = _read(path, {"symbol_a", "symbol_b", "combined_score"})
    score = pd.to_numeric(df["combined_score"], errors="coerce") / 1000.0
    bad_score = score.isna() | (score < 0) | (score > 1)
    below = ~bad_score & (score < min_score)
    report = ReadReport(source=str(path), read=int((~below).sum()))
    report.notes.append(f"{int(below.sum())} edges below min_score {min_score} not read")
    df, score, bad_score = df[~below], score[~below], bad_score[~below]
    channels = [c for c in df.columns if c not in {"entrez_a", "entrez_b", "symbol_a", "symbol_b", "combined_score"}]
    ea = df["entrez_a"].tolist() if "entrez_a" in df else None
    eb = df["entrez_b"].tolist() if "entrez_b" in df else None
    sa = _symbols(resolver, df["symbol_a"].tolist(), ea)
    sb = _symbols(resolver, df["symbol_b"].tolist(), eb)
    records, quarantine = [], []
    seen: set[tuple[str, str]] = set()
    chan = df[channels].to_numpy().tolist() if channels else [[] for _ in range(len(df))]
    raw_a, raw_b, raw_score = df["symbol_a"].tolist(), df["symbol_b"].tolist(), df["combined_score"].tolist()
    for i, (row_a, row_b, s, bad) in enumerate(zip(sa, sb, score.to_numpy(), bad_score.to_numpy(), strict=True)):
        key = f"{raw_a[i]}|{raw_b[i]}"
        reason = "combined_score not a number in 0..1000" if bad else (row_a[1] or row_b[1])
        if not reason and row_a[0] == row_b[0]:
            reason = "self edge after symbol resolution"
        pair = tuple(sorted((row_a[0] or "", row_b[0] or "")))
        if not reason and pair in seen:
            reason = "edge repeats an earlier pair after symbol resolution; first kept"
            report.duplicates_resolved += 1
        if reason:
            quarantine.append(QuarantineRecord(str(path), key, reason, {"line": i, "combined_score": raw_score[i]}))
            continue
        seen.add(pair)
        evidence = ";".join(f"{c}={v}" for c, v in zip(channels, chan[i], strict=True) if v not in {"0", ""})
        records.append(PriorEdgeRecord(pair[0], pair[1], "STRING", round(float(s), 4), directed=False, evidence=evidence))
    report.accepted, report.quarantined = len(records), len(quarantine)
    report.check()
    return ReadResult(records, report, quarantine)


def read_corum(path: str | Path, *, organism: str = "Human", resolver=None, min_members: int = 2) -> ReadResult[ComplexRecord]:
    """CORUM allComplexes.txt -> ComplexRecords of one organism; members from `subunits(Gene name)` (';').

    A complex keeps its resolved members; an unresolved member gets its own quarantine record (the
    complex stays). A complex with fewer than `min_members` resolved members is quarantined.
    The report counts complexes; member-level quarantine records are counted in the notes.
    """
    path = Path(path)
    df = _read(path, {"ComplexID", "ComplexName", "Organism", "subunits(Gene name)"})
    other = df["Organism"].str.strip().str.lower() != organism.lower()
    report = ReadReport(source=str(path), read=int((~other).sum()))
    report.notes.append(f"{int(other.sum())} complexes of other organisms not read")
    records, quarantine = [], []
    member_problems = 0
    sub = df.loc[~other, ["ComplexID", "ComplexName", "subunits(Gene name)"]]
    sub.columns = ["ComplexID", "ComplexName", "genes"]
    for row in sub.itertuples(index=False):
        cid, name = clean_text(row.ComplexID), clean_text(row.ComplexName)
        genes = [g for g in (clean_text(x) for x in row.genes.split(";")) if g and g.lower() != "none"]
        members, unresolved = _members(path, cid, genes, resolver, "complex", {"complex_id": cid})
        member_problems += len(unresolved)
        quarantine.extend(unresolved)
        if len(members) < min_members:
            report.quarantined += 1
            quarantine.append(QuarantineRecord(str(path), cid, f"only {len(members)} resolved members (< {min_members})",
                                               {"complex_id": cid, "name": name, "members": genes}))
            continue
        records.append(ComplexRecord(complex_id=f"CORUM:{cid}", name=name, member_symbols=tuple(sorted(members))))
        report.accepted += 1
    if member_problems:
        report.notes.append(f"{member_problems} unresolved members quarantined (their complexes kept when >= {min_members} members remain)")
    report.check()
    return ReadResult(records, report, quarantine)


def read_dorothea(path: str | Path, *, confidence: str = "ABC", resolver=None) -> ReadResult[PriorEdgeRecord]:
    """DoRothEA TSV(.gz) (tf, target, mor, confidence A-E) -> directed TF->target PriorEdgeRecords with
    sign = mor (+1 activation, -1 repression), score by confidence (A 1.0 ... E 0.2), evidence = the letter.
    Only the letters in `confidence` are read."""
    path = Path(path)
    df = _read(path, {"tf", "target", "mor", "confidence"})
    letters = set(confidence.upper())
    skip = ~df["confidence"].str.strip().str.upper().isin(letters)
    report = ReadReport(source=str(path), read=int((~skip).sum()))
    report.notes.append(f"{int(skip.sum())} edges with confidence outside {sorted(letters)} not read")
    df = df[~skip]
    st, sg = _symbols(resolver, df["tf"].tolist()), _symbols(resolver, df["target"].tolist())
    records, quarantine = [], []
    seen: set[tuple[str, str]] = set()
    mors = pd.to_numeric(df["mor"], errors="coerce").tolist()
    for row, mor, (tf, w1), (tg, w2) in zip(df.itertuples(index=False), mors, st, sg, strict=True):
        reason = w1 or w2 or ("" if mor in (1, -1) else f"mor {row.mor!r} is not +1/-1")
        if not reason and (tf, tg) in seen:
            reason = "TF-target pair repeats after symbol resolution; first kept"
            report.duplicates_resolved += 1
        if reason:
            quarantine.append(QuarantineRecord(str(path), f"{row.tf}->{row.target}", reason, row._asdict()))
            continue
        seen.add((tf, tg))
        letter = row.confidence.strip().upper()
        records.append(PriorEdgeRecord(tf, tg, "DoRothEA", DOROTHEA_SCORE[letter], directed=True, sign=int(mor),
                                       evidence=letter))
    report.accepted, report.quarantined = len(records), len(quarantine)
    report.check()
    return ReadResult(records, report, quarantine)


def read_gmt(path: str | Path, *, resolver=None, min_size: int = 1) -> ReadResult[ComplexRecord]:
    """GMT: name <tab> description <tab> gene <tab> gene ... (one set per line, .gz allowed) -> one
    ComplexRecord (the one record of a named set of genes) per set: complex_id = the set's name, name =
    its description (the name when empty), source = the file name.

    Unresolved members are quarantined individually (the set keeps the rest); a set left with fewer than
    `min_size` members is quarantined. The report counts sets."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    report = ReadReport(source=str(path))
    records, quarantine = [], []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            report.read += 1
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < 3:
                report.quarantined += 1
                quarantine.append(QuarantineRecord(str(path), f"line {lineno}", "fewer than 3 tab-separated fields",
                                                   {"line": line[:200]}))
                continue
            name, desc, genes = clean_text(parts[0]), clean_text(parts[1]), [g for g in map(clean_text, parts[2:]) if g]
            members, unresolved = _members(path, name, genes, resolver, "gene set", {"set": name})
            quarantine.extend(unresolved)
            if len(members) < min_size:
                report.quarantined += 1
                quarantine.append(QuarantineRecord(str(path), name, f"only {len(members)} members (< {min_size})",
                                                   {"set": name}))
                continue
            records.append(ComplexRecord(name, desc or name, tuple(members), source=path.name))
            report.accepted += 1
    report.check()
    return ReadResult(records, report, quarantine)


# Reader per network kind (pipelines/inputs kinds): the ingest and models/datasets both take them from here.
NETWORK_READERS = {"string": read_string_edges, "dorothea": read_dorothea, "corum": read_corum, "gmt": read_gmt}


def complex_pairs(member_lists: Iterable[Iterable[Hashable]], genes: Iterable[Hashable] | None = None) -> list[tuple]:
    """The co-complex pairing rule: every two distinct members of one complex, each unordered pair once
    as (smaller, larger), sorted; optionally only members within `genes`. Members are symbols (the
    training set, the benchmarks) or Entrez ids (references read from the graph); no size cap: pairs
    grow with the square of a complex's size (human CORUM 2018: 2,295 complexes, 37,971 pairs)."""
    wanted = None if genes is None else set(genes)
    pairs: set[tuple] = set()
    for members in member_lists:
        ms = sorted({m for m in members if wanted is None or m in wanted})
        pairs.update((a, b) for i, a in enumerate(ms) for b in ms[i + 1:])
    return sorted(pairs)


def quarantine_summary(result: ReadResult, examples: int = 5) -> str:
    """One line for a network read: counts, quarantine reasons (gene names folded to '…') with their
    counts, and the first few quarantined keys, so no unmapped gene goes unsaid."""
    r = result.report
    reasons = Counter(re.sub(r"'[^']*'|\[[^\]]*\]", "…", q.reason) for q in result.quarantine)
    by = "; ".join(f"{k}: {n:,}" for k, n in reasons.most_common())
    keys = ", ".join(q.record_key for q in result.quarantine[:examples])
    return (f"{Path(r.source).name}: {r.read:,} read, {r.accepted:,} accepted, {r.quarantined:,} quarantined"
            + (f" ({by}; e.g. {keys})" if by else "") + "".join(f"; {n}" for n in r.notes))

"""Writes parsed records (graph.records) into Neo4j through the named queries of graph.db.queries.

Every write is a batch of rows sent as `$rows` to an `UNWIND ... MERGE` query inside a managed
write transaction (`session.execute_write`), so the driver may retry a batch and a re-run of the
whole ingest changes nothing. The order of an ingest (what the Dagster assets do):

    ensure_schema(driver)
    state = write_dataset(driver, dataset_record)            # status 'loading' (unless complete)
    write_genes / write_compounds / write_contexts           # entities
    write_perturbations / write_signatures                   # experiments
    write_compound_targets / write_prior_edges / write_complexes
    store.write_measurements(...); store.write_quarantine(...)
    mark_dataset_complete(driver, dataset_id, store_entry)   # last: status 'complete'

A crash anywhere before the last step leaves the Dataset 'loading'; running the same steps again
completes it with the same final counts.

Gene resolution: relationships to genes (TARGETS, PERTURBS, INTERACTS_WITH, REGULATES,
MEMBER_OF) are keyed by Entrez id. Symbols are resolved against the Gene nodes already in the
graph (`SymbolMap`: current symbol, then upper-case symbol, then an alias that names exactly one
gene, then a numeric Entrez id). Unresolvable symbols never create Gene nodes; those edges are
skipped and returned as `QuarantineRecord`s in `WriteStats.quarantined`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from neo4j import Driver, ManagedTransaction
from neo4j.exceptions import ConstraintError

from graph.db import queries as Q
from graph.db.schema import (
    FULLTEXT_INDEXES,
    INGEST_NODE_LABELS,
    INGEST_REL_TYPES,
    NODE_KEYS,
    NODE_LABELS,
    PROPERTY_INDEXES,
    REL_TYPES,
    STATUS_COMPLETE,
    STATUS_LOADING,
    schema_statements,
)
from graph.io.identifiers import gene_key
from graph.records import (
    ComplexRecord,
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    PriorEdgeRecord,
    QuarantineRecord,
    SignatureRecord,
)

DEFAULT_BATCH_SIZE = 5_000

# Sources whose prior edges are directed regulation (TF -> target) and go to REGULATES.
REGULATORY_SOURCES = frozenset({"DoRothEA", "dorothea"})


class DatasetConflict(RuntimeError):
    """The dataset id is already in the graph with a different file hash (a new version needs a new id)."""


@dataclass
class WriteStats:
    """What one writer call did. `written` counts rows the queries accepted."""

    what: str
    rows: int = 0
    written: int = 0
    batches: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    seconds: float = 0.0
    quarantined: list[QuarantineRecord] = field(default_factory=list)

    def add_counters(self, counters: Any) -> None:
        self.nodes_created += counters.nodes_created
        self.relationships_created += counters.relationships_created
        self.properties_set += counters.properties_set

    def merge(self, other: WriteStats) -> WriteStats:
        self.rows += other.rows
        self.written += other.written
        self.batches += other.batches
        self.nodes_created += other.nodes_created
        self.relationships_created += other.relationships_created
        self.properties_set += other.properties_set
        self.seconds += other.seconds
        self.quarantined.extend(other.quarantined)
        return self

    @property
    def rows_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class DatasetState:
    dataset_id: str
    created: bool
    status: str


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    if size <= 0:
        raise ValueError("batch_size must be positive")
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_batches(
    driver: Driver,
    query: str,
    rows: Iterable[dict[str, Any]],
    stats: WriteStats,
    *,
    database: str | None,
    batch_size: int,
    params: dict[str, Any] | None = None,
    on_short: Callable[[ManagedTransaction, list[dict[str, Any]]], list[QuarantineRecord]] | None = None,
) -> WriteStats:
    """Send `rows` in batches to `query` (which returns `written`), one managed write tx per batch."""
    extra = dict(params or {})
    start = time.perf_counter()
    with driver.session(database=database) as session:
        for batch in _batches(rows, batch_size):

            def work(tx: ManagedTransaction, batch: list[dict[str, Any]] = batch) -> tuple[int, Any, list]:
                result = tx.run(query, rows=batch, **extra)
                record = result.single()
                counters = result.consume().counters
                written = record["written"] if record else 0
                short: list[QuarantineRecord] = []
                if written < len(batch) and on_short is not None:
                    short = on_short(tx, batch)
                return written, counters, short

            written, counters, short = session.execute_write(work)
            stats.rows += len(batch)
            stats.written += written
            stats.batches += 1
            stats.add_counters(counters)
            stats.quarantined.extend(short)
    stats.seconds += time.perf_counter() - start
    return stats


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


def ensure_schema(driver: Driver, database: str | None = None, timeout_s: int = 300) -> list[str]:
    """Create every uniqueness constraint, then every index (IF NOT EXISTS); wait until online.

    Idempotent. Returns the DDL statements. Run it before any data write.
    """
    statements = schema_statements()
    with driver.session(database=database) as session:
        for stmt in statements:
            session.run(stmt).consume()
        session.run(Q.AWAIT_INDEXES, timeout_s=timeout_s).consume()
        for backfill in Q.BACKFILL_LOOKUP_KEYS:
            session.run(backfill).consume()
    return statements


def check_constraints(driver: Driver, database: str | None = None) -> list[str]:
    """Names of expected constraints/indexes that are absent, wrong or not ONLINE ([] when all fine)."""
    with driver.session(database=database) as session:
        constraints = {r["name"]: r for r in session.run(Q.SHOW_CONSTRAINTS)}
        states = {r["name"]: r["state"] for r in session.run(Q.SHOW_INDEXES)}
    missing: list[str] = []
    for nk in NODE_KEYS.values():
        c = constraints.get(nk.constraint_name)
        ok = (
            c is not None
            and c["type"] == "UNIQUENESS"
            and list(c["labelsOrTypes"]) == [nk.label]
            and list(c["properties"]) == [nk.key]
            and states.get(nk.constraint_name) == "ONLINE"
        )
        if not ok:
            missing.append(nk.constraint_name)
    missing.extend(ix.index_name for ix in (*PROPERTY_INDEXES, *FULLTEXT_INDEXES)
                   if states.get(ix.index_name) != "ONLINE")
    return missing


# ---------------------------------------------------------------------------------------------
# Dataset lifecycle
# ---------------------------------------------------------------------------------------------


def dataset_props(record: DatasetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "source": record.source,
        "version": record.version,
        "path": record.path,
        "sha256": record.sha256,
        "licence": record.licence,
        "kind": record.kind,
        "value_kind": record.value_kind,
        "simulated": record.simulated,
        "ingested_at": record.ingested_at or _now(),
    }


def write_dataset(
    driver: Driver, record: DatasetRecord, status: str = STATUS_LOADING, *, database: str | None = None
) -> DatasetState:
    """Create the Dataset node (status 'loading') or find the existing one.

    An existing dataset keeps its properties and status (a re-run of a complete ingest changes
    nothing); an existing dataset with a different sha256 raises DatasetConflict.
    """
    if status not in (STATUS_LOADING, STATUS_COMPLETE):
        raise ValueError(f"unknown dataset status {status!r}")
    props = dataset_props(record)

    def work(tx: ManagedTransaction) -> DatasetState:
        existing = tx.run(Q.GET_DATASET, dataset_id=record.dataset_id).single()
        if existing is not None:
            found = existing["dataset"]
            if found.get("sha256") != record.sha256:
                raise DatasetConflict(
                    f"dataset {record.dataset_id!r} is in the graph with sha256 {found.get('sha256')}, "
                    f"not {record.sha256}: ingest a changed file under a new dataset id/version"
                )
            return DatasetState(record.dataset_id, created=False, status=found.get("status", ""))
        row = tx.run(Q.MERGE_DATASET, dataset_id=record.dataset_id, props=props, status=status).single()
        return DatasetState(record.dataset_id, created=True, status=row["status"])

    with driver.session(database=database) as session:
        return session.execute_write(work)


def mark_dataset_complete(
    driver: Driver,
    dataset_id: str,
    *,
    store_entry: Any = None,
    n_quarantined: int | None = None,
    database: str | None = None,
) -> None:
    """Set status 'complete' (the last write of an ingest), recording the columnar-store file,
    content hash and row count (`store_entry` is a graph.store.StoreEntry) and the quarantine count."""
    props: dict[str, Any] = {}
    if store_entry is not None:
        props.update(
            store_path=str(store_entry.relpath),
            store_sha256=store_entry.sha256,
            store_rows=store_entry.n_rows,
            store_signatures=store_entry.n_signatures,
        )
    if n_quarantined is not None:
        props["n_quarantined"] = n_quarantined

    def work(tx: ManagedTransaction) -> str | None:
        row = tx.run(Q.MARK_DATASET_COMPLETE, dataset_id=dataset_id, props=props, now=_now()).single()
        return row["status"] if row else None

    with driver.session(database=database) as session:
        if session.execute_write(work) is None:
            raise KeyError(f"no Dataset {dataset_id!r} in the graph")


def get_dataset(driver: Driver, dataset_id: str, *, database: str | None = None) -> dict[str, Any] | None:
    records, _, _ = driver.execute_query(Q.GET_DATASET, dataset_id=dataset_id, database_=database)
    return dict(records[0]["dataset"]) if records else None


# ---------------------------------------------------------------------------------------------
# Gene symbol resolution
# ---------------------------------------------------------------------------------------------


class SymbolMap:
    """Resolves gene symbols to the Entrez ids of Gene nodes in the graph (keys: identifiers.gene_key)."""

    def __init__(self, genes: Iterable[tuple[int, str, Sequence[str]]]):
        self.by_symbol: dict[str, int] = {}
        self.by_upper: dict[str, int] = {}
        self.ids: set[int] = set()
        alias_hits: dict[str, set[int]] = {}
        for entrez_id, symbol, aliases in genes:
            self.ids.add(int(entrez_id))
            if symbol:
                self.by_symbol.setdefault(symbol, int(entrez_id))
                self.by_upper.setdefault(gene_key(symbol), int(entrez_id))
            for alias in aliases or ():
                alias_hits.setdefault(gene_key(alias), set()).add(int(entrez_id))
        self.by_alias = {a: next(iter(ids)) for a, ids in alias_hits.items() if len(ids) == 1}

    @classmethod
    def from_graph(cls, driver: Driver, *, database: str | None = None) -> SymbolMap:
        records, _, _ = driver.execute_query(Q.GENE_SYMBOL_TABLE, database_=database, routing_="r")
        return cls((r["entrez_id"], r["symbol"], r["aliases"]) for r in records)

    def resolve(self, symbol: str) -> int | None:
        if not symbol:
            return None
        if symbol in self.by_symbol:
            return self.by_symbol[symbol]
        up = gene_key(symbol)  # the one canonical spelling (graph/io/identifiers.py)
        if up in self.by_upper:
            return self.by_upper[up]
        if up in self.by_alias:
            return self.by_alias[up]
        if symbol.isdigit() and int(symbol) in self.ids:
            return int(symbol)
        return None


def _symbols(driver: Driver, symbol_map: SymbolMap | None, database: str | None) -> SymbolMap:
    return symbol_map if symbol_map is not None else SymbolMap.from_graph(driver, database=database)


# ---------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------


def gene_row(r: GeneRecord) -> dict[str, Any]:
    return {
        "entrez_id": int(r.entrez_id),
        "symbol": _blank_to_none(r.symbol),
        "description": _blank_to_none(r.name),
        "ensembl_id": _blank_to_none(r.ensembl_id),
        "gene_type": _blank_to_none(r.gene_type),
        "source": _blank_to_none(r.source),
        "aliases": list(r.aliases),
    }


def compound_row(r: CompoundRecord) -> dict[str, Any]:
    return {
        "compound_id": r.compound_id,
        "name": r.name,
        "smiles": _blank_to_none(r.smiles),
        "inchikey": _blank_to_none(r.inchikey),
        "inchikey_block1": _blank_to_none(r.inchikey_block1),
        "has_structure": bool(r.has_structure),
        "structure_issue": _blank_to_none(r.structure_issue),
        "clinical_phase": _blank_to_none(r.clinical_phase),
        "source": _blank_to_none(r.source),
        "aliases": list(r.aliases),
        "moa": list(r.moa),
        "targets": list(r.targets),
    }


def context_row(r: ContextRecord) -> dict[str, Any]:
    return {"context_id": r.context_id, "name": r.name, "kind": r.kind, "source": _blank_to_none(r.source)}


def perturbation_row(r: PerturbationRecord) -> dict[str, Any]:
    return {
        "perturbation_id": r.perturbation_id,
        "name": r.name,
        "perturbation_type": r.perturbation_type,
        "compound_id": _blank_to_none(r.compound_id),
        "target_symbols": list(r.target_symbols),
        "dose_value": None if r.dose_value is None else float(r.dose_value),
        "dose_unit": _blank_to_none(r.dose_unit),
        "time_value": None if r.time_value is None else float(r.time_value),
        "time_unit": _blank_to_none(r.time_unit),
        "source": _blank_to_none(r.source),
    }


def signature_row(r: SignatureRecord) -> dict[str, Any]:
    return {
        "signature_id": r.signature_id,
        "name": f"{r.perturbation_id} in {r.context_id}",
        "dataset_id": r.dataset_id,
        "context_id": r.context_id,
        "perturbation_id": r.perturbation_id,
        "n_readouts": int(r.n_readouts),
        "n_replicates": int(r.n_replicates),
        "source_id": _blank_to_none(r.source_id),
    }


def _write_nodes(
    driver: Driver, what: str, query: str, rows: Iterable[dict[str, Any]], dataset_id: str,
    database: str | None, batch_size: int,
) -> WriteStats:
    return _run_batches(
        driver, query, rows, WriteStats(what), database=database, batch_size=batch_size,
        params={"dataset_id": dataset_id},
    )


def write_genes(
    driver: Driver, genes: Iterable[GeneRecord], dataset_id: str, *,
    batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """MERGE Gene nodes on entrez_id (`name` = symbol, `description` = the long name)."""
    return _write_nodes(driver, "Gene", Q.MERGE_GENES, map(gene_row, genes), dataset_id, database, batch_size)


def write_compounds(
    driver: Driver, compounds: Iterable[CompoundRecord], dataset_id: str, *,
    batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """MERGE Compound nodes on compound_id. Targets are written by write_compound_targets."""
    return _write_nodes(
        driver, "Compound", Q.MERGE_COMPOUNDS, map(compound_row, compounds), dataset_id, database, batch_size
    )


def write_contexts(
    driver: Driver, contexts: Iterable[ContextRecord], dataset_id: str, *,
    batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """MERGE CellLine nodes on context_id (cell types too, with kind='cell_type')."""
    return _write_nodes(
        driver, "CellLine", Q.MERGE_CONTEXTS, map(context_row, contexts), dataset_id, database, batch_size
    )


def write_perturbations(
    driver: Driver, perturbations: Iterable[PerturbationRecord], dataset_id: str, *,
    symbol_map: SymbolMap | None = None, batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """MERGE Perturbation nodes; OF_COMPOUND to the Compound for compound perturbations, PERTURBS to
    the Gene of each resolvable target symbol for genetic ones.

    A compound perturbation whose Compound node is missing is not written (quarantined: write the
    compounds first). Unresolvable target symbols are quarantined edge by edge; the node is kept.
    """
    recs = list(perturbations)
    stats = WriteStats("Perturbation")
    compound_rows = [perturbation_row(r) for r in recs if r.compound_id]
    other_rows = [perturbation_row(r) for r in recs if not r.compound_id]

    def missing_compounds(tx: ManagedTransaction, batch: list[dict[str, Any]]) -> list[QuarantineRecord]:
        keys = sorted({row["compound_id"] for row in batch})
        missing = set(tx.run(Q.MISSING_COMPOUNDS, keys=keys).single()["missing"])
        return [
            QuarantineRecord(dataset_id, row["perturbation_id"], "compound not in graph", row)
            for row in batch
            if row["compound_id"] in missing
        ]

    _run_batches(
        driver, Q.MERGE_COMPOUND_PERTURBATIONS, compound_rows, stats, database=database,
        batch_size=batch_size, params={"dataset_id": dataset_id}, on_short=missing_compounds,
    )
    _run_batches(
        driver, Q.MERGE_PERTURBATIONS, other_rows, stats, database=database, batch_size=batch_size,
        params={"dataset_id": dataset_id},
    )
    genetic = [r for r in recs if r.target_symbols and not r.compound_id]
    if genetic:
        symbols = _symbols(driver, symbol_map, database)
        edge_rows: list[dict[str, Any]] = []
        for r in genetic:
            for sym in dict.fromkeys(r.target_symbols):
                entrez = symbols.resolve(sym)
                if entrez is None:
                    stats.quarantined.append(
                        QuarantineRecord(
                            dataset_id, f"{r.perturbation_id}->{sym}", "target symbol not a Gene in the graph",
                            {"perturbation_id": r.perturbation_id, "symbol": sym},
                        )
                    )
                else:
                    edge_rows.append({"perturbation_id": r.perturbation_id, "entrez_id": entrez, "symbol": sym})
        edges = _run_batches(
            driver, Q.MERGE_PERTURBS, edge_rows, WriteStats("PERTURBS"), database=database,
            batch_size=batch_size, params={"dataset_id": dataset_id},
        )
        stats.nodes_created += edges.nodes_created
        stats.relationships_created += edges.relationships_created
        stats.properties_set += edges.properties_set
        stats.seconds += edges.seconds
    return stats


def write_signatures(
    driver: Driver, signatures: Iterable[SignatureRecord], *, batch_size: int = DEFAULT_BATCH_SIZE,
    database: str | None = None, mode: str = "auto",
) -> WriteStats:
    """Signature nodes with IN_CONTEXT, OF_PERTURBATION and FROM_DATASET (all from the record's ids).

    mode 'merge' always MERGEs. 'auto' (default) CREATEs while loading a dataset that had no
    signatures when the call began (first load, ~2x faster) and MERGEs otherwise, so a re-run after a
    crash is idempotent; a duplicate id in a CREATE batch rolls that batch back and re-sends it with
    MERGE. Signatures whose dataset, context or perturbation node is missing are quarantined.
    """
    if mode not in ("auto", "merge", "create"):
        raise ValueError(f"unknown mode {mode!r}")
    stats = WriteStats("Signature")
    rows = map(signature_row, signatures)
    fresh: dict[str, bool] = {}

    def is_fresh(dataset_id: str) -> bool:
        if mode == "merge":
            return False
        if dataset_id not in fresh:
            records, _, _ = driver.execute_query(
                Q.COUNT_DATASET_SIGNATURES, dataset_id=dataset_id, database_=database
            )
            fresh[dataset_id] = records[0]["n"] == 0
        return fresh[dataset_id]

    def missing_refs(tx: ManagedTransaction, batch: list[dict[str, Any]]) -> list[QuarantineRecord]:
        out = []
        for rec in tx.run(Q.MISSING_SIGNATURE_REFS, rows=batch):
            what = [n for n, flag in (("dataset", "no_dataset"), ("context", "no_context"),
                                      ("perturbation", "no_perturbation")) if rec[flag]]
            raw = next(row for row in batch if row["signature_id"] == rec["key"])
            out.append(QuarantineRecord(raw["dataset_id"], rec["key"], f"{'/'.join(what)} not in graph", raw))
        return out

    for batch in _batches(rows, batch_size):
        datasets = {row["dataset_id"] for row in batch}
        create = all(is_fresh(d) for d in datasets)
        if create:
            try:
                _run_batches(driver, Q.CREATE_SIGNATURES, batch, stats, database=database,
                             batch_size=batch_size, on_short=missing_refs)
                continue
            except ConstraintError:
                for d in datasets:
                    fresh[d] = False
        _run_batches(driver, Q.MERGE_SIGNATURES, batch, stats, database=database,
                     batch_size=batch_size, on_short=missing_refs)
    return stats


# ---------------------------------------------------------------------------------------------
# Gene-level edges
# ---------------------------------------------------------------------------------------------


def write_compound_targets(
    driver: Driver, compounds: Iterable[CompoundRecord], dataset_id: str, *, source: str = "",
    symbol_map: SymbolMap | None = None, batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """(Compound)-[:TARGETS {dataset, source}]->(Gene) for each record's target symbols that resolve
    to a Gene node; the rest are quarantined (no Gene node is ever created from a symbol)."""
    symbols = _symbols(driver, symbol_map, database)
    stats = WriteStats("TARGETS")
    rows: list[dict[str, Any]] = []
    for c in compounds:
        for sym in dict.fromkeys(c.targets):
            entrez = symbols.resolve(sym)
            if entrez is None:
                stats.quarantined.append(
                    QuarantineRecord(dataset_id, f"{c.compound_id}->{sym}", "target symbol not a Gene in the graph",
                                     {"compound_id": c.compound_id, "symbol": sym})
                )
            else:
                rows.append({"compound_id": c.compound_id, "entrez_id": entrez, "symbol": sym,
                             "source": source or c.source or dataset_id})
    rows = list({(r["compound_id"], r["entrez_id"]): r for r in rows}.values())
    return _run_batches(driver, Q.MERGE_TARGETS, rows, stats, database=database, batch_size=batch_size,
                        params={"dataset_id": dataset_id})


def write_prior_edges(
    driver: Driver, edges: Iterable[PriorEdgeRecord], dataset_id: str, *,
    symbol_map: SymbolMap | None = None, batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """Prior gene-gene edges: undirected ones as INTERACTS_WITH (stored once, lower Entrez id first;
    duplicates keep the highest score), directed ones (DoRothEA or `directed=True`) as REGULATES
    with sign and confidence. Unresolvable symbols are quarantined."""
    symbols = _symbols(driver, symbol_map, database)
    stats = WriteStats("prior edges")
    undirected: dict[tuple[int, int], dict[str, Any]] = {}
    directed: dict[tuple[int, int], dict[str, Any]] = {}
    for e in edges:
        a, b = symbols.resolve(e.source_symbol), symbols.resolve(e.target_symbol)
        if a is None or b is None:
            bad = [s for s, v in ((e.source_symbol, a), (e.target_symbol, b)) if v is None]
            stats.quarantined.append(
                QuarantineRecord(dataset_id, f"{e.source_symbol}-{e.target_symbol}",
                                 f"symbol not a Gene in the graph: {', '.join(bad)}",
                                 {"source_symbol": e.source_symbol, "target_symbol": e.target_symbol,
                                  "source": e.source, "score": e.score})
            )
            continue
        row = {"a": a, "b": b, "source": e.source, "score": float(e.score), "sign": int(e.sign),
               "evidence": _blank_to_none(e.evidence)}
        if e.directed or e.source in REGULATORY_SOURCES:
            prev = directed.get((a, b))
            if prev is None or row["score"] > prev["score"]:
                directed[(a, b)] = row
        else:
            if a > b:
                row["a"], row["b"] = b, a
            key = (row["a"], row["b"])
            prev = undirected.get(key)
            if prev is None or row["score"] > prev["score"]:
                undirected[key] = row
    params = {"dataset_id": dataset_id}
    _run_batches(driver, Q.MERGE_INTERACTS_WITH, undirected.values(), stats, database=database,
                 batch_size=batch_size, params=params)
    _run_batches(driver, Q.MERGE_REGULATES, directed.values(), stats, database=database,
                 batch_size=batch_size, params=params)
    return stats


def write_complexes(
    driver: Driver, complexes: Iterable[ComplexRecord], dataset_id: str, *,
    symbol_map: SymbolMap | None = None, batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """Complex nodes and (Gene)-[:MEMBER_OF]->(Complex) for resolvable member symbols."""
    recs = list(complexes)
    symbols = _symbols(driver, symbol_map, database)
    stats = _write_nodes(
        driver, "Complex", Q.MERGE_COMPLEXES,
        ({"complex_id": c.complex_id, "name": c.name, "source": c.source} for c in recs),
        dataset_id, database, batch_size,
    )
    rows = _member_rows(recs, "complex_id", symbols, dataset_id, stats)
    members = _run_batches(driver, Q.MERGE_COMPLEX_MEMBERS, rows, WriteStats("MEMBER_OF"), database=database,
                           batch_size=batch_size, params={"dataset_id": dataset_id})
    stats.relationships_created += members.relationships_created
    stats.properties_set += members.properties_set
    stats.seconds += members.seconds
    return stats


def write_gene_sets(
    driver: Driver, gene_sets: Iterable[Any], dataset_id: str, *, source: str,
    symbol_map: SymbolMap | None = None, batch_size: int = DEFAULT_BATCH_SIZE, database: str | None = None,
) -> WriteStats:
    """GeneSet nodes with (Gene)-[:MEMBER_OF]->(GeneSet) for resolvable members. Each item is a
    (gene_set_id, name, member symbols) tuple or a graph.io.networks.GeneSet (its GMT `name` is the id)."""
    recs = []
    for item in gene_sets:
        if isinstance(item, tuple):
            gid, name, members = item
        else:
            gid, name, members = item.name, item.name, item.members
        recs.append(ComplexRecord(gid, name, tuple(members), source))
    symbols = _symbols(driver, symbol_map, database)
    stats = _write_nodes(
        driver, "GeneSet", Q.MERGE_GENE_SETS,
        ({"gene_set_id": c.complex_id, "name": c.name, "source": c.source} for c in recs),
        dataset_id, database, batch_size,
    )
    rows = _member_rows(recs, "gene_set_id", symbols, dataset_id, stats)
    members = _run_batches(driver, Q.MERGE_GENE_SET_MEMBERS, rows, WriteStats("MEMBER_OF"),
                           database=database, batch_size=batch_size, params={"dataset_id": dataset_id})
    stats.relationships_created += members.relationships_created
    stats.properties_set += members.properties_set
    stats.seconds += members.seconds
    return stats


def _member_rows(
    recs: Sequence[ComplexRecord], key: str, symbols: SymbolMap, dataset_id: str, stats: WriteStats
) -> list[dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for c in recs:
        for sym in c.member_symbols:
            entrez = symbols.resolve(sym)
            if entrez is None:
                stats.quarantined.append(
                    QuarantineRecord(dataset_id, f"{c.complex_id}<-{sym}", "member symbol not a Gene in the graph",
                                     {key: c.complex_id, "symbol": sym})
                )
            else:
                rows.setdefault((c.complex_id, entrez),
                                {key: c.complex_id, "entrez_id": entrez, "symbol": sym, "source": c.source})
    return list(rows.values())


# ---------------------------------------------------------------------------------------------
# Counts and checks
# ---------------------------------------------------------------------------------------------


def graph_counts(driver: Driver, *, database: str | None = None) -> dict[str, Any]:
    """{'nodes': {label: n}, 'relationships': {type: n}, 'total_nodes': n, 'total_relationships': n}
    over the whole allowlist (count-store lookups, cheap on any graph size)."""
    out: dict[str, Any] = {"nodes": {}, "relationships": {}}
    with driver.session(database=database) as session:
        labels = set(session.run(Q.LABELS_IN_USE).single()["names"])
        types = set(session.run(Q.REL_TYPES_IN_USE).single()["names"])
        # Only names the database knows are counted (others are 0): no "unknown label" notifications.
        for label in sorted(NODE_LABELS):
            out["nodes"][label] = session.run(Q.count_nodes_query(label)).single()["n"] if label in labels else 0
        for rel in sorted(REL_TYPES):
            out["relationships"][rel] = (
                session.run(Q.count_relationships_query(rel)).single()["n"] if rel in types else 0
            )
        out["total_nodes"] = session.run(Q.TOTAL_NODES).single()["n"]
        out["total_relationships"] = session.run(Q.TOTAL_RELATIONSHIPS).single()["n"]
    return out


def check_no_orphans(driver: Driver, *, database: str | None = None) -> dict[str, int]:
    """Integrity problems as {check name: count}, only the non-zero ones ({} means clean).

    Checks: signatures missing their context / perturbation / dataset; compound perturbations
    without a compound; nodes without `sources` or `name`; relationships without `dataset`;
    datasets not 'complete'.
    """
    problems: dict[str, int] = {}
    with driver.session(database=database) as session:
        for name, query in Q.ORPHAN_CHECKS.items():
            # Only ingested labels/types must carry dataset provenance (discoveries carry modelVersion).
            n = session.run(query, ingest_labels=sorted(INGEST_NODE_LABELS),
                            ingest_rel_types=sorted(INGEST_REL_TYPES)).single()["n"]
            if n:
                problems[name] = n
    return problems


__all__ = [
    "DEFAULT_BATCH_SIZE", "DatasetConflict", "DatasetState", "SymbolMap", "WriteStats",
    "INGEST_NODE_LABELS", "INGEST_REL_TYPES",
    "check_constraints", "check_no_orphans", "ensure_schema", "get_dataset", "graph_counts",
    "mark_dataset_complete", "write_complexes", "write_compound_targets", "write_compounds",
    "write_contexts", "write_dataset", "write_gene_sets", "write_genes", "write_perturbations",
    "write_prior_edges", "write_signatures",
]


# ---------------------------------------------------------------------------------------------
# Initial load through neo4j-admin (offline)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkImportResult:
    database: str
    seconds: float
    command: list[str]
    output_tail: str


def bulk_import(
    settings: Any,
    nodes: dict[str, Sequence[Any]],
    relationships: dict[str, Sequence[Any]],
    *,
    database: str | None = None,
    overwrite: bool = False,
    import_heap: str = "2g",
    timeout_s: float = 3600.0,
) -> BulkImportResult:
    """Initial load of an EMPTY database with `neo4j-admin database import full` (offline, the fastest
    path for a first load of millions of relationships; see docs/benchmarks.md).

    `nodes` maps an allowlisted label to CSV files whose header names the key column as
    `<key>:ID(<Label>)` (e.g. `entrez_id:ID(Gene)`, keeping the key as a property) plus typed
    properties (`sources:string[]`, `dose_value:float`, arrays split on ';'); `relationships` maps an
    allowlisted type to CSVs with `:START_ID(<Label>)`, `:END_ID(<Label>)` and properties (`dataset`).
    The managed server of `settings` must be stopped (the import needs the store to itself). Start
    the server afterwards and run `ensure_schema` (constraints are built on the imported data), then
    continue with the normal MERGE writers, which are idempotent on top of an imported graph.
    """
    import subprocess

    from graph.db.schema import require_label, require_rel_type
    from graph.db.server import ADMIN_TOOL, Neo4jServer, ServerState

    server = Neo4jServer(settings)
    if server.status().state is ServerState.RUNNING:
        raise RuntimeError(f"stop the Neo4j server in {server.home} before a bulk import")
    server.ensure_jars()
    server.write_config()
    java = server.command()[0]
    db = database or settings.neo4j_database
    cmd = [
        java, f"-Xmx{import_heap}", "-cp", f"{server.conf_dir}/*:{server.lib_dir}/*", ADMIN_TOOL,
        # The database name goes first: --nodes/--relationships take a variable number of values.
        "database", "import", "full", db,
        "--array-delimiter=;", f"--overwrite-destination={'true' if overwrite else 'false'}",
    ]
    for label, files in nodes.items():
        cmd.append(f"--nodes={require_label(label)}={','.join(str(f) for f in files)}")
    for rel_type, files in relationships.items():
        cmd.append(f"--relationships={require_rel_type(rel_type)}={','.join(str(f) for f in files)}")
    import os

    env = {**os.environ, "NEO4J_HOME": str(server.home), "NEO4J_CONF": str(server.conf_dir)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    seconds = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr)[-3000:]
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() and not ln.lstrip().startswith("at ")]
        raise RuntimeError(f"neo4j-admin database import failed ({proc.returncode}): {' | '.join(lines[-8:])[-1200:]}")
    return BulkImportResult(db, seconds, cmd, tail)

"""Writes parsed records (graph.records) into Neo4j through the named queries of graph.db.queries.

`GraphWriter(driver, database, batch_size)` is constructed once per ingest. Every write is a batch of
rows sent to an `UNWIND ... MERGE` query in a managed write transaction (graph.db.batching), so the
driver may retry a batch and a re-run of the whole ingest changes nothing. The order of an ingest
(what pipelines/ingest.py does):

    w = GraphWriter(driver, database)
    w.ensure_schema()
    state = w.write_dataset(dataset_record)                 # status 'loading' (unless complete)
    w.write_genes / write_compounds / write_contexts        # entities
    w.write_perturbations / write_signatures                # experiments
    w.write_compound_targets / write_prior_edges / write_complexes / write_gene_sets  (graph.db.gene_edges)
    MeasurementWriter(...).append(...); write_quarantine(...)   # graph.store
    w.mark_dataset_complete(dataset_id, store_entry=...)    # last: status 'complete'

A crash anywhere before the last step leaves the Dataset 'loading'; running the same steps again
completes it with the same final counts. Links to genes resolve symbols through the writer's
`SymbolMap` (graph.db.symbols); unresolvable ones are quarantined, never turned into Gene nodes.
Reads of the same data (counts, integrity checks): graph.db.checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from neo4j import ManagedTransaction
from neo4j.exceptions import ConstraintError

from graph.db import queries as Q
from graph.db.batching import WriteStats, batches, now
from graph.db.gene_edges import GeneEdgeWrites
from graph.db.rows import compound_row, context_row, dataset_props, gene_row, perturbation_row, signature_row
from graph.db.schema import STATUS_COMPLETE, STATUS_LOADING, schema_statements
from graph.records import (
    CompoundRecord,
    ContextRecord,
    DatasetRecord,
    GeneRecord,
    PerturbationRecord,
    QuarantineRecord,
    SignatureRecord,
)


class DatasetConflict(RuntimeError):
    """The dataset id is already in the graph with a different file hash (a new version needs a new id)."""


@dataclass(frozen=True)
class DatasetState:
    dataset_id: str
    created: bool
    status: str


class GraphWriter(GeneEdgeWrites):
    """The ingest's writes: schema, dataset lifecycle, entity and experiment nodes (this module) and the
    gene-level edges (graph.db.gene_edges)."""

    # -------------------------------------------------------------------------------- schema
    def ensure_schema(self, timeout_s: int = 300) -> list[str]:
        """Create every uniqueness constraint, then every index (IF NOT EXISTS); wait until online.

        Idempotent. Returns the DDL statements. Run it before any data write.
        """
        statements = schema_statements()
        with self.driver.session(database=self.database) as session:
            for stmt in statements:
                session.run(stmt).consume()
            session.run(Q.AWAIT_INDEXES, timeout_s=timeout_s).consume()
            for backfill in Q.BACKFILL_LOOKUP_KEYS:
                session.run(backfill).consume()
        return statements

    # ----------------------------------------------------------------------- dataset lifecycle
    def write_dataset(self, record: DatasetRecord, status: str = STATUS_LOADING) -> DatasetState:
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

        with self.driver.session(database=self.database) as session:
            return session.execute_write(work)

    def mark_dataset_complete(self, dataset_id: str, *, store_entry: Any = None,
                              n_quarantined: int | None = None) -> None:
        """Set status 'complete' (the last write of an ingest), recording the columnar-store file,
        content hash and row count (`store_entry`: a graph.store.measurements.StoreEntry) and the
        quarantine count."""
        props: dict[str, Any] = {}
        if store_entry is not None:
            props.update(store_path=str(store_entry.relpath), store_sha256=store_entry.sha256,
                         store_rows=store_entry.n_rows, store_signatures=store_entry.n_signatures)
        if n_quarantined is not None:
            props["n_quarantined"] = n_quarantined

        def work(tx: ManagedTransaction) -> str | None:
            row = tx.run(Q.MARK_DATASET_COMPLETE, dataset_id=dataset_id, props=props, now=now()).single()
            return row["status"] if row else None

        with self.driver.session(database=self.database) as session:
            if session.execute_write(work) is None:
                raise KeyError(f"no Dataset {dataset_id!r} in the graph")

    # -------------------------------------------------------------------------------- entities
    def write_genes(self, genes: Iterable[GeneRecord], dataset_id: str) -> WriteStats:
        """MERGE Gene nodes on entrez_id (`name` = symbol, `description` = the long name)."""
        stats = self.run_batches(Q.MERGE_GENES, map(gene_row, genes), WriteStats("Gene"),
                                 params={"dataset_id": dataset_id})
        self.forget_symbols()  # the gene table changed: the next link reads it again
        return stats

    def write_compounds(self, compounds: Iterable[CompoundRecord], dataset_id: str) -> WriteStats:
        """MERGE Compound nodes on compound_id. Targets are written by write_compound_targets."""
        return self.run_batches(Q.MERGE_COMPOUNDS, map(compound_row, compounds), WriteStats("Compound"),
                                params={"dataset_id": dataset_id})

    def write_contexts(self, contexts: Iterable[ContextRecord], dataset_id: str) -> WriteStats:
        """MERGE CellLine nodes on context_id (cell types too, with kind='cell_type')."""
        return self.run_batches(Q.MERGE_CONTEXTS, map(context_row, contexts), WriteStats("CellLine"),
                                params={"dataset_id": dataset_id})

    # ----------------------------------------------------------------------------- experiments
    def write_perturbations(self, perturbations: Iterable[PerturbationRecord], dataset_id: str) -> WriteStats:
        """MERGE Perturbation nodes; OF_COMPOUND to the Compound for compound perturbations, PERTURBS to
        the Gene of each resolvable target symbol for genetic ones.

        A compound perturbation whose Compound node is missing is not written (quarantined: write the
        compounds first). Unresolvable target symbols are quarantined edge by edge; the node is kept.
        """
        recs = list(perturbations)
        stats = WriteStats("Perturbation")
        params = {"dataset_id": dataset_id}

        def missing_compounds(tx: ManagedTransaction, batch: list[dict[str, Any]]) -> list[QuarantineRecord]:
            keys = sorted({row["compound_id"] for row in batch})
            missing = set(tx.run(Q.MISSING_COMPOUNDS, keys=keys).single()["missing"])
            return [QuarantineRecord(dataset_id, row["perturbation_id"], "compound not in graph", row)
                    for row in batch if row["compound_id"] in missing]

        self.run_batches(Q.MERGE_COMPOUND_PERTURBATIONS, [perturbation_row(r) for r in recs if r.compound_id],
                         stats, params=params, on_short=missing_compounds)
        self.run_batches(Q.MERGE_PERTURBATIONS, [perturbation_row(r) for r in recs if not r.compound_id],
                         stats, params=params)
        genetic = [r for r in recs if r.target_symbols and not r.compound_id]
        if genetic:
            edge_rows: list[dict[str, Any]] = []
            for r in genetic:
                for sym in dict.fromkeys(r.target_symbols):
                    entrez = self.symbols.resolve(sym)
                    if entrez is None:
                        stats.quarantined.append(QuarantineRecord(
                            dataset_id, f"{r.perturbation_id}->{sym}", "target symbol not a Gene in the graph",
                            {"perturbation_id": r.perturbation_id, "symbol": sym}))
                    else:
                        edge_rows.append({"perturbation_id": r.perturbation_id, "entrez_id": entrez, "symbol": sym})
            stats.add_side_writes(self.run_batches(Q.MERGE_PERTURBS, edge_rows, WriteStats("PERTURBS"),
                                                   params=params))
        return stats

    def write_signatures(self, signatures: Iterable[SignatureRecord], *, mode: str = "auto") -> WriteStats:
        """Signature nodes with IN_CONTEXT, OF_PERTURBATION and FROM_DATASET (all from the record's ids).

        mode 'merge' always MERGEs. 'auto' (default) CREATEs while loading a dataset that had no
        signatures when the call began (first load, ~2x faster) and MERGEs otherwise, so a re-run after a
        crash is idempotent; a duplicate id in a CREATE batch rolls that batch back and re-sends it with
        MERGE. Signatures whose dataset, context or perturbation node is missing are quarantined.
        """
        if mode not in ("auto", "merge", "create"):
            raise ValueError(f"unknown mode {mode!r}")
        stats = WriteStats("Signature")
        fresh: dict[str, bool] = {}

        def is_fresh(dataset_id: str) -> bool:
            if mode == "merge":
                return False
            if dataset_id not in fresh:
                records, _, _ = self.driver.execute_query(Q.COUNT_DATASET_SIGNATURES, dataset_id=dataset_id,
                                                          database_=self.database)
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

        for batch in batches(map(signature_row, signatures), self.batch_size):
            datasets = {row["dataset_id"] for row in batch}
            if all(is_fresh(d) for d in datasets):
                try:
                    self.run_batches(Q.CREATE_SIGNATURES, batch, stats, on_short=missing_refs)
                    continue
                except ConstraintError:
                    for d in datasets:
                        fresh[d] = False
            self.run_batches(Q.MERGE_SIGNATURES, batch, stats, on_short=missing_refs)
        return stats

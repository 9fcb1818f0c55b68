"""Write-back of LPM discoveries into Neo4j under a model version.

`DiscoveryWriter(driver, database, batch_size)` holds the batched writes of one database; its
`versions` (graph.db.model_versions.ModelVersions) does the version bookkeeping. All Cypher comes
from graph.db.discovery_queries. Writes are `UNWIND $rows` batches in managed write transactions
keyed by (endpoints, modelVersion), so writing the same model version twice changes nothing. The
order a Dagster asset follows (what `publish` does):

    w = DiscoveryWriter(driver, database)
    w.ensure_schema()                                 # constraint, rel indexes
    w.versions.register(record)                       # new version: current=false, status 'writing'
    w.write_mechanism_links / write_gene_interactions / write_predicted_effects
    w.versions.record_quality(version_id, quality)    # per discovery type: source, score, baseline
    --- with make_current=False the version stops here, status 'awaiting_check'; the Dagster check
        on `discoveries` decides: refused -> `versions.refuse` (status 'refused', reason; no named
        query reads it, `versions.prune_versions` deletes it); passed -> `promote` (asset
        `current_model_version`) does: ---
        one transaction: embeddings onto the nodes, embeddings of names the new model lacks
                         cleared, the version made current (`ModelVersions.set_current_in`)
        then: vector indexes (created, or recreated at a new dimension), index refresh, prune

Queries on the current version never see a half-written version: it becomes current only after all
its links are written, and its embeddings and the current flag change in one transaction, so a
reader sees the old version with the old embeddings or the new with the new, never a mix; a
promotion that fails at any step leaves the previous current version and its embeddings as they
were. The price: that transaction holds every embedding of the version (rows x dim x 8 bytes of
vectors, plus Neo4j's transaction state) in the server's heap. Embedding properties on nodes belong
to the current model only; per-version copies are not kept (they would multiply the store by the
retention, and a vector index covers one property: reads would have to filter by version after the
index lookup). Reads: graph.db.discovery_reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from neo4j import Driver, ManagedTransaction

from graph.db import discovery_queries as DQ
from graph.db.batching import DEFAULT_BATCH_SIZE, WriteStats
from graph.db.model_versions import (
    AWAITING_CHECK,
    DELETE_BATCH_SIZE,
    ModelVersionRecord,
    ModelVersions,
    batched_delete,
    batched_delete_in,
    finite_or_none,
)
from graph.db.symbols import GeneLinkWriter
from graph.records import QuarantineRecord

EMBEDDING_BATCH_SIZE = 2_000  # rows of vectors per transaction (a row is a whole vector)


def _bool(x: Any) -> bool | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return bool(x)


def _skip(stats: WriteStats, what: str, key: str, reason: str) -> None:
    stats.quarantined.append(QuarantineRecord(source=f"discovery:{what}", record_key=key, reason=reason))


def _last_per_key(stats: WriteStats, what: str, rows: list[dict], key: tuple[str, ...]) -> list[dict]:
    """One row per relationship: rows with the same `key` (two gene names resolving to one Gene, say)
    would write one relationship, so the last row's values are kept (as MERGE + SET did) and each
    earlier one is recorded as superseded, not silently overwritten."""
    last: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        last[tuple(row[k] for k in key)] = i
    if len(last) == len(rows):
        return rows
    kept = set(last.values())
    for i, row in enumerate(rows):
        if i not in kept:
            _skip(stats, what, "/".join(str(row[k]) for k in key),
                  "same relationship as a later row of this version; the later row's values were written")
    return [row for i, row in enumerate(rows) if i in kept]


def _check_dim(kind: str, dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= int(dim) <= 4096:
        raise ValueError(f"embedding dimension for {kind!r} must be an int in 1..4096, not {dim!r}")
    return int(dim)


@dataclass
class PublishReport:
    version_id: str
    created: bool
    stats: dict[str, WriteStats] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    stale_embeddings_cleared: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id, "created": self.created, "pruned": self.pruned,
            "stale_embeddings_cleared": self.stale_embeddings_cleared, "seconds": round(self.seconds, 3),
            "writes": {k: {"rows": s.rows, "written": s.written, "skipped": len(s.quarantined),
                           "relationships_created": s.relationships_created,
                           "rows_per_s": round(s.rows_per_s, 1)} for k, s in self.stats.items()},
        }


class DiscoveryWriter(GeneLinkWriter):
    """Model versions' discoveries: embeddings, mechanism links, gene-gene edges, predicted effects."""

    def __init__(self, driver: Driver, database: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, *,
                 delete_batch_size: int = DELETE_BATCH_SIZE):
        super().__init__(driver, database, batch_size)
        self.versions = ModelVersions(driver, database, delete_batch_size)

    def _resolved(self, frame: pd.DataFrame, stats: WriteStats, what: str, columns: tuple[str, ...],
                  key: Callable[[Any], str], reason: str) -> Iterator[tuple[Any, list[int]]]:
        """(record, Entrez ids of its gene-name `columns`) for each record of `frame` whose names all
        resolve to Gene nodes; the others go to `stats.quarantined` as `key(record)` with `reason`."""
        for r in frame.itertuples(index=False):
            ids = [self.symbols.entrez(getattr(r, c)) for c in columns]
            if None in ids:
                _skip(stats, what, key(r), reason)
                continue
            yield r, ids

    # -------------------------------------------------------------------------------- schema
    def ensure_schema(self, *, dims: Mapping[str, int] | None = None, timeout_s: int = 300) -> list[str]:
        """ModelVersion constraint, modelVersion relationship indexes, and a cosine vector index per
        embedding kind in `dims` (kind -> dimension). An existing vector index with another dimension
        (a model of a different width) is dropped and recreated. Idempotent; returns the DDL run."""
        dims = {k: _check_dim(k, v) for k, v in (dims or {}).items()}
        unknown = set(dims) - set(DQ.EMBEDDING_TARGETS)
        if unknown:
            raise ValueError(f"unknown embedding kinds {sorted(unknown)}; known: {sorted(DQ.EMBEDDING_TARGETS)}")
        ran: list[str] = []
        with self.driver.session(database=self.database) as session:
            for stmt in [DQ.MODEL_VERSION_CONSTRAINT, *DQ.REL_VERSION_INDEXES.values()]:
                session.run(stmt).consume()
                ran.append(stmt)
            existing = {r["name"]: r["dimensions"] for r in session.run(DQ.SHOW_VECTOR_INDEXES)}
            for kind, dim in dims.items():
                name = DQ.EMBEDDING_TARGETS[kind].index_name
                if name in existing and existing[name] is not None and int(existing[name]) != dim:
                    session.run(DQ.DROP_VECTOR_INDEX[kind]).consume()
                    ran.append(DQ.DROP_VECTOR_INDEX[kind])
                session.run(DQ.VECTOR_INDEX_DDL[kind], dim=dim).consume()
                ran.append(DQ.VECTOR_INDEX_DDL[kind])
            session.run(DQ.AWAIT_INDEXES, timeout_s=timeout_s).consume()
        return ran

    # ---------------------------------------------------------------------------- discoveries
    def write_embeddings(self, version_id: str, kind: str, embeddings: pd.DataFrame, *,
                         batch_size: int = EMBEDDING_BATCH_SIZE) -> WriteStats:
        """Store one kind of embedding on its nodes (see discovery_queries.EMBEDDING_TARGETS).

        The index of `embeddings` names the node: compound id, perturbation id, context id, or for the
        gene kinds a symbol / alias / Entrez id (resolved against the graph's Gene nodes). Names that
        match no node are skipped (written < rows); unresolvable gene names go to `stats.quarantined`.
        """
        stats, rows = self._embedding_rows(kind, embeddings)
        return self.run_batches(DQ.SET_EMBEDDINGS[kind], rows, stats, batch_size=batch_size,
                                params={"version_id": version_id})

    def _embedding_rows(self, kind: str, embeddings: pd.DataFrame) -> tuple[WriteStats, list[dict[str, Any]]]:
        """Validated rows {key, vector} of one embedding kind, and stats holding the unresolvable names."""
        if kind not in DQ.EMBEDDING_TARGETS:
            raise ValueError(f"unknown embedding kind {kind!r}")
        stats = WriteStats(f"embeddings:{kind}")
        values = np.asarray(embeddings.to_numpy(), dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("embeddings contain NaN or infinite values")
        genes = DQ.EMBEDDING_TARGETS[kind].label == "Gene"
        rows = []
        for name, vec in zip(embeddings.index, values, strict=True):
            key: Any = self.symbols.entrez(name) if genes else str(name)
            if key is None:
                _skip(stats, kind, str(name), "gene name not resolvable to a Gene node")
                continue
            rows.append({"key": key, "vector": vec.tolist()})
        return stats, rows

    def write_mechanism_links(self, version_id: str, links: pd.DataFrame) -> WriteStats:
        """(:Compound)-[:SHARES_MECHANISM_WITH]->(:Gene) from `models.discovery.mechanism_links` output.

        `compound` must be a compound id; `gene` a symbol / alias / Entrez id. isAnnotatedTarget is set
        in Cypher from the TARGETS relationships present in the graph; `method` (the mechanism source the
        version published, e.g. 'signature_connectivity') from the `method` column when there is one.
        """
        stats = WriteStats("SHARES_MECHANISM_WITH")
        f = finite_or_none
        rows = [{"compound_id": str(r.compound), "entrez_id": entrez, "score": f(r.score),
                 "rank": int(r.rank), "zscore": f(getattr(r, "zscore", None)),
                 "pvalue": f(getattr(r, "pvalue", None)), "qvalue": f(getattr(r, "qvalue", None)),
                 "significant": _bool(getattr(r, "significant", None)),
                 "method": str(getattr(r, "method", None) or "") or None}
                for r, (entrez,) in self._resolved(links, stats, "mechanism", ("gene",),
                                                   lambda r: f"{r.compound}->{r.gene}", "gene not resolvable")]
        rows = _last_per_key(stats, "mechanism", rows, ("compound_id", "entrez_id"))
        return self.run_batches(DQ.WRITE_MECHANISM_LINKS, rows, stats, params={"version_id": version_id})

    def write_gene_interactions(self, version_id: str, edges: pd.DataFrame, *, basis: str = "embedding",
                                method: str | None = None) -> WriteStats:
        """(:Gene)-[:PREDICTED_INTERACTION]->(:Gene) from `models.edge_sources.edges_from_scores` (or
        `models.discovery.gene_interactions`) output.

        `method` (the edge source, e.g. 'signature_correlation') comes from the `method` column when
        there is one, else from the argument. inPrior is set in Cypher (an INTERACTS_WITH edge in either
        direction exists)."""
        if basis not in {"embedding", "profile"}:
            raise ValueError("basis must be 'embedding' or 'profile'")
        stats = WriteStats("PREDICTED_INTERACTION")
        rows = [{"a": a, "b": b, "score": finite_or_none(r.score), "rank": int(r.rank),
                 "method": str(getattr(r, "method", None) or method or "") or None}
                for r, (a, b) in self._resolved(edges, stats, "interaction", ("source", "target"),
                                                lambda r: f"{r.source}->{r.target}", "gene not resolvable")]
        rows = _last_per_key(stats, "interaction", rows, ("a", "b"))
        return self.run_batches(DQ.WRITE_GENE_INTERACTIONS, rows, stats,
                                params={"version_id": version_id, "basis": basis})

    def write_predicted_effects(self, version_id: str, effects: pd.DataFrame) -> WriteStats:
        """(:Perturbation)-[:PREDICTED_EFFECT {context, value, direction, rank}]->(:Gene) from
        `models.discovery.top_effects` / `impute_effects` output (perturbation = perturbation id)."""
        stats = WriteStats("PREDICTED_EFFECT")
        rows = []
        for r, (entrez,) in self._resolved(effects, stats, "effect", ("readout",),
                                           lambda r: f"{r.perturbation}@{r.context}->{r.readout}",
                                           "readout not resolvable"):
            if r.direction not in ("up", "down"):
                raise ValueError(f"direction must be 'up' or 'down', not {r.direction!r}")
            rows.append({"perturbation_id": str(r.perturbation), "context": str(r.context), "entrez_id": entrez,
                         "readout": str(r.readout), "value": finite_or_none(r.value), "direction": r.direction,
                         "rank": int(r.rank)})
        rows = _last_per_key(stats, "effect", rows, ("perturbation_id", "context", "entrez_id"))
        return self.run_batches(DQ.WRITE_PREDICTED_EFFECTS, rows, stats, params={"version_id": version_id})

    def clear_stale_embeddings(self, version_id: str, *, kinds: Iterable[str] | None = None) -> int:
        """Remove embedding properties written by versions other than `version_id`. Returns the count."""
        return sum(batched_delete(self.driver, self.database, DQ.CLEAR_STALE_EMBEDDINGS[k],
                                  batch_size=self.versions.delete_batch_size, column="cleared",
                                  version_id=version_id)
                   for k in (kinds or DQ.EMBEDDING_TARGETS))

    # ------------------------------------------------------------------------- the whole publish
    def publish(self, record: ModelVersionRecord, *, embeddings: Mapping[str, pd.DataFrame] | None = None,
                mechanisms: pd.DataFrame | None = None, interactions: pd.DataFrame | None = None,
                interaction_basis: str = "embedding", effects: pd.DataFrame | None = None,
                retention: int | None = None, quality: Mapping[str, Any] | None = None,
                make_current: bool = True) -> PublishReport:
        """Write a model version and its discoveries, make it current, clear stale embeddings, prune.

        embeddings: kind ('compound', 'perturbation', 'gene_perturbation', 'readout', 'context') ->
        DataFrame (index = node name, columns = dimensions). `quality`: the per-discovery-type record
        (`ModelVersions.record_quality`). With make_current=False the version's links are written and
        left non-current with status 'awaiting_check' (the Dagster asset check decides; `promote` then
        makes it current and writes its embeddings: they live on the nodes, where a version that is then
        refused would overwrite the current one's). Re-running with the same record is idempotent (same
        version id: nothing duplicated)."""
        began = time.perf_counter()
        embeddings = dict(embeddings or {})
        if embeddings and not make_current:
            raise ValueError("embeddings of a version awaiting its check are written when it is promoted: "
                             "pass them to promote")
        self.ensure_schema()
        version = record.version_id
        report = PublishReport(version, self.versions.register(record))
        if mechanisms is not None:
            report.stats["SHARES_MECHANISM_WITH"] = self.write_mechanism_links(version, mechanisms)
        if interactions is not None:
            report.stats["PREDICTED_INTERACTION"] = self.write_gene_interactions(version, interactions,
                                                                                 basis=interaction_basis)
        if quality is not None:
            self.versions.record_quality(version, quality)
        if effects is not None:
            report.stats["PREDICTED_EFFECT"] = self.write_predicted_effects(version, effects)
        self.versions.record_summary(version)
        if make_current:
            self.promote(version, embeddings=embeddings, retention=retention, report=report)
        else:
            self.versions.set_status(version, AWAITING_CHECK)
        report.seconds = time.perf_counter() - began
        return report

    def promote(self, version_id: str, *, embeddings: Mapping[str, pd.DataFrame] | None = None,
                kinds: Iterable[str] | None = None, retention: int | None = None,
                report: PublishReport | None = None) -> PublishReport:
        """Make the version current with its `embeddings` (kind -> DataFrame, as in `publish`), atomically:
        one write transaction sets the embeddings on their nodes, clears embeddings of names the version
        lacks (`kinds`: default the kinds in `embeddings`, else all) and marks the version current
        (status 'complete'). Any failure (an unknown, refused or abandoned version, an invalid input, the
        server) rolls all of it back: the previous current version keeps its flag and its embeddings.
        Then the vector indexes are created (or recreated at a new dimension), refreshed, and versions
        beyond the retention pruned. Embeddings are validated before the transaction starts."""
        began = time.perf_counter()
        report = report or PublishReport(version_id, created=False)
        embeddings = dict(embeddings or {})
        if kinds is None:
            kinds = embeddings.keys() if embeddings else DQ.EMBEDDING_TARGETS
        kinds = list(kinds)
        dims = {k: _check_dim(k, int(e.shape[1])) for k, e in embeddings.items()}
        prepared = {kind: self._embedding_rows(kind, emb) for kind, emb in embeddings.items()}
        self.ensure_schema()

        def work(tx: ManagedTransaction) -> tuple[dict[str, WriteStats], int]:
            # fresh stats per attempt: the driver may retry this function on a transient error
            stats = {}
            for kind, (skipped, rows) in prepared.items():
                st = WriteStats(skipped.what, quarantined=list(skipped.quarantined))
                stats[f"embeddings:{kind}"] = self.run_batches_in(
                    tx, DQ.SET_EMBEDDINGS[kind], rows, st, batch_size=EMBEDDING_BATCH_SIZE,
                    params={"version_id": version_id})
            cleared = sum(batched_delete_in(tx, DQ.CLEAR_STALE_EMBEDDINGS[k], batch_size=self.versions.delete_batch_size,
                                            column="cleared", version_id=version_id) for k in kinds)
            ModelVersions.set_current_in(tx, version_id)
            return stats, cleared

        with self.driver.session(database=self.database) as session:
            stats, report.stale_embeddings_cleared = session.execute_write(work)
        report.stats.update(stats)
        if dims:  # after the switch: a new dimension's vectors are indexed once the index is rebuilt
            self.ensure_schema(dims=dims)
        if kinds:
            with self.driver.session(database=self.database) as session:
                session.run(DQ.AWAIT_INDEX_REFRESH).consume()
        self.versions.backfill_summaries()
        report.pruned = self.versions.prune(retention)
        report.seconds += time.perf_counter() - began
        return report

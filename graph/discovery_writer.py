"""Write-back of LPM discoveries into Neo4j, model-version bookkeeping, and running the named queries.

All Cypher comes from graph.discovery_queries. Writes are batched `UNWIND $rows` statements in
managed write transactions (`session.execute_write`), keyed by (endpoints, modelVersion), so
writing the same model version twice changes nothing. The order a Dagster asset follows (what
`publish_discoveries` does):

    ensure_discovery_schema(driver)                       # constraint, rel indexes
    register_model_version(driver, record)                # new version: current=false, status 'writing'
    write_mechanism_links(...) / write_gene_interactions(...) / write_predicted_effects(...)
    record_discovery_quality(driver, version_id, quality) # per discovery type: source, score, baseline
    --- with make_current=False the version stops here, status 'awaiting_check'; the Dagster check
        on `discoveries` decides: refused -> `refuse_version` (status 'refused', reason; no named
        query reads it, `prune_versions` deletes it); passed -> `promote_version` (asset
        `current_model_version`) does: ---
    ensure_discovery_schema(driver, dims) + write_embeddings(...)  # vector indexes; node properties
    set_current_version(driver, version_id)               # exactly one current version, atomically
    clear_stale_embeddings(driver, version_id)            # embeddings of names the new model lacks
    prune_model_versions(driver, retention)               # beyond settings.model_retention

Queries on the current version never see a half-written version: it becomes current only after all
its links are written. Embedding properties on nodes always belong to the latest published (or
being-published) model; per-version copies are not kept (they would multiply the store by the
retention for little use: the links carry the version).

Reading: `run_named_query` (a NAMED_QUERIES entry, read transaction). Raw Cypher from people runs
through `graph.cypher_guard` (plan checked, bounded, streamed).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from neo4j import READ_ACCESS, Driver, ManagedTransaction, RoutingControl

from graph import discovery_queries as DQ
from graph.records import QuarantineRecord
from graph.writer import SymbolMap, WriteStats

DEFAULT_BATCH_SIZE = 5_000
DELETE_BATCH_SIZE = 10_000


class ModelVersionConflict(RuntimeError):
    """The version id exists with a different config (a different model needs a new id)."""


# ---------------------------------------------------------------------------------------------
# Model versions
# ---------------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def code_version(repo: Path | None = None) -> str:
    """The git commit of the code (with '-dirty' when the tree has changes), or '' without git."""
    cwd = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha}-dirty" if dirty else sha


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class ModelVersionRecord:
    """Everything that identifies a trained model. `version_id` defaults to a hash of config + data."""

    config: Mapping[str, Any]
    dataset_ids: tuple[str, ...] = ()
    dataset_hashes: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    trained_at: str = ""
    code_version: str = ""
    version_id: str = ""
    embedding_dim: int | None = None
    checkpoint_path: str = ""
    # The production predictor's selection (models.predictor.Selection.to_dict()): what predicts the
    # effects, every candidate's validation metrics, the margin over the best baseline; the
    # embeddings are the LPM's whatever is chosen (`embeddings_from`).
    predictor: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.dataset_hashes) not in (0, len(self.dataset_ids)):
            raise ValueError("dataset_hashes must be empty or one per dataset id")
        if not self.trained_at:
            object.__setattr__(self, "trained_at", _now())
        if not self.version_id:
            digest = hashlib.sha256(_json([self.config, list(self.dataset_ids), list(self.dataset_hashes),
                                           self.trained_at]).encode()).hexdigest()[:10]
            stamp = self.trained_at.replace("-", "").replace(":", "")[:15]
            object.__setattr__(self, "version_id", f"lpm-{stamp}-{digest}")

    def props(self) -> dict[str, Any]:
        snapshot = dict(zip(self.dataset_ids, self.dataset_hashes, strict=False)) if self.dataset_hashes else {
            d: "" for d in self.dataset_ids}
        return {
            "config": _json(self.config),
            "data_snapshot": _json(snapshot),
            "dataset_ids": list(self.dataset_ids),
            "dataset_hashes": list(self.dataset_hashes),
            "metrics": _json(self.metrics),
            "trained_at": self.trained_at,
            "code_version": self.code_version,
            "embedding_dim": self.embedding_dim,
            "checkpoint_path": self.checkpoint_path,
            **self._predictor_props(),
        }

    def _predictor_props(self) -> dict[str, Any]:
        """Flat properties that `model-versions` shows; candidates' metrics and weights as JSON."""
        p = self.predictor
        if not p:
            return {}
        margin = p.get("margin")
        validation, metric = p.get("validation") or {}, p.get("metric")
        score = (validation.get(p.get("chosen")) or {}).get(metric)
        baseline_score = (validation.get(p.get("best_baseline")) or {}).get(metric)
        return {"predictor": p.get("chosen"), "predictor_metric": metric,
                "predictor_score": _float(score), "predictor_baseline_score": _float(baseline_score),
                "predictor_margin": None if margin is None else float(margin),
                "predictor_best_baseline": p.get("best_baseline"),
                "predictor_validation": _json(p.get("validation", {})),
                "predictor_weights": _json(p.get("stacking_weights", {})),
                "embeddings_from": p.get("embeddings_from", "lpm")}


def register_model_version(driver: Driver, record: ModelVersionRecord, *, database: str | None = None) -> bool:
    """Create the ModelVersion node (non-current, status 'writing') and link its datasets.

    Returns True when the node was created, False when it already existed with the same config
    (idempotent); raises ModelVersionConflict when it exists with another config.
    """
    props = record.props()

    def work(tx: ManagedTransaction) -> tuple[bool, str | None]:
        result = tx.run(DQ.MERGE_MODEL_VERSION, version_id=record.version_id, props=props, now=_now())
        row = result.single()
        created = result.consume().counters.nodes_created > 0
        if record.dataset_ids:
            tx.run(DQ.LINK_MODEL_DATASETS, version_id=record.version_id,
                   dataset_ids=list(record.dataset_ids)).consume()
        return created, row["config"] if row else None

    with driver.session(database=database) as session:
        created, config = session.execute_write(work)
    if not created and config != props["config"]:
        raise ModelVersionConflict(f"model version {record.version_id!r} exists with a different config")
    return created


def update_model_metrics(driver: Driver, version_id: str, metrics: Mapping[str, Any], *,
                         database: str | None = None) -> None:
    """Replace the metrics JSON of a version (e.g. after the discovery evaluation ran)."""
    driver.execute_query(DQ.UPDATE_MODEL_VERSION_METRICS, version_id=version_id, metrics=_json(metrics),
                         database_=database, routing_=RoutingControl.WRITE)


def record_discovery_quality(driver: Driver, version_id: str, quality: Mapping[str, Any], *,
                             database: str | None = None) -> None:
    """Store, per discovery type, the source published, its validation score and the simple answer's.

    quality: {"predictions": {"status", ...} (the scores come with the record's `predictor`),
              "edges": {"method", "metric", "score", "baseline_score", "gate", ...},
              "mechanisms": {"method", "metric", "score", "baseline_score", "fdr", "significant", ...}}
    (`models.discovery.quality_record`); the flat fields feed `model-versions`, the whole record is
    kept as JSON in `discovery_quality`."""
    edges, mech = dict(quality.get("edges") or {}), dict(quality.get("mechanisms") or {})
    pred = dict(quality.get("predictions") or {})
    records, _, _ = driver.execute_query(
        DQ.SET_DISCOVERY_QUALITY, version_id=version_id, quality=_json(quality),
        edge_method=edges.get("method"), edge_metric=edges.get("metric"), edge_score=_float(edges.get("score")),
        edge_baseline_score=_float(edges.get("baseline_score")), edge_gate=edges.get("gate"),
        predictor_status=pred.get("status"),
        mechanism_method=mech.get("method"),
        mechanism_metric=mech.get("metric"), mechanism_score=_float(mech.get("score")),
        mechanism_baseline_score=_float(mech.get("baseline_score")), mechanism_fdr=_float(mech.get("fdr")),
        significant_mechanism_links=None if mech.get("significant") is None else int(mech["significant"]),
        database_=database, routing_=RoutingControl.WRITE)
    if not records:
        raise KeyError(f"no model version {version_id!r}")


_SUMMARY_COUNT_PROPS = {"SHARES_MECHANISM_WITH": "mechanism_links", "PREDICTED_INTERACTION": "interaction_links",
                       "PREDICTED_EFFECT": "effect_links"}


def record_version_summary(driver: Driver, version_id: str, *, database: str | None = None) -> list[dict[str, Any]]:
    """Compare a version's links with the previous kept version's and store the result (and the
    link counts) on the version node, where `version-summary` and `model-versions` read it.
    Returns the summary rows."""
    rows = driver.execute_query(DQ.COMPUTE_VERSION_SUMMARY, version=version_id, database_=database).records
    rows = [r.data() for r in rows]
    if not rows:
        raise KeyError(f"no model version {version_id!r}")
    by_rel = {r["relationship"]: r for r in rows}
    counts = {prop: int(by_rel[rel]["added"] + by_rel[rel]["kept"]) if rel in by_rel else 0
              for rel, prop in _SUMMARY_COUNT_PROPS.items()}
    driver.execute_query(
        DQ.STORE_VERSION_SUMMARY, version_id=version_id, previous_version=rows[0]["previous_version"],
        relationships=[r["relationship"] for r in rows], added=[int(r["added"]) for r in rows],
        removed=[int(r["removed"]) for r in rows], kept=[int(r["kept"]) for r in rows], now=_now(),
        database_=database, **counts)
    return rows


def backfill_version_summaries(driver: Driver, *, database: str | None = None) -> list[str]:
    """Store the summary of every complete version that has none (graphs written before summaries
    were stored at publish time). Returns the versions filled in."""
    missing = [r["version_id"] for r in driver.execute_query(DQ.VERSIONS_WITHOUT_SUMMARY, database_=database).records]
    for version_id in missing:
        record_version_summary(driver, version_id, database=database)
    return missing


def set_current_version(driver: Driver, version_id: str, *, database: str | None = None) -> None:
    """Mark `version_id` current (status 'complete') and every other version non-current, in one tx."""

    def work(tx: ManagedTransaction) -> str | None:
        row = tx.run(DQ.SET_CURRENT_VERSION, version_id=version_id, now=_now()).single()
        return row["version_id"] if row else None

    with driver.session(database=database) as session:
        if session.execute_write(work) is None:
            raise KeyError(f"no model version {version_id!r}")


def current_version(driver: Driver, *, database: str | None = None) -> str | None:
    records, _, _ = driver.execute_query(DQ.CURRENT_VERSION, database_=database, routing_=RoutingControl.READ)
    if len(records) > 1:  # never written by this module; reported rather than hidden
        raise RuntimeError(f"{len(records)} model versions are marked current")
    return records[0]["version_id"] if records else None


def list_model_versions(driver: Driver, *, database: str | None = None) -> list[dict[str, Any]]:
    records, _, _ = driver.execute_query(DQ.LIST_MODEL_VERSIONS_RAW, database_=database, routing_=RoutingControl.READ)
    return [r.data() for r in records]


REFUSED = "refused"


def refuse_version(driver: Driver, version_id: str, reason: str, *, database: str | None = None) -> None:
    """Mark a non-current version refused by a blocking check (status 'refused', `refused_reason`).
    Named queries never read it; `prune_versions` removes its links. A current version cannot be
    refused: publish another first."""
    records, _, _ = driver.execute_query(DQ.REFUSE_MODEL_VERSION, version_id=version_id, reason=str(reason),
                                         now=_now(), database_=database, routing_=RoutingControl.WRITE)
    if not records:
        raise KeyError(f"no non-current model version {version_id!r} to refuse")


def prune_versions(driver: Driver, *, non_current: bool = False, dry_run: bool = False,
                   database: str | None = None, batch_size: int = DELETE_BATCH_SIZE) -> list[dict[str, Any]]:
    """Delete refused versions (and, with `non_current`, every published version but the current
    one) with their links. Versions in flight ('writing', 'awaiting_check') are kept. Returns one row
    per version: version_id, status, refused_reason, and the deleted counts (none with dry_run)."""
    records, _, _ = driver.execute_query(DQ.VERSIONS_TO_PRUNE, non_current=non_current, database_=database,
                                         routing_=RoutingControl.READ)
    rows = [r.data() for r in records]
    if not dry_run:
        for row in rows:
            row.update(delete_model_version(driver, row["version_id"], database=database, batch_size=batch_size))
    return rows


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


def _check_dim(kind: str, dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= int(dim) <= 4096:
        raise ValueError(f"embedding dimension for {kind!r} must be an int in 1..4096, not {dim!r}")
    return int(dim)


def ensure_discovery_schema(driver: Driver, *, dims: Mapping[str, int] | None = None,
                            database: str | None = None, timeout_s: int = 300) -> list[str]:
    """ModelVersion constraint, modelVersion relationship indexes, and a cosine vector index per
    embedding kind in `dims` (kind -> dimension). An existing vector index with another dimension
    (a model of a different width) is dropped and recreated. Idempotent; returns the DDL run."""
    dims = {k: _check_dim(k, v) for k, v in (dims or {}).items()}
    unknown = set(dims) - set(DQ.EMBEDDING_TARGETS)
    if unknown:
        raise ValueError(f"unknown embedding kinds {sorted(unknown)}; known: {sorted(DQ.EMBEDDING_TARGETS)}")
    ran: list[str] = []
    with driver.session(database=database) as session:
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


# ---------------------------------------------------------------------------------------------
# Batched writes
# ---------------------------------------------------------------------------------------------


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    if size <= 0:
        raise ValueError("batch_size must be positive")
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _write(driver: Driver, query: str, rows: list[dict[str, Any]], stats: WriteStats, *,
           database: str | None, batch_size: int, **params: Any) -> WriteStats:
    start = time.perf_counter()
    with driver.session(database=database) as session:
        for batch in _batches(rows, batch_size):

            def work(tx: ManagedTransaction, batch: list[dict[str, Any]] = batch) -> tuple[int, Any]:
                result = tx.run(query, rows=batch, **params)
                record = result.single()
                return (record["written"] if record else 0), result.consume().counters

            written, counters = session.execute_write(work)
            stats.rows += len(batch)
            stats.written += written
            stats.batches += 1
            stats.add_counters(counters)
    stats.seconds += time.perf_counter() - start
    return stats


def _bool(x: Any) -> bool | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return bool(x)


def _float(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return None if math.isnan(v) else v


class _GeneKeys:
    """Gene names (symbol, alias or Entrez id as int/str) -> Entrez ids of Gene nodes in the graph."""

    def __init__(self, driver: Driver, database: str | None, symbol_map: SymbolMap | None):
        self.map = symbol_map or SymbolMap.from_graph(driver, database=database)

    def __call__(self, name: Any) -> int | None:
        if isinstance(name, int | np.integer) and not isinstance(name, bool):
            return int(name) if int(name) in self.map.ids else None
        return self.map.resolve(str(name))


def _skip(stats: WriteStats, what: str, key: str, reason: str) -> None:
    stats.quarantined.append(QuarantineRecord(source=f"discovery:{what}", record_key=key, reason=reason))


def write_embeddings(driver: Driver, version_id: str, kind: str, embeddings: pd.DataFrame, *,
                     symbol_map: SymbolMap | None = None, database: str | None = None,
                     batch_size: int = 2_000) -> WriteStats:
    """Store one kind of embedding on its nodes (see discovery_queries.EMBEDDING_TARGETS).

    The index of `embeddings` names the node: compound id, perturbation id, context id, or for the
    gene kinds a symbol / alias / Entrez id (resolved against the graph's Gene nodes). Names that
    match no node are skipped (written < rows); unresolvable gene names go to `stats.quarantined`.
    """
    if kind not in DQ.EMBEDDING_TARGETS:
        raise ValueError(f"unknown embedding kind {kind!r}")
    target = DQ.EMBEDDING_TARGETS[kind]
    stats = WriteStats(f"embeddings:{kind}")
    values = np.asarray(embeddings.to_numpy(), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("embeddings contain NaN or infinite values")
    genes = _GeneKeys(driver, database, symbol_map) if target.label == "Gene" else None
    rows = []
    for name, vec in zip(embeddings.index, values, strict=True):
        key: Any = name
        if genes is not None:
            key = genes(name)
            if key is None:
                _skip(stats, kind, str(name), "gene name not resolvable to a Gene node")
                continue
        else:
            key = str(name)
        rows.append({"key": key, "vector": vec.tolist()})
    return _write(driver, DQ.SET_EMBEDDINGS[kind], rows, stats, database=database, batch_size=batch_size,
                  version_id=version_id)


def _batched_delete(driver: Driver, query: str, *, database: str | None, batch_size: int,
                    column: str, **params: Any) -> int:
    total = 0
    with driver.session(database=database) as session:
        while True:
            n = session.execute_write(
                lambda tx: tx.run(query, batch_size=batch_size, **params).single()[column])
            total += n
            if n < batch_size:
                return total


def clear_stale_embeddings(driver: Driver, version_id: str, *, kinds: Iterable[str] | None = None,
                           database: str | None = None, batch_size: int = DELETE_BATCH_SIZE) -> int:
    """Remove embedding properties written by versions other than `version_id`. Returns the count."""
    return sum(_batched_delete(driver, DQ.CLEAR_STALE_EMBEDDINGS[k], database=database, batch_size=batch_size,
                               column="cleared", version_id=version_id)
               for k in (kinds or DQ.EMBEDDING_TARGETS))


def write_mechanism_links(driver: Driver, version_id: str, links: pd.DataFrame, *,
                          symbol_map: SymbolMap | None = None, database: str | None = None,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> WriteStats:
    """(:Compound)-[:SHARES_MECHANISM_WITH]->(:Gene) from `models.discovery.mechanism_links` output.

    `compound` must be a compound id; `gene` a symbol / alias / Entrez id. isAnnotatedTarget is set
    in Cypher from the TARGETS relationships present in the graph; `method` (the mechanism source the
    version published, e.g. 'signature_connectivity') from the `method` column when there is one.
    """
    stats = WriteStats("SHARES_MECHANISM_WITH")
    genes = _GeneKeys(driver, database, symbol_map)
    rows = []
    for r in links.itertuples(index=False):
        entrez = genes(r.gene)
        if entrez is None:
            _skip(stats, "mechanism", f"{r.compound}->{r.gene}", "gene not resolvable")
            continue
        rows.append({"compound_id": str(r.compound), "entrez_id": entrez, "score": _float(r.score),
                     "rank": int(r.rank), "zscore": _float(getattr(r, "zscore", None)),
                     "pvalue": _float(getattr(r, "pvalue", None)), "qvalue": _float(getattr(r, "qvalue", None)),
                     "significant": _bool(getattr(r, "significant", None)),
                     "method": str(getattr(r, "method", None) or "") or None})
    return _write(driver, DQ.WRITE_MECHANISM_LINKS, rows, stats, database=database, batch_size=batch_size,
                  version_id=version_id)


def write_gene_interactions(driver: Driver, version_id: str, edges: pd.DataFrame, *, basis: str = "embedding",
                            method: str | None = None, symbol_map: SymbolMap | None = None,
                            database: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> WriteStats:
    """(:Gene)-[:PREDICTED_INTERACTION]->(:Gene) from `models.edge_sources.edges_from_scores` (or
    `models.discovery.gene_interactions`) output.

    `method` (the edge source, e.g. 'signature_correlation') comes from the `method` column when
    there is one, else from the argument. inPrior is set in Cypher (an INTERACTS_WITH edge in either
    direction exists)."""
    if basis not in {"embedding", "profile"}:
        raise ValueError("basis must be 'embedding' or 'profile'")
    stats = WriteStats("PREDICTED_INTERACTION")
    genes = _GeneKeys(driver, database, symbol_map)
    rows = []
    for r in edges.itertuples(index=False):
        a, b = genes(r.source), genes(r.target)
        if a is None or b is None:
            _skip(stats, "interaction", f"{r.source}->{r.target}", "gene not resolvable")
            continue
        rows.append({"a": a, "b": b, "score": _float(r.score), "rank": int(r.rank),
                     "method": str(getattr(r, "method", None) or method or "") or None})
    return _write(driver, DQ.WRITE_GENE_INTERACTIONS, rows, stats, database=database, batch_size=batch_size,
                  version_id=version_id, basis=basis)


def write_predicted_effects(driver: Driver, version_id: str, effects: pd.DataFrame, *,
                            symbol_map: SymbolMap | None = None, database: str | None = None,
                            batch_size: int = DEFAULT_BATCH_SIZE) -> WriteStats:
    """(:Perturbation)-[:PREDICTED_EFFECT {context, value, direction, rank}]->(:Gene) from
    `models.discovery.top_effects` / `impute_effects` output (perturbation = perturbation id)."""
    stats = WriteStats("PREDICTED_EFFECT")
    genes = _GeneKeys(driver, database, symbol_map)
    rows = []
    for r in effects.itertuples(index=False):
        entrez = genes(r.readout)
        if entrez is None:
            _skip(stats, "effect", f"{r.perturbation}@{r.context}->{r.readout}", "readout not resolvable")
            continue
        if r.direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {r.direction!r}")
        rows.append({"perturbation_id": str(r.perturbation), "context": str(r.context), "entrez_id": entrez,
                     "readout": str(r.readout), "value": _float(r.value), "direction": r.direction,
                     "rank": int(r.rank)})
    return _write(driver, DQ.WRITE_PREDICTED_EFFECTS, rows, stats, database=database, batch_size=batch_size,
                  version_id=version_id)


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


def delete_model_version(driver: Driver, version_id: str, *, database: str | None = None,
                         batch_size: int = DELETE_BATCH_SIZE) -> dict[str, int]:
    """Delete a non-current version: its relationships in batches, its embeddings, then its node."""
    if current_version(driver, database=database) == version_id:
        raise ValueError(f"{version_id!r} is the current version; publish another before deleting it")
    deleted = {rel: _batched_delete(driver, DQ.DELETE_VERSION_LINKS[rel], database=database,
                                    batch_size=batch_size, column="deleted", version_id=version_id)
               for rel in DQ.VERSIONED_REL_TYPES}
    deleted["embeddings"] = sum(
        _batched_delete(driver, DQ.CLEAR_VERSION_EMBEDDINGS[k], database=database, batch_size=batch_size,
                        column="cleared", version_id=version_id) for k in DQ.EMBEDDING_TARGETS)
    records, _, _ = driver.execute_query(DQ.DELETE_MODEL_VERSION, version_id=version_id, database_=database,
                                         routing_=RoutingControl.WRITE)
    deleted["ModelVersion"] = records[0]["deleted"]
    return deleted


def prune_model_versions(driver: Driver, retention: int | None = None, *, database: str | None = None,
                         batch_size: int = DELETE_BATCH_SIZE) -> list[str]:
    """Keep the current version and the newest others (by trained_at) up to `retention` in total
    (default settings.model_retention); delete the rest. Refused versions do not count and are not
    deleted here (they would crowd published ones out of the retention; `prune_versions` deletes
    them). Returns the pruned version ids."""
    if retention is None:
        from graph.settings import get_settings

        retention = get_settings().model_retention
    if retention < 1:
        raise ValueError("retention must be at least 1 (the current version is always kept)")
    versions = [v for v in list_model_versions(driver, database=database) if v["status"] != REFUSED]
    keep = [v["version_id"] for v in versions if v["current"]][:1]
    for v in versions:
        if len(keep) >= retention:
            break
        if v["version_id"] not in keep:
            keep.append(v["version_id"])
    pruned = [v["version_id"] for v in versions if v["version_id"] not in keep]
    for version_id in pruned:
        delete_model_version(driver, version_id, database=database, batch_size=batch_size)
    return pruned


# ---------------------------------------------------------------------------------------------
# The whole publish
# ---------------------------------------------------------------------------------------------


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


def publish_discoveries(
    driver: Driver,
    record: ModelVersionRecord,
    *,
    embeddings: Mapping[str, pd.DataFrame] | None = None,
    mechanisms: pd.DataFrame | None = None,
    interactions: pd.DataFrame | None = None,
    interaction_basis: str = "embedding",
    effects: pd.DataFrame | None = None,
    retention: int | None = None,
    database: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: Mapping[str, Any] | None = None,
    make_current: bool = True,
) -> PublishReport:
    """Write a model version and its discoveries, make it current, clear stale embeddings, prune.

    embeddings: kind ('compound', 'perturbation', 'gene_perturbation', 'readout', 'context') ->
    DataFrame (index = node name, columns = dimensions). `quality`: the per-discovery-type record
    (`record_discovery_quality`). With make_current=False the version's links are written and left
    non-current with status 'awaiting_check' (the Dagster asset check decides; `promote_version`
    then makes it current and writes its embeddings: they live on the nodes, where a version that
    is then refused would overwrite the current one's). Re-running with the same record is
    idempotent (same version id: nothing duplicated)."""
    began = time.perf_counter()
    embeddings = dict(embeddings or {})
    if embeddings and not make_current:
        raise ValueError("embeddings of a version awaiting its check are written when it is promoted: "
                         "pass them to promote_version")
    ensure_discovery_schema(driver, database=database)
    report = PublishReport(record.version_id, register_model_version(driver, record, database=database))
    symbols = SymbolMap.from_graph(driver, database=database)
    if mechanisms is not None:
        report.stats["SHARES_MECHANISM_WITH"] = write_mechanism_links(
            driver, record.version_id, mechanisms, symbol_map=symbols, database=database, batch_size=batch_size)
    if interactions is not None:
        report.stats["PREDICTED_INTERACTION"] = write_gene_interactions(
            driver, record.version_id, interactions, basis=interaction_basis, symbol_map=symbols,
            database=database, batch_size=batch_size)
    if quality is not None:
        record_discovery_quality(driver, record.version_id, quality, database=database)
    if effects is not None:
        report.stats["PREDICTED_EFFECT"] = write_predicted_effects(
            driver, record.version_id, effects, symbol_map=symbols, database=database, batch_size=batch_size)
    record_version_summary(driver, record.version_id, database=database)
    if make_current:
        promote_version(driver, record.version_id, embeddings=embeddings, retention=retention, database=database,
                        report=report, symbol_map=symbols)
    else:
        set_version_status(driver, record.version_id, AWAITING_CHECK, database=database)
    report.seconds = time.perf_counter() - began
    return report


AWAITING_CHECK = "awaiting_check"


def set_version_status(driver: Driver, version_id: str, status: str, *, database: str | None = None) -> None:
    records, _, _ = driver.execute_query(DQ.SET_MODEL_VERSION_STATUS, version_id=version_id, status=status,
                                         database_=database, routing_=RoutingControl.WRITE)
    if not records:
        raise KeyError(f"no model version {version_id!r}")


def promote_version(driver: Driver, version_id: str, *, embeddings: Mapping[str, pd.DataFrame] | None = None,
                    kinds: Iterable[str] | None = None, retention: int | None = None, database: str | None = None,
                    report: PublishReport | None = None, symbol_map: SymbolMap | None = None) -> PublishReport:
    """Write the version's `embeddings` (kind -> DataFrame, as in publish_discoveries) onto their
    nodes, make it current (status 'complete'), clear embeddings of names it lacks (`kinds`: default
    the kinds in `embeddings`, else all), wait for the vector indexes, prune. The embeddings are
    written just before the switch, so for that moment they are the new version's while the old
    one is still current (vector queries name the version of what they return)."""
    began = time.perf_counter()
    report = report or PublishReport(version_id, created=False)
    embeddings = dict(embeddings or {})
    if kinds is None:
        kinds = embeddings.keys() if embeddings else DQ.EMBEDDING_TARGETS
    kinds = list(kinds)
    if embeddings:
        ensure_discovery_schema(driver, dims={k: int(e.shape[1]) for k, e in embeddings.items()}, database=database)
        symbols = symbol_map or SymbolMap.from_graph(driver, database=database)
        for kind, emb in embeddings.items():
            report.stats[f"embeddings:{kind}"] = write_embeddings(driver, version_id, kind, emb,
                                                                  symbol_map=symbols, database=database)
    set_current_version(driver, version_id, database=database)
    backfill_version_summaries(driver, database=database)
    report.stale_embeddings_cleared = clear_stale_embeddings(driver, version_id, kinds=kinds, database=database)
    if kinds:
        with driver.session(database=database) as session:
            session.run(DQ.AWAIT_INDEX_REFRESH).consume()
    report.pruned = prune_model_versions(driver, retention, database=database)
    report.seconds += time.perf_counter() - began
    return report


# ---------------------------------------------------------------------------------------------
# Inputs of the discovery computations, read from the graph
# ---------------------------------------------------------------------------------------------


@dataclass
class DiscoveryInputs:
    perturbation_compound: dict[str, str]  # compound perturbation id -> compound id
    perturbation_genes: dict[str, list[int]]  # genetic perturbation id -> Entrez ids it perturbs
    perturbation_types: dict[str, str]
    annotated_targets: dict[str, list[int]]  # compound id -> Entrez ids (TARGETS)
    prior_pairs: list[tuple[int, int]]  # INTERACTS_WITH

    def genetic_groups(self) -> dict[str, str]:
        """Single-gene genetic perturbation id -> Entrez id as text (for aggregate_embeddings)."""
        return {p: str(g[0]) for p, g in self.perturbation_genes.items()
                if len(g) == 1 and self.perturbation_types.get(p) != "compound"}


def fetch_discovery_inputs(driver: Driver, *, database: str | None = None) -> DiscoveryInputs:
    def q(query: str) -> list[dict[str, Any]]:
        records, _, _ = driver.execute_query(query, database_=database, routing_=RoutingControl.READ)
        return [r.data() for r in records]

    pmap = q(DQ.PERTURBATION_MAP)
    return DiscoveryInputs(
        perturbation_compound={r["perturbation_id"]: r["compound_id"] for r in pmap if r["compound_id"]},
        perturbation_genes={r["perturbation_id"]: sorted(r["entrez_ids"]) for r in pmap if r["entrez_ids"]},
        perturbation_types={r["perturbation_id"]: r["perturbation_type"] for r in pmap},
        annotated_targets={r["compound_id"]: sorted(r["entrez_ids"]) for r in q(DQ.ANNOTATED_TARGETS)},
        prior_pairs=[(r["a"], r["b"]) for r in q(DQ.PRIOR_PAIRS)],
    )


def fetch_edge_references(driver: Driver, entrez_ids: Iterable[int], *,
                          database: str | None = None) -> dict[str, list[tuple[int, int]]]:
    """Reference gene pairs among `entrez_ids`, by reference name: complex co-membership (CORUM) and
    prior interactions (STRING, ...), from the networks ingested into the graph."""
    ids = sorted({int(e) for e in entrez_ids})
    out: dict[str, list[tuple[int, int]]] = {}
    for query in (DQ.REFERENCE_COMPLEX_PAIRS, DQ.REFERENCE_INTERACTION_PAIRS):
        records, _, _ = driver.execute_query(query, entrez_ids=ids, database_=database, routing_=RoutingControl.READ)
        for r in records:
            out.setdefault(r["reference"], []).append((int(r["a"]), int(r["b"])))
    return out


# ---------------------------------------------------------------------------------------------
# Reading: named queries and raw Cypher
# ---------------------------------------------------------------------------------------------


def run_named_query(driver: Driver, name: str, params: Mapping[str, Any] | None = None, *,
                    database: str | None = None) -> list[dict[str, Any]]:
    """Run a NAMED_QUERIES entry in a read transaction; `params` are converted to their declared types."""
    if name not in DQ.NAMED_QUERIES:
        raise KeyError(f"no named query {name!r}; known: {sorted(DQ.NAMED_QUERIES)}")
    query = DQ.NAMED_QUERIES[name]
    bound = query.bind(dict(params or {}))
    with driver.session(database=database, default_access_mode=READ_ACCESS) as session:
        return session.execute_read(lambda tx: [r.data() for r in tx.run(query.cypher, bound)])


def stats_dict(stats: WriteStats) -> dict[str, Any]:
    d = asdict(stats)
    d["quarantined"] = len(stats.quarantined)
    return d

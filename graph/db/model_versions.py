"""Model versions in the graph: the ModelVersion record, and `ModelVersions(driver, database)`, which
registers, annotates, promotes, lists, deletes and prunes them.

The lifecycle (status, with `status_at` the time it was entered):

    writing ─► awaiting_check ─► complete (current, then kept until pruned beyond the retention)
       │             ├─────────► refused   (a blocking check failed; `refuse`)
       └─────────────┴─────────► abandoned (still in flight after settings.model_stale_after_hours:
                                            a crash between write and check; `abandon_stale`)

Only 'complete' versions are read by named queries and count towards the retention; refused and
abandoned ones are never made current, and `prune_versions` deletes them. `set_current` makes exactly
one version current in one transaction. Embedding properties and links of a deleted version are
removed in batches (`delete_batch_size` rows per transaction).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from neo4j import Driver, ManagedTransaction, RoutingControl

from graph.db import discovery_queries as DQ
from graph.db.batching import now
from graph.settings import REPO_ROOT

DELETE_BATCH_SIZE = 10_000
WRITING = "writing"  # registered, links being written
AWAITING_CHECK = "awaiting_check"  # written, not current: the blocking check decides
COMPLETE = "complete"  # published: current, or current before (the only status named queries read)
REFUSED = "refused"  # refused by a blocking check: no named query reads it, `prune_versions` deletes it
ABANDONED = "abandoned"  # in flight for longer than the stale age: treated like refused


class ModelVersionConflict(RuntimeError):
    """The version id exists with a different config (a different model needs a new id)."""


def code_version(repo: Path | None = None) -> str:
    """The git commit of the code (with '-dirty' when the tree has changes), or '' without git."""
    cwd = repo or REPO_ROOT
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{sha}-dirty" if dirty else sha


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return None if math.isnan(v) else v


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
            object.__setattr__(self, "trained_at", now("microseconds"))
        if not self.version_id:
            digest = hashlib.sha256(to_json([self.config, list(self.dataset_ids), list(self.dataset_hashes),
                                           self.trained_at]).encode()).hexdigest()[:10]
            stamp = self.trained_at.replace("-", "").replace(":", "")[:15]
            object.__setattr__(self, "version_id", f"lpm-{stamp}-{digest}")

    def props(self) -> dict[str, Any]:
        snapshot = dict(zip(self.dataset_ids, self.dataset_hashes, strict=False)) if self.dataset_hashes else {
            d: "" for d in self.dataset_ids}
        return {
            "config": to_json(self.config),
            "data_snapshot": to_json(snapshot),
            "dataset_ids": list(self.dataset_ids),
            "dataset_hashes": list(self.dataset_hashes),
            "metrics": to_json(self.metrics),
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
                "predictor_score": finite_or_none(score), "predictor_baseline_score": finite_or_none(baseline_score),
                "predictor_margin": None if margin is None else float(margin),
                "predictor_best_baseline": p.get("best_baseline"),
                # the LPM or the stack when it led the best baseline on validation by less than required
                "predictor_passed_over": p.get("passed_over") or None,
                "predictor_validation": to_json(p.get("validation", {})),
                "predictor_weights": to_json(p.get("stacking_weights", {})),
                "embeddings_from": p.get("embeddings_from", "lpm")}


_SUMMARY_COUNT_PROPS = {"SHARES_MECHANISM_WITH": "mechanism_links", "PREDICTED_INTERACTION": "interaction_links",
                        "PREDICTED_EFFECT": "effect_links"}


def batched_delete(driver: Driver, database: str | None, query: str, *, batch_size: int, column: str,
                   **params: Any) -> int:
    """Run a `... LIMIT $batch_size` delete/clear query until it touches fewer than batch_size rows;
    one write transaction each (bounded memory on the server). Returns the total from `column`."""
    with driver.session(database=database) as session:
        return _until_short(lambda: session.execute_write(
            lambda tx: tx.run(query, batch_size=batch_size, **params).single()[column]), batch_size)


def batched_delete_in(tx: ManagedTransaction, query: str, *, batch_size: int, column: str, **params: Any) -> int:
    """`batched_delete` inside the caller's transaction (the batches commit or roll back with it)."""
    return _until_short(lambda: tx.run(query, batch_size=batch_size, **params).single()[column], batch_size)


def _until_short(step: Any, batch_size: int) -> int:
    total = 0
    while True:
        n = step()
        total += n
        if n < batch_size:
            return total


class ModelVersions:
    """The ModelVersion nodes of one database."""

    def __init__(self, driver: Driver, database: str | None = None, delete_batch_size: int = DELETE_BATCH_SIZE):
        self.driver = driver
        self.database = database
        self.delete_batch_size = delete_batch_size

    def _write(self, query: str, **params: Any) -> list[Any]:
        return self.driver.execute_query(query, params, database_=self.database, routing_=RoutingControl.WRITE).records

    def _read(self, query: str, **params: Any) -> list[Any]:
        return self.driver.execute_query(query, params, database_=self.database, routing_=RoutingControl.READ).records

    def register(self, record: ModelVersionRecord) -> bool:
        """Create the ModelVersion node (non-current, status 'writing') and link its datasets.

        Returns True when the node was created, False when it already existed with the same config
        (idempotent); raises ModelVersionConflict when it exists with another config.
        """
        props = record.props()

        def work(tx: ManagedTransaction) -> tuple[bool, str | None]:
            result = tx.run(DQ.MERGE_MODEL_VERSION, version_id=record.version_id, props=props, now=now("microseconds"))
            row = result.single()
            created = result.consume().counters.nodes_created > 0
            if record.dataset_ids:
                tx.run(DQ.LINK_MODEL_DATASETS, version_id=record.version_id,
                       dataset_ids=list(record.dataset_ids)).consume()
            return created, row["config"] if row else None

        with self.driver.session(database=self.database) as session:
            created, config = session.execute_write(work)
        if not created and config != props["config"]:
            raise ModelVersionConflict(f"model version {record.version_id!r} exists with a different config")
        return created

    def update_metrics(self, version_id: str, metrics: Mapping[str, Any]) -> None:
        """Replace the metrics JSON of a version (e.g. after the discovery evaluation ran)."""
        self._write(DQ.UPDATE_MODEL_VERSION_METRICS, version_id=version_id, metrics=to_json(metrics))

    def record_quality(self, version_id: str, quality: Mapping[str, Any]) -> None:
        """Store, per discovery type, the source published, its validation score and the simple answer's.

        quality: {"predictions": {"status", ...} (the scores come with the record's `predictor`),
                  "edges": {"method", "metric", "score", "baseline_score", "gate", ...},
                  "mechanisms": {"method", "metric", "score", "baseline_score", "fdr", "significant", ...}}
        (`models.discovery.quality_record`); the flat fields feed `model-versions`, the whole record is
        kept as JSON in `discovery_quality`."""
        edges, mech = dict(quality.get("edges") or {}), dict(quality.get("mechanisms") or {})
        pred = dict(quality.get("predictions") or {})
        f = finite_or_none
        records = self._write(
            DQ.SET_DISCOVERY_QUALITY, version_id=version_id, quality=to_json(quality),
            edge_method=edges.get("method"), edge_metric=edges.get("metric"), edge_score=f(edges.get("score")),
            edge_baseline_score=f(edges.get("baseline_score")), edge_gate=edges.get("gate"),
            predictor_status=pred.get("status"), mechanism_method=mech.get("method"),
            mechanism_metric=mech.get("metric"), mechanism_score=f(mech.get("score")),
            mechanism_baseline_score=f(mech.get("baseline_score")), mechanism_fdr=f(mech.get("fdr")),
            significant_mechanism_links=None if mech.get("significant") is None else int(mech["significant"]))
        if not records:
            raise KeyError(f"no model version {version_id!r}")

    def record_summary(self, version_id: str) -> list[dict[str, Any]]:
        """Compare a version's links with the previous kept version's and store the result (and the
        link counts) on the version node, where `version-summary` and `model-versions` read it.
        Returns the summary rows."""
        rows = [r.data() for r in self._write(DQ.COMPUTE_VERSION_SUMMARY, version=version_id)]
        if not rows:
            raise KeyError(f"no model version {version_id!r}")
        by_rel = {r["relationship"]: r for r in rows}
        counts = {prop: int(by_rel[rel]["added"] + by_rel[rel]["kept"]) if rel in by_rel else 0
                  for rel, prop in _SUMMARY_COUNT_PROPS.items()}
        self._write(
            DQ.STORE_VERSION_SUMMARY, version_id=version_id, previous_version=rows[0]["previous_version"],
            relationships=[r["relationship"] for r in rows], added=[int(r["added"]) for r in rows],
            removed=[int(r["removed"]) for r in rows], kept=[int(r["kept"]) for r in rows], now=now("microseconds"),
            **counts)
        return rows

    def backfill_summaries(self) -> list[str]:
        """Store the summary of every complete version that has none (graphs written before summaries
        were stored at publish time). Returns the versions filled in."""
        missing = [r["version_id"] for r in self._read(DQ.VERSIONS_WITHOUT_SUMMARY)]
        for version_id in missing:
            self.record_summary(version_id)
        return missing

    @staticmethod
    def set_current_in(tx: ManagedTransaction, version_id: str) -> None:
        """Inside `tx`: mark `version_id` current (status 'complete') and every other version non-current.
        KeyError (the transaction then rolls back) when the version is unknown, refused or abandoned."""
        if tx.run(DQ.SET_CURRENT_VERSION, version_id=version_id, now=now("microseconds")).single() is None:
            raise KeyError(f"no model version {version_id!r} that can be made current "
                           "(unknown, refused or abandoned)")

    def set_current(self, version_id: str) -> None:
        """Mark `version_id` current (status 'complete') and every other version non-current, in one tx."""
        with self.driver.session(database=self.database) as session:
            session.execute_write(self.set_current_in, version_id)

    def set_status(self, version_id: str, status: str) -> None:
        if not self._write(DQ.SET_MODEL_VERSION_STATUS, version_id=version_id, status=status,
                           now=now("microseconds")):
            raise KeyError(f"no model version {version_id!r}")

    def stale_in_flight(self, stale_after_hours: float | None = None) -> list[dict[str, Any]]:
        """Non-current versions still 'writing' / 'awaiting_check' (or without status) whose status is
        older than `stale_after_hours` (default settings.model_stale_after_hours): version_id, status,
        since. The current version is never among them."""
        if stale_after_hours is None:
            from graph.settings import get_settings

            stale_after_hours = get_settings().model_stale_after_hours
        if not stale_after_hours > 0:
            raise ValueError(f"the stale age must be a positive number of hours, not {stale_after_hours!r}")
        cutoff = (datetime.now(UTC) - timedelta(hours=stale_after_hours)).isoformat(timespec="microseconds")
        rows = [r.data() for r in self._read(DQ.STALE_IN_FLIGHT_VERSIONS, cutoff=cutoff)]
        for row in rows:
            row["reason"] = (f"still {row['status'] or 'without status'!r} since {row['since'] or 'an unknown time'}, "
                             f"more than {stale_after_hours:g} h: its write or check never finished")
        return rows

    def abandon_stale(self, stale_after_hours: float | None = None, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Mark every stale in-flight version (`stale_in_flight`) 'abandoned' with the reason; with
        `dry_run` only list them. Returns the rows (version_id, status before, since, reason)."""
        rows = self.stale_in_flight(stale_after_hours)
        if not dry_run:
            rows = [r for r in rows if self._write(DQ.ABANDON_MODEL_VERSION, version_id=r["version_id"],
                                                   reason=r["reason"], now=now("microseconds"))]
        return rows

    def refuse(self, version_id: str, reason: str) -> None:
        """Mark a non-current version refused by a blocking check (status 'refused', `refused_reason`).
        Named queries never read it; `prune_versions` removes its links. A current version cannot be
        refused: publish another first."""
        if not self._write(DQ.REFUSE_MODEL_VERSION, version_id=version_id, reason=str(reason), now=now("microseconds")):
            raise KeyError(f"no non-current model version {version_id!r} to refuse")

    def current(self) -> str | None:
        records = self._read(DQ.CURRENT_VERSION)
        if len(records) > 1:  # never written by this module; reported rather than hidden
            raise RuntimeError(f"{len(records)} model versions are marked current")
        return records[0]["version_id"] if records else None

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first: version_id, current, status, trained_at, ..."""
        return [r.data() for r in self._read(DQ.LIST_MODEL_VERSIONS_RAW)]

    def delete(self, version_id: str) -> dict[str, int]:
        """Delete a non-current version: its relationships in batches, its embeddings, then its node."""
        if self.current() == version_id:
            raise ValueError(f"{version_id!r} is the current version; publish another before deleting it")
        size = self.delete_batch_size
        deleted = {rel: batched_delete(self.driver, self.database, DQ.DELETE_VERSION_LINKS[rel], batch_size=size,
                                       column="deleted", version_id=version_id)
                   for rel in DQ.VERSIONED_REL_TYPES}
        deleted["embeddings"] = sum(
            batched_delete(self.driver, self.database, DQ.CLEAR_VERSION_EMBEDDINGS[k], batch_size=size,
                           column="cleared", version_id=version_id) for k in DQ.EMBEDDING_TARGETS)
        deleted["ModelVersion"] = self._write(DQ.DELETE_MODEL_VERSION, version_id=version_id)[0]["deleted"]
        return deleted

    def prune(self, retention: int | None = None) -> list[str]:
        """Keep the current version and the newest other published ones (by trained_at) up to `retention`
        in total (default settings.model_retention); delete the rest. Only published ('complete')
        versions count and are deleted here: a version in flight may be another run's, still being
        written or checked; refused and abandoned ones would crowd published ones out of the retention
        (`prune_versions` deletes them). Returns the pruned version ids."""
        if retention is None:
            from graph.settings import get_settings

            retention = get_settings().model_retention
        if retention < 1:
            raise ValueError("retention must be at least 1 (the current version is always kept)")
        versions = [v for v in self.list_versions() if v["status"] == COMPLETE]
        keep = [v["version_id"] for v in versions if v["current"]][:1]
        for v in versions:
            if len(keep) >= retention:
                break
            if v["version_id"] not in keep:
                keep.append(v["version_id"])
        pruned = [v["version_id"] for v in versions if v["version_id"] not in keep]
        for version_id in pruned:
            self.delete(version_id)
        return pruned

    def prune_versions(self, *, non_current: bool = False, dry_run: bool = False,
                       stale_after_hours: float | None = None) -> list[dict[str, Any]]:
        """Mark stale in-flight versions abandoned (`abandon_stale(stale_after_hours)`), then delete
        refused and abandoned versions (and, with `non_current`, every published version but the
        current one) with their links. Versions in flight for less than the stale age are kept; the
        current one always. Returns one row per version: version_id, status, refused_reason,
        abandoned_reason, and the deleted counts (none with dry_run: stale versions are then listed with
        status 'abandoned' and the reason they would get)."""
        stale = self.abandon_stale(stale_after_hours, dry_run=dry_run)
        rows = [r.data() for r in self._read(DQ.VERSIONS_TO_PRUNE, non_current=non_current)]
        if dry_run:
            rows += [{"version_id": r["version_id"], "status": ABANDONED, "refused_reason": None,
                      "abandoned_reason": r["reason"]} for r in stale]
        else:
            for row in rows:
                row.update(self.delete(row["version_id"]))
        return rows

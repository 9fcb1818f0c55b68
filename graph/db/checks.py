"""Reads that inspect what an ingest wrote: the Dataset node, the schema's state, counts over the
allowlist and integrity checks. Plain functions on a driver (they write nothing)."""

from __future__ import annotations

from typing import Any

from neo4j import Driver

from graph.db import queries as Q
from graph.db.schema import (
    FULLTEXT_INDEXES,
    INGEST_NODE_LABELS,
    INGEST_REL_TYPES,
    NODE_KEYS,
    NODE_LABELS,
    PROPERTY_INDEXES,
    REL_TYPES,
)


def get_dataset(driver: Driver, dataset_id: str, *, database: str | None = None) -> dict[str, Any] | None:
    records, _, _ = driver.execute_query(Q.GET_DATASET, dataset_id=dataset_id, database_=database)
    return dict(records[0]["dataset"]) if records else None


def check_constraints(driver: Driver, *, database: str | None = None) -> list[str]:
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

"""Reads of the discovery layer: the graph facts the discovery computations need (`fetch_discovery_inputs`,
`fetch_edge_references`) and the named read-only queries (`run_named_query`, what `perturbgraph query`
runs). Raw Cypher from people runs through graph.db.cypher_guard (plan checked, bounded, streamed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from neo4j import READ_ACCESS, Driver, RoutingControl

from graph.db import discovery_queries as DQ
from graph.io.networks import complex_pairs


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
    members: dict[str, list[list[int]]] = {}  # reference -> its complexes' members among ids
    records, _, _ = driver.execute_query(DQ.REFERENCE_COMPLEX_MEMBERS, entrez_ids=ids, database_=database,
                                         routing_=RoutingControl.READ)
    for r in records:
        members.setdefault(r["reference"], []).append([int(e) for e in r["members"]])
    for reference, lists in members.items():
        out[reference] = complex_pairs(lists)
    records, _, _ = driver.execute_query(DQ.REFERENCE_INTERACTION_PAIRS, entrez_ids=ids, database_=database,
                                         routing_=RoutingControl.READ)
    for r in records:
        out.setdefault(r["reference"], []).append((int(r["a"]), int(r["b"])))
    return out



def run_named_query(driver: Driver, name: str, params: Mapping[str, Any] | None = None, *,
                    database: str | None = None) -> list[dict[str, Any]]:
    """Run a NAMED_QUERIES entry in a read transaction; `params` are converted to their declared types."""
    if name not in DQ.NAMED_QUERIES:
        raise KeyError(f"no named query {name!r}; known: {sorted(DQ.NAMED_QUERIES)}")
    query = DQ.NAMED_QUERIES[name]
    bound = query.bind(dict(params or {}))
    with driver.session(database=database, default_access_mode=READ_ACCESS) as session:
        return session.execute_read(lambda tx: [r.data() for r in tx.run(query.cypher, bound)])

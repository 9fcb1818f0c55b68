"""graph.db.model_versions' lifecycle against the real Neo4j: stale in-flight versions are found,
abandoned and pruned (a fresh one and the current one never), and promotion switches the embeddings
and the current flag in one transaction (a failed promotion leaves the previous version intact)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from test_discovery_writer import build_base, discoveries, publish, record
from typer.testing import CliRunner

from graph.db import cypher_guard as CG
from graph.db import discovery_queries as DQ
from graph.db import discovery_reads as DR
from graph.db.discovery_writer import DiscoveryWriter
from graph.db.model_versions import ABANDONED, AWAITING_CHECK, COMPLETE, ModelVersions
from graph.settings import reload_settings
from pipelines.cli import query as query_cli

pytestmark = pytest.mark.neo4j


def _age(driver, version_id: str, hours: float, *, prop: str = "status_at") -> None:
    """Move a version's timestamp `hours` into the past (a crash long ago), through a parameter."""
    stamp = (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
    CG.run_cypher(driver, f"MATCH (m:ModelVersion {{version_id: $v}}) SET m.{prop} = $t",
                  {"v": version_id, "t": stamp}, write=True)


def _awaiting(driver, rec, seed):
    _, mech, inter, effects = discoveries(seed=seed)
    DiscoveryWriter(driver).publish(rec, mechanisms=mech, interactions=inter, effects=effects, retention=5,
                                    make_current=False)


def _status(driver) -> dict[str, str]:
    return {v["version_id"]: v["status"] for v in ModelVersions(driver).list_versions()}


def test_stale_in_flight_versions_are_abandoned_and_pruned_fresh_and_current_kept(empty_graph, monkeypatch):
    build_base(empty_graph)
    cur = record("2025-01-01T00:00:00")
    publish(empty_graph, cur)
    _age(empty_graph, cur.version_id, 1000)  # an old current version is never stale
    old, fresh, legacy = (record(f"2025-0{i}-01T00:00:00", i=i) for i in (2, 3, 4))
    _awaiting(empty_graph, old, 1)
    _age(empty_graph, old.version_id, 48)  # its check never ran
    _awaiting(empty_graph, fresh, 2)
    _age(empty_graph, fresh.version_id, 2)
    ModelVersions(empty_graph).register(legacy)  # left 'writing' by older code: no status_at, old created_at
    CG.run_cypher(empty_graph, "MATCH (m:ModelVersion {version_id: $v}) REMOVE m.status_at",
                  {"v": legacy.version_id}, write=True)
    _age(empty_graph, legacy.version_id, 30, prop="created_at")
    versions = ModelVersions(empty_graph)

    stale = versions.stale_in_flight(24)
    assert [(r["version_id"], r["status"]) for r in stale] == [(old.version_id, AWAITING_CHECK),
                                                               (legacy.version_id, "writing")]
    assert "never finished" in stale[0]["reason"]
    assert [r["version_id"] for r in versions.stale_in_flight(1)] == [old.version_id, legacy.version_id,
                                                                     fresh.version_id]
    # the default age comes from settings
    monkeypatch.setenv("PERTURBGRAPH_MODEL_STALE_AFTER_HOURS", "40")
    reload_settings()
    try:
        assert [r["version_id"] for r in versions.stale_in_flight()] == [old.version_id]
    finally:
        monkeypatch.delenv("PERTURBGRAPH_MODEL_STALE_AFTER_HOURS")
        reload_settings()
    with pytest.raises(ValueError):
        versions.stale_in_flight(0)

    # retention pruning after a promotion never deletes another run's version in flight
    assert versions.prune(retention=1) == []
    assert set(_status(empty_graph)) == {cur.version_id, old.version_id, fresh.version_id, legacy.version_id}

    dry = versions.prune_versions(dry_run=True, stale_after_hours=24)
    assert {(r["version_id"], r["status"]) for r in dry} == {(old.version_id, ABANDONED),
                                                            (legacy.version_id, ABANDONED)}
    assert _status(empty_graph)[old.version_id] == AWAITING_CHECK  # dry run: nothing changed

    abandoned = versions.abandon_stale(24)
    assert [r["version_id"] for r in abandoned] == [old.version_id, legacy.version_id]
    listed = {r["version_id"]: r for r in DR.run_named_query(empty_graph, "model-versions")}
    assert listed[old.version_id]["status"] == ABANDONED and "never finished" in listed[old.version_id]["abandoned_reason"]
    assert listed[fresh.version_id]["status"] == AWAITING_CHECK and listed[cur.version_id]["status"] == COMPLETE
    with pytest.raises(KeyError, match="abandoned"):
        versions.set_current(old.version_id)  # an abandoned version is never made current
    for name, params in (("mechanism", {"compound": "RAPA", "all": True}), ("interactions", {"gene": "MTOR"})):
        assert DR.run_named_query(empty_graph, name, {**params, "version": old.version_id}) == []

    pruned = versions.prune_versions(stale_after_hours=24)
    assert sorted(r["version_id"] for r in pruned) == sorted([old.version_id, legacy.version_id])
    assert next(r for r in pruned if r["version_id"] == old.version_id)["SHARES_MECHANISM_WITH"] > 0
    assert _status(empty_graph) == {cur.version_id: COMPLETE, fresh.version_id: AWAITING_CHECK}
    assert versions.current() == cur.version_id
    for rel in DQ.VERSIONED_REL_TYPES:
        assert CG.run_cypher(empty_graph, DQ.COUNT_VERSION_LINKS[rel], {"version_id": old.version_id})[0]["n"] == 0
    # the fresh version can still pass its check and be promoted
    DiscoveryWriter(empty_graph).promote(fresh.version_id, retention=5)
    assert versions.current() == fresh.version_id


def _embeddings(driver) -> dict[tuple[str, str], tuple[list[float], str]]:
    rows = CG.run_cypher(driver, "MATCH (n) WHERE n.embedding_perturbation IS NOT NULL "
                                 "RETURN labels(n)[0] AS label, coalesce(n.symbol, n.compound_id) AS key, "
                                 "n.embedding_perturbation AS vec, n.embedding_perturbation_version AS v")
    return {(r["label"], r["key"]): (r["vec"], r["v"]) for r in rows}


def test_promotion_switches_embeddings_and_current_together_or_not_at_all(empty_graph):
    build_base(empty_graph)
    v1, v2, v3 = (record(f"2025-0{i}-01T00:00:00", i=i) for i in (1, 2, 3))
    publish(empty_graph, v1, seed=0)
    before = _embeddings(empty_graph)
    assert before and {v for _, v in before.values()} == {v1.version_id}
    emb2, *_ = discoveries(seed=1)
    dw, versions = DiscoveryWriter(empty_graph, batch_size=2), ModelVersions(empty_graph)

    # the check refused v2 between publish and promote: the embeddings written in the promotion's
    # transaction before the switch is refused are rolled back with it
    _awaiting(empty_graph, v2, 1)
    versions.refuse(v2.version_id, "edges below correlation")
    with pytest.raises(KeyError, match="refused"):
        dw.promote(v2.version_id, embeddings=emb2, retention=5)
    with pytest.raises(KeyError):
        dw.promote("no-such-version", embeddings=emb2, retention=5)
    # an invalid input is refused before anything is written
    with pytest.raises(ValueError, match="NaN"):
        dw.promote(v2.version_id, embeddings={**emb2, "compound": emb2["compound"] * float("nan")}, retention=5)
    assert versions.current() == v1.version_id
    assert _embeddings(empty_graph) == before
    sim = DR.run_named_query(empty_graph, "similar-compounds", {"compound": "RAPA", "k": 2})
    assert sim and {r["model_version"] for r in sim} == {v1.version_id}

    # success: the current flag and every embedding change together
    _awaiting(empty_graph, v3, 2)
    emb3, *_ = discoveries(seed=2)
    report = dw.promote(v3.version_id, embeddings=emb3, retention=5)
    assert report.stats["embeddings:gene_perturbation"].written == len(emb3["gene_perturbation"])
    after = _embeddings(empty_graph)
    assert versions.current() == v3.version_id
    assert set(after) == set(before) and {v for _, v in after.values()} == {v3.version_id}
    assert after[("Gene", "MTOR")][0] == pytest.approx(emb3["gene_perturbation"].loc["MTOR"].tolist())
    assert after[("Gene", "MTOR")][0] != before[("Gene", "MTOR")][0]
    sim = DR.run_named_query(empty_graph, "similar-compounds", {"compound": "RAPA", "k": 2})
    assert sim and {r["model_version"] for r in sim} == {v3.version_id}


def test_prune_versions_command_abandons_stale_versions(empty_graph, monkeypatch):
    """`perturbgraph prune-versions --stale-after HOURS`: --dry-run lists the stale version as it would
    be abandoned and changes nothing; without it the stale version is deleted, the fresh one stays."""
    build_base(empty_graph)
    cur, stale, fresh = (record(f"2025-0{i}-01T00:00:00", i=i) for i in (1, 2, 3))
    publish(empty_graph, cur)
    _awaiting(empty_graph, stale, 1)
    _age(empty_graph, stale.version_id, 10)
    _awaiting(empty_graph, fresh, 2)

    @contextlib.contextmanager
    def factory():
        yield empty_graph

    monkeypatch.setattr(query_cli, "driver_factory", factory)
    runner = CliRunner()
    dry = runner.invoke(query_cli.app, ["prune-versions", "--stale-after", "5", "--dry-run", "--format", "json"])
    assert dry.exit_code == 0, dry.output
    rows = json.loads(dry.stdout)
    assert [(r["version_id"], r["status"]) for r in rows] == [(stale.version_id, ABANDONED)]
    assert "never finished" in rows[0]["abandoned_reason"]
    assert _status(empty_graph)[stale.version_id] == AWAITING_CHECK
    # the default age (24 h) keeps a 10-hour-old version
    assert runner.invoke(query_cli.app, ["prune-versions", "--format", "json"]).stdout.strip() == "[]"
    done = runner.invoke(query_cli.app, ["prune-versions", "--stale-after", "5", "--format", "json"])
    assert done.exit_code == 0, done.output
    assert [r["version_id"] for r in json.loads(done.stdout)] == [stale.version_id]
    assert _status(empty_graph) == {cur.version_id: COMPLETE, fresh.version_id: AWAITING_CHECK}
    bad = runner.invoke(query_cli.app, ["prune-versions", "--stale-after", "0"])
    assert bad.exit_code != 0

"""Shared fixtures: the real Neo4j server, the shared data folder, small-thread torch.

The `neo4j_driver` fixture uses NEO4J_URI/NEO4J_PASSWORD when set (CI starts a server itself and
exports them); otherwise it starts a managed server in a dedicated test home on port 7697 for this
session and stops it at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graph.settings import Settings

TEST_BOLT_PORT = int(os.environ.get("PERTURBGRAPH_TEST_BOLT_PORT", "7697"))


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


# Fixtures that hold the one graph database of the session's server (Community has one database, and the
# tests wipe and fill it): every test that uses one, directly or through another fixture, must run in one
# process, one after another.
GRAPH_FIXTURES = {"neo4j_settings", "neo4j_driver", "empty_graph"}


def pytest_itemcollected(item):
    """Mark every test that uses the graph `neo4j`, whatever its file says, so `-m neo4j` / `-m "not neo4j"`
    split the suite exactly: `make test` runs the two halves as two pytest processes side by side (the graph
    tests in order in one, the rest beside them)."""
    if GRAPH_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.neo4j)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason."""
    path = Settings().shared_data
    if not (path / "README.md").exists():
        pytest.skip(f"real shared data not found at {path} (set PERTURBGRAPH_SHARED_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def neo4j_settings(tmp_path_factory) -> Settings:
    base = Settings()
    if base.neo4j_uri:
        yield base
        return
    from graph.db.server import Neo4jServer

    home = Path(os.environ.get("PERTURBGRAPH_TEST_HOME") or tmp_path_factory.mktemp("pg-home"))
    settings = Settings(home=home, neo4j_bolt_port=TEST_BOLT_PORT, neo4j_password=None,
                        neo4j_heap="768m", neo4j_pagecache="512m")
    server = Neo4jServer(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_settings):
    from graph.db.connection import open_driver

    with open_driver(neo4j_settings) as driver:
        yield driver


def wipe_graph(driver, database: str) -> None:
    """Delete all data, constraints and indexes (keeps the database itself)."""
    with driver.session(database=database) as session:
        # IN TRANSACTIONS needs an auto-commit transaction: session.run, not execute_query.
        # Relationships first, in batches: DETACH DELETE of a hub node with ~10^5 edges in one
        # transaction can exhaust a small heap.
        session.run("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS").consume()
        session.run("MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()
        for record in list(session.run("SHOW CONSTRAINTS YIELD name")):
            session.run("DROP CONSTRAINT $name IF EXISTS", name=record["name"]).consume()
        for record in list(session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name")):
            session.run("DROP INDEX $name IF EXISTS", name=record["name"]).consume()


@pytest.fixture
def empty_graph(neo4j_driver, neo4j_settings):
    """The real server with nothing in it (data, constraints and indexes removed first)."""
    wipe_graph(neo4j_driver, neo4j_settings.neo4j_database)
    yield neo4j_driver


@pytest.fixture
def lpm_fits(monkeypatch):
    """The seed of every real LPM fit the test runs, in order (LPM.fit wrapped, still fitting)."""
    from models.lpm import LPM

    seeds, real_fit = [], LPM.fit

    def fit(self, *args, **kwargs):
        seeds.append(self.seed)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(LPM, "fit", fit)
    return seeds

"""Connections to Neo4j: the managed server, or whatever NEO4J_URI names (Docker, Aura, a cluster)."""

from __future__ import annotations

from collections.abc import Callable

from neo4j import Driver, GraphDatabase

from graph.db.server import Neo4jServer
from graph.settings import Settings


def credentials(settings: Settings) -> tuple[str, str]:
    if settings.managed_neo4j:
        return settings.neo4j_username, Neo4jServer(settings).password()
    if settings.neo4j_password is None:
        raise RuntimeError(f"NEO4J_URI is set ({settings.neo4j_uri}) but NEO4J_PASSWORD is not: set it")
    return settings.neo4j_username, settings.neo4j_password.get_secret_value()


def ensure_neo4j(settings: Settings, progress: Callable[[str], None] | None = None) -> None:
    """Start the managed server if the platform owns it; with NEO4J_URI set, start nothing."""
    if settings.managed_neo4j:
        Neo4jServer(settings, progress=progress).start()


def open_driver(settings: Settings) -> Driver:
    """A driver with auth; the caller closes it (use it as a context manager)."""
    # UNRECOGNIZED: queries over an allowlisted type that no data has yet (e.g. REGULATES without
    # DoRothEA) are fine; the server's "type does not exist" notice would only be noise in the logs.
    driver = GraphDatabase.driver(settings.effective_neo4j_uri, auth=credentials(settings),
                                  notifications_disabled_classifications=["UNRECOGNIZED"])
    driver.verify_connectivity()
    return driver

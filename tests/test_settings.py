"""The settings object: environment names, defaults, derived paths."""

from pathlib import Path

from graph.settings import Settings


def test_environment_names_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("PERTURBGRAPH_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://example.databases.neo4j.io")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret-value")
    monkeypatch.setenv("NEO4J_DATABASE", "perturb")
    s = Settings()
    assert s.home == tmp_path / "h"
    assert s.store_dir == tmp_path / "h" / "store"
    assert s.dagster_home == tmp_path / "h" / "dagster"
    assert not s.managed_neo4j and s.effective_neo4j_uri == "neo4j+s://example.databases.neo4j.io"
    assert s.neo4j_database == "perturb"
    assert "s3cret-value" not in repr(s)  # secrets never printed


def test_home_is_not_taken_from_unix_home(monkeypatch, tmp_path):
    monkeypatch.delenv("PERTURBGRAPH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = Settings()
    assert s.home == tmp_path / "cache" / "perturbgraph" / "home"
    assert isinstance(s.neo4j_lib_dir, Path) and s.neo4j_lib_dir.parent == tmp_path / "cache" / "perturbgraph"

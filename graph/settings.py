"""The one configuration object of PerturbGraph, read from the environment (and a `.env` file).

Every other module asks `get_settings()`; nothing else reads environment variables.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perturbgraph"


def _default_home() -> Path:
    return _default_cache() / "home"


def _default_shared_data() -> Path:
    return REPO_ROOT.parent / "shared" / "data"


class Settings(BaseSettings):
    # case_sensitive: only the upper-case names below are read (a field called `home` must not pick up $HOME).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, case_sensitive=True)

    # An external Neo4j (Docker, Aura, a cluster). When set, the platform starts nothing.
    neo4j_uri: str | None = Field(default=None, validation_alias=AliasChoices("NEO4J_URI"))
    neo4j_username: str = Field(default="neo4j", validation_alias=AliasChoices("NEO4J_USERNAME", "NEO4J_USER"))
    # Overrides the generated password of the managed server.
    neo4j_password: SecretStr | None = Field(default=None, validation_alias=AliasChoices("NEO4J_PASSWORD"))
    neo4j_database: str = Field(default="neo4j", validation_alias=AliasChoices("NEO4J_DATABASE"))

    # Where data, artifacts, the Neo4j store and the Dagster instance live.
    home: Path = Field(default_factory=_default_home, validation_alias=AliasChoices("PERTURBGRAPH_HOME"))
    # Reusable downloads shared by every home: the Neo4j jars (and, by the Makefile, the virtualenv).
    cache_dir: Path = Field(default_factory=_default_cache, validation_alias=AliasChoices("PERTURBGRAPH_CACHE"))
    # Real public data (../shared/data beside the repository by default).
    shared_data: Path = Field(
        default_factory=_default_shared_data, validation_alias=AliasChoices("PERTURBGRAPH_SHARED_DATA")
    )

    # The managed Neo4j server (ignored when neo4j_uri is set).
    neo4j_bolt_port: int = Field(default=7687, validation_alias=AliasChoices("PERTURBGRAPH_NEO4J_BOLT_PORT"))
    # Sized for a 2-core / 24 GiB machine shared with PyTorch.
    neo4j_heap: str = Field(default="1g", validation_alias=AliasChoices("PERTURBGRAPH_NEO4J_HEAP"))
    neo4j_pagecache: str = Field(default="1g", validation_alias=AliasChoices("PERTURBGRAPH_NEO4J_PAGECACHE"))
    neo4j_startup_timeout_s: float = Field(
        default=120.0, validation_alias=AliasChoices("PERTURBGRAPH_NEO4J_STARTUP_TIMEOUT")
    )
    java_home: Path | None = Field(default=None, validation_alias=AliasChoices("JAVA_HOME"))
    # LOAD CSV from web and file URLs on the managed server (off: a query cannot make it fetch URLs).
    neo4j_allow_csv_import: bool = Field(default=False,
                                         validation_alias=AliasChoices("PERTURBGRAPH_NEO4J_ALLOW_CSV_IMPORT"))

    # What the main job reads: "default" (the simulated dataset), "shared" (../shared/data),
    # "shared:<substring>,…" (a subset) or comma-separated file paths. The inbox is always added.
    inputs: str = Field(default="default", validation_alias=AliasChoices("PERTURBGRAPH_INPUTS"))
    # Model versions kept in the graph before older ones are pruned.
    model_retention: int = Field(default=3, validation_alias=AliasChoices("PERTURBGRAPH_MODEL_RETENTION"))
    # Hours after which a non-current version still 'writing' or 'awaiting_check' counts as stale (its
    # write or check never finished): `prune-versions` marks it 'abandoned' and deletes it.
    model_stale_after_hours: float = Field(default=24.0, gt=0,
                                           validation_alias=AliasChoices("PERTURBGRAPH_MODEL_STALE_AFTER_HOURS"))
    # False-discovery rate of published compound -> gene mechanism links (BH over every pair tested).
    mechanism_fdr: float = Field(default=0.1, gt=0.0, le=1.0, validation_alias=AliasChoices("PERTURBGRAPH_MECHANISM_FDR"))
    # Torch device for training: "auto" picks CUDA when present.
    device: str = Field(default="auto", validation_alias=AliasChoices("PERTURBGRAPH_DEVICE"))
    # CPU threads for torch per process; 0 = decided by models.runtime from the cores actually free.
    torch_threads: int = Field(default=0, ge=0, validation_alias=AliasChoices("PERTURBGRAPH_TORCH_THREADS"))
    # Seconds between progress reports of a long step (training within an epoch); at most a minute apart.
    progress_every_s: float = Field(default=30.0, gt=0, le=60,
                                    validation_alias=AliasChoices("PERTURBGRAPH_PROGRESS_EVERY_S"))

    @property
    def managed_neo4j(self) -> bool:
        """True when the platform runs its own Neo4j (no NEO4J_URI given)."""
        return not self.neo4j_uri

    @property
    def neo4j_home(self) -> Path:
        return self.home / "neo4j"

    @property
    def neo4j_lib_dir(self) -> Path:
        """Jars resolved once by Maven; shared by every PERTURBGRAPH_HOME on this machine."""
        return self.cache_dir / "neo4j-jars"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def store_dir(self) -> Path:
        """Columnar store of measured values (parquet, partitioned by dataset)."""
        return self.home / "store"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def artifacts_dir(self) -> Path:
        """Checkpoints, evaluation reports, plots."""
        return self.home / "artifacts"

    @property
    def inbox_dir(self) -> Path:
        """New input files dropped here are picked up by the Dagster sensor."""
        return self.home / "inbox"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def effective_neo4j_uri(self) -> str:
        # bolt:// (not neo4j://): a single local server has no routing table to fetch.
        return self.neo4j_uri or f"bolt://127.0.0.1:{self.neo4j_bolt_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Re-read the environment (tests change it)."""
    get_settings.cache_clear()
    return get_settings()

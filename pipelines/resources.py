"""Typed Dagster resources. Values left unset come from the settings object (the environment)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from neo4j import Driver
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError
from pydantic import PrivateAttr

from graph.settings import Settings, get_settings

# Transient: the server is restarting, a leader changed, a deadlock was detected. Everything else
# (constraint violations, bad data, Cypher errors) fails at once without a retry.
TRANSIENT_NEO4J_ERRORS = (ServiceUnavailable, SessionExpired, TransientError, ConnectionError)
MAX_NEO4J_RETRIES = 3


class PerturbGraphSettings(dg.ConfigurableResource):
    """Paths and options; empty fields fall back to `graph.settings` (PERTURBGRAPH_* variables)."""

    home: str | None = None
    # "default" (simulated), "shared", "shared:<substr>,…", or file paths; empty: PERTURBGRAPH_INPUTS.
    inputs_override: str | None = None

    def settings(self) -> Settings:
        base = get_settings()
        return base.model_copy(update={"home": Path(self.home)}) if self.home else base

    @property
    def inputs(self) -> str:
        return self.inputs_override or self.settings().inputs


class SecretConfigError(ValueError):
    """A secret was given as a plain configuration value (Dagster would store it in its run storage)."""


class Neo4jResource(dg.ConfigurableResource):
    """A Neo4j driver per run, closed at the end. Empty fields fall back to NEO4J_* via settings.

    The password is never a config value: Dagster records resource config (run config, the job
    snapshot's defaults) in its run storage. It comes from, in order:
    `password_file` (a path; the file holds the password), `password=dg.EnvVar("NAME")` (kept as the
    variable's name in `password_env`, read when the run starts), `NEO4J_PASSWORD`, or the managed
    server's generated password file. `Neo4jResource(password="...")` is refused.
    """

    uri: str | None = None
    username: str | None = None
    password_env: str | None = None  # the NAME of an environment variable holding the password
    password_file: str | None = None  # a path to a file holding the password (keep it 0600)
    database: str | None = None
    home: str | None = None  # PERTURBGRAPH_HOME of the managed server (tests point it elsewhere)

    _driver: Driver | None = PrivateAttr(default=None)

    def __init__(self, *, password: Any = None, **data: Any):
        if password is not None:
            if not isinstance(password, dg.EnvVar):
                raise SecretConfigError(
                    "Neo4jResource takes no plain password (Dagster would store it in its run storage): use "
                    "password=dg.EnvVar('NEO4J_PASSWORD'), password_file='/path/to/secret' or the NEO4J_PASSWORD "
                    "environment variable")
            data["password_env"] = password.env_var_name
        super().__init__(**data)

    def _password(self) -> str | None:
        if self.password_file:
            path = Path(self.password_file).expanduser()
            try:
                secret = path.read_text().strip()
            except OSError as exc:
                raise SecretConfigError(f"cannot read the Neo4j password file {path} ({exc.strerror})") from None
            if not secret:
                raise SecretConfigError(f"the Neo4j password file {path} is empty")
            return secret
        if self.password_env:
            secret = dg.EnvVar(self.password_env).get_value()
            if not secret:
                raise SecretConfigError(f"environment variable {self.password_env} (the Neo4j password) is not set")
            return secret
        return None

    def settings(self) -> Settings:
        from pydantic import SecretStr

        base = get_settings()
        update = {}
        if self.uri:
            update["neo4j_uri"] = self.uri
        if self.username:
            update["neo4j_username"] = self.username
        secret = self._password()
        if secret is not None:
            update["neo4j_password"] = SecretStr(secret)
        if self.database:
            update["neo4j_database"] = self.database
        if self.home:
            update["home"] = Path(self.home)
        return base.model_copy(update=update)

    @property
    def db(self) -> str:
        return self.settings().neo4j_database

    def get_driver(self) -> Driver:
        """Open lazily, so a missing server surfaces inside the step where the retry guard sees it."""
        if self._driver is None:
            from graph.db.connection import ensure_neo4j, open_driver

            settings = self.settings()
            # A managed server that is not running (stopped, or killed: a stale pid file) is started
            # here, so a step heals the platform by itself; the event log says so.
            ensure_neo4j(settings, progress=dg.get_dagster_logger().warning)
            self._driver = open_driver(settings)
        return self._driver

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    @contextmanager
    def guarded(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Iterator[Driver]:
        """Yield the driver; a transient Neo4j failure asks Dagster to retry the step with backoff."""
        try:
            yield self.get_driver()
        except TRANSIENT_NEO4J_ERRORS as exc:
            if self._driver is not None:
                self._driver.close()
                self._driver = None
            attempt = getattr(context, "retry_number", 0)
            where = self.settings().effective_neo4j_uri  # the URI only: never credentials
            if attempt >= MAX_NEO4J_RETRIES:
                raise dg.Failure(
                    description=(f"Neo4j at {where} is unavailable ({type(exc).__name__}: {exc}); gave up after "
                                 f"{MAX_NEO4J_RETRIES} retries with backoff. Start it (`perturbgraph neo4j start`) "
                                 "or fix NEO4J_URI, then re-run the step; nothing downstream ran."),
                    allow_retries=False,
                ) from exc
            context.log.warning(f"Neo4j at {where} unavailable ({type(exc).__name__}: {exc}); retry {attempt + 1} "
                                f"of {MAX_NEO4J_RETRIES}")
            raise dg.RetryRequested(max_retries=MAX_NEO4J_RETRIES, seconds_to_wait=2 * 2 ** attempt) from exc

"""The managed Neo4j Community server: resolve jars, configure, start, wait, stop, report status.

The server runs `org.neo4j.server.CommunityEntryPoint` directly with the JVM flags Neo4j's own
bootloader would use (the `server.jvm.additional` lines of platform/neo4j/neo4j.conf plus heap
flags; tests compare against `Neo4jCommand console --dry-run`). Bolt listens on 127.0.0.1 only,
HTTP is off and auth is always on. When NEO4J_URI is set none of this runs: see `graph.db.connection`.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from graph.processes import pid_alive
from graph.settings import REPO_ROOT, Settings

PLATFORM_DIR = REPO_ROOT / "platform" / "neo4j"
POM_PATH = PLATFORM_DIR / "pom.xml"
CONF_TEMPLATE = PLATFORM_DIR / "neo4j.conf"
ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
BOOTLOADER = "org.neo4j.server.startup.Neo4jCommand"
SUPPORTED_JAVA = (17, 21)
# Template lines that stop queries fetching URLs; dropped when the settings allow CSV import.
CSV_IMPORT_SETTINGS = ("internal.dbms.cypher_ip_blocklist=", "dbms.security.allow_csv_import_from_file_urls=")


class Neo4jServerError(RuntimeError):
    """A one-line, actionable failure of the managed server."""


class ServerState(str, Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    STALE = "stale"  # a pid file whose process is gone (e.g. after kill -9)


@dataclass(frozen=True)
class ServerStatus:
    state: ServerState
    pid: int | None
    uri: str
    home: Path

    def __str__(self) -> str:
        pid = f" (pid {self.pid})" if self.pid else ""
        return f"neo4j {self.state.value}{pid} at {self.uri}; home {self.home}"


def neo4j_version() -> str:
    """The Neo4j version pinned in platform/neo4j/pom.xml."""
    match = re.search(r"<neo4j.version>([^<]+)</neo4j.version>", POM_PATH.read_text())
    if not match:
        raise Neo4jServerError(f"{POM_PATH} has no <neo4j.version> property")
    return match.group(1).strip()


def parse_size_kib(size: str) -> int:
    """'1g' -> 1048576 (KiB), the unit Neo4j's bootloader passes to -Xms/-Xmx."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgKMG]?)[bB]?\s*", size)
    if not match:
        raise Neo4jServerError(f"cannot read memory size {size!r}: use a number with k, m or g, e.g. 1g")
    value, unit = int(match.group(1)), match.group(2).lower()
    if not unit:  # plain bytes
        return value // 1024
    return value * {"k": 1, "m": 1024, "g": 1024 * 1024}[unit]


def _java_binary(settings: Settings) -> str:
    if settings.java_home:
        candidate = settings.java_home / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise Neo4jServerError(
            "Java not found: install Java 17 or 21 (e.g. `apt-get install openjdk-17-jre-headless`) "
            "or set NEO4J_URI to use an existing Neo4j"
        )
    return found


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise Neo4jServerError(f"cannot read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _port_open(host: str, port: int) -> bool:
    """False only when the connection is refused: a connect that times out meets a listener whose
    backlog is full (a busy server, or one that never accepts), which still holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != errno.ECONNREFUSED


def _sigterm_to_default() -> None:
    """Run in the server's process before exec: a JVM whose parent ignores SIGTERM (some launchers and CI
    runners do; the disposition is inherited) keeps ignoring it, and `stop` then waits out its timeout and
    SIGKILLs the server, without a checkpoint."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _wait_port_closed(host: str, port: int, timeout_s: float) -> bool:
    """True once nothing listens on host:port (polled for up to timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while _port_open(host, port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


class Neo4jServer:
    """A Neo4j Community server living under `$PERTURBGRAPH_HOME/neo4j`."""

    def __init__(self, settings: Settings, *, progress: Callable[[str], None] | None = None):
        self.settings = settings
        self.progress = progress or (lambda message: None)
        self.home = settings.neo4j_home
        self.conf_dir = self.home / "conf"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.run_dir = self.home / "run"
        self.pid_file = self.run_dir / "neo4j.pid"
        self.password_file = self.home / "auth" / "password"
        self.console_log = self.logs_dir / "console.log"
        self.version = neo4j_version()
        self.lib_dir = settings.neo4j_lib_dir / self.version

    # ---------------------------------------------------------------- jars
    def jars_ready(self) -> bool:
        return (self.lib_dir / ".complete").exists()

    def ensure_jars(self) -> Path:
        """Resolve the Neo4j jars with Maven once; later calls reuse the cache."""
        if self.jars_ready():
            return self.lib_dir
        mvn = shutil.which("mvn")
        if not mvn:
            raise Neo4jServerError(
                f"Maven not found and no cached Neo4j jars in {self.lib_dir}: install Maven "
                "(`apt-get install maven`) or set NEO4J_URI to use an existing Neo4j"
            )
        staging = self.lib_dir.with_name(self.lib_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        self.progress(f"resolving Neo4j {self.version} jars from Maven Central (first start only)…")
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(POM_PATH), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise Neo4jServerError(
                f"Maven could not resolve Neo4j {self.version} ({POM_PATH}): {' | '.join(tail)} — check access "
                "to Maven Central, or set NEO4J_URI to use an existing Neo4j"
            )
        (staging / ".complete").write_text(self.version + "\n")
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        staging.rename(self.lib_dir)
        return self.lib_dir

    # -------------------------------------------------------------- config
    def write_config(self) -> Path:
        """The template plus this installation's directories, port and memory."""
        for directory in (self.conf_dir, self.data_dir, self.logs_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        s = self.settings
        local = [
            "",
            "# --- written by perturbgraph from the settings object; edit platform/neo4j/neo4j.conf instead ---",
            f"server.directories.data={self.data_dir}",
            f"server.directories.logs={self.logs_dir}",
            f"server.directories.run={self.run_dir}",
            f"server.directories.import={self.home / 'import'}",
            f"server.bolt.listen_address=127.0.0.1:{s.neo4j_bolt_port}",
            f"server.bolt.advertised_address=127.0.0.1:{s.neo4j_bolt_port}",
            f"server.memory.heap.initial_size={s.neo4j_heap}",
            f"server.memory.heap.max_size={s.neo4j_heap}",
            f"server.memory.pagecache.size={s.neo4j_pagecache}",
            f"initial.dbms.default_database={s.neo4j_database}",
        ]
        template = CONF_TEMPLATE.read_text()
        if s.neo4j_allow_csv_import:  # PERTURBGRAPH_NEO4J_ALLOW_CSV_IMPORT: Neo4j's defaults (URLs allowed)
            template = "".join(line for line in template.splitlines(keepends=True)
                               if not line.startswith(CSV_IMPORT_SETTINGS))
        conf = self.conf_dir / "neo4j.conf"
        conf.write_text(template + "\n".join(local) + "\n")
        return conf

    def jvm_flags(self) -> list[str]:
        """JVM flags in the order Neo4j's bootloader emits them."""
        conf = (self.conf_dir / "neo4j.conf").read_text().splitlines()
        additional = [line.split("=", 1)[1].strip() for line in conf
                      if line.strip().startswith("server.jvm.additional=")]
        heap_kib = parse_size_kib(self.settings.neo4j_heap)
        return [*additional, "-Dfile.encoding=UTF-8", f"-Xms{heap_kib}k", f"-Xmx{heap_kib}k"]

    def command(self) -> list[str]:
        java = _java_binary(self.settings)
        classpath = f"{self.conf_dir}/*:{self.lib_dir}/*"
        return [java, "-cp", classpath, *self.jvm_flags(), ENTRY_POINT,
                f"--home-dir={self.home}", f"--config-dir={self.conf_dir}", "--console-mode"]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(NEO4J_HOME=str(self.home), NEO4J_CONF=str(self.conf_dir))
        return env

    # ------------------------------------------------------------ password
    def password(self) -> str:
        """NEO4J_PASSWORD if given, else the generated one stored owner-only."""
        if self.settings.neo4j_password is not None:
            return self.settings.neo4j_password.get_secret_value()
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        raise Neo4jServerError(
            f"no Neo4j password yet ({self.password_file} is missing): run `perturbgraph neo4j start` first "
            "or set NEO4J_PASSWORD"
        )

    def _store_initialised(self) -> bool:
        return (self.data_dir / "databases" / "system").exists()

    def _ensure_initial_password(self, java: str) -> None:
        if self._store_initialised():
            return
        if self.settings.neo4j_password is not None:
            password = self.settings.neo4j_password.get_secret_value()
        elif self.password_file.exists():
            password = self.password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(24)
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.password_file.parent, 0o700)
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
        # The password goes to the admin tool in an owner-only argument file (picocli's `@file`), not on
        # the command line, where any local user could read it in the process list while the tool runs.
        # Quoted, so spaces, quotes, backslashes and a leading "-" or "@" stay part of the password.
        args_file = self.password_file.parent / "initial-password.args"
        args_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write('"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"\n')
        try:
            result = subprocess.run(
                [java, "-cp", f"{self.conf_dir}/*:{self.lib_dir}/*", ADMIN_TOOL,
                 "dbms", "set-initial-password", "--", f"@{args_file}"],
                capture_output=True, text=True, env=self._env(), timeout=120,
            )
        finally:
            args_file.unlink(missing_ok=True)
        if result.returncode != 0:
            first = (result.stderr.strip() or result.stdout.strip()).splitlines()[:3]
            raise Neo4jServerError("setting the initial Neo4j password failed: " + " | ".join(first)
                                   + f" (password from {'NEO4J_PASSWORD' if self.settings.neo4j_password else self.password_file})")

    # --------------------------------------------------------------- state
    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_our_server(self, pid: int) -> bool:
        if not pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return True  # no /proc: trust the pid
        return ENTRY_POINT in cmdline and str(self.home) in cmdline

    def status(self) -> ServerStatus:
        pid = self._read_pid()
        if pid is None:
            state = ServerState.STOPPED
        elif self._is_our_server(pid):
            state = ServerState.RUNNING
        else:
            state = ServerState.STALE
        return ServerStatus(state, pid, self.settings.effective_neo4j_uri, self.home)

    def start(self) -> ServerStatus:
        """Start (or find running) and wait until Bolt answers `RETURN 1` with auth."""
        current = self.status()
        if current.state is ServerState.RUNNING:
            self.wait_until_ready(None)
            return current
        if current.state is ServerState.STALE:
            self.progress(f"removing stale pid file {self.pid_file} (pid {current.pid} is gone)")
            self.pid_file.unlink(missing_ok=True)
        java = _java_binary(self.settings)
        major = java_major_version(java)
        if major not in SUPPORTED_JAVA:
            raise Neo4jServerError(
                f"Neo4j 5.26 needs Java 17 or 21, found Java {major} at {java}: install openjdk-17 and set JAVA_HOME"
            )
        port = self.settings.neo4j_bolt_port
        if not _wait_port_closed("127.0.0.1", port, timeout_s=5.0):  # a server that just stopped may linger
            raise Neo4jServerError(
                f"port {port} is already in use by another process: stop it, or set "
                "PERTURBGRAPH_NEO4J_BOLT_PORT to a free port, or point NEO4J_URI at that server"
            )
        self.ensure_jars()
        self.write_config()
        self._ensure_initial_password(java)
        self.progress(f"starting Neo4j {self.version} on 127.0.0.1:{port}…")
        with open(self.console_log, "ab") as log:
            process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._env(), cwd=self.home, start_new_session=True, preexec_fn=_sigterm_to_default,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        try:
            self.wait_until_ready(process)
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            self.pid_file.unlink(missing_ok=True)
            raise
        return self.status()

    def _startup_failure(self) -> str:
        log = self.console_log.read_text(errors="replace") if self.console_log.exists() else ""
        if "store_lock" in log or "locked by another process" in log.lower():
            return (f"the data directory {self.data_dir} is locked by another Neo4j process: stop that "
                    "process (see `perturbgraph neo4j status`) or use another PERTURBGRAPH_HOME")
        if "Address already in use" in log or "BindException" in log:
            return (f"port {self.settings.neo4j_bolt_port} is already in use: set PERTURBGRAPH_NEO4J_BOLT_PORT "
                    "to a free port")
        tail = " | ".join(line.strip() for line in log.strip().splitlines()[-4:])
        return f"Neo4j exited during startup; see {self.console_log}: {tail[-400:]}"

    def wait_until_ready(self, process: subprocess.Popen | None) -> None:
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError, ServiceUnavailable, SessionExpired

        deadline = time.monotonic() + self.settings.neo4j_startup_timeout_s
        uri = self.settings.effective_neo4j_uri
        auth = (self.settings.neo4j_username, self.password())
        while True:
            if process is not None and process.poll() is not None:
                raise Neo4jServerError(self._startup_failure())
            try:
                # A plain session.run: execute_query would retry with backoff and slow the first answer.
                with GraphDatabase.driver(uri, auth=auth, connection_timeout=2) as driver:
                    with driver.session(database=self.settings.neo4j_database) as session:
                        session.run("RETURN 1").consume()
                return
            except AuthError as exc:
                raise Neo4jServerError(
                    f"Neo4j rejected the password for user {self.settings.neo4j_username!r}: NEO4J_PASSWORD "
                    f"differs from the one the store in {self.data_dir} was initialised with ({exc.message})"
                ) from exc
            except (ServiceUnavailable, SessionExpired, OSError) as exc:
                # The system database may answer before the default database is online.
                last_error = exc
            except Exception as exc:  # noqa: BLE001 - DatabaseUnavailable and friends while starting
                if "unavailable" not in str(exc).lower() and "not found" not in str(exc).lower():
                    raise
                last_error = exc
            if time.monotonic() > deadline:
                raise Neo4jServerError(
                    f"Neo4j did not answer on {uri} within {self.settings.neo4j_startup_timeout_s:.0f} s "
                    f"({last_error}); see {self.console_log}"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> ServerStatus:
        """SIGTERM, then SIGKILL after a bounded wait."""
        current = self.status()
        if current.state is ServerState.RUNNING and current.pid:
            os.kill(current.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while pid_alive(current.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(current.pid):
                self.progress(f"Neo4j did not stop within {timeout_s:.0f} s; killing pid {current.pid}")
                os.kill(current.pid, signal.SIGKILL)
                while pid_alive(current.pid):
                    time.sleep(0.1)
            # Stopped means the port is free for the next start: give the socket a moment to close.
            _wait_port_closed("127.0.0.1", self.settings.neo4j_bolt_port, timeout_s=10.0)
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def resident_memory_mib(self) -> float | None:
        pid = self._read_pid()
        if pid is None or not pid_alive(pid):
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

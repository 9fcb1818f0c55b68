"""Security: Neo4j auth and loopback by default, a read-only raw Cypher mode, checkpoints loaded
without pickle, and no secret in logs, Dagster events/metadata or the repository."""

import pickle
import re
import stat
import subprocess
import zipfile
from pathlib import Path

import dagster as dg
import pytest
import torch
from typer.testing import CliRunner

from graph.settings import Settings
from pipelines.resources import Neo4jResource

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# Neo4j defaults
# ------------------------------------------------------------------------------------------------


def test_managed_config_has_auth_on_and_bolt_on_loopback(tmp_path):
    from graph.server import CONF_TEMPLATE, Neo4jServer

    template = CONF_TEMPLATE.read_text()
    assert re.search(r"^dbms\.security\.auth_enabled=true$", template, re.M)
    assert not re.search(r"^dbms\.security\.auth_enabled=false", template, re.M)
    server = Neo4jServer(Settings(home=tmp_path, neo4j_uri=None, neo4j_password=None, neo4j_bolt_port=7686))
    conf = server.write_config().read_text()
    listen = [ln for ln in conf.splitlines() if ln.startswith(("server.bolt.listen_address=",
                                                               "server.default_listen_address="))]
    assert listen and all("127.0.0.1" in ln for ln in listen), listen
    assert "server.http.enabled=false" in conf and "server.https.enabled=true" not in conf
    # Nothing listens on all addresses (the Cypher IP blocklist is the one place 0.0.0.0 may appear).
    assert "0.0.0.0" not in "\n".join(ln for ln in conf.splitlines()
                                      if not ln.lstrip().startswith(("#", "internal.dbms.cypher_ip_blocklist=")))
    # Queries cannot make the server fetch URLs: every IPv4 and IPv6 address blocked, no file: URLs.
    assert "\ninternal.dbms.cypher_ip_blocklist=0.0.0.0/0,::/0\n" in conf
    assert "\ndbms.security.allow_csv_import_from_file_urls=false\n" in conf
    allowing = Neo4jServer(Settings(home=tmp_path / "allow", neo4j_uri=None, neo4j_password=None,
                                    neo4j_bolt_port=7686, neo4j_allow_csv_import=True)).write_config().read_text()
    assert "cypher_ip_blocklist=" not in allowing and "allow_csv_import_from_file_urls" not in allowing
    assert "server.http.enabled=false" in allowing


@pytest.mark.neo4j
def test_generated_password_is_owner_only_and_required(neo4j_settings):
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError

    from graph.server import Neo4jServer

    if not neo4j_settings.managed_neo4j:
        pytest.skip("NEO4J_URI points at an external server: its password is not generated here")
    server = Neo4jServer(neo4j_settings)
    mode = stat.S_IMODE(server.password_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(server.password_file.parent.stat().st_mode) & 0o077 == 0
    password = server.password()
    assert len(password) >= 24 and password not in ("neo4j", "password")
    uri = neo4j_settings.effective_neo4j_uri
    # Two refusals only: a third failed login in a row would lock the account for a few seconds
    # (dbms.security.auth_max_failed_attempts) and disturb the tests that follow.
    for auth in (("neo4j", password[:-1]), ("intruder", password)):
        with GraphDatabase.driver(uri, auth=auth) as driver, pytest.raises(AuthError):
            driver.verify_connectivity()


# ------------------------------------------------------------------------------------------------
# Raw Cypher is read-only unless asked
# ------------------------------------------------------------------------------------------------

WRITES = [
    "CREATE (:Intruder {name: 'x'})",
    "MERGE (n:Intruder {name: 'x'}) RETURN n",
    "MATCH (n) DETACH DELETE n",
    "MATCH (n:Dataset) SET n.status = 'tampered'",
    "CREATE INDEX intruder IF NOT EXISTS FOR (n:Intruder) ON (n.name)",
]


@pytest.mark.neo4j
@pytest.mark.parametrize("statement", WRITES)
def test_raw_cypher_is_read_only_by_default(empty_graph, neo4j_settings, statement):
    from graph import writer as W
    from graph.cypher_guard import ReadOnlyError, run_cypher

    db = neo4j_settings.neo4j_database
    empty_graph.execute_query("CREATE (:Dataset {dataset_id: 'keep', status: 'complete', name: 'k'})", database_=db)
    before = W.graph_counts(empty_graph, database=db)
    with pytest.raises(ReadOnlyError, match="--write"):
        run_cypher(empty_graph, statement, database=db)
    assert W.graph_counts(empty_graph, database=db) == before
    status = empty_graph.execute_query("MATCH (d:Dataset) RETURN d.status AS s", database_=db).records[0]["s"]
    assert status == "complete"
    indexes = empty_graph.execute_query("SHOW INDEXES YIELD name WHERE name = 'intruder' RETURN name",
                                        database_=db).records
    assert not indexes


@pytest.mark.neo4j
def test_query_cli_needs_write_flag(empty_graph, neo4j_settings, monkeypatch):
    import contextlib

    from pipelines import query_cli

    db = neo4j_settings.neo4j_database
    monkeypatch.setattr(query_cli, "driver_factory", lambda: contextlib.nullcontext(empty_graph))
    runner = CliRunner()
    refused = runner.invoke(query_cli.app, ["cypher", "CREATE (:Intruder {name: 'cli'})", "--database", db])
    assert refused.exit_code == query_cli.EXIT_READ_ONLY, refused.output
    count = "MATCH (n:Intruder) RETURN count(n) AS n"
    assert empty_graph.execute_query(count, database_=db).records[0]["n"] == 0
    allowed = runner.invoke(query_cli.app, ["cypher", "CREATE (:Intruder {name: 'cli'})", "--write", "--database", db])
    assert allowed.exit_code == 0, allowed.output
    assert empty_graph.execute_query(count, database_=db).records[0]["n"] == 1
    read = runner.invoke(query_cli.app, ["cypher", "MATCH (n:Intruder) RETURN n.name AS name", "--json",
                                         "--database", db])
    assert read.exit_code == 0 and "cli" in read.output


def _cli(driver, monkeypatch):
    import contextlib

    from pipelines import query_cli

    monkeypatch.setattr(query_cli, "driver_factory", lambda: contextlib.nullcontext(driver))
    runner = CliRunner()
    return lambda *args: runner.invoke(query_cli.app, list(args))


def _one_line_error(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def csv_server(tmp_path):
    """A tiny web server on 127.0.0.1 serving data.csv; `hits` lists the paths it was asked for."""
    import functools
    import http.server
    import threading

    (tmp_path / "data.csv").write_text("secret_column\ninternal-only-value\n")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # record instead of printing
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/data.csv", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.neo4j
def test_load_csv_from_a_url_is_refused_by_the_cli_and_by_the_server(empty_graph, neo4j_settings, monkeypatch,
                                                                     csv_server):
    import urllib.request

    url, hits = csv_server
    cli = _cli(empty_graph, monkeypatch)
    statement = f"LOAD CSV FROM '{url}' AS row RETURN row"
    refused = cli("cypher", statement, "--database", neo4j_settings.neo4j_database)
    assert refused.exit_code == 3, refused.output
    assert "LOAD CSV" in _one_line_error(refused) and "--write" in refused.stderr
    assert "internal-only-value" not in refused.output and hits == []  # planned only: nothing fetched
    if not neo4j_settings.managed_neo4j:
        pytest.skip("NEO4J_URI: the server's own configuration decides whether it may fetch URLs")
    # With --write the plan check is skipped; the server's IP blocklist (neo4j.conf) still refuses.
    forced = cli("cypher", statement, "--write", "--database", neo4j_settings.neo4j_database)
    assert forced.exit_code == 1, forced.output
    assert "cypher_ip_blocklist" in _one_line_error(forced)
    assert "internal-only-value" not in forced.output and hits == []
    # Control: the web server does answer, so the refusals above were not a dead URL.
    assert b"internal-only-value" in urllib.request.urlopen(url, timeout=10).read()
    assert hits == ["/data.csv"]


@pytest.mark.neo4j
def test_administration_and_unlisted_procedures_are_refused_without_write(empty_graph, neo4j_settings,
                                                                          monkeypatch):
    from neo4j import READ_ACCESS

    db = neo4j_settings.neo4j_database
    cli = _cli(empty_graph, monkeypatch)
    # Another user's open transaction, which TERMINATE TRANSACTIONS would end.
    with empty_graph.session(database=db, default_access_mode=READ_ACCESS) as session:
        victim = session.begin_transaction()
        victim.run("RETURN 1").consume()
        tx_id = next(r["transactionId"] for r in empty_graph.execute_query(
            "SHOW TRANSACTIONS YIELD transactionId, currentQuery, status", database_=db).records
            if "SHOW TRANSACTIONS" not in (r["currentQuery"] or ""))
        cases = {
            "TERMINATE TRANSACTIONS $id": "TerminateTransactions",
            "SHOW TRANSACTIONS": "ShowTransactions",
            "SHOW SETTINGS": "ShowSettings",
            "CALL db.clearQueryCaches()": "db.clearQueryCaches",
            "CALL dbms.listConfig()": "dbms.listConfig",
            "SHOW USERS": "AdministrationCommand",
            "CREATE USER intruder SET PASSWORD 'intruder-password-1'": "AdministrationCommand",
        }
        for statement, reason in cases.items():
            refused = cli("cypher", statement, "-p", f"id={tx_id}", "--database", db)
            assert refused.exit_code == 3, (statement, refused.output)
            assert reason in _one_line_error(refused), statement
        victim.run("RETURN 1").consume()  # still alive: it was not terminated
        victim.rollback()
    users = empty_graph.execute_query("SHOW USERS YIELD user", database_="system").records
    assert "intruder" not in {r["user"] for r in users}
    # Reads, schema introspection and allowlisted procedures still run.
    for statement in ("MATCH (n) RETURN count(n) AS n", "CALL db.labels()", "SHOW INDEXES YIELD name",
                      "CALL db.schema.visualization()"):
        ok = cli("cypher", statement, "--database", db)
        assert ok.exit_code == 0, (statement, ok.output)


def test_plan_check_refuses_plugin_functions_and_unknown_procedures():
    """The plan walk on its own (a plugin such as APOC is not installed on the test server)."""
    from graph.cypher_guard import plan_violations

    def op(name, details, *children):
        return {"operatorType": f"{name}@neo4j", "args": {"Details": details}, "children": list(children)}

    plain = op("ProduceResults", "n", op("Projection", "toUpper(n.name) AS n", op("AllNodesScan", "n")))
    assert plan_violations("r", plain) == []
    plugin = op("ProduceResults", "x", op("Projection", "apoc.util.decompress($b) AS x"))
    assert plan_violations("r", plugin, frozenset({"apoc.util.decompress"})) == [
        "it calls the user-defined function apoc.util.decompress"]
    nested = op("ProduceResults", "v", op("Apply", "", op("ProcedureCall", "apoc.load.json($u) :: (value :: MAP)")))
    assert "apoc.load.json" in plan_violations("r", nested)[0]
    assert plan_violations("r", op("ProcedureCall", "db.labels() :: (label :: STRING)")) == []
    assert plan_violations("w", plain) == ["it writes"]
    assert plan_violations("r", op("ShowIndexes", "allIndexes")) == []
    assert plan_violations("r", op("ShowServers", "")) == ["it is an administration command (ShowServers)"]


# ------------------------------------------------------------------------------------------------
# Checkpoints: no pickle from files
# ------------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a marker file (it would run any code in its place)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _malicious_checkpoints(tmp_path: Path, marker: Path) -> list[Path]:
    # 1. A torch zip checkpoint whose dict carries the object next to a plausible envelope.
    evil_torch = tmp_path / "evil.pt"
    torch.save({"format": "perturbgraph-lpm/1", "config": {}, "vocab": {}, "state_dict": {},
                "meta": _Payload(marker)}, evil_torch)
    # 2. A bare pickle stream under a checkpoint name.
    evil_pickle = tmp_path / "evil_pickle.pt"
    evil_pickle.write_bytes(pickle.dumps({"format": "perturbgraph-lpm/1", "x": _Payload(marker)}))
    # 3. A zip whose data.pkl is replaced by the malicious pickle (same layout torch writes).
    evil_zip = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(evil_torch) as src, zipfile.ZipFile(evil_zip, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(_Payload(marker), protocol=2)
            dst.writestr(item, data)
    assert not marker.exists()  # writing them ran nothing
    return [evil_torch, evil_pickle, evil_zip]


def test_malicious_checkpoint_is_refused_without_running_code(tmp_path):
    from models.checkpoint import CheckpointError, load_checkpoint
    from models.lpm import LPM

    marker = tmp_path / "pwned"
    for path in _malicious_checkpoints(tmp_path, marker):
        with pytest.raises(CheckpointError):
            LPM.load(path)
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        assert not marker.exists(), f"{path.name} executed code while loading"
    # Sanity: the same file does run code under an unsafe load (so the test can fail).
    pickle.loads((tmp_path / "evil_pickle.pt").read_bytes())  # noqa: S301 - deliberately unsafe
    assert marker.exists()


def test_no_unsafe_deserialisation_in_the_code():
    """No pickle.load(s), torch.load without weights_only=True, or yaml.load outside tests."""
    offenders = []
    for folder in ("graph", "models", "pipelines", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for i, line in enumerate(text.splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"\bpickle\.loads?\(|\bdill\.|\bcloudpickle\.loads?\(|yaml\.load\(", code):
                    offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
                if "torch.load(" in code and "weights_only=True" not in code:
                    offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert offenders == []


# ------------------------------------------------------------------------------------------------
# No secrets in Dagster events, logs, metadata or the repository
# ------------------------------------------------------------------------------------------------


@dg.asset
def secret_probe(context: dg.AssetExecutionContext, neo4j: Neo4jResource) -> int:
    with neo4j.guarded(context) as driver:
        n = driver.execute_query("MATCH (n) RETURN count(n) AS n", database_=neo4j.db).records[0]["n"]
    settings = neo4j.settings()
    context.log.info(f"connected with settings {settings!r}")  # a careless log line must still hide it
    context.add_output_metadata({"settings": str(settings), "uri": settings.effective_neo4j_uri, "nodes": n})
    return n


def _everything_dagster_recorded(result, instance) -> str:
    parts = []
    for event in result.all_events:
        parts.append(repr(event))
        parts.append(str(event.message))
    for entry in instance.all_logs(result.run_id):
        parts.append(repr(entry))
    run = instance.get_run_by_id(result.run_id)
    parts.append(repr(run.run_config))
    parts.append(repr(run))
    return "\n".join(parts)


@pytest.mark.neo4j
def test_password_never_reaches_dagster_events_logs_or_metadata(neo4j_settings, tmp_path, caplog):
    from graph.db import credentials

    user, password = credentials(neo4j_settings)
    resource = Neo4jResource(uri=neo4j_settings.effective_neo4j_uri, username=user, password=password,
                             database=neo4j_settings.neo4j_database, home=str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([secret_probe], resources={"neo4j": resource}, instance=instance)
    assert result.success
    recorded = _everything_dagster_recorded(result, instance)
    assert "connected with settings" in recorded and neo4j_settings.effective_neo4j_uri in recorded
    assert password not in recorded
    assert password not in caplog.text

    # A wrong password: the failure is reported, the (wrong) secret is not.
    wrong = "wrong-" + password[::-1]
    bad = Neo4jResource(uri=neo4j_settings.effective_neo4j_uri, username=user, password=wrong,
                        database=neo4j_settings.neo4j_database, home=str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    failed = dg.materialize([secret_probe], resources={"neo4j": bad}, instance=instance, raise_on_error=False)
    assert not failed.success
    recorded = _everything_dagster_recorded(failed, instance)
    assert "AuthError" in recorded or "unauthorized" in recorded.lower()
    assert wrong not in recorded and password not in recorded


def test_settings_repr_hides_the_password():
    s = Settings(neo4j_uri="bolt://example:7687", neo4j_password="s3cret-value-for-repr-test")
    assert "s3cret-value-for-repr-test" not in repr(s) and "s3cret-value-for-repr-test" not in str(s)
    assert "s3cret-value-for-repr-test" not in s.model_dump_json()


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.split("\0") if p]


@pytest.mark.neo4j
def test_no_secret_in_the_repository(neo4j_settings):
    from graph.db import credentials

    _, password = credentials(neo4j_settings)
    assigned = re.compile(r"NEO4J_PASSWORD\s*[=:]\s*['\"]?([^\s'\"$}{]+)")
    allowed_values = {"...", "<password>", "changeme-in-ci", "${{", "test"}
    leaks = []
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if password in text:
            leaks.append(f"{path}: the live Neo4j password")
        for m in assigned.finditer(text):
            value = m.group(1)
            if value not in allowed_values and not value.startswith(("$", "<", "os.", "settings", "password")) \
                    and len(value) >= 16:
                leaks.append(f"{path}: NEO4J_PASSWORD={value[:4]}…")
        if path.name in ("neo4j.password", ".neo4j_password") or path.suffix in (".pem", ".key"):
            leaks.append(f"{path}: a credential file is tracked")
    assert leaks == []

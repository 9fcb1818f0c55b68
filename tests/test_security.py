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
    from graph.db.server import CONF_TEMPLATE, Neo4jServer

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

    from graph.db.server import Neo4jServer

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
    from graph.db import checks
    from graph.db.cypher_guard import ReadOnlyError, run_cypher

    db = neo4j_settings.neo4j_database
    empty_graph.execute_query("CREATE (:Dataset {dataset_id: 'keep', status: 'complete', name: 'k'})", database_=db)
    before = checks.graph_counts(empty_graph, database=db)
    with pytest.raises(ReadOnlyError, match="--write"):
        run_cypher(empty_graph, statement, database=db)
    assert checks.graph_counts(empty_graph, database=db) == before
    status = empty_graph.execute_query("MATCH (d:Dataset) RETURN d.status AS s", database_=db).records[0]["s"]
    assert status == "complete"
    indexes = empty_graph.execute_query("SHOW INDEXES YIELD name WHERE name = 'intruder' RETURN name",
                                        database_=db).records
    assert not indexes


@pytest.mark.neo4j
def test_query_cli_needs_write_flag(empty_graph, neo4j_settings, monkeypatch):
    import contextlib

    from pipelines.cli import query as query_cli

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

    from pipelines.cli import query as query_cli

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
    from graph.db.cypher_guard import plan_violations

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
# The inbox: each file on its own; bad files set aside with a reason, never followed or echoed
# ------------------------------------------------------------------------------------------------


def _ingest_inbox(home: Path, neo4j_settings, secret_file: Path):
    """The real inbox path: sensor tick, then the ingest assets (sources + graph) on the inbox alone."""
    from graph.db.connection import credentials
    from pipelines.assets.graph_load import graph_experiments, graph_reference
    from pipelines.assets.sources import experiments, input_manifest, reference_data
    from pipelines.resources import PerturbGraphSettings

    user, _ = credentials(neo4j_settings)
    resources = {
        "perturbgraph": PerturbGraphSettings(home=str(home), inputs_override="inbox"),
        "neo4j": Neo4jResource(uri=neo4j_settings.effective_neo4j_uri, username=user, password_file=str(secret_file),
                               database=neo4j_settings.neo4j_database),
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([input_manifest, reference_data, experiments, graph_reference, graph_experiments],
                            resources=resources, instance=instance, raise_on_error=False)
    return result, _everything_dagster_recorded(result, instance)


@pytest.mark.neo4j
def test_bad_inbox_files_are_rejected_and_the_good_one_is_ingested(empty_graph, neo4j_settings, tmp_path, caplog):
    from graph.db.connection import credentials
    from graph.settings import reload_settings
    from pipelines.automation import inbox_sensor

    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    secret_file = tmp_path / "pw"
    secret_file.write_text(credentials(neo4j_settings)[1])
    passwd_first_line = Path("/etc/passwd").read_text().splitlines()[0]
    (inbox / "new_genes.tsv").write_text("entrez_id\tsymbol\taliases\n7157\tTP53\tp53\n2475\tMTOR\tFRAP1\n")
    (inbox / "passwd.tsv").symlink_to("/etc/passwd")
    (inbox / "broken.gctx").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)  # truncated HDF5
    (inbox / "notes.csv").write_text(passwd_first_line + "\nCANARY-inbox-content,2\n")  # no accepted format

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PERTURBGRAPH_HOME", str(home))
            reload_settings()
            with dg.instance_for_test() as instance:
                tick = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.RunRequest)
        # Regular files start a run; the link does not (and is never stat-ed through).
        assert set(tick.tags["perturbgraph/files"].split(",")) == {"new_genes.tsv", "broken.gctx", "notes.csv"}
    finally:
        reload_settings()

    result, recorded = _ingest_inbox(home, neo4j_settings, secret_file)
    assert result.success
    manifest = result.asset_value("input_manifest")
    assert [(Path(s.path).name, s.kind) for s in manifest] == [("new_genes.tsv", "gene_table")]
    genes = empty_graph.execute_query("MATCH (g:Gene) RETURN g.symbol AS s ORDER BY s",
                                      database_=neo4j_settings.neo4j_database).records
    assert [r["s"] for r in genes] == ["MTOR", "TP53"]
    rejected = inbox / "rejected"
    assert sorted(p.name for p in inbox.iterdir()) == ["new_genes.tsv", "rejected"]
    assert (rejected / "passwd.tsv").is_symlink()  # the link itself was moved, /etc/passwd untouched
    reasons = {p.name.removesuffix(".reason.txt"): p.read_text() for p in rejected.glob("*.reason.txt")}
    assert set(reasons) == {"passwd.tsv", "broken.gctx", "notes.csv"}
    assert "symbolic link" in reasons["passwd.tsv"]
    assert "truncated or corrupt" in reasons["broken.gctx"]
    assert "no accepted input format" in reasons["notes.csv"]
    for text in [*reasons.values(), recorded, caplog.text]:
        assert passwd_first_line not in text and "CANARY-inbox-content" not in text

    # The next run is unaffected: same manifest, same graph, nothing new rejected.
    again, _ = _ingest_inbox(home, neo4j_settings, secret_file)
    assert again.success
    assert [Path(s.path).name for s in again.asset_value("input_manifest")] == ["new_genes.tsv"]
    assert sorted(p.name for p in rejected.glob("*.reason.txt")) == sorted(f"{n}.reason.txt" for n in reasons)
    assert len(empty_graph.execute_query("MATCH (g:Gene) RETURN g", database_=neo4j_settings.neo4j_database)
               .records) == 2


@pytest.mark.neo4j
def test_an_inbox_file_that_fails_deep_in_its_reader_is_set_aside_and_the_rest_ingested(
        empty_graph, neo4j_settings, tmp_path):
    """A GCTX whose HDF5 layout passes the inbox's open check but lacks its metadata fails inside the
    reader: that file alone is rejected, the good GCTX beside it reaches the graph, and the run succeeds."""
    import h5py
    import numpy as np
    import pandas as pd

    from graph.db.connection import credentials
    from graph.io.gctx import write_gctx

    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    secret_file = tmp_path / "pw"
    secret_file.write_text(credentials(neo4j_settings)[1])
    (inbox / "genes.tsv").write_text("entrez_id\tsymbol\taliases\n101\tAAA\t\n102\tBBB\t\n")
    row = pd.DataFrame({"id": ["101", "102"], "pr_gene_symbol": ["AAA", "BBB"], "pr_gene_id": [101, 102]})
    col = pd.DataFrame({"id": ["s1", "s2"], "cell_id": ["A375", "A375"], "pert_type": ["trt_sh", "trt_sh"],
                        "pert_iname": ["AAA", "BBB"], "pert_id": ["TRCN1", "TRCN2"]})
    write_gctx(inbox / "good.gctx", np.arange(4, dtype=np.float32).reshape(2, 2), row, col)
    with h5py.File(inbox / "half.gctx", "w") as h5:  # the matrix only: no row or column metadata
        h5.create_dataset("0/DATA/0/matrix", data=np.zeros((2, 2), np.float32))

    result, _ = _ingest_inbox(home, neo4j_settings, secret_file)
    assert result.success
    assert sorted(Path(s.path).name for s in result.asset_value("input_manifest")) == \
        ["genes.tsv", "good.gctx", "half.gctx"]  # half.gctx passed the open check
    assert [b.dataset.dataset_id for b in result.asset_value("experiments")] == ["good"]
    reason = (inbox / "rejected" / "half.gctx.reason.txt").read_text()
    assert "not a GCTX 1.0 file: missing /0/META" in reason  # the reader's own problem, no content
    assert not (inbox / "half.gctx").exists() and (inbox / "good.gctx").exists()
    n = empty_graph.execute_query("MATCH (s:Signature) RETURN count(s) AS n",
                                  database_=neo4j_settings.neo4j_database).records[0]["n"]
    assert n == 2


def test_inbox_refuses_what_resolves_outside_it(tmp_path):
    from graph.settings import Settings
    from pipelines.inputs import scan_inbox

    settings = Settings(home=tmp_path / "home")
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    outside = tmp_path / "outside.tsv"
    outside.write_text("entrez_id\tsymbol\taliases\n1\tA1BG\t\n")
    (inbox / "link.tsv").symlink_to(outside)
    (inbox / "folder").mkdir()
    (inbox / "folder" / "inner.tsv").write_text(outside.read_text())
    (inbox / "dirlink").symlink_to(tmp_path)
    (inbox / "ok.tsv").write_text(outside.read_text())
    (inbox / "empty.parquet").write_bytes(b"PAR1")
    specs, rejections = scan_inbox(settings)
    assert [Path(s.path).name for s in specs] == ["ok.tsv"]
    assert {r.name: r.reason.split(";")[0].split(" (")[0] for r in rejections} == {
        "link.tsv": "a symbolic link", "dirlink": "a symbolic link", "folder": "not a regular file",
        "empty.parquet": "unreadable: truncated, corrupt or not text"}
    assert outside.exists() and sorted(p.name for p in inbox.iterdir()) == ["ok.tsv", "rejected"]


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


def _stored_bytes(folder: Path) -> bytes:
    """Everything a Dagster instance wrote under its home (run and event-log sqlite files, compute
    logs, schedules), with every sqlite value read out and zlib-compressed ones (Dagster's
    snapshots) decompressed: a plain byte scan of runs.db would miss a secret in a job snapshot."""
    import sqlite3
    import zlib

    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        out.append(raw)
        if not raw.startswith(b"SQLite format 3"):
            continue
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for row in con.execute(f'SELECT * FROM "{table}"'):  # table names from sqlite itself
                    for value in row:
                        if isinstance(value, str):
                            out.append(value.encode())
                        elif isinstance(value, bytes):
                            try:
                                out.append(zlib.decompress(value))
                            except zlib.error:
                                out.append(value)
        finally:
            con.close()
    return b"\n".join(out)


@pytest.mark.neo4j
def test_password_never_reaches_dagster_storage_events_logs_or_metadata(neo4j_settings, tmp_path, caplog):
    """The resource configured every supported way; after each run the password is in no event, log,
    metadata, run record, and in no byte of the instance's storage (runs.db, event logs, compute logs)."""
    from graph.db.connection import credentials
    from graph.settings import reload_settings

    user, password = credentials(neo4j_settings)
    secret_file = tmp_path / "neo4j-password"
    secret_file.write_text(password + "\n")
    secret_file.chmod(0o600)
    common = {"uri": neo4j_settings.effective_neo4j_uri, "username": user, "database": neo4j_settings.neo4j_database}
    ways = {
        "NEO4J_PASSWORD": lambda: Neo4jResource(**common),
        "password=dg.EnvVar": lambda: Neo4jResource(**common, password=dg.EnvVar("PG_TEST_NEO4J_SECRET")),
        "password_file": lambda: Neo4jResource(**common, password_file=str(secret_file)),
    }
    if neo4j_settings.managed_neo4j:  # no URI, no variable: the managed server's own password file
        ways["managed server"] = lambda: Neo4jResource(home=str(neo4j_settings.home),
                                                       database=neo4j_settings.neo4j_database)
    try:
        for i, (way, make) in enumerate(ways.items()):
            with pytest.MonkeyPatch.context() as mp:
                for name in ("NEO4J_URI", "NEO4J_PASSWORD", "PG_TEST_NEO4J_SECRET"):
                    mp.delenv(name, raising=False)
                if way == "NEO4J_PASSWORD":
                    mp.setenv("NEO4J_PASSWORD", password)
                if way == "password=dg.EnvVar":
                    mp.setenv("PG_TEST_NEO4J_SECRET", password)
                mp.setenv("PERTURBGRAPH_NEO4J_BOLT_PORT", str(neo4j_settings.neo4j_bolt_port))
                reload_settings()
                (home := tmp_path / f"dagster-{i}").mkdir()
                with dg.instance_for_test(temp_dir=str(home)) as instance:
                    result = dg.materialize([secret_probe], resources={"neo4j": make()}, instance=instance)
                    assert result.success, way
                    recorded = _everything_dagster_recorded(result, instance)
                    stored = _stored_bytes(Path(instance.root_directory))
                assert "connected with settings" in recorded and "bolt://127.0.0.1" in recorded, way
                assert result.run_id.encode() in stored, way  # the scan saw the real run storage
                assert password not in recorded, way
                assert password.encode() not in stored, way
                assert password not in caplog.text, way
    finally:
        reload_settings()
    # A wrong password (from a file): the failure is reported, neither secret is.
    wrong = "wrong-" + password[::-1]
    secret_file.write_text(wrong)
    (tmp_path / "dagster-wrong").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster-wrong")) as instance:
        failed = dg.materialize([secret_probe], resources={"neo4j": Neo4jResource(
            **common, password_file=str(secret_file))}, instance=instance, raise_on_error=False)
        assert not failed.success
        recorded = _everything_dagster_recorded(failed, instance)
        stored = _stored_bytes(Path(instance.root_directory))
    assert "AuthError" in recorded or "unauthorized" in recorded.lower()
    assert wrong not in recorded and password not in recorded
    assert wrong.encode() not in stored and password.encode() not in stored


class _PlainConfig(dg.ConfigurableResource):
    token: str  # what a plain `password` field used to be


@dg.asset
def plain_probe(plain: _PlainConfig) -> int:
    return len(plain.token)


def test_secret_scan_finds_a_plain_config_value(tmp_path):
    """Control for the scan above: a plain config value does land in Dagster's run storage (inside a
    compressed job snapshot), and `_stored_bytes` finds it."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        dg.materialize([plain_probe], resources={"plain": _PlainConfig(token="CANARY-plain-config-value")},
                       instance=instance)
        assert b"CANARY-plain-config-value" in _stored_bytes(Path(instance.root_directory))


def test_a_plain_password_in_resource_config_is_refused(tmp_path):
    from pipelines.resources import SecretConfigError

    with pytest.raises(SecretConfigError, match="EnvVar") as refused:
        Neo4jResource(uri="bolt://127.0.0.1:1", password="plain-text-secret-value")
    assert "plain-text-secret-value" not in str(refused.value)
    # Run config cannot carry one either: `password` is not a config field of the resource.
    assert "password" not in Neo4jResource.model_fields
    missing = Neo4jResource(uri="bolt://127.0.0.1:1", password_file=str(tmp_path / "absent"))
    with pytest.raises(SecretConfigError, match="absent"):
        missing.settings()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretConfigError, match="empty"):
        Neo4jResource(uri="bolt://127.0.0.1:1", password_file=str(tmp_path / "empty")).settings()


def test_settings_repr_hides_the_password():
    s = Settings(neo4j_uri="bolt://example:7687", neo4j_password="s3cret-value-for-repr-test")
    assert "s3cret-value-for-repr-test" not in repr(s) and "s3cret-value-for-repr-test" not in str(s)
    assert "s3cret-value-for-repr-test" not in s.model_dump_json()


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / p for p in out.split("\0") if p]


@pytest.mark.neo4j
def test_no_secret_in_the_repository(neo4j_settings):
    from graph.db.connection import credentials

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

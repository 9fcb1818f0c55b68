"""The deployment files a user copies (platform/deploy/, docs/deploy.md) load and validate."""

from __future__ import annotations

import re
import runpy
import shutil
import sys
import types
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from graph.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "platform" / "deploy"

# Executor config fields as dagster-k8s / dagster-celery define them (k8s_job_executor: the
# DagsterK8sJobConfig job fields + its own; celery_executor). Used when those packages are not installed.
K8S_EXECUTOR_FIELDS = {
    "job_image", "image_pull_policy", "image_pull_secrets", "service_account_name", "env_config_maps",
    "env_secrets", "env_vars", "volume_mounts", "volumes", "labels", "resources", "scheduler_name",
    "security_context", "job_namespace", "retries", "max_concurrent", "tag_concurrency_limits",
    "step_k8s_config", "per_step_k8s_config", "load_incluster_config", "kubeconfig_file",
}
K8S_POD_CONFIG_KEYS = {"container_config", "pod_template_spec_metadata", "pod_spec_config", "job_config",
                       "job_metadata", "job_spec_config"}
CELERY_EXECUTOR_FIELDS = {"broker", "backend", "include", "config_source", "retries"}


def _yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_every_deploy_file_parses_and_docs_point_to_them():
    files = sorted(p.name for p in DEPLOY.iterdir() if p.is_file())
    assert {"dagster-k8s-values.yaml", "dagster-k8s-run-config.yaml", "dagster-celery.yaml",
            "dagster-celery-run-config.yaml", "neo4j-cluster.env", "aura.env"} <= set(files)
    for name in files:
        if name.endswith(".yaml"):
            assert isinstance(_yaml(name), dict), name
    docs = (REPO / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"platform/deploy/([\w.-]+)", docs))
    assert set(files) <= named, f"not in docs/deploy.md: {set(files) - named}"
    assert all((DEPLOY / n).exists() for n in named), f"docs/deploy.md names missing files: {named - set(files)}"


def test_celery_instance_config_validates_against_dagster(tmp_path):
    shutil.copy(DEPLOY / "dagster-celery.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"] and config["telemetry"] == {"enabled": False}
    # the check is real: the same file with a run-coordinator limit beside `concurrency.runs` is refused
    bad = _yaml("dagster-celery.yaml") | {"run_coordinator": {
        "module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": {"max_concurrent_runs": 1}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def _validate_executor(package: str, executor_name: str, fields: set[str], config: dict) -> None:
    """Against the executor's own schema when the package is installed, else its known field names."""
    try:
        module = __import__(package)
    except ImportError:
        assert set(config) <= fields, f"unknown {executor_name} fields: {set(config) - fields}"
        return
    from dagster._config import validate_config

    result = validate_config(getattr(module, executor_name).config_schema.config_type, config)
    assert result.success, result.errors


def test_k8s_run_config_fields_and_step_names():
    cfg = _yaml("dagster-k8s-run-config.yaml")["execution"]["config"]
    _validate_executor("dagster_k8s", "k8s_job_executor", K8S_EXECUTOR_FIELDS, cfg)
    assert set(cfg["step_k8s_config"]) <= K8S_POD_CONFIG_KEYS
    from pipelines.definitions import defs

    steps = {n.name for n in defs.resolve_job_def("perturbgraph_all").graph.node_dict.values()}
    assert set(cfg["per_step_k8s_config"]) <= steps  # per-step settings name real steps (lpm_model)
    for step in cfg["per_step_k8s_config"].values():
        assert set(step) <= K8S_POD_CONFIG_KEYS
    values = _yaml("dagster-k8s-values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"  # k8s_job_executor requires it
    deployment = values["dagster-user-deployments"]["deployments"][0]
    args = deployment["dagsterApiGrpcArgs"]
    location = args[args.index("--python-file") + 1]
    assert (REPO / location.removeprefix("/app/")).exists()
    secrets = {s["name"] for s in deployment["envSecrets"]}
    assert set(cfg["env_secrets"]) <= secrets


def test_celery_run_config_fields():
    cfg = _yaml("dagster-celery-run-config.yaml")["execution"]["config"]
    _validate_executor("dagster_celery", "celery_executor", CELERY_EXECUTOR_FIELDS, cfg)
    assert cfg["broker"] == {"env": "CELERY_BROKER_URL"}  # an env reference: no credentials in the file
    for module in cfg["include"]:
        __import__(module)


@pytest.mark.parametrize(("name", "package", "executor_name"), [
    ("k8s_definitions.py", "dagster_k8s", "k8s_job_executor"),
    ("celery_definitions.py", "dagster_celery", "celery_executor"),
])
def test_definitions_attach_the_executor_to_every_job(monkeypatch, name, package, executor_name):
    """The code locations wire the named executor into PerturbGraph's jobs. Where the package is not
    installed, a stand-in module provides an executor with that name (the wiring is what is tested)."""
    try:
        executor = getattr(__import__(package), executor_name)
    except ImportError:
        executor = dg.multiprocess_executor.configured({}, name=f"stand_in_{executor_name}")
        monkeypatch.setitem(sys.modules, package, types.SimpleNamespace(**{executor_name: executor}))
    defs = runpy.run_path(str(DEPLOY / name))["defs"]
    for job in ("perturbgraph_all", "ingest", "retrain"):
        assert defs.resolve_job_def(job).executor_def is executor
    assert {s.name for s in defs.schedules} == {"weekly_retraining"}


@pytest.mark.parametrize(("name", "scheme"), [("neo4j-cluster.env", "neo4j"), ("aura.env", "neo4j+s")])
def test_neo4j_env_files_parse_through_settings(monkeypatch, name, scheme):
    for var in ("NEO4J_URI", "NEO4J_USERNAME", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=DEPLOY / name)
    assert s.neo4j_uri.split("://")[0] == scheme  # routing drivers: writes to the leader, reads anywhere
    assert not s.managed_neo4j and s.effective_neo4j_uri == s.neo4j_uri
    assert s.neo4j_password is not None and s.neo4j_database == "neo4j"
    from neo4j import GraphDatabase

    GraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_username, s.neo4j_password.get_secret_value())).close()

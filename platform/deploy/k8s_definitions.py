"""Code location for Kubernetes: PerturbGraph's Definitions with each step of a run in its own pod.

    dagster api grpc --python-file /app/platform/deploy/k8s_definitions.py    # what dagster-k8s-values.yaml runs

Needs `pip install dagster-k8s` and an instance whose run launcher is K8sRunLauncher (the Helm chart
sets it); per-run pod settings come from dagster-k8s-run-config.yaml. The assets are unchanged.
"""

import dagster as dg
from dagster_k8s import k8s_job_executor

from pipelines.definitions import defs as perturbgraph

defs = dg.Definitions.merge(perturbgraph, dg.Definitions(executor=k8s_job_executor))

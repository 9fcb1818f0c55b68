"""Code location for Celery: PerturbGraph's Definitions with each step of a run a Celery task.

    dagster dev -f platform/deploy/celery_definitions.py        # or a workspace.yaml python_file entry

Needs `pip install dagster-celery dagster-postgres`, the instance of dagster-celery.yaml and workers
started with dagster-celery-run-config.yaml. The assets are unchanged.
"""

import dagster as dg
from dagster_celery import celery_executor

from pipelines.definitions import defs as perturbgraph

defs = dg.Definitions.merge(perturbgraph, dg.Definitions(executor=celery_executor))

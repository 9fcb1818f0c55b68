"""Wires PerturbGraph's Dagster Definitions; the assets live in pipelines/assets/."""

from __future__ import annotations

import dagster as dg

from pipelines import automation
from pipelines.assets import discoveries, graph_load, sources, training
from pipelines.resources import Neo4jResource, PerturbGraphSettings

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([sources, graph_load, training, discoveries]),
    asset_checks=dg.load_asset_checks_from_modules([graph_load, training, discoveries]),
    jobs=[automation.everything_job, automation.ingest_job, automation.retrain_job],
    schedules=[automation.weekly_retraining],
    sensors=[automation.inbox_sensor],
    resources={
        "neo4j": Neo4jResource(),
        "perturbgraph": PerturbGraphSettings(),
    },
)


def get_ingest_job():
    """Module-level accessor so `dagster.reconstructable` can rebuild the job in executor subprocesses."""
    return defs.resolve_job_def("ingest")

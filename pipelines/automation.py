"""Jobs, the weekly retraining schedule and the inbox sensor."""

import stat

import dagster as dg

from graph.settings import get_settings
from pipelines.inputs import inbox_entries

# Everything: ingest → graph → training → model → evaluation → discoveries.
everything_job = dg.define_asset_job("perturbgraph_all", selection=dg.AssetSelection.all(),
                                     description="Materialize every asset (the main job).")

# Ingest only: read, validate, quarantine, load into Neo4j.
ingest_job = dg.define_asset_job("ingest", selection=dg.AssetSelection.groups("sources", "graph"),
                                 description="Read every input file and load it into the graph.")

# Retraining reuses what is in the graph: training set onwards.
retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.groups("training", "model", "evaluation", "discoveries"),
    description="Retrain the LPM on the current graph snapshot and write a new model version's discoveries.",
)

weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining", job=retrain_job, cron_schedule="0 3 * * 1", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Monday 03:00 UTC: retrain and write a new model version (switch on in the UI).",
)


def inbox_fingerprint(path) -> str:
    info = path.lstat()  # a link is never followed, not even to read its size
    return f"{path.name}:{info.st_size}:{int(info.st_mtime)}"


def _regular_file(path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


@dg.sensor(job=everything_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="New files in $PERTURBGRAPH_HOME/inbox: ingest them, then retrain. The run checks each "
                       "file on its own and moves bad ones to inbox/rejected/ with a reason.")
def inbox_sensor(context: dg.SensorEvaluationContext):
    inbox = get_settings().inbox_dir
    if not inbox.exists():
        return dg.SkipReason(f"no inbox folder at {inbox}")
    seen = set((context.cursor or "").split("\n")) - {""}
    # Regular files only: a link or a folder never starts a run (the next run moves it to rejected/).
    files = [p for p in inbox_entries(inbox) if _regular_file(p)]
    new = [p for p in files if inbox_fingerprint(p) not in seen]
    if not new:
        return dg.SkipReason("no new files in the inbox")
    key = "+".join(inbox_fingerprint(p) for p in new)
    context.update_cursor("\n".join(sorted(seen | {inbox_fingerprint(p) for p in new})))
    return dg.RunRequest(run_key=key, tags={"perturbgraph/trigger": "inbox",
                                            "perturbgraph/files": ",".join(p.name for p in new)[:200]})

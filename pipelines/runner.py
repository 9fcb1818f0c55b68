"""Running the main job in-process (the `demo` command and tests) and summarising what it produced."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import dagster as dg
from rich.console import Console

from graph.db.pipeline_queries import CYPHER_HINT
from graph.io.options import ReadOptions
from graph.settings import Settings, reload_settings


def run_config(epochs: int = 12, eval_epochs: int | None = None, seeds: tuple[int, ...] = (0,),
               read_options: ReadOptions | None = None) -> dict[str, Any]:
    """The main job's run config; `read_options` become the input_manifest config (every file's defaults)."""
    ingest = (read_options or ReadOptions()).as_text()
    return {
        "ops": {
            "input_manifest": {"config": {k: int(v) if k == "readout_seed" else v == "true" if k == "bulk" else v
                                          for k, v in ingest.items()}},
            "training_set": {"config": {}},
            "lpm_model": {"config": {"max_epochs": epochs}},
            "evaluation_report": {"config": {"max_epochs": eval_epochs or epochs, "seeds": list(seeds)}},
        },
    }


def run_everything(settings: Settings, *, inputs: str, epochs: int = 12, log_level: str = "INFO",
                   instance: dg.DagsterInstance | None = None, seeds: tuple[int, ...] = (0,),
                   read_options: ReadOptions | None = None,
                   job: dg.JobDefinition | None = None) -> dg.ExecuteInProcessResult:
    """Materialize every asset (and run every check) in this process against the configured Neo4j.
    job: another job of the same assets (tests: the sources group alone); config for its ops only."""
    os.environ["PERTURBGRAPH_INPUTS"] = inputs
    os.environ["PERTURBGRAPH_HOME"] = str(settings.home)
    reload_settings()
    from pipelines.definitions import defs

    config = run_config(epochs, seeds=seeds, read_options=read_options)
    config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    job = (job or defs.resolve_job_def("perturbgraph_all")).with_logger_defs({"console": one_line_console})
    config["ops"] = {name: c for name, c in config["ops"].items() if job.graph.has_node_named(name)}
    return job.execute_in_process(run_config=config, instance=instance or dg.DagsterInstance.get(),
                                  raise_on_error=False)


class _OneLineFormatter(logging.Formatter):
    """Dagster's log lines with a failure's stack trace cut off and its lines joined: the demo prints what
    failed and why (e.g. the input file and its problem); the run's event log keeps the stack trace
    (`perturbgraph ui`)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        text = re.split(r"\n\s*Stack Trace:", text, maxsplit=1)[0]
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


@dg.logger(dg.Field({"log_level": dg.Field(str, is_required=False, default_value="INFO")}),
           description="The console logger of `perturbgraph demo`: one line per event, no stack traces.")
def one_line_console(init_context) -> logging.Logger:
    log = logging.getLogger("perturbgraph.demo")
    log.setLevel(init_context.logger_config["log_level"])
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)  # the stream of the moment (a test's capture included)
    handler.setFormatter(_OneLineFormatter("%(asctime)s - %(levelname)s - %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    return log


def first_failure(result: dg.ExecuteInProcessResult) -> str | None:
    """The first failed step's message in one line: a dg.Failure's description (the input assets put the
    file and the problem there), else the error's first line."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            text = (data.user_failure_data.description if data.user_failure_data and
                    data.user_failure_data.description else (data.error.message if data.error else ""))
            text = " ".join(str(text).split())
            return f"step {event.step_key}: {text}" if text else f"step {event.step_key} failed"
    return None


def _output(result: dg.ExecuteInProcessResult, asset: str):
    try:
        return result.asset_value(asset)
    except Exception:  # noqa: BLE001 - not materialized (e.g. a blocking check failed)
        return None


def summary(settings: Settings, result: dg.ExecuteInProcessResult, *, console: Console | None = None,
            elapsed_s: float, fmt: str = "table") -> None:
    """Graph counts, held-out metrics, simulated-truth recovery and example discoveries, as tables
    (or JSON / TSV) on stdout."""
    from graph.db.checks import graph_counts
    from graph.db.connection import open_driver
    from pipelines.output import OutTable, emit

    with open_driver(settings) as driver:
        counts = graph_counts(driver, database=settings.neo4j_database)
        examples = example_discoveries(driver, settings.neo4j_database)
    tables = [
        OutTable("nodes", "Graph", ("nodes", "n"), tuple((k, n) for k, n in counts["nodes"].items() if n), ("n",)),
        OutTable("relationships", "", ("relationships", "n"),
                 tuple((k, n) for k, n in counts["relationships"].items() if n), ("n",)),
    ]
    report = _output(result, "evaluation_report")
    if report:
        cols = ("rmse", "pearson", "pearson_per_signature", "top50_up")
        rows = sorted(report["means"].items(), key=lambda kv: kv[1].get("rmse", 9e9))
        tables.append(OutTable(
            "metrics", f"Held-out experiments ({report['split']}, target {report['context']})"
                       + (" — SIMULATED data" if report.get("simulated") else ""),
            ("model", *cols), tuple((m, *(round(float(r.get(c, float("nan"))), 3) for c in cols)) for m, r in rows),
            cols))
    rec, text = None, ""
    if report and (choices := report.get("production_choices")):
        # The row's numbers can equal a baseline's: say so, and that the published version chose on its own rows.
        text = ("In the held-out table, `production` is the predictor chosen on this split's validation experiments ("
                + "; ".join(f"seed {seed}: {why}" for seed, why in choices.items())
                + "). The published version chose on its own validation rows: `perturbgraph query model-versions`.\n")
    truth_dir = settings.data_dir / "default-seed0"
    if report and report.get("simulated") and (truth_dir / "truth").exists():
        from pipelines.truth import recovery_report

        with open_driver(settings) as driver:
            rec = recovery_report(driver, settings.neo4j_database, truth_dir)
        text += (f"Recovery of the simulated truth: the annotated target is the top mechanism link for "
                f"{rec['target_at_rank1']:.0%} of {rec['compounds_with_knocked_down_target']} compounds (chance "
                f"{rec['chance_rank1']:.1%}), in the top {rec['top_k']} for {rec['target_in_top_k']:.0%} (chance "
                f"{rec['chance_top_k']:.0%}); {rec['planted_targets_significant']} of {rec['planted_target_pairs']} "
                f"planted compound targets are significant published links ({rec['significant_links']} in all); "
                f"{rec['novel_edge_precision_vs_hidden']:.1%} of novel predicted "
                f"gene-gene edges are hidden true edges (base rate {rec['hidden_edge_base_rate']:.1%}).\n")
    if rec and fmt == "tsv":  # JSON carries it under "recovery", the table format as the sentence
        tables.append(OutTable("recovery", "Recovery of the simulated truth", ("measure", "value"),
                               tuple(rec.items())))
    if examples:
        cols = ("kind", "from", "to", "score", "note")
        tables.append(OutTable("examples", "Example discoveries (current model version)", cols,
                               tuple(tuple(str(row[c]) for c in cols) for row in examples)))
    cypher = "  " + CYPHER_HINT.replace("\n", "\n  ")
    text += (f"\nSee them in Neo4j Browser (or `perturbgraph cypher`):\n{cypher}\n"
             f"Named queries: `perturbgraph queries`. Dagster UI: `perturbgraph ui` (instance {settings.dagster_home}).\n"
             f"Finished in {elapsed_s / 60:.1f} min.")
    emit(tables, fmt, console=console, text=text,
         extra={"recovery": rec, "cypher": CYPHER_HINT, "elapsed_s": round(elapsed_s, 1),
                "production_choices": (report or {}).get("production_choices")})


def example_discoveries(driver, database: str) -> list[dict]:
    """Three examples for the summary: significant mechanism links (annotated targets first; a row saying
    none passed the FDR otherwise), a novel gene-gene edge."""
    from graph.db import pipeline_queries as PQ

    rows = []
    for record in PQ.example_mechanism_links(driver, database=database):
        rows.append({"kind": "shares mechanism", "from": record["compound"], "to": record["gene"],
                     "score": f"{record['score']:.3f}",
                     "note": f"{'annotated target' if record['annotated'] else 'rank ' + str(record['rank'])}, "
                             f"q {record['qvalue']:.2g}, {record['method'] or 'unknown source'}"})
    if not rows:  # only significant links are discoveries; say so rather than show the unsupported ones
        rows.append({"kind": "shares mechanism", "from": "-", "to": "-", "score": "-",
                     "note": "no link passed the FDR (`perturbgraph query mechanism --compound X --all` shows them)"})
    for record in PQ.example_predicted_interactions(driver, database=database):
        rows.append({"kind": "predicted interaction", "from": record["a"], "to": record["b"],
                     "score": f"{record['score']:.3f}", "note": "in prior" if record["in_prior"] else "novel"})
    return rows[:3]

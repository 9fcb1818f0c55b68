"""`perturbgraph demo`: start Neo4j, materialize every asset on the chosen inputs, print a summary."""

from __future__ import annotations

import typer

from graph.io.options import OPTION_HELP
from graph.io.validation import DEFAULT_DUPLICATES
from graph.settings import get_settings
from pipelines.cli.common import app, console, dagster_home, fail, read_flag
from pipelines.output import OutputFormat


@app.command("demo")
def demo(
    inputs: str = typer.Option(None, "--inputs", help="default (simulated) | shared | shared:<substr>,… | file paths "
                                                      "(a file's own options: FILE?readouts=150&context=A375, "
                                                      "docs/inputs.md); default: PERTURBGRAPH_INPUTS"),
    epochs: int = typer.Option(12, "--epochs", help="LPM training epochs (early stopping may end sooner)"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="summary as table | json | tsv"),
    perturbation_type: str | None = typer.Option(None, "--perturbation-type", help=OPTION_HELP["perturbation_type"]),
    context: str | None = typer.Option(None, "--context", "--input-context", help=OPTION_HELP["context"]),
    readout_key: str | None = typer.Option(None, "--readout-key", help=OPTION_HELP["readout_key"]),
    readouts: str | None = typer.Option(None, "--readouts", help=OPTION_HELP["readouts"]),
    readout_seed: int = typer.Option(0, "--readout-seed", help=OPTION_HELP["readout_seed"]),
    duplicates: str = typer.Option(DEFAULT_DUPLICATES, "--duplicates", help=OPTION_HELP["duplicates"]),
    unknown_genes: str = read_flag("unknown_genes", default="keep"),
    bulk: bool = read_flag("bulk", default=False),
    signature_info: str | None = read_flag("signature_info"),
) -> None:
    """The main job: start Neo4j, materialize every asset, print counts, metrics and example discoveries.
    The read options apply to every measurement file of the run (a file's own options win)."""
    import time

    from graph.db.connection import ensure_neo4j, open_driver
    from graph.db.server import Neo4jServerError
    from graph.io.common import InputFileError
    from graph.io.options import ReadOptions
    from pipelines.inputs import resolve_inputs

    settings = get_settings()
    began = time.monotonic()
    selection = inputs or settings.inputs
    try:
        read_options = ReadOptions.parse({"perturbation_type": perturbation_type, "context": context,
                                          "readout_key": readout_key, "readouts": readouts,
                                          "readout_seed": readout_seed, "duplicates": duplicates,
                                          "unknown_genes": unknown_genes, "bulk": str(bulk),
                                          "signature_info": signature_info})
        if selection not in ("default", "shared", "inbox") and not selection.startswith("shared:"):
            resolve_inputs(settings, selection, read_options)  # named files: checked before Neo4j starts
    except (ValueError, InputFileError) as exc:
        fail(" ".join(str(exc).split()))
    try:
        ensure_neo4j(settings, progress=lambda m: console.print(f"[dim]{m}[/]"))
    except Neo4jServerError as exc:
        fail(str(exc))
    with open_driver(settings) as driver:
        driver.verify_connectivity()
    console.print(f"[green]Neo4j ready at {settings.effective_neo4j_uri}[/]")
    dagster_home(settings)
    from pipelines.runner import first_failure, run_everything, summary

    console.print(f"materializing every asset on inputs={selection!r}"
                  + (" (SIMULATED default dataset)" if selection == "default" else ""))
    result = run_everything(settings, inputs=selection, epochs=epochs, log_level="INFO", read_options=read_options)
    if not result.success:
        fail(f"the main job failed: {first_failure(result) or 'see the step logs above'} (the full run: "
             "`perturbgraph ui`)")
    summary(settings, result, elapsed_s=time.monotonic() - began, fmt=fmt.value)

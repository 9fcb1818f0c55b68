"""`train` and `evaluate` commands (a typer app the `perturbgraph` CLI mounts).

    perturbgraph train --input tahoe --output lpm.pt --epochs 20
    perturbgraph evaluate --input tahoe --split unseen-experiment --target-context A498 \\
        --models lpm,baselines --seeds 0,1,2,3,4 --out results/tahoe_a498

--input takes a shared dataset name (tahoe, replogle, l1000-ds, l1000-ljp005, l1000-kd, l1000-skb),
a GCTX file, or a parquet / CSV / TSV long table (value) or ranked table (rank, n_ranked).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="Train the LPM and evaluate it beside the baselines.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _load(input_: str, readouts: str | None) -> pd.DataFrame:
    from models.datasets import load_dataset

    kwargs = {}
    if readouts is not None:
        if input_ != "tahoe":
            _fail("--readouts applies to the tahoe dataset only")
        kwargs["readouts"] = int(readouts) if readouts.isdigit() else readouts
    with console.status(f"loading {input_}"):
        try:
            df = load_dataset(input_, **kwargs)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
    console.print(f"{input_}: {len(df):,} rows, {df['context'].nunique()} contexts, "
                  f"{df['perturbation'].nunique()} perturbations, {df['readout'].nunique()} readouts")
    return df


# Cell-line features are attached when they describe at least this share of a dataset's contexts
# (all but a few L1000 lines; Tahoe has 1 of 10, Replogle none: there they would describe one line
# and leave the rest to learned vectors).
MIN_CONTEXT_FEATURE_COVERAGE = 0.5


def resources_for(df: pd.DataFrame, *, gene_graph: bool = True, epochs: int | None = None):
    """Side information for the shared data: SMILES by compound name, STRING (score >= 700) among
    the readouts and genetic targets, each genetic perturbation's target = its own name, and LINCS
    baseline expression of the cell lines (when it covers most of the dataset's contexts)."""
    from models.datasets import cell_line_features, compound_smiles, string_gene_graph
    from models.evaluation.harness import Resources
    from models.evaluation.splits import GENETIC_TYPES

    types = df["perturbation_type"].astype(str)
    compounds = df.loc[types == "compound", "perturbation"].astype(str).unique()
    genetic = df.loc[types.isin(GENETIC_TYPES), "perturbation"].astype(str).unique()
    res = Resources(lpm_epochs=epochs)
    try:
        res.compound_smiles = compound_smiles(compounds) if len(compounds) else {}
        if gene_graph:
            genes = set(df["readout"].astype(str).unique()) | set(genetic)
            res.gene_graph = string_gene_graph(genes=genes)
        contexts = df["context"].astype(str).unique()
        features = cell_line_features(contexts)
        if len(features) >= MIN_CONTEXT_FEATURE_COVERAGE * len(contexts):
            res.context_features = features
    except FileNotFoundError as exc:  # user data without the shared folder: no side information
        console.print(f"[yellow]no side information:[/] {exc}")
    if len(genetic):
        res.perturbation_targets = {p: [p] for p in genetic}
    return res


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        _fail(f"expected comma-separated integers, got {text!r}")


@app.command()
def train(
    input_: str = typer.Option(..., "--input", help="dataset name or file"),
    output: Path = typer.Option(Path("lpm.pt"), "--output", help="checkpoint path"),
    epochs: int | None = typer.Option(None, "--epochs", help="max epochs (default: LPMConfig)"),
    readouts: str | None = typer.Option(None, "--readouts", help="tahoe only: dense | all | N"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit the LPM on all experiments of INPUT and save a checkpoint."""
    from models.lpm import LPM
    from models.module import LPMConfig

    df = _load(input_, readouts)
    res = resources_for(df, epochs=epochs)
    config = LPMConfig() if epochs is None else LPMConfig(max_epochs=epochs)
    model = LPM(config, compound_smiles=res.compound_smiles or None, gene_graph=res.gene_graph,
                perturbation_targets=res.perturbation_targets, seed=seed)
    model.fit(df, None, progress=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    console.print(f"saved {output}")


@app.command()
def evaluate(
    input_: str = typer.Option(..., "--input", help="dataset name or file"),
    split: str = typer.Option("unseen-experiment", "--split",
                              help="unseen-experiment | unseen-compound | unseen-gene | unseen-context"),
    target_context: str | None = typer.Option(None, "--target-context", "--context",
                                              help="target context (unseen-experiment) or left-out context (unseen-context)"),
    models: str = typer.Option("lpm,baselines", "--models", help="comma-separated: lpm, lpm_paper, lpm_zeroshot, lpm_stacked, production, baselines or baseline names"),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds"),
    out: Path = typer.Option(Path("results"), "--out", help="folder for results.json and results.md"),
    epochs: int | None = typer.Option(None, "--epochs", help="LPM max epochs (default: LPMConfig)"),
    readouts: str | None = typer.Option(None, "--readouts", help="tahoe only: dense | all | N"),
) -> None:
    """Evaluate the LPM and baselines on one split over several seeds; write JSON and a markdown table."""
    from models.evaluation.harness import expand_model_names, markdown_table, run_benchmark, write_results
    from models.evaluation.splits import SPLITS

    if split not in SPLITS:
        _fail(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if split in {"unseen-experiment", "unseen-context"} and not target_context:
        _fail(f"{split} needs --target-context")
    df = _load(input_, readouts)
    res = resources_for(df, gene_graph="lpm" in models or "production" in models, epochs=epochs)
    seed_list = _ints(seeds)
    try:
        names = expand_model_names(models.split(","), df, res)
    except ValueError as exc:
        _fail(str(exc))
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{split} {target_context or ''}".strip(), total=len(seed_list) * len(names))

        def step(record: dict) -> None:
            status = f"[red]{record['error']}[/]" if record["error"] else f"r={record['pearson_per_signature']:.3f}"
            progress.console.print(f"seed {record['seed']} {record['model']}: {status}")
            progress.advance(task)

        try:
            results = run_benchmark(df, split, context=target_context, models=names, seeds=seed_list,
                                    resources=res, on_result=step)
        except ValueError as exc:
            _fail(str(exc))
    json_path, md_path = write_results(results, out, title=f"{input_}: {split} {target_context or ''}".strip())
    console.print(markdown_table(results))
    console.print(f"wrote {json_path} and {md_path}")

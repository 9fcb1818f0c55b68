"""`perturbgraph train` and `perturbgraph evaluate` (pipelines/cli/model.py).

    perturbgraph train --input tahoe --output lpm.pt --epochs 20
    perturbgraph evaluate --input tahoe --split unseen-experiment --target-context A498 \\
        --models lpm,baselines --seeds 0,1,2,3,4 --out results/tahoe_a498

    torchrun --nproc_per_node=4 -m pipelines.cli train --input tahoe --output lpm.pt   # one rank each

--input takes a shared dataset name (tahoe, tahoe37, replogle, l1000-ds, l1000-ljp005, l1000-kd, l1000-skb),
an ingested dataset id, or a file: GCTX/GCT, h5ad (pseudobulked as ingest does), or a parquet / CSV /
TSV long table (value) or ranked table (rank, n_ranked); the format is read from the extension checked
against the file's first bytes. Files go through the ingest readers (graph/io) and the one validation
step (graph/io/validation.py), so the accepted table is the one `perturbgraph demo --inputs FILE`
stores; what was quarantined is reported. Bad input ends in one line naming the file (exit 1).
The read options (--perturbation-type, --context/--input-context, --readout-key, --readouts,
--readout-seed, --duplicates, --unknown-genes) are graph/io/options.ReadOptions, the same as `perturbgraph demo`'s, the
Dagster input_manifest config's and an inbox file's `<name>.options`: --readouts N keeps N random
readouts of those in every signature of the reader's accepted table (for tahoe exactly
benchmarks/make_results.py's "150 random dense readouts" with N=150, seed 0) or the names in a file.
A table without a perturbation_type column needs --perturbation-type.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graph.io.options import OPTION_HELP
from graph.io.validation import DEFAULT_DUPLICATES
from models.datasets import resources_for
from pipelines.cli.common import app, console, fail, read_flag

_fail = fail  # one line on stderr, exit 1 (never a traceback for bad input)


def _read_options(readouts: str | None, readout_seed: int, duplicates: str, context: str | None,
                  readout_key: str | None, perturbation_type: str | None, unknown_genes: str = "keep",
                  bulk: bool = False, signature_info: str | None = None):
    """The command's ReadOptions (graph/io/options.py); a bad value is one line naming the option."""
    from graph.io.common import InputFileError
    from graph.io.options import ReadOptions

    try:
        return ReadOptions.parse({"readouts": None if readouts in {"dense", "all"} else readouts,
                                  "readout_seed": readout_seed, "duplicates": duplicates, "context": context,
                                  "readout_key": readout_key, "perturbation_type": perturbation_type,
                                  "unknown_genes": unknown_genes, "bulk": str(bulk),
                                  "signature_info": signature_info})
    except InputFileError as exc:
        _fail(str(exc))
    except ValueError as exc:
        _fail(f"--{str(exc).replace('_', '-', 1)}")


def _load(input_: str, readouts: str | None, readout_seed: int = 0, duplicates: str = DEFAULT_DUPLICATES) -> pd.DataFrame:
    """_load_input's table."""
    return _load_input(input_, readouts, readout_seed, duplicates).frame


def _gene_resolver(readout_key: str | None):
    """The gene table the pipeline would use (graph/io/readers.gene_resolver: the shared data's
    genes/genes_human.tsv when present); --readout-key cannot work without one."""
    from graph.io.readers import DEFAULT_GENE_TABLE, gene_resolver
    from graph.settings import get_settings

    resolver = gene_resolver((), get_settings().shared_data)
    if resolver is None and readout_key:
        _fail(f"--readout-key {readout_key} needs the gene table {get_settings().shared_data / DEFAULT_GENE_TABLE} "
              "(shared data) to map ids to symbols")
    return resolver


def _load_input(input_: str, readouts: str | None, readout_seed: int = 0, duplicates: str = DEFAULT_DUPLICATES,
                context: str | None = None, readout_key: str | None = None, perturbation_type: str | None = None,
                unknown_genes: str = "keep", bulk: bool = False, signature_info: str | None = None):
    """Read INPUT through the ingest readers and the validation step (a models.datasets.Loaded) with the
    command's ReadOptions; bad input -> one line naming the file, exit 1."""
    from graph.io.common import InputFileError
    from models.datasets import TAHOE_FILES, load_input

    options = _read_options(readouts, readout_seed, duplicates, context, readout_key, perturbation_type, unknown_genes,
                            bulk, signature_info)
    kwargs = {"options": options}  # load_input applies the gene-table rule to files (graph/io/readers.gene_resolver)
    if readout_key:
        kwargs["resolver"] = _gene_resolver(readout_key)
    if input_ in TAHOE_FILES:
        # The docs' tables: read_tahoe(n_random=N, seed=S) draws from the dense readouts (or dense | all | names).
        kwargs = ({"readouts": readouts} if readouts in {"dense", "all"} else
                  {"n_random": options.readouts, "seed": readout_seed} if isinstance(options.readouts, int) else
                  {"readouts": list(options.readouts)} if options.readouts else {})
    elif readouts in {"dense", "all"}:
        _fail("--readouts dense|all applies to the tahoe dataset; use N or a file of names")
    elif input_ == "replogle" and options.readouts is not None:
        _fail("--readouts applies to files, ingested datasets, the l1000-* GCTX files and tahoe; replogle keeps "
              "its most measured readouts")
    try:
        with console.status(f"loading {input_}"):
            loaded = load_input(input_, **kwargs)
    except (InputFileError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _fail(str(exc))
    except (ValueError, OSError, KeyError) as exc:
        _fail(f"{input_}: {exc}")
    except Exception as exc:  # an unexpected reader failure is still one line naming the input
        _fail(f"{input_}: cannot be read ({type(exc).__name__}: {exc})")
    df = loaded.frame
    typer.echo(f"{input_}: {loaded.report.summary()}", err=True)
    typer.echo(f"{input_}: {len(df):,} rows, {df['context'].nunique()} contexts, "
               f"{df['perturbation'].nunique()} perturbations, {df['readout'].nunique()} readouts", err=True)
    return loaded


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        _fail(f"expected comma-separated integers, got {text!r}")


READOUTS_HELP = (OPTION_HELP["readouts"] + "; "
                 "tahoe also: dense | all")
CONTEXT_HELP = OPTION_HELP["context"]
READOUT_KEY_HELP = ("column holding the readouts (e.g. ensembl_id, entrez_id), mapped to gene symbols through "
                    "the gene table; for a wide table: map its column headers")
DUPLICATES_HELP = OPTION_HELP["duplicates"]
TYPE_HELP = OPTION_HELP["perturbation_type"]


def _target_context(input_: str, target: str | None) -> str | None:
    """Check --target-context against the input's contexts before the heavy load (when they can be read
    cheaply); a user file's contexts are normalised by the reader, so the target is too."""
    from graph.io.contexts import normalise_context_name
    from models.datasets import dataset_contexts

    if target is None:
        return None
    contexts = dataset_contexts(input_)
    if not contexts or target in contexts:  # none: the loader says what is wrong with the file
        return target
    if normalise_context_name(target) in contexts:
        return normalise_context_name(target)
    _fail(f"unknown --target-context {target!r}; {input_} has {len(contexts)} contexts: {', '.join(contexts)}")


def _check_finite(model) -> None:
    import torch

    module = getattr(model, "module", None)
    if module is not None and not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
        _fail("training produced non-finite weights; no checkpoint written")


@app.command("train", help="Train the LPM on an ingested dataset or any file the readers accept.")
def train(
    input_: str = typer.Option(..., "--input", help="dataset name or file"),
    output: Path = typer.Option(Path("lpm.pt"), "--output", help="checkpoint path"),
    epochs: int | None = typer.Option(None, "--epochs", help="max epochs (default: LPMConfig)"),
    readouts: str | None = typer.Option(None, "--readouts", help=READOUTS_HELP),
    readout_seed: int = typer.Option(0, "--readout-seed", help=OPTION_HELP["readout_seed"]),
    duplicates: str = typer.Option(DEFAULT_DUPLICATES, "--duplicates", help=DUPLICATES_HELP),
    context: str | None = typer.Option(None, "--context", "--input-context", help=CONTEXT_HELP),
    readout_key: str | None = typer.Option(None, "--readout-key", help=READOUT_KEY_HELP),
    perturbation_type: str | None = typer.Option(None, "--perturbation-type", help=TYPE_HELP),
    unknown_genes: str = read_flag("unknown_genes", default="keep"),
    bulk: bool = read_flag("bulk", default=False),
    signature_info: str | None = read_flag("signature_info"),
    seed: int = typer.Option(0, "--seed"),
    paper: bool = typer.Option(False, "--paper", help="LPMConfig.paper(): learned embeddings only, no side information"),
    nproc: int = typer.Option(1, "--nproc", min=1,
                              help="data-parallel processes: torchrun starts this command once per rank "
                                   "(NCCL on GPUs, gloo on CPU; models/distributed.py)"),
) -> None:
    """Fit the LPM on all experiments of INPUT and save a checkpoint. Under torchrun (WORLD_SIZE set)
    this process is one rank of a data-parallel fit; rank 0 saves."""
    from models.lpm import LPM
    from models.module import LPMConfig

    if nproc > 1:  # torchrun starts this same command once per rank (the rank path below)
        import subprocess
        import sys

        raise typer.Exit(subprocess.call([
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "pipelines.cli", "train",
            "--input", input_, "--output", str(output), "--readout-seed", str(readout_seed), "--duplicates", duplicates,
            "--seed", str(seed), *(["--epochs", str(epochs)] if epochs is not None else []),
            *(["--context", context] if context else []), *(["--readout-key", readout_key] if readout_key else []),
            *(["--perturbation-type", perturbation_type] if perturbation_type else []),
            "--unknown-genes", unknown_genes, *(["--bulk"] if bulk else []),
            *(["--signature-info", signature_info] if signature_info else []), *(["--paper"] if paper else []), *(["--readouts", readouts] if readouts is not None else [])]))
    if output.is_dir():
        _fail(f"{output}: is a directory; give the checkpoint file name")
    parallel = device = None
    if "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ:  # one rank of torchrun
        from models import distributed as D

        parallel, device = D.setup()
    try:
        loaded = _load_input(input_, readouts, readout_seed, duplicates, context, readout_key, perturbation_type,
                             unknown_genes, bulk, signature_info)
        df = loaded.frame
        config = (LPMConfig.paper if paper else LPMConfig)(**({} if epochs is None else {"max_epochs": epochs}))
        side = None if paper else resources_for(
            df, epochs=epochs, perturbation_names=loaded.perturbation_names,
            perturbation_targets=loaded.perturbation_targets).side
        model = LPM(config, side=side, seed=seed)
        lead = parallel is None or parallel.rank == 0
        try:
            model.fit(df, None, progress=lead, **({"device": device, "parallel": parallel} if parallel else {}))
        except (ValueError, RuntimeError) as exc:
            _fail(f"{input_}: training failed ({type(exc).__name__}: {exc})")
        _check_finite(model)  # every rank: the weights are the same, and all of them must stop together
        if lead:
            output.parent.mkdir(parents=True, exist_ok=True)
            model.save(output)
            ranks = f" ({parallel.world_size} ranks, {len(model.history)} epochs)" if parallel else ""
            typer.echo(f"saved {output}{ranks}", err=True)
        if parallel is not None:
            D.dist.barrier()
    finally:
        if parallel is not None:
            D.dist.destroy_process_group()


@app.command("evaluate", help="Evaluate the LPM beside every baseline on a split; JSON + markdown out.")
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
    readouts: str | None = typer.Option(None, "--readouts", help=READOUTS_HELP),
    readout_seed: int = typer.Option(0, "--readout-seed", help="seed of the random readout subset"),
    duplicates: str = typer.Option(DEFAULT_DUPLICATES, "--duplicates", help=DUPLICATES_HELP),
    input_context: str | None = typer.Option(None, "--input-context", help=CONTEXT_HELP + " (--context is the target)"),
    readout_key: str | None = typer.Option(None, "--readout-key", help=READOUT_KEY_HELP),
    perturbation_type: str | None = typer.Option(None, "--perturbation-type", help=TYPE_HELP),
    unknown_genes: str = read_flag("unknown_genes", default="keep"),
    bulk: bool = read_flag("bulk", default=False),
    signature_info: str | None = read_flag("signature_info"),
    fmt: str = typer.Option("table", "--format", help="results on stdout: table (markdown) | json (every row) | "
                                                      "tsv (mean per model and metric)"),
) -> None:
    """Evaluate the LPM and baselines on one split over several seeds; write JSON and a markdown table.
    Exits 1 when every model failed."""
    from models.evaluation.harness import expand_model_names, markdown_table, run_benchmark, write_results
    from models.evaluation.splits import SPLITS
    from models.progress import LineReporter, configured_every_s, reporting_to

    if fmt not in ("table", "json", "tsv"):
        _fail(f"unknown --format {fmt!r}; choose from table, json, tsv")
    if split not in SPLITS:
        _fail(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if split in {"unseen-experiment", "unseen-context"} and not target_context:
        _fail(f"{split} needs --target-context")
    seed_list = _ints(seeds)
    target_context = _target_context(input_, target_context)
    loaded = _load_input(input_, readouts, readout_seed, duplicates, input_context, readout_key, perturbation_type,
                         unknown_genes, bulk, signature_info)
    df = loaded.frame
    if target_context is not None and target_context not in set(df["context"].astype(str)):
        contexts = sorted(df["context"].astype(str).unique())
        _fail(f"unknown --target-context {target_context!r}; {input_} has {len(contexts)} contexts: {', '.join(contexts)}")
    res = resources_for(df, gene_graph="lpm" in models or "production" in models, epochs=epochs,
                        perturbation_names=loaded.perturbation_names, perturbation_targets=loaded.perturbation_targets)
    try:
        names = expand_model_names(models.split(","), df, res)
    except ValueError as exc:
        _fail(str(exc))
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{split} {target_context or ''}".strip(), total=len(seed_list) * len(names))

        def step(record: dict) -> None:
            status = f"failed: {record['error']}" if record["error"] else f"r={record['pearson_per_signature']:.3f}"
            progress.console.print(f"seed {record['seed']} {record['model']}: {status}", markup=False)
            progress.advance(task)

        # Each LPM fit reports epochs / loss / ETA above the bar (the harness fits silently otherwise).
        fit_log = LineReporter(lambda line: progress.console.print(line, markup=False, highlight=False),
                               every_s=configured_every_s())
        try:
            with reporting_to(fit_log):
                results = run_benchmark(df, split, context=target_context, models=names, seeds=seed_list,
                                        resources=res, on_result=step)
        except ValueError as exc:
            _fail(f"{input_}: {exc}")
    json_path, md_path = write_results(results, out, title=f"{input_}: {split} {target_context or ''}".strip())
    # stdout, plain text: piped or redirected, rows are never wrapped (a rich console would wrap at 80).
    if fmt == "json":
        typer.echo(results.to_json(orient="records", indent=1))
    elif fmt == "tsv":
        from models.evaluation.metrics import summarize

        typer.echo(summarize(results)["mean"].to_csv(sep="\t", float_format="%.4f"), nl=False)
    else:
        typer.echo(markdown_table(results))
    console.print(f"wrote {json_path} and {md_path}", markup=False, soft_wrap=True)
    failed = results["error"].astype(bool) if "error" in results else pd.Series(False, index=results.index)
    if len(results) and failed.all():
        _fail(f"every model failed on {input_} (first error: {results.loc[failed, 'error'].iloc[0]})")

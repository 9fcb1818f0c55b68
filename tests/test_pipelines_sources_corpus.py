"""One data path: the hostile-file corpus (tests/bad_inputs.cli_corpus) through the four entry points.

`perturbgraph train`, `perturbgraph evaluate`, `perturbgraph demo --inputs FILE` and the inbox sensor
must give each file the same outcome: accepted (with what was quarantined, counted alike), or refused
with one line naming the file (the inbox: moved to inbox/rejected/ with a reason), never a traceback.
An accepted file gives the same accepted table on every entry point.

The demo runs its real path (options, input check, the Dagster job with its one-line console logger,
the failure line) with the job cut to the `sources` assets (input_manifest, reference_data,
experiments): the steps after them (Neo4j load, training) read no input file. The inbox runs the real
sensor, then the same assets on the inbox, as the run the sensor requests does.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import bad_inputs as B
import dagster as dg
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from graph.io.validation import DEFAULT_DUPLICATES
from pipelines.runner import run_everything as real_run_everything  # before any test replaces it

runner = CliRunner()
ENTRY_POINTS = ("train", "evaluate", "demo", "inbox")
LONG = ["context", "perturbation", "perturbation_type", "readout", "value"]


@dataclass
class Outcome:
    refused: bool
    message: str = ""  # the error line (inbox: the reason file's text)
    quarantined: int | None = None
    table: pd.DataFrame | None = None  # the accepted table, canonical order


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    out = df[LONG].astype({c: str for c in LONG[:4]}).astype({"value": np.float32})
    return out.sort_values(LONG[:4]).reset_index(drop=True)


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """A home per entry point; no shared data (side information is a warning, nothing slow is read)."""
    from graph.settings import reload_settings
    from models.datasets import _smiles_table

    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path / "no-shared-data"))
    monkeypatch.setenv("PERTURBGRAPH_INPUTS", "default")  # run_everything sets it; restored afterwards
    _smiles_table.cache_clear()

    def use(name: str) -> Path:
        home = tmp_path / name
        monkeypatch.setenv("PERTURBGRAPH_HOME", str(home))
        reload_settings()
        return home

    yield use
    monkeypatch.undo()
    reload_settings()
    _smiles_table.cache_clear()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return B.cli_corpus(tmp_path_factory.mktemp("corpus"))


def _one_error_line(result, path) -> str:
    assert "Traceback" not in result.output and "Stack Trace" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert str(path) in errors[0], errors[0]
    return errors[0]


def _quarantined(output: str) -> int:
    line = next(x for x in output.splitlines() if "rows read" in x or " read, " in x)
    return int(re.search(r"([\d,]+) quarantined", line).group(1).replace(",", ""))


def _options(options: list[str]):
    """The ReadOptions of CLI options like ["--readouts", "3"] (the one text form)."""
    from graph.io.options import ReadOptions

    return ReadOptions.parse({k[2:].replace("-", "_"): v for k, v in zip(options[::2], options[1::2], strict=True)})


def _cli(command: str, path: Path, tmp_path: Path, options: list[str]) -> Outcome:
    from models.datasets import load_input
    from pipelines.cli import app

    if command == "train":
        args = ["train", "--input", str(path), "--output", str(tmp_path / "lpm.pt"), "--epochs", "1"]
    else:
        args = ["evaluate", "--input", str(path), "--split", "unseen-experiment", "--target-context", "C1",
                "--models", "context_mean", "--seeds", "0", "--out", str(tmp_path / "res")]
    result = runner.invoke(app, [*args, *options])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code:
        return Outcome(True, _one_error_line(result, path))
    if command == "train":  # never a silent model from garbage: the checkpoint's weights are finite
        from models.lpm import LPM

        weights = [p.detach().numpy() for p in LPM.load(tmp_path / "lpm.pt").module.parameters()]
        assert all(np.isfinite(w).all() for w in weights)
    loaded = load_input(path, options=_options(options))  # the table the command trained / evaluated on
    return Outcome(False, quarantined=_quarantined(result.output), table=_canon(loaded.frame))


def _sources_job() -> dg.JobDefinition:
    """The sources group (input_manifest, reference_data, experiments) with the resource the real
    Definitions give it (PerturbGraphSettings from the environment, as run_everything sets it)."""
    from pipelines.assets.sources import experiments, input_manifest, reference_data
    from pipelines.resources import PerturbGraphSettings

    return dg.Definitions(assets=[input_manifest, reference_data, experiments],
                          resources={"perturbgraph": PerturbGraphSettings()},
                          jobs=[dg.define_asset_job("sources_only", selection=dg.AssetSelection.groups("sources"))],
                          ).resolve_job_def("sources_only")


def _bundle(result, name: str):
    bundles = result.asset_value("experiments") if result.success else []
    return next((b for b in bundles if Path(b.dataset.path).name == name), None)


def _store_table(home: Path, dataset_id: str) -> pd.DataFrame:
    from graph.settings import Settings
    from graph.store.measurements import load_training_table

    return _canon(load_training_table(Settings(home=home), [dataset_id]))


def _demo(path: Path, homes, monkeypatch, options: list[str]) -> Outcome:
    import contextlib

    import graph.db.connection
    import pipelines.runner as R
    from pipelines.cli import app

    home = homes("demo")
    runs = []

    def run(settings, **kwargs):  # the real run_everything (config, logger) on the sources assets
        runs.append(real_run_everything(settings, job=_sources_job(), instance=dg.DagsterInstance.ephemeral(), **kwargs))
        return runs[-1]

    class _Driver:
        def verify_connectivity(self):
            return None

    monkeypatch.setattr(graph.db.connection, "ensure_neo4j", lambda *a, **k: None)
    monkeypatch.setattr(graph.db.connection, "open_driver", lambda *a, **k: contextlib.nullcontext(_Driver()))
    monkeypatch.setattr(R, "run_everything", run)
    monkeypatch.setattr(R, "summary", lambda *a, **k: None)
    result = runner.invoke(app, ["demo", "--inputs", str(path), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code:
        return Outcome(True, _one_error_line(result, path))
    assert "Traceback" not in result.output and "Stack Trace" not in result.output, result.output
    bundle = _bundle(runs[-1], path.name)
    return Outcome(False, quarantined=bundle.report.quarantined, table=_store_table(home, bundle.dataset.dataset_id))


def _inbox(path: Path, homes, options: list[str]) -> Outcome | None:
    from graph.settings import get_settings
    from pipelines.automation import inbox_sensor

    if not path.exists():
        return None  # nothing can be dropped into the inbox
    home = homes("inbox")
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    target = inbox / path.name
    if path.is_dir():
        target.mkdir()
    else:
        shutil.copyfile(path, target)
    if options:  # the commands' options, in the file's <name>.options sidecar
        given = dict(zip(options[::2], options[1::2], strict=True))
        (inbox / f"{path.name}.options").write_text("".join(f"{k[2:].replace('-', '_')}={v}\n"
                                                            for k, v in given.items()))
    with dg.instance_for_test() as instance:
        tick = inbox_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(tick, dg.RunRequest) == path.is_file()  # a folder never starts a run
    # The run the sensor requests, cut to the sources assets (the next run for a folder).
    result = real_run_everything(get_settings(), inputs="inbox", job=_sources_job(), instance=dg.DagsterInstance.ephemeral())
    reason = inbox / "rejected" / f"{path.name}.reason.txt"
    if reason.exists():
        assert not target.exists() and (inbox / "rejected" / path.name).exists()
        return Outcome(True, reason.read_text())
    bundle = _bundle(result, path.name)
    assert bundle is not None, "neither rejected nor ingested"
    return Outcome(False, quarantined=bundle.report.quarantined, table=_store_table(home, bundle.dataset.dataset_id))


def _outcomes(case_path: Path, homes, monkeypatch, tmp_path, options: list[str]) -> dict[str, Outcome]:
    out = {}
    for entry in ENTRY_POINTS:
        homes(entry)
        if entry in ("train", "evaluate"):
            out[entry] = _cli(entry, case_path, tmp_path / entry, options)
        elif entry == "demo":
            out[entry] = _demo(case_path, homes, monkeypatch, options)
        else:
            got = _inbox(case_path, homes, options)
            if got is not None:
                out[entry] = got
    return out


def _one_accepted_table(outcomes: dict[str, Outcome]) -> pd.DataFrame:
    """The accepted table, after checking that every entry point accepted the file and kept the same one."""
    assert set(outcomes) == set(ENTRY_POINTS) and not any(o.refused for o in outcomes.values()), {
        e: o.message for e, o in outcomes.items()}
    first = outcomes["demo"].table
    for entry, o in outcomes.items():
        pd.testing.assert_frame_equal(o.table, first, obj=f"{entry} vs demo")
    return first


@pytest.mark.slow
@pytest.mark.parametrize("case", B.CLI_CASES)
def test_hostile_file_has_one_outcome_on_every_entry_point(case, corpus, homes, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    path, expected = corpus[case]
    outcomes = _outcomes(path, homes, monkeypatch, tmp_path, [])
    assert {entry: o.refused for entry, o in outcomes.items()} == {e: expected == "error" for e in outcomes}, {
        e: o.message for e, o in outcomes.items()}
    if expected in ("quarantine", "averaged"):
        counts = {entry: o.quarantined for entry, o in outcomes.items()}
        assert len(set(counts.values())) == 1 and (counts["demo"] > 0) == (expected == "quarantine"), counts
        first = outcomes["demo"].table
        for entry, o in outcomes.items():
            pd.testing.assert_frame_equal(o.table, first, obj=f"{entry} vs demo")


def test_every_corpus_case_is_in_the_entry_point_test(tmp_path):
    assert set(B.CLI_CASES) == set(B.cli_corpus(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("case,options", [
    ("no_perturbation_type", ["--perturbation-type", "compound"]),
    ("nan_25_percent", ["--readouts", "3", "--readout-seed", "1"]),
    ("wide_duplicate_genes", ["--readouts", "4", "--duplicates", "quarantine"]),
])
def test_read_options_mean_the_same_on_every_entry_point(case, options, corpus, homes, monkeypatch, tmp_path):
    """The same options (CLI flags, demo flags, the inbox sidecar) give the same accepted table."""
    pytest.importorskip("torch")
    path, _ = corpus[case]
    outcomes = _outcomes(path, homes, monkeypatch, tmp_path, options)
    first = _one_accepted_table(outcomes)
    n = dict(zip(options[::2], options[1::2], strict=True)).get("--readouts")
    if n:
        assert first["readout"].nunique() == int(n)
    if case == "wide_duplicate_genes":  # asked: the repeated gene's copies quarantined, counted alike
        assert len({o.quarantined for o in outcomes.values()}) == 1 and outcomes["demo"].quarantined > 0


def test_a_reference_inbox_file_failing_in_its_reader_is_set_aside(tmp_path, monkeypatch):
    """A cell-line feature table whose header passes the inbox check but lacks the feature column fails
    inside its reader: it alone goes to inbox/rejected/ with the reason; the gene table is read."""
    from graph.settings import reload_settings
    from pipelines.assets.sources import input_manifest, reference_data
    from pipelines.resources import PerturbGraphSettings

    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "genes.tsv").write_text("entrez_id\tsymbol\taliases\n7157\tTP53\tp53\n")
    pd.DataFrame({"cell_id": ["A375"], "gene_symbol": ["TP53"]}).to_parquet(inbox / "features.parquet")
    monkeypatch.setenv("PERTURBGRAPH_HOME", str(home))
    reload_settings()
    try:
        result = dg.materialize([input_manifest, reference_data], instance=dg.DagsterInstance.ephemeral(),
                                resources={"perturbgraph": PerturbGraphSettings(home=str(home),
                                                                                inputs_override="inbox")})
    finally:
        monkeypatch.undo()
        reload_settings()
    assert result.success
    bundle = result.asset_value("reference_data")
    assert [g.symbol for g in bundle.genes] == ["TP53"] and not bundle.context_features
    assert [d.name for d in bundle.datasets] == ["genes.tsv"]
    reason = (inbox / "rejected" / "features.parquet.reason.txt").read_text()
    assert "missing columns" in reason and not (inbox / "features.parquet").exists()
    explicit = dg.materialize([input_manifest, reference_data], instance=dg.DagsterInstance.ephemeral(),
                              raise_on_error=False,
                              resources={"perturbgraph": PerturbGraphSettings(
                                  home=str(tmp_path / "other"), inputs_override=str(inbox / "rejected" /
                                                                                    "features.parquet"))})
    failure = next(e for e in explicit.all_events if e.is_step_failure)  # named by the user: the run stops
    assert "features.parquet: missing columns" in failure.step_failure_data.user_failure_data.description



def test_inbox_options_sidecar(tmp_path):
    """<name>.options carries a dropped file's read options; a bad one rejects the file, with it."""
    from graph.settings import Settings
    from pipelines.inputs import scan_inbox

    settings = Settings(home=tmp_path / "home")
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    table = B._clean_long().drop(columns="perturbation_type")
    for name, options in [("a.csv", "readouts=2\nperturbation_type=compound\n"), ("b.csv", "readouts=/etc/passwd"),
                          ("c.csv", "duplicates=sum"), ("d.csv", "colour=red")]:
        table.to_csv(inbox / name, index=False)
        (inbox / f"{name}.options").write_text(options)
    specs, rejections = scan_inbox(settings)
    assert [(Path(s.path).name, s.option_dict) for s in specs] == [
        ("a.csv", {"readouts": "2", "perturbation_type": "compound"})]
    reasons = {r.name: r.reason for r in rejections}
    assert "readouts names a file, which is not taken in the inbox (readouts must be a number N" in reasons["b.csv"]
    assert "duplicates must be one of" in reasons["c.csv"] and "unknown or empty input option" in reasons["d.csv"]
    assert sorted(p.name for p in (inbox / "rejected").glob("*.options")) == ["b.csv.options", "c.csv.options",
                                                                             "d.csv.options"]


def test_demo_refuses_a_bad_option_or_file_before_starting_neo4j(tmp_path, monkeypatch, homes):
    import graph.db.connection
    from pipelines.cli import app

    def no_neo4j(*args, **kwargs):
        raise AssertionError("Neo4j started before the inputs were checked")

    monkeypatch.setattr(graph.db.connection, "ensure_neo4j", no_neo4j)
    homes("demo")
    B._clean_long().drop(columns="perturbation_type").to_csv(tmp_path / "t.csv", index=False)
    for args, message in [(["--duplicates", "sum"], "duplicates must be one of"),
                          (["--perturbation-type", "magic"], "unknown perturbation type"),
                          (["--inputs", str(tmp_path / "missing.csv")], "missing.csv: file does not exist"),
                          (["--inputs", f"{tmp_path / 't.csv'}?readouts=0"], "t.csv: readouts needs N >= 1")]:
        result = runner.invoke(app, ["demo", *(["--inputs", str(tmp_path / "t.csv")] if "--inputs" not in args
                                               else []), *args])
        errors = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert result.exit_code == 1 and len(errors) == 1 and message in errors[0], result.output


def _gctx_repeated_readouts(folder: Path) -> Path:
    """A GCTX whose rows 0 and 6 share the symbol G0 (conflicting values in every column but the first,
    identical in the first); one signature per (cell line, compound), no dose and no control, so the
    CLI's replicate averaging leaves each signature as it is and its table compares with the store's."""
    from graph.io.gctx import write_gctx

    clean = B._clean_long()
    col = clean[["context", "perturbation"]].drop_duplicates().reset_index(drop=True)
    col = pd.DataFrame({"id": [f"sig{i}" for i in range(len(col))], "cell_id": col["context"],
                        "pert_iname": col["perturbation"], "pert_type": "trt_cp"})
    genes = sorted(clean["readout"].unique())
    row = pd.DataFrame({"id": [f"r{i}" for i in range(len(genes) + 1)], "pr_gene_symbol": [*genes, genes[0]]})
    m = clean.pivot_table(index=["context", "perturbation"], columns="readout", values="value").to_numpy(np.float32)
    repeat = m[:, :1] + 1.0
    repeat[0] = m[0, 0]
    return write_gctx(folder / "repeated_rows.gctx", np.hstack([m, repeat]), row, col)


@pytest.mark.slow
@pytest.mark.parametrize("options", [["--duplicates", "quarantine"], [], ["--duplicates", "first"]],
                         ids=["quarantine", "mean (default)", "first"])
def test_gctx_repeated_readout_rows_follow_the_policy_on_every_entry_point(options, homes, monkeypatch, tmp_path):
    """A GCTX row repeating another row's readout: the duplicate policy applies (graph/io/validation.py),
    and train, evaluate, demo and the inbox keep the same accepted table."""
    pytest.importorskip("torch")
    path = _gctx_repeated_readouts(tmp_path)
    outcomes = _outcomes(path, homes, monkeypatch, tmp_path, options)
    first = _one_accepted_table(outcomes)
    g0 = first[first["readout"] == "G0"]
    clean = B._clean_long()
    want = clean[clean["readout"] == "G0"].sort_values(["context", "perturbation"])["value"].to_numpy(np.float32)
    policy = dict(zip(options[::2], options[1::2], strict=True)).get("--duplicates", DEFAULT_DUPLICATES)
    if policy == "quarantine":  # only the first signature's identical copies survive (collapsed)
        assert len(g0) == 1 and g0["value"].iloc[0] == want[0]
    elif policy == "mean":
        np.testing.assert_allclose(g0["value"].to_numpy()[1:], want[1:] + 0.5, rtol=1e-6)
    else:
        np.testing.assert_array_equal(g0["value"].to_numpy(), want)
    assert len(first) == len(clean) - (len(want) - 1 if policy == "quarantine" else 0)


def _alias_spelled_inputs(folder: Path, shared_data: Path) -> dict[str, Path]:
    """The clean table with readout G0 spelled by its alias OLDG0 and G1 in lower case, as a GCTX and as a
    long CSV; the shared data's gene table (G0..G5, G0 alias OLDG0) resolves both spellings."""
    from graph.io.gctx import write_gctx

    (shared_data / "genes").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"entrez_id": range(1, 7), "symbol": [f"G{i}" for i in range(6)],
                  "aliases": ["OLDG0", "", "", "", "", ""]}).to_csv(shared_data / "genes" / "genes_human.tsv",
                                                                   sep="\t", index=False)
    clean = B._clean_long()
    spelled = {"G0": "OLDG0", "G1": "g1"}
    table = clean.assign(readout=clean["readout"].replace(spelled))
    table.to_csv(folder / "aliases.csv", index=False)
    col = clean[["context", "perturbation"]].drop_duplicates().reset_index(drop=True)
    col = pd.DataFrame({"id": [f"sig{i}" for i in range(len(col))], "cell_id": col["context"],
                        "pert_iname": col["perturbation"], "pert_type": "trt_cp"})
    genes = sorted(clean["readout"].unique())
    row = pd.DataFrame({"id": [f"r{i}" for i in range(len(genes))], "pr_gene_symbol": [spelled.get(g, g) for g in genes]})
    m = clean.pivot_table(index=["context", "perturbation"], columns="readout", values="value").to_numpy(np.float32)
    return {"gctx": write_gctx(folder / "aliases.gctx", m, row, col), "csv": folder / "aliases.csv"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gctx", "csv"])
def test_readout_aliases_resolve_alike_on_every_entry_point(fmt, homes, monkeypatch, tmp_path):
    """Readouts spelled by an alias or in lower case: every entry point resolves them through the same gene
    table (graph/io/readers.gene_resolver: the shared data's), so train, evaluate, demo and the inbox keep
    the same accepted table, with the current symbols."""
    pytest.importorskip("torch")
    path = _alias_spelled_inputs(tmp_path, tmp_path / "no-shared-data")[fmt]  # the homes fixture's shared data
    first = _one_accepted_table(_outcomes(path, homes, monkeypatch, tmp_path, []))
    assert sorted(first["readout"].unique()) == [f"G{i}" for i in range(6)]
    clean = _canon(B._clean_long())
    np.testing.assert_array_equal(first["value"].to_numpy(), clean["value"].to_numpy())


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["keep", "quarantine"])
def test_unknown_genes_option_means_the_same_on_every_entry_point(policy, homes, monkeypatch, tmp_path):
    """--unknown-genes (train, evaluate and demo flags, the inbox sidecar): a readout the shared gene
    table does not resolve is kept or quarantined alike on the four entry points."""
    pytest.importorskip("torch")
    _alias_spelled_inputs(tmp_path, tmp_path / "no-shared-data")  # its gene table: G0..G5
    clean = B._clean_long()
    path = tmp_path / "unknown.csv"
    clean.assign(readout=clean["readout"].replace({"G5": "FAKE1"})).to_csv(path, index=False)
    outcomes = _outcomes(path, homes, monkeypatch, tmp_path, ["--unknown-genes", policy])
    first = _one_accepted_table(outcomes)
    n_fake = int((clean["readout"] == "G5").sum())
    assert {o.quarantined for o in outcomes.values()} == {n_fake if policy == "quarantine" else 0}
    assert ("FAKE1" in set(first["readout"])) == (policy == "keep")


def test_bulk_h5ad_option_on_the_demo_and_the_inbox(homes, monkeypatch, tmp_path):
    """`demo --bulk` (the input_manifest config) and an inbox sidecar `bulk=true` read an h5ad of
    per-signature values as is, alike; without the option the demo refuses it with one line naming --bulk."""
    import anndata as ad

    from graph.settings import get_settings
    from pipelines.automation import inbox_sensor

    obs = pd.DataFrame({"perturbation": ["STAT1", "JAK2", "STAT1", "JAK2"], "cell_line": ["K562", "K562", "RPE1", "RPE1"],
                        "perturbation_type": "CRISPRi"}, index=["a", "b", "c", "d"])
    path = tmp_path / "lfc.h5ad"
    ad.AnnData(X=np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), obs=obs,
               var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(path)
    demo = _demo(path, homes, monkeypatch, ["--bulk"])
    assert not demo.refused and len(demo.table) == 12, demo.message
    home = homes("inbox")
    (home / "inbox").mkdir(parents=True)
    shutil.copyfile(path, home / "inbox" / path.name)
    (home / "inbox" / f"{path.name}.options").write_text("bulk=true\n")
    with dg.instance_for_test() as instance:
        inbox_sensor(dg.build_sensor_context(instance=instance))
    result = real_run_everything(get_settings(), inputs="inbox", job=_sources_job(), instance=dg.DagsterInstance.ephemeral())
    bundle = _bundle(result, path.name)
    pd.testing.assert_frame_equal(_store_table(home, bundle.dataset.dataset_id), demo.table)
    refused = _demo(path, homes, monkeypatch, [])
    assert refused.refused and "--bulk" in refused.message


def test_an_inbox_sidecar_names_no_signature_info_path(tmp_path):
    """A path in a dropped file's sidecar would be read from anywhere on the machine: refused with the reason,
    as a readout list file is."""
    from graph.io.common import InputFileError
    from pipelines.inputs import inbox_file_options

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "geo.gctx").write_bytes(b"\x89HDF\r\n\x1a\n")
    (inbox / "geo.gctx.options").write_text("signature_info=/etc/passwd\n")
    with pytest.raises(InputFileError, match="signature_info names a file, which is not taken in the inbox"):
        inbox_file_options(inbox / "geo.gctx")

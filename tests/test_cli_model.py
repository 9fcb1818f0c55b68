"""`perturbgraph train` / `evaluate` (pipelines/cli/model.py) and the input loaders they rely on (models/datasets.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.datasets import load_dataset
from pipelines.cli import app

runner = CliRunner()


def _long(n_ctx=3, n_pert=12, n_readout=10, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, n_readout))
    rows = [(f"C{c}", f"drug{p}", "compound", f"G{r}", effect[p, r] + 0.2 * rng.normal())
            for c in range(n_ctx) for p in range(n_pert) for r in range(n_readout)]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def _gctx_with_a_dmso_well(path, second_drug: str) -> None:
    """A three-sample GCTX (samples x genes on disk) in A375: drugX, `second_drug` and a DMSO control."""
    import h5py

    with h5py.File(path, "w") as f:
        f["0/DATA/0/matrix"] = np.array([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]], dtype=np.float32)
        f["0/META/COL/id"] = np.array([b"s1", b"s2", b"s3"])
        f["0/META/COL/cell_id"] = np.array([b"A375", b"A375", b"A375"])
        f["0/META/COL/pert_iname"] = np.array([b"drugX", second_drug.encode(), b"DMSO"])
        f["0/META/COL/pert_type"] = np.array([b"trt_cp", b"trt_cp", b"ctl_vehicle"])
        f["0/META/ROW/id"] = np.array([b"1", b"2"])
        f["0/META/ROW/pr_gene_symbol"] = np.array([b"TP53", b"MYC"])


def test_loaders_accept_long_ranked_and_gctx_files(tmp_path):
    pytest.importorskip("h5py")
    long = _long()
    long.to_parquet(tmp_path / "long.parquet")
    got = load_dataset(tmp_path / "long.parquet")
    assert list(got.columns) == ["context", "perturbation", "perturbation_type", "readout", "value"]
    assert len(got) == len(long)
    ranked = pd.DataFrame({"context": "C0", "perturbation": "d", "perturbation_type": "compound",
                           "readout": ["a", "b", "c"], "rank": [1, 2, 3], "n_ranked": 3})
    ranked.to_csv(tmp_path / "ranked.csv", index=False)
    assert load_dataset(tmp_path / "ranked.csv").set_index("readout")["value"].tolist() == [1.0, 0.0, -1.0]
    # drugX twice and a DMSO well: the control is dropped, the replicates averaged.
    _gctx_with_a_dmso_well(tmp_path / "x.gctx", second_drug="drugX")
    g = load_dataset(tmp_path / "x.gctx")
    assert g.set_index("readout")["value"].to_dict() == {"MYC": 3.0, "TP53": 2.0}
    assert set(g["perturbation_type"]) == {"compound"}
    with pytest.raises(ValueError, match="no-such-dataset: neither a file"):
        load_dataset("no-such-dataset")


def test_evaluate_writes_json_and_markdown(tmp_path):
    _long().to_parquet(tmp_path / "long.parquet")
    out = tmp_path / "res"
    result = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "long.parquet"), "--split", "unseen-experiment",
                                 "--target-context", "C1", "--models", "context_mean,other_contexts",
                                 "--seeds", "0,1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert {(r["model"], r["seed"]) for r in records} == {(m, s) for m in ("context_mean", "other_contexts") for s in (0, 1)}
    assert "| other_contexts | 2 |" in (out / "results.md").read_text()


def test_evaluate_rejects_bad_arguments(tmp_path):
    _long().to_parquet(tmp_path / "long.parquet")
    bad_split = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "long.parquet"), "--split", "random"])
    assert bad_split.exit_code == 1 and "unknown split" in bad_split.output
    no_ctx = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "long.parquet"), "--split", "unseen-context"])
    assert no_ctx.exit_code == 1 and "needs --target-context" in no_ctx.output


def test_train_saves_a_loadable_checkpoint(tmp_path):
    lpm = pytest.importorskip("models.lpm", reason="models/lpm.py not written yet")
    _long(n_pert=6, n_readout=6).to_parquet(tmp_path / "long.parquet")
    ckpt = tmp_path / "m" / "lpm.pt"
    result = runner.invoke(app, ["train", "--input", str(tmp_path / "long.parquet"), "--output", str(ckpt), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    model = lpm.LPM.load(ckpt)
    rows = _long(n_pert=6, n_readout=6).head(5)
    assert np.isfinite(model.predict(rows)).all()


@pytest.mark.shared_data
def test_evaluate_on_shared_l1000(shared_data, tmp_path):
    result = runner.invoke(app, ["evaluate", "--input", "l1000-ds", "--split", "unseen-context", "--target-context", "MCF7",
                                 "--models", "context_mean,other_contexts", "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "results.json").read_text())
    assert all(r["n_test_experiments"] == 6 for r in records)  # MCF7 x 6 compound-doses of the 3 compounds
    assert all(np.isfinite(r["rmse"]) for r in records)


@pytest.mark.shared_data
def test_cell_line_features_reach_the_lpm_where_they_cover_the_contexts(shared_data):
    """LINCS baseline expression: attached for L1000 lines (MCF7 included), not for K562/RPE1."""
    from models.datasets import resources_for

    l1000 = pd.DataFrame({"context": ["MCF7", "A375", "PC3"], "perturbation": "vemurafenib",
                          "perturbation_type": "compound", "readout": "EGFR", "value": 0.0})
    features = resources_for(l1000, gene_graph=False).context_features
    assert features is not None and sorted(features.index) == ["A375", "MCF7", "PC3"]
    assert features.shape[1] == 256 and np.isfinite(features.to_numpy()).all()
    assert features.std().min() > 0  # the most variable genes, not constant columns
    crispr = l1000.assign(context=["K562", "RPE1", "K562"], perturbation_type="CRISPRi")
    assert resources_for(crispr, gene_graph=False).context_features is None


# ---------------------------------------------------------------- hostile files through train / evaluate
@pytest.fixture
def no_shared_data(tmp_path, monkeypatch):
    """No shared folder: side information is missing (a warning), and nothing slow is read."""
    from graph.settings import reload_settings

    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path / "no-shared-data"))
    monkeypatch.setenv("PERTURBGRAPH_HOME", str(tmp_path / "home"))
    reload_settings()
    from models.datasets import _smiles_table

    _smiles_table.cache_clear()
    yield
    monkeypatch.undo()
    reload_settings()
    _smiles_table.cache_clear()


@pytest.fixture(scope="module")
def cli_corpus(tmp_path_factory):
    import bad_inputs as B

    return B.cli_corpus(tmp_path_factory.mktemp("cli_corpus"))


# The corpus through train, evaluate, demo --inputs and the inbox: tests/test_pipelines_sources_corpus.py.


def test_unknown_target_context_lists_the_valid_ones_before_loading(cli_corpus, no_shared_data, tmp_path):
    path, _ = cli_corpus["text_value"]
    result = runner.invoke(app, ["evaluate", "--input", str(path), "--target-context", "NOPE", "--models",
                                 "context_mean", "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("error:"))
    assert "unknown --target-context 'NOPE'" in line and "C0, C1, C2" in line
    assert "rows read" not in result.output  # refused before the table was loaded


def test_missing_side_information_is_a_warning(cli_corpus, no_shared_data, tmp_path):
    path, _ = cli_corpus["text_value"]
    result = runner.invoke(app, ["evaluate", "--input", str(path), "--target-context", "C1", "--models",
                                 "context_mean,other_contexts", "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert any(x.startswith("warning: no cell-line features") for x in result.output.splitlines()), result.output


def test_evaluate_fails_when_every_model_failed(tmp_path, no_shared_data, monkeypatch):
    import models.evaluation.harness as H

    _long().to_parquet(tmp_path / "long.parquet")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(H, "evaluate_model", broken)
    result = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "long.parquet"), "--target-context", "C1",
                                 "--models", "context_mean", "--seeds", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "every model failed" in result.output, result.output


def test_readouts_n_random_or_a_file_for_any_input(tmp_path, no_shared_data):
    from graph.io.options import ReadOptions, random_readouts
    from models.datasets import load_dataset

    _long(n_readout=10).to_parquet(tmp_path / "long.parquet")
    sub = load_dataset(tmp_path / "long.parquet", options=ReadOptions(readouts=4, readout_seed=3))
    assert sorted(sub["readout"].unique()) == sorted(random_readouts([f"G{i}" for i in range(10)], 4, seed=3))
    (tmp_path / "names.txt").write_text("# wanted\nG2\nG7\n")
    result = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "long.parquet"), "--target-context", "C1",
                                 "--readouts", str(tmp_path / "names.txt"), "--models", "context_mean", "--seeds", "0",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0 and "2 readouts" in result.output, result.output


def test_cli_and_ingest_accept_the_same_table(cli_corpus, tmp_path, no_shared_data):
    """One file, two entry points (the pipeline's read_experiment and the CLI loader): same rows."""
    from graph.settings import Settings
    from models.datasets import LONG_COLUMNS, load_input
    from pipelines.ingest import read_experiment
    from pipelines.inputs import spec_for

    path, _ = cli_corpus["nan_25_percent"]
    bundle = read_experiment(spec_for(path), Settings(home=tmp_path / "home"), progress=lambda *_: None)
    from graph.store.measurements import load_training_table

    ingest = load_training_table(Settings(home=tmp_path / "home"), [bundle.dataset.dataset_id])
    loaded = load_input(path)
    cli = loaded.frame

    def canon(df):
        out = df[LONG_COLUMNS].astype({c: str for c in LONG_COLUMNS[:4]}).astype({"value": np.float32})
        return out.sort_values(LONG_COLUMNS[:4]).reset_index(drop=True)

    pd.testing.assert_frame_equal(canon(ingest), canon(cli))
    assert loaded.report.quarantined == bundle.report.quarantined > 0
    assert loaded.report.read == bundle.report.read == loaded.report.accepted + loaded.report.quarantined


def _canon(df):
    from models.datasets import LONG_COLUMNS

    out = df[LONG_COLUMNS].astype({c: str for c in LONG_COLUMNS[:4]}).astype({"value": np.float32})
    return out.sort_values(LONG_COLUMNS[:4]).reset_index(drop=True)


def _ingested(path, tmp_path):
    from graph.settings import Settings
    from graph.store.measurements import load_training_table
    from pipelines.ingest import read_experiment
    from pipelines.inputs import spec_for

    settings = Settings(home=tmp_path / "home")
    bundle = read_experiment(spec_for(path), settings, progress=lambda *_: None)
    return bundle, load_training_table(settings, [bundle.dataset.dataset_id])


@pytest.mark.parametrize("case", ["wide_text_cells", "wide_duplicate_genes"])
def test_cli_and_ingest_accept_the_same_wide_table(case, cli_corpus, tmp_path, no_shared_data):
    """A wide table (rows = perturbations, columns = genes) through read_experiment and the CLI loader."""
    from models.datasets import load_input

    path, expected = cli_corpus[case]
    bundle, ingest = _ingested(path, tmp_path)
    assert bundle.dataset.kind == "wide_table"
    loaded = load_input(path)
    pd.testing.assert_frame_equal(_canon(ingest), _canon(loaded.frame))
    assert loaded.report.quarantined == bundle.report.quarantined  # the repeated gene: averaged (default policy)
    assert (loaded.report.quarantined > 0) == (expected == "quarantine")
    assert loaded.report.read == bundle.report.read == loaded.report.accepted + loaded.report.quarantined


def test_cli_reads_gctx_through_the_ingest_reader(cli_corpus, tmp_path, no_shared_data):
    """GCTX: the CLI table is the ingested table after the one model-side step (average_replicates)."""
    from bad_inputs import gctx_good

    from models.datasets import average_replicates, load_input

    path = gctx_good(tmp_path)
    bundle, ingest = _ingested(path, tmp_path)
    loaded = load_input(path)
    averaged, note = average_replicates(ingest)
    pd.testing.assert_frame_equal(_canon(averaged), _canon(loaded.frame))
    assert note in loaded.report.notes and "signatures averaged" in note
    assert set(loaded.perturbation_names) >= set(loaded.frame["perturbation"].astype(str))


def test_an_ingested_dataset_id_averages_replicate_signatures_as_training_set_does(tmp_path, no_shared_data):
    """`perturbgraph train DATASET_ID` reads the store: replicate wells of one (context, perturbation) are
    averaged per readout (the training_set rule), not quarantined as conflicting copies nor one of them kept."""
    from bad_inputs import gctx_good

    from graph.io.validation import average_duplicate_keys
    from models.datasets import load_input

    bundle, ingest = _ingested(gctx_good(tmp_path), tmp_path)
    expected, counts = average_duplicate_keys(ingest, "store")
    assert counts["duplicate_keys"] == 3 and counts["duplicate_rows"] == len(ingest) > 3  # 4 wells, some rejected
    loaded = load_input(bundle.dataset.dataset_id)
    pd.testing.assert_frame_equal(_canon(expected), _canon(loaded.frame))
    assert loaded.report.quarantined == 0 and loaded.report.read == len(ingest)
    assert loaded.report.duplicates_resolved == len(ingest) - 3
    assert any("3 (context, perturbation, readout) keys with more than one signature" in n for n in loaded.report.notes)


def test_an_ingested_dataset_id_leaves_controls_out_as_the_gctx_route_and_training_set_do(tmp_path, no_shared_data):
    """The store keeps control wells (control:DMSO); the models' routes leave them out by one rule
    (graph/io/validation.drop_controls): `perturbgraph train DATASET_ID` gives the GCTX file's own table."""
    pytest.importorskip("h5py")
    from models.datasets import load_input

    path = tmp_path / "x.gctx"
    _gctx_with_a_dmso_well(path, second_drug="drugY")
    bundle, ingest = _ingested(path, tmp_path)
    assert "control:DMSO" in set(ingest["perturbation"].astype(str))  # stored: the reference wells are data
    loaded = load_input(bundle.dataset.dataset_id)
    assert set(loaded.frame["perturbation_type"]) == {"compound"} and len(loaded.frame) == 4
    pd.testing.assert_frame_equal(_canon(load_input(path).frame), _canon(loaded.frame))
    assert any("2 rows of 1 control perturbations (control:DMSO, 1 signatures) left out" in n for n in loaded.report.notes)
    # a long table with control rows (stored by the ingest as control:DMSO): the CLI's file route leaves them out too
    long = pd.DataFrame({"context": "A375", "perturbation": ["drugX", "drugX", "DMSO", "DMSO"],
                         "perturbation_type": ["compound", "compound", "control", "control"],
                         "readout": ["TP53", "MYC"] * 2, "value": [1.0, 2.0, 0.1, 0.2]})
    long.to_csv(tmp_path / "long.csv", index=False)
    table = load_input(tmp_path / "long.csv")
    assert set(table.frame["perturbation_type"]) == {"compound"} and len(table.frame) == 2
    assert any("2 rows of 1 control perturbations (control:DMSO) left out" in n for n in table.report.notes)


def test_context_and_readout_key_options(tmp_path, no_shared_data):
    """--context names the context of a table without one; without it the rows are CONSENSUS."""
    from graph.io.identifiers import CONSENSUS_CONTEXT

    wide = pd.DataFrame({"perturbation": ["drugA", "drugB", "drugC"], "TP53": [1.0, 2.0, 3.0],
                         "MYC": [0.5, -1.0, 2.0]})
    wide.to_parquet(tmp_path / "consensus.parquet", index=False)
    from models.datasets import load_input

    frame = load_input(tmp_path / "consensus.parquet", perturbation_type="compound").frame
    assert set(frame["context"]) == {CONSENSUS_CONTEXT}
    result = runner.invoke(app, ["train", "--input", str(tmp_path / "consensus.parquet"), "--context", "a-375",
                                 "--perturbation-type", "compound", "--output", str(tmp_path / "m.pt"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "1 contexts" in result.output and "3 perturbations, 2 readouts" in result.output
    frame = load_input(tmp_path / "consensus.parquet", context="a-375", perturbation_type="compound").frame
    assert set(frame["context"]) == {"A375"}
    result = runner.invoke(app, ["evaluate", "--input", str(tmp_path / "consensus.parquet"), "--readout-key",
                                 "ensembl_id", "--split", "unseen-compound", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "needs the gene table" in result.output, result.output


@pytest.mark.shared_data
def test_cli_readouts_reproduce_the_docs_random_subset(shared_data):
    """`--readouts 150 --readout-seed 0` on tahoe = benchmarks/make_results.py's TAHOE_SMALL tables."""
    import sys
    from pathlib import Path

    from pipelines.cli.model import _load

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.make_results import TAHOE_SMALL

    via_cli = _load("tahoe", "150", 0)
    via_docs = load_dataset("tahoe", **TAHOE_SMALL)
    assert via_cli["readout"].nunique() == 150
    pd.testing.assert_frame_equal(via_cli, via_docs)


def test_where_warns_about_a_missing_shared_data_folder(no_shared_data, tmp_path):
    result = runner.invoke(app, ["where"])
    assert result.exit_code == 0, result.output
    warnings = [x for x in result.output.splitlines() if x.startswith("warning: shared data folder")]
    assert len(warnings) == 1 and str(tmp_path / "no-shared-data") in warnings[0]


def test_a_torchrun_rank_loads_as_train_does(tmp_path, no_shared_data, monkeypatch):
    """Under torchrun (WORLD_SIZE, LOCAL_RANK) `train` is one rank: it joins the process group, loads as a
    single process does (the loader's perturbation names reach resources_for: structures join by name)
    and leaves the group even when it fails."""
    pytest.importorskip("torch")
    from types import SimpleNamespace

    import models.distributed as D
    import pipelines.cli.model as cli

    pd.DataFrame({"context": "A375", "perturbation": ["Trametinib (GSK1120212)", "drugB"], "TP53": [1.0, 2.0],
                  "MYC": [0.5, 0.1]}).to_csv(tmp_path / "wide.csv", index=False)
    seen = {}

    class Stop(Exception):
        pass

    def fake_resources(df, **kwargs):
        seen.update(kwargs)
        raise Stop

    class FakeDist:
        @staticmethod
        def destroy_process_group():
            seen["destroyed"] = True

    monkeypatch.setattr(cli, "resources_for", fake_resources)
    monkeypatch.setattr(D, "setup", lambda backend=None: (SimpleNamespace(rank=0, world_size=2), "cpu"))
    monkeypatch.setattr(D, "dist", FakeDist)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    result = runner.invoke(app, ["train", "--input", str(tmp_path / "wide.csv"), "--epochs", "1",
                                 "--perturbation-type", "compound", "--output", str(tmp_path / "m.pt")])
    assert isinstance(result.exception, Stop), result.output
    assert sorted(seen["perturbation_names"].values()) == ["Trametinib (GSK1120212)", "drugB"]
    assert seen["destroyed"]


@pytest.mark.shared_data
def test_readout_key_maps_entrez_and_ensembl_ids_through_the_gene_table(shared_data, tmp_path):
    """--readout-key entrez_id: a long table keyed on Entrez ids trains on gene symbols."""
    long = _long(n_ctx=2, n_pert=4, n_readout=3)
    ids = {"G0": "7157", "G1": "4609", "G2": "1956"}  # TP53, MYC, EGFR
    long.assign(entrez_id=long["readout"].map(ids)).drop(columns="readout").to_csv(tmp_path / "entrez.csv", index=False)
    result = runner.invoke(app, ["train", "--input", str(tmp_path / "entrez.csv"), "--readout-key", "entrez_id",
                                 "--output", str(tmp_path / "m.pt"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    from models.datasets import load_input
    from pipelines.cli.model import _gene_resolver

    frame = load_input(tmp_path / "entrez.csv", readout_key="entrez_id", resolver=_gene_resolver("entrez_id")).frame
    assert sorted(frame["readout"].unique()) == ["EGFR", "MYC", "TP53"]


def test_models_hold_no_command_line_code():
    """One CLI package (pipelines/cli/): models/ imports no command-line library and has no __main__."""
    import ast
    from pathlib import Path

    offenders = []
    for path in (Path(__file__).resolve().parent.parent / "models").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in {"typer", "argparse", "click"}]
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "__name__":
                offenders.append(f"{path.name}: __main__ block")
    assert offenders == []


def test_unknown_genes_flag_on_train_and_evaluate(tmp_path, monkeypatch):
    """--unknown-genes quarantine|keep (ReadOptions.unknown_genes): a readout the gene table (the shared
    data's, graph/io/readers.gene_resolver) does not resolve is quarantined with the reason or kept and
    counted; without a gene table quarantine is one line; a bad value is one line naming the flag."""
    from graph.settings import reload_settings

    shared = tmp_path / "shared"
    (shared / "genes").mkdir(parents=True)
    pd.DataFrame({"entrez_id": range(1, 11), "symbol": [f"G{i}" for i in range(10)], "aliases": ""}).to_csv(
        shared / "genes" / "genes_human.tsv", sep="\t", index=False)
    table = _long(n_pert=4)
    table.loc[table["readout"] == "G9", "readout"] = "FAKE1"
    table.to_csv(tmp_path / "t.csv", index=False)
    n_fake = int((table["readout"] == "FAKE1").sum())
    args = ["evaluate", "--input", str(tmp_path / "t.csv"), "--split", "unseen-experiment", "--target-context", "C1",
            "--models", "context_mean", "--seeds", "0", "--out", str(tmp_path / "r")]
    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(shared))
    reload_settings()
    try:
        quarantined = runner.invoke(app, [*args, "--unknown-genes", "quarantine"])
        kept = runner.invoke(app, ["train", "--input", str(tmp_path / "t.csv"), "--unknown-genes", "keep",
                                   "--output", str(tmp_path / "m.pt"), "--epochs", "1"])
        bad = runner.invoke(app, [*args, "--unknown-genes", "drop"])
        monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path / "none"))
        reload_settings()
        no_table = runner.invoke(app, [*args, "--unknown-genes", "quarantine"])
    finally:
        monkeypatch.undo()
        reload_settings()
    assert quarantined.exit_code == 0, quarantined.output
    assert f"{n_fake:,} quarantined" in quarantined.output and "9 readouts" in quarantined.output
    assert kept.exit_code == 0 and " 0 quarantined" in kept.output and "10 readouts" in kept.output, kept.output
    errors = [x for x in bad.output.splitlines() if x.startswith("error:")]
    assert bad.exit_code == 1 and errors == ["error: --unknown-genes must be one of keep, quarantine, got 'drop'"]
    errors = [x for x in no_table.output.splitlines() if x.startswith("error:")]
    assert no_table.exit_code == 1 and len(errors) == 1 and "t.csv" in errors[0], no_table.output


# samples x genes: drugX 10 uM twice (replicate wells), 1 uM once, DMSO
_DOSES_MATRIX = np.array([[1.0, 2.0], [3.0, 6.0], [-5.0, 7.0], [9.0, 9.0]], dtype=np.float32)
_DOSES_COLS = {"id": ["s1", "s2", "s3", "s4"], "cell_id": ["A375"] * 4, "pert_iname": ["drugX"] * 3 + ["DMSO"],
               "pert_type": ["trt_cp"] * 3 + ["ctl_vehicle"], "pert_idose": ["10 uM", "10 uM", "1 uM", "-666"]}
_DOSES_ROWS = {"id": ["1", "2"], "pr_gene_symbol": ["TP53", "MYC"]}


def _write_doses(path):
    """The doses matrix as a GCTX (HDF5) or a text GCT #1.3 (by the suffix)."""
    if path.suffix == ".gctx":
        import h5py

        with h5py.File(path, "w") as f:
            f["0/DATA/0/matrix"] = _DOSES_MATRIX
            for group, meta in (("COL", _DOSES_COLS), ("ROW", _DOSES_ROWS)):
                for field, values in meta.items():
                    f[f"0/META/{group}/{field}"] = np.array([v.encode() for v in values])
        return path
    col_fields = [k for k in _DOSES_COLS if k != "id"]
    lines = ["#1.3", f"2\t4\t1\t{len(col_fields)}", "\t".join(["id", "pr_gene_symbol", *_DOSES_COLS["id"]])]
    lines += ["\t".join([f, "-666", *_DOSES_COLS[f]]) for f in col_fields]
    lines += ["\t".join([gid, sym, *(str(v) for v in _DOSES_MATRIX[:, j])])
              for j, (gid, sym) in enumerate(zip(_DOSES_ROWS["id"], _DOSES_ROWS["pr_gene_symbol"], strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".gctx", ".gct"])
def test_gctx_doses_stay_apart_on_the_cli_as_in_the_pipeline(suffix, tmp_path, no_shared_data):
    """Two doses of one compound are two perturbations on both routes (the store's ids, compound:<id>@<dose>):
    the CLI table of a GCTX, or of the same matrix as a text GCT, equals the pipeline's training table
    (build_training_set on the ingested rows), replicate wells averaged, the DMSO control dropped."""
    from models.datasets import load_input
    from pipelines.training_steps import build_training_set

    path = _write_doses(tmp_path / f"doses{suffix}")
    bundle, ingest = _ingested(path, tmp_path)
    datasets = [{"dataset_id": bundle.dataset.dataset_id, "store_sha256": "x", "simulated": False}]
    ts, counts = build_training_set(tmp_path / "artifacts", ingest, datasets, [], [], [])
    pipeline = pd.read_parquet(ts.table_path)
    loaded = load_input(path)
    assert sorted(loaded.frame["perturbation"].unique()) == ["compound:name:drugx@10uM", "compound:name:drugx@1uM"]
    pd.testing.assert_frame_equal(_canon(pipeline), _canon(loaded.frame))
    assert _canon(loaded.frame)["value"].tolist() == [4.0, 2.0, 7.0, -5.0]  # MYC, TP53 at 10 uM (2 wells); at 1 uM
    assert counts["duplicate_keys"] == 2 and set(loaded.perturbation_names) >= set(loaded.frame["perturbation"])


def test_several_signatures_of_one_experiment_are_averaged_by_default_on_every_route(tmp_path, no_shared_data):
    """Two time points of one perturbation (time is not part of the id) are two signatures of one (context,
    perturbation, readout): the pipeline's training set, `train DATASET_ID` and `train --input FILE` all average
    them by default (graph/io/validation.DEFAULT_DUPLICATES, ReadOptions' default) and count them; quarantine
    stays an explicit choice of the file routes."""
    import re

    from graph.io.common import InputFileError
    from graph.io.options import ReadOptions
    from graph.io.validation import CONFLICT, DEFAULT_DUPLICATES
    from models.datasets import load_input
    from pipelines.training_steps import build_training_set

    path = tmp_path / "times.csv"
    pd.DataFrame({"context": "A375", "perturbation": "drugX", "perturbation_type": "compound",
                  "readout": ["TP53", "MYC", "TP53", "MYC"], "value": [1.0, 2.0, 3.0, 6.0],
                  "time": ["6 h", "6 h", "24 h", "24 h"]}).to_csv(path, index=False)
    assert ReadOptions().duplicates == DEFAULT_DUPLICATES == "mean"
    bundle, ingest = _ingested(path, tmp_path)
    assert ingest["signature_id"].nunique() == 2 and bundle.report.quarantined == 0
    ts, counts = build_training_set(tmp_path / "artifacts", ingest, [{"dataset_id": bundle.dataset.dataset_id,
                                                                      "store_sha256": "x", "simulated": False}], [], [], [])
    pipeline = _canon(pd.read_parquet(ts.table_path))
    assert pipeline["value"].tolist() == [4.0, 2.0] and counts["duplicate_keys"] == 2  # MYC, TP53
    cli = load_input(path)
    pd.testing.assert_frame_equal(pipeline, _canon(cli.frame))
    assert cli.report.quarantined == 0 and cli.report.duplicates_resolved == 2
    with pytest.raises(InputFileError, match=f"no valid rows .*{re.escape(CONFLICT)}: 4"):  # every copy quarantined
        load_input(path, duplicates="quarantine")


def test_a_bulk_h5ad_is_read_as_is_alike_on_the_cli_and_the_pipeline(tmp_path, no_shared_data):
    """An h5ad of per-signature values (one obs row per perturbation x context, log fold changes) had no
    route on the CLI (always pseudobulked: 'negative values') and only an undocumented spec key in the
    pipeline. The `bulk` read option reads it as is on every entry point: `train --bulk`, FILE?bulk=true,
    an inbox sidecar; without it the refusal names the option."""
    import anndata as ad

    from graph.io.options import ReadOptions
    from models.datasets import load_input
    from pipelines.inputs import parse_option_text

    obs = pd.DataFrame({"perturbation": ["STAT1", "JAK2", "STAT1", "JAK2"], "cell_line": ["K562", "K562", "RPE1", "RPE1"],
                        "perturbation_type": "CRISPRi"}, index=["a", "b", "c", "d"])
    X = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    path = tmp_path / "lfc.h5ad"
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(path)
    refused = runner.invoke(app, ["train", "--input", str(path), "--output", str(tmp_path / "m.pt"), "--epochs", "1"])
    assert refused.exit_code == 1 and "--bulk" in refused.output
    result = runner.invoke(app, ["train", "--input", str(path), "--output", str(tmp_path / "m.pt"), "--epochs", "1",
                                 "--bulk"])
    assert result.exit_code == 0, result.output
    cli = _canon(load_input(path, options=ReadOptions(bulk=True)).frame)
    assert len(cli) == 12 and sorted(set(cli["context"])) == ["K562", "RPE1"]
    assert np.allclose(np.sort(cli["value"]), np.sort(X.ravel()))
    assert parse_option_text("bulk=true", path) == {"bulk": "true"}  # the inbox sidecar's form
    bundle, ingest = _ingested(f"{path}?bulk=true", tmp_path)
    pd.testing.assert_frame_equal(_canon(ingest), cli)


def test_a_geo_gctx_with_its_signature_info_table_alike_on_the_cli_and_the_pipeline(tmp_path, no_shared_data):
    """`train --signature-info TABLE` and the pipeline's FILE?signature_info=TABLE read a GEO-style GCTX
    (only ids in its column metadata) to the same table."""
    from graph.io.gctx import write_gctx
    from graph.io.options import ReadOptions
    from models.datasets import load_input

    row = pd.DataFrame({"id": ["101", "102", "103"], "pr_gene_symbol": ["AAA", "BBB", "CCC"]})
    path = write_gctx(tmp_path / "geo.gctx", np.arange(12, dtype=np.float32).reshape(4, 3), row,
                      pd.DataFrame({"id": ["S1", "S2", "S3", "S4"]}))
    info = tmp_path / "siginfo_beta.txt"
    pd.DataFrame({"sig_id": ["S1", "S2", "S3", "S4"], "pert_type": ["trt_cp", "trt_cp", "ctl_vehicle", "trt_cp"],
                  "cmap_name": ["vorinostat", "imatinib", "DMSO", "imatinib"], "cell_iname": ["A375", "A375", "A375", "MCF7"],
                  "pert_id": ["BRD-1", "BRD-2", "DMSO", "BRD-2"]}).to_csv(info, sep="\t", index=False)
    result = runner.invoke(app, ["train", "--input", str(path), "--output", str(tmp_path / "m.pt"), "--epochs", "1",
                                 "--signature-info", str(info)])
    assert result.exit_code == 0, result.output
    cli = _canon(load_input(path, options=ReadOptions(signature_info=str(info))).frame)
    assert len(cli) == 9 and set(cli["context"]) == {"A375", "MCF7"}
    bundle, ingest = _ingested(f"{path}?signature_info={info}", tmp_path)
    from graph.io.validation import drop_controls
    from models.datasets import average_replicates

    ingest, _ = drop_controls(ingest)
    pd.testing.assert_frame_equal(_canon(average_replicates(ingest)[0]), cli)


def test_the_perturbation_type_option_replaces_a_files_types_alike_on_every_entry_point(tmp_path, no_shared_data):
    """scPerturb writes 'CRISPR' for knock-out, interference and activation alike (quarantined as ambiguous);
    `--perturbation-type` was not used when the file has a type column, so such a screen could not be read
    without rewriting it. The option now wins over the file's types (controls stay controls) on `train`,
    read_experiment's FILE?perturbation_type= and an inbox `.options` sidecar alike."""
    from graph.io.options import ReadOptions
    from graph.settings import Settings
    from graph.store.measurements import load_training_table
    from models.datasets import load_input
    from pipelines.ingest import read_experiment
    from pipelines.inputs import inbox_file_options, spec_for

    rng = np.random.default_rng(0)
    rows = [(c, g, "CRISPR", f"R{r}", float(rng.normal())) for c in ("K562", "RPE1") for g in ("STAT1", "JAK2", "IRF1")
            for r in range(4)] + [("K562", "non-targeting", "control", "R0", 0.0)]
    path = tmp_path / "screen.csv"
    pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"]).to_csv(path, index=False)
    result = runner.invoke(app, ["train", "--input", str(path), "--output", str(tmp_path / "m.pt"), "--epochs", "1",
                                 "--perturbation-type", "CRISPRi"])
    assert result.exit_code == 0, result.output
    cli = _canon(load_input(path, options=ReadOptions(perturbation_type="CRISPRi")).frame)
    assert set(cli["perturbation"]) == {"CRISPRi:STAT1", "CRISPRi:JAK2", "CRISPRi:IRF1"} and len(cli) == 24
    _, ingest = _ingested(f"{path}?perturbation_type=CRISPRi", tmp_path)
    from graph.io.validation import drop_controls

    pd.testing.assert_frame_equal(_canon(drop_controls(ingest)[0]), cli)
    (tmp_path / "screen.csv.options").write_text("perturbation_type=CRISPRi\n")  # the inbox sidecar
    settings = Settings(home=tmp_path / "inbox_home")
    bundle = read_experiment(spec_for(path, file_options=inbox_file_options(path)), settings, progress=lambda *_: None)
    sidecar = load_training_table(settings, [bundle.dataset.dataset_id])
    pd.testing.assert_frame_equal(_canon(drop_controls(sidecar)[0]), cli)

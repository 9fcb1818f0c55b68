"""pipelines/training_steps.py without Dagster or Neo4j: the graph's records as inline dicts, a tiny
long table, and real (tiny) LPM fits, counted (conftest `lpm_fits`) where the rule is "one LPM fit"."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from models.lpm import BASE_CANDIDATES
from models.side_information import CompoundAnnotation
from pipelines import training_steps as T

DATASETS = [{"dataset_id": "a", "store_sha256": "1" * 64, "simulated": False},
            {"dataset_id": "b", "store_sha256": "2" * 64, "simulated": True}]


def _table(n_ctx=3, n_pert=12, n_readout=10, seed=0) -> pd.DataFrame:
    """Shared effects across contexts + noise; categorical keys, as the store gives them."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=(n_pert, n_readout))
    rows = [("sim", f"S{c}_{p}", f"CL{c}", f"shRNA:G{p}", "shRNA", f"G{r}", effect[p, r] + 0.3 * rng.normal())
            for c in range(n_ctx) for p in range(n_pert) for r in range(n_readout)]
    table = pd.DataFrame(rows, columns=["dataset", "signature_id", "context", "perturbation", "perturbation_type",
                                        "readout", "value"])
    for col in ("context", "perturbation", "perturbation_type", "readout"):
        table[col] = table[col].astype("category")
    return table


def test_choose_datasets_names_what_is_missing():
    with pytest.raises(T.StepFailure, match="no complete measurement dataset in the graph"):
        T.choose_datasets([], [])
    with pytest.raises(T.StepFailure, match=r"datasets \['c'\] are not complete in the graph; choose from \['a', 'b'\]"):
        T.choose_datasets(DATASETS, ["a", "c"])
    assert T.choose_datasets(DATASETS, []) == DATASETS
    assert T.choose_datasets(DATASETS, ["b"]) == [DATASETS[1]]


def test_readout_cap_keeps_the_most_measured_and_changes_the_snapshot():
    table = _table()
    sparse = table[~((table["readout"] == "G9") & (table["context"] != "CL0"))]  # G9 measured in one context
    capped = T.cap_readouts(sparse, 9)
    assert sorted(capped["readout"].unique()) == [f"G{r}" for r in range(9)]
    assert list(capped["readout"].cat.categories) == sorted(f"G{r}" for r in range(9))  # unused dropped
    assert T.cap_readouts(sparse, 0) is sparse and T.cap_readouts(sparse, 10) is sparse
    assert T.snapshot_id(DATASETS) == T.snapshot_id([dict(d) for d in DATASETS]) != T.snapshot_id(DATASETS, 9)
    assert T.snapshot_id(DATASETS) != T.snapshot_id([DATASETS[0], {**DATASETS[1], "store_sha256": "3" * 64}])


def test_side_maps_keep_structures_micromolar_doses_and_targets():
    records = [
        {"perturbation_id": "p1", "compound_id": "C1", "smiles": "CCO", "dose_value": 1.0, "dose_unit": "uM", "targets": []},
        {"perturbation_id": "p2", "compound_id": "C2", "smiles": None, "dose_value": 5.0, "dose_unit": "nM", "targets": None},
        {"perturbation_id": "p3", "compound_id": None, "smiles": None, "dose_value": 2, "dose_unit": None,
         "targets": ["TP53"]},
    ]
    smiles, compounds, doses, targets = T.side_maps(records)
    assert smiles == {"C1": "CCO"} and compounds == {"p1": "C1"}
    assert doses == {"p1": 1.0, "p3": 2.0}  # nM is left out; no unit means uM
    assert targets == {"p3": ["TP53"]}


def test_context_descriptor_averages_sources_and_keeps_the_most_variable_genes():
    a = pd.DataFrame({"g1": [0.0, 1.0, 5.0], "g2": [1.0, 2.0, 1.0], "g3": [0.0, 4.0, 0.0]}, index=["CL0", "CL1", "X"])
    b = pd.DataFrame({"g1": [2.0], "g2": [1.0], "g3": [0.0]}, index=["CL0"])
    ctx = T.context_descriptor([a, b], ["CL0", "CL1"], n_genes=2)
    # over CL0 (a and b averaged) and CL1: g3 (0, 4) varies most, then g2 (1, 2); g1 (1, 1) not at all
    assert list(ctx.index) == ["CL0", "CL1"] and list(ctx.columns) == ["g3", "g2"]
    assert ctx.at["CL1", "g3"] == 4.0 and ctx.dtypes.unique().tolist() == [np.float32]
    assert T.context_descriptor([], ["CL0"]) is None and T.context_descriptor([a], ["nowhere"]) is None


def test_build_training_set_writes_what_the_model_reads(tmp_path):
    table = _table()
    side = [{"perturbation_id": "shRNA:G1", "compound_id": None, "smiles": None, "dose_value": None,
             "dose_unit": None, "targets": ["G1"]}]
    # two salt forms of one compound (one Compound node) and an unannotated compound
    side += [{"perturbation_id": pid, "compound_id": "C1", "smiles": None, "dose_value": None, "dose_unit": None,
              "targets": [], "compound_targets": ["MAP2K2", "MAP2K1 "], "moa": ["MEK inhibitor", "mek inhibitor"]}
             for pid in ("cmp:A", "cmp:A mesylate")]
    side += [{"perturbation_id": "cmp:B", "compound_id": "C2", "smiles": None, "dose_value": None, "dose_unit": None,
              "targets": [], "compound_targets": None, "moa": None}]
    edges = [{"source": "G1", "target": "G2", "weight": 0.9}]
    # the graph's complexes (members in any order); G1-G2 is in both: one pair
    complexes = {"CORUM:1": ["G3", "G1", "G2"], "CORUM:2": ["G2", "G1"]}
    features = pd.DataFrame(np.arange(6.0).reshape(3, 2), index=["CL0", "CL1", "CL2"], columns=["g1", "g2"])
    ts, counts = T.build_training_set(tmp_path, table, DATASETS, side, edges, [features], complexes=complexes,
                                      max_readouts=4)
    assert ts.snapshot_id == T.snapshot_id(DATASETS, 4) and ts.dataset_ids == ("a", "b") and ts.simulated
    assert ts.table_path == str(tmp_path / "training" / ts.snapshot_id / "table.parquet")
    assert counts == {"rows": 3 * 12 * 4, "signatures": 36, "contexts": 3, "perturbations": 12, "readouts": 4,
                      "readouts_before_cap": 10, "compounds_with_structure": 0, "prior_edges": 1,
                      "compounds_annotated": 1, "complex_pairs": 3, "duplicate_keys": 0, "duplicate_rows": 0,
                      "duplicate_keys_across_datasets": 0, "duplicate_examples": "", "control_rows": 0,
                      "control_signatures": 0, "control_perturbations": 0, "control_examples": ""}
    assert len(ts.table()) == ts.n_rows == counts["rows"]
    side_info = ts.side_information()
    assert side_info.perturbation_targets == {"shRNA:G1": ["G1"]}
    # compound annotations as resources_for gives them (CompoundAnnotation.of); parent = the compound_id
    mek = CompoundAnnotation(("MAP2K1", "MAP2K2"), ("mek inhibitor",), "C1")
    assert side_info.compound_annotations == {"cmp:A": mek, "cmp:A mesylate": mek,
                                              "cmp:B": CompoundAnnotation((), (), "C2")}
    assert side_info.gene_graph.to_dict("records") == [{"source": "G1", "target": "G2", "weight": 0.9}]
    assert list(side_info.context_features.index) == ["CL0", "CL1", "CL2"]
    assert side_info.complex_graph.to_dict("records") == [{"source": a, "target": b, "weight": 1.0}
                                                          for a, b in (("G1", "G2"), ("G1", "G3"), ("G2", "G3"))]
    bare, _ = T.build_training_set(tmp_path, table, DATASETS[:1], [], [], [])
    assert not bare.simulated and bare.gene_graph() is None and bare.context_features() is None
    assert bare.side_information().complex_graph is None


def test_replicate_signatures_of_one_experiment_are_averaged_into_the_training_table(tmp_path):
    """Two datasets (or replicate wells, time points) measuring one (context, perturbation): the stored
    training table has one row per (context, perturbation, readout), the mean, counted in the metadata."""
    a = _table(n_ctx=2, n_pert=3, n_readout=4)
    b = a[a["context"] == "CL0"].assign(dataset="b", signature_id=lambda d: "b:" + d["signature_id"].astype(str),
                                        value=lambda d: d["value"] + 1.0)
    table = pd.concat([a, b], ignore_index=True).astype({"dataset": str, "signature_id": str})
    ts, counts = T.build_training_set(tmp_path, table, DATASETS, [], [], [])
    assert counts["signatures"] == 9 and counts["rows"] == len(a) == ts.n_rows
    assert (counts["duplicate_keys"], counts["duplicate_rows"], counts["duplicate_keys_across_datasets"]) == (12, 24, 12)
    assert counts["duplicate_examples"].startswith("CL0|shRNA:G0|G0 (2 rows)")
    out = ts.table()
    assert not out.duplicated(["context", "perturbation", "readout"]).any()
    np.testing.assert_allclose(out["value"], a["value"] + np.where(a["context"] == "CL0", 0.5, 0.0), rtol=1e-6)


def test_control_signatures_are_left_out_of_the_training_table_and_counted(tmp_path):
    """Control wells (DMSO, EMPTY_VECTOR: perturbation_type 'control', as the ingest types them) are the
    reference, not experiments: the CLI's GCTX route drops them (models/datasets.average_replicates) and so does
    training_set, by the same rule (graph/io/validation.drop_controls), counted in the metadata."""
    a = _table(n_ctx=2, n_pert=3, n_readout=4).astype({c: str for c in ("context", "perturbation",
                                                                       "perturbation_type", "readout")})
    ctl = pd.concat([a[a["perturbation"] == "shRNA:G0"].assign(
        perturbation=pid, perturbation_type="control", signature_id=lambda d, pid=pid: pid + d["signature_id"])
        for pid in ("control:DMSO", "control:EMPTY_VECTOR")], ignore_index=True)
    table = pd.concat([a, ctl], ignore_index=True)
    for col in ("context", "perturbation", "perturbation_type", "readout"):
        table[col] = table[col].astype("category")
    ts, counts = T.build_training_set(tmp_path, table, DATASETS, [], [], [], max_readouts=2)
    out = ts.table()
    assert not out["perturbation"].astype(str).str.startswith("control:").any()
    assert (out["perturbation_type"].astype(str) != "control").all() and len(out) == ts.n_rows == 2 * 3 * 2
    assert (counts["control_rows"], counts["control_signatures"], counts["control_perturbations"]) == (len(ctl), 4, 2)
    assert counts["control_examples"] == "control:DMSO, control:EMPTY_VECTOR"
    assert counts["signatures"] == 6 and counts["perturbations"] == 3


def test_training_sets_pickled_before_the_newer_fields_still_load(tmp_path):
    """A run stored before complex_graph_path / compound_annotations existed: its pickled state lacks
    them; it unpickles and gives side information without them."""
    ts, _ = T.build_training_set(tmp_path, _table(), DATASETS, [], [], [],
                                 complexes={"CORUM:1": ["G1", "G2"]})
    assert ts.side_information().complex_graph is not None
    old = object.__new__(T.TrainingSet)  # what unpickling builds: the class, then the stored state
    vars(old).update({k: v for k, v in vars(ts).items() if k not in ("complex_graph_path", "compound_annotations")})
    loaded = pickle.loads(pickle.dumps(old))
    assert "complex_graph_path" not in vars(loaded) and "compound_annotations" not in vars(loaded)
    side = loaded.side_information()
    assert side.complex_graph is None and side.compound_annotations == {} and len(loaded.table()) == ts.n_rows


CORUM_FILE = """ComplexID\tComplexName\tOrganism\tsubunits(Gene name)
1\tCDK2-cyclin E\tHuman\tCDK2;CCNE1
2\tCDK4-cyclin D1-CDK2\tHuman\tCDK4;CCND1;CDK2
3\tmTORC1\tHuman\tMTOR;RPTOR;MLST8;None
4\tCDK2-cyclin E-CDK4\tHuman\tCCNE1;CDK2;CDK4
5\tmouse mTORC1\tMouse\tMtor;Rptor
6\tlonely\tHuman\tMTOR
"""
GENES = {"CDK2": 1017, "CDK4": 1019, "CCNE1": 898, "CCND1": 595, "MTOR": 2475, "RPTOR": 57521, "MLST8": 64223}


@pytest.mark.neo4j
def test_the_graphs_complexes_give_the_pairs_corum_gene_graph_gives(tmp_path, empty_graph, neo4j_settings,
                                                                    monkeypatch):
    """One data path: a tiny CORUM file ingested as the pipeline does (read_reference, load_reference),
    read back with the training_set asset's query, gives the training set the same complex graph
    (pairs and weights) as the benchmarks' corum_gene_graph on that file."""
    from graph.db import pipeline_queries as PQ
    from graph.db.graph_writer import GraphWriter
    from models import datasets as D
    from pipelines.ingest import load_reference, read_reference
    from pipelines.inputs import InputSpec

    corum = tmp_path / "networks" / "corum_allComplexes_2018-06-27.txt"
    corum.parent.mkdir()
    corum.write_text(CORUM_FILE)
    genes = tmp_path / "genes.tsv"
    genes.write_text("entrez_id\tsymbol\n" + "".join(f"{e}\t{s}\n" for s, e in GENES.items()))
    db = neo4j_settings.neo4j_database
    bundle = read_reference([InputSpec(str(genes), "gene_table", "genes"), InputSpec(str(corum), "corum", "corum")],
                            progress=lambda line: None)
    load_reference(GraphWriter(empty_graph, db), bundle, progress=lambda line: None)

    members = PQ.complex_member_symbols(empty_graph, database=db)
    assert sorted(members) == ["CORUM:1", "CORUM:2", "CORUM:3", "CORUM:4"]  # not the mouse one, nor one member
    ts, counts = T.build_training_set(tmp_path / "artifacts", _table(), DATASETS, [], [], [], complexes=members)
    monkeypatch.setattr(D, "shared_path", lambda relative: tmp_path / relative)
    expected = D.corum_gene_graph()
    assert len(expected) == counts["complex_pairs"] == 5 + 3  # the CDK/cyclin pairs (once each), mTORC1's
    pd.testing.assert_frame_equal(ts.side_information().complex_graph, expected)
    # resources_for's filter (the dataset's genes) keeps the pairs among them, as the same rule on the graph's
    within = D.corum_gene_graph(genes=["CDK2", "CDK4", "CCNE1", "MTOR"])
    assert within.equals(D.co_complex_pairs(members.values(), ["CDK2", "CDK4", "CCNE1", "MTOR"]))
    assert list(zip(within["source"], within["target"], strict=True)) == [("CCNE1", "CDK2"), ("CCNE1", "CDK4"),
                                                                          ("CDK2", "CDK4")]


STRING_FILE = ("entrez_a\tentrez_b\tsymbol_a\tsymbol_b\tcombined_score\n"
               "1017\t898\tCDK2\tCCNE1\t950\n1019\t595\tCDK4\tCCND1\t800\n"
               "2475\t57521\tMTOR\tRPTOR\t650\n")  # below 700: outside the prior (and not stored)
DOROTHEA_FILE = "tf\ttarget\tmor\tconfidence\nCCND1\tCDK2\t1\tA\nMTOR\tMLST8\t-1\tB\n"


def test_the_training_config_takes_the_one_gene_prior():
    from graph.io.networks import GENE_PRIOR
    from pipelines.assets.training import TrainingConfig

    config = TrainingConfig()
    assert (tuple(config.prior_networks), config.prior_min_score) == (GENE_PRIOR.networks, GENE_PRIOR.min_score)
    assert TrainingConfig(prior_min_score=0.4, prior_networks=["string", "dorothea"]).prior_networks == [
        "string", "dorothea"]  # still overridable


@pytest.mark.neo4j
def test_the_graphs_prior_edges_are_the_gene_prior_the_benchmarks_give(tmp_path, empty_graph, neo4j_settings):
    """One gene prior: tiny STRING and DoRothEA files ingested as the pipeline does, read back with the
    training_set asset's query and its config's defaults (graph/io/networks.GENE_PRIOR), give the training
    set the same gene graph as resources_for's prior_gene_graph on those files: STRING >= 700, no DoRothEA."""
    import gzip

    from graph.db import pipeline_queries as PQ
    from graph.db.graph_writer import GraphWriter
    from models import datasets as D
    from pipelines.assets.training import TrainingConfig
    from pipelines.ingest import load_reference, read_reference
    from pipelines.inputs import InputSpec

    paths = {"string": tmp_path / "string.tsv.gz", "dorothea": tmp_path / "dorothea.tsv.gz"}
    paths["string"].write_bytes(gzip.compress(STRING_FILE.encode()))
    paths["dorothea"].write_bytes(gzip.compress(DOROTHEA_FILE.encode()))
    genes = tmp_path / "genes.tsv"
    genes.write_text("entrez_id\tsymbol\n" + "".join(f"{e}\t{s}\n" for s, e in GENES.items()))
    db = neo4j_settings.neo4j_database
    bundle = read_reference([InputSpec(str(genes), "gene_table", "genes"),
                             *(InputSpec(str(p), k, k) for k, p in paths.items())], progress=lambda line: None)
    load_reference(GraphWriter(empty_graph, db), bundle, progress=lambda line: None)

    config = TrainingConfig()
    edges = PQ.prior_gene_edges(empty_graph, database=db, min_score=config.prior_min_score,
                                networks=config.prior_networks)
    ts, counts = T.build_training_set(tmp_path / "artifacts", _table(), DATASETS, [], edges, [])
    given = ts.gene_graph()
    expected = D.prior_gene_graph(paths={k: str(p) for k, p in paths.items()})

    def pairs(g):
        return sorted((*sorted((a, b)), round(float(w), 4)) for a, b, w in
                      zip(g["source"], g["target"], g["weight"], strict=True))

    assert pairs(given) == pairs(expected) == [("CCND1", "CDK4", 0.8), ("CCNE1", "CDK2", 0.95)]
    assert counts["prior_edges"] == 2
    # the old default (STRING and DoRothEA >= 0.4) is still a config away: the DoRothEA edges come back
    old = PQ.prior_gene_edges(empty_graph, database=db, min_score=0.4, networks=["string", "dorothea"])
    assert sorted((r["source"], r["target"]) for r in old if r["kind"] == "REGULATES") == [("CCND1", "CDK2"),
                                                                                          ("MTOR", "MLST8")]
    with pytest.raises(ValueError, match="not gene-gene prior networks"):
        PQ.prior_gene_edges(empty_graph, database=db, min_score=0.7, networks=["corum"])


def test_validation_split_holds_out_whole_experiments():
    table = _table()
    train, valid = T.validation_split(table, 0.25, seed=3)
    key = lambda t: set(zip(t["context"].astype(str), t["perturbation"].astype(str), strict=True))  # noqa: E731
    assert len(train) + len(valid) == len(table) and not key(train) & key(valid)
    assert len(key(valid)) == 9  # 25% of 36 experiments
    again, _ = T.validation_split(table, 0.25, seed=3)
    assert train.equals(again) and not T.validation_split(table, 0.25, seed=4)[0].equals(train)


def test_build_lpm_reads_the_side_information_and_the_paper_switch(tmp_path):
    ts, _ = T.build_training_set(tmp_path, _table(), DATASETS, [], [], [])
    full = T.build_lpm(ts, seed=2, max_epochs=3, embed_dim=8)
    paper = T.build_lpm(ts, seed=2, paper_model=True, max_epochs=3, embed_dim=8)
    assert full.seed == 2 and full.config.max_epochs == 3 and full.config.embed_dim == 8
    assert full.config.use_compound_encoder and not paper.config.use_compound_encoder


def test_train_version_fits_one_lpm_and_saves_a_loadable_predictor(tmp_path, lpm_fits, monkeypatch):
    monkeypatch.setenv("PERTURBGRAPH_DEVICE", "cpu")
    ts, _ = T.build_training_set(tmp_path, _table(), DATASETS, [], [], [])
    logged = []
    run = T.train_version(ts, tmp_path, seed=1, valid_fraction=0.2, log=logged.append,
                          lpm_params={"max_epochs": 2, "embed_dim": 8, "hidden_dim": 16})
    assert lpm_fits == [1]  # the production predictor's LPM member is that LPM (prefitted)
    assert run.version_id.endswith(ts.snapshot_id[:8]) and run.folder() == tmp_path / "models" / run.version_id
    assert logged[0].startswith(f"training {run.version_id} on ") and logged[-1].startswith("production predictor: ")
    assert logged[1] == f"LPM residual base: {run.lpm_base}" and "chosen on validation" in run.lpm_base
    assert run.selection["chosen"] in run.valid_metrics and {"lpm", "context_mean"} <= set(run.valid_metrics)
    assert len(run.history) == 2 and run.config["embed_dim"] == 8 and run.simulated
    saved = json.loads((run.folder() / "metrics.json").read_text())
    assert set(saved["valid"]) == set(run.valid_metrics) and len(saved["history"]) == 2
    chosen = saved["lpm_base_selection"]["chosen"]  # the chosen base's flags are the version's config
    assert all(run.config[flag] == on for flag, on in BASE_CANDIDATES[chosen].items()) and chosen in logged[1]
    assert not (run.folder() / "training_state.pt").exists()
    assert run.predictor().selection.to_dict() == run.selection


def test_evaluate_version_fits_one_lpm_per_seed(tmp_path, lpm_fits):
    ts, _ = T.build_training_set(tmp_path, _table(), DATASETS[:1], [], [], [])
    seen = []
    ev = T.evaluate_version(ts, tmp_path, split="unseen-experiment", seeds=[0, 1], max_epochs=1,
                            on_result=lambda r: seen.append((r["seed"], r["model"])))
    assert lpm_fits == [0, 1]  # not two per seed: the lpm row is production's member
    assert ev.target_context in {"CL0", "CL1", "CL2"} and seen[:2] == [(0, "lpm"), (0, "production")]
    assert {"lpm", "production", "context_mean", "other_contexts"} <= set(ev.results["model"])
    assert ev.json_path.exists() and ev.md_path.read_text().startswith("## unseen-experiment (target ")
    assert [r["seed"] for r in ev.margins["per_seed"]] == [0, 1]
    report = ev.report()
    assert report["means"]["lpm"]["pearson_per_signature"] == pytest.approx(
        ev.results.loc[ev.results["model"] == "lpm", "pearson_per_signature"].mean())
    assert set(ev.mean_scores()) == set(report["means"]) and json.dumps(report)


def test_evaluate_version_fails_with_every_failed_model_named(tmp_path, monkeypatch):
    from models.lpm import LPM

    def broken(self, *args, **kwargs):
        raise RuntimeError("diverged")

    monkeypatch.setattr(LPM, "fit", broken)
    ts, _ = T.build_training_set(tmp_path, _table(), DATASETS[:1], [], [], [])
    with pytest.raises(T.StepFailure, match=r"evaluation failed for .*'model': 'lpm'.*'model': 'production'"):
        T.evaluate_version(ts, tmp_path, split="unseen-experiment", seeds=[0], max_epochs=1, target_context="CL1")

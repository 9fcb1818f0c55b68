"""The whole pipeline on a slice of the real shared data: ingest -> train -> write-back -> named queries.

The slice keeps the facts the assertions are about and stays small enough for CI (about two
minutes): 12 Tahoe-100M drugs (the two MTOR inhibitors everolimus and temsirolimus among them) in
all 10 cell lines, 60 Replogle CRISPRi knock-downs in K562 and RPE1 (MTOR and the 13 proteasome
subunits among them), on 200 readouts both measure; the compound tables, gene table and STRING
restricted to those drugs and genes. Files are written in the users' formats and go through the
same input detection as any user file.
"""

from __future__ import annotations

import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from graph.db.connection import credentials
from graph.settings import reload_settings

pytestmark = [pytest.mark.neo4j, pytest.mark.slow, pytest.mark.shared_data]

MTOR_INHIBITORS = ["Everolimus", "Temsirolimus"]
N_OTHER_DRUGS, N_KNOCKDOWNS, N_READOUTS = 10, 60, 200


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def write_slice(shared, out) -> dict:
    """Write the slice into `out` in the shared files' own formats; returns what was chosen."""
    tahoe = pd.read_parquet(shared / "chemical/tahoe100m_ranked_signatures.parquet")
    rep = pd.read_parquet(shared / "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet")
    for df in (tahoe, rep):
        for col in ("context", "perturbation", "perturbation_type", "readout"):
            df[col] = df[col].astype(str)
    n_sig = tahoe.groupby(["context", "perturbation"]).ngroups
    dense = tahoe.groupby("readout").size()
    dense = set(dense.index[dense == n_sig])
    listed = rep[rep["readout"].isin(dense)].groupby("readout").size().sort_values(ascending=False, kind="stable")
    readouts = sorted(listed.index[:N_READOUTS])

    in_all_lines = tahoe.groupby("perturbation")["context"].nunique()
    others = sorted(p for p in in_all_lines.index[in_all_lines == 10] if p not in MTOR_INHIBITORS)
    drugs = MTOR_INHIBITORS + list(np.random.default_rng(0).choice(others, N_OTHER_DRUGS, replace=False))
    kds = sorted(rep["perturbation"].unique())
    must = ["MTOR"] + [g for g in kds if g.startswith("PSM")]
    rest = [g for g in kds if g not in must]
    knockdowns = must + list(np.random.default_rng(0).choice(rest, N_KNOCKDOWNS - len(must), replace=False))

    tahoe[tahoe["perturbation"].isin(drugs) & tahoe["readout"].isin(readouts)] \
        .to_parquet(out / "tahoe_slice.parquet", index=False)
    rep[rep["perturbation"].isin(knockdowns) & rep["readout"].isin(readouts)] \
        .to_parquet(out / "replogle_slice.parquet", index=False)

    wanted = {_norm(d) for d in drugs}
    lincs = pd.read_csv(shared / "compounds/lincs_compoundinfo.tsv", sep="\t", dtype=str)
    lincs[lincs["cmap_name"].map(_norm).isin(wanted)].to_csv(out / "lincs_compoundinfo.tsv", sep="\t", index=False)
    genes = set(readouts) | set(knockdowns)
    table = pd.read_csv(shared / "genes/genes_human.tsv", sep="\t", dtype=str)
    table[table["symbol"].isin(genes)].to_csv(out / "genes_human.tsv", sep="\t", index=False)
    string = pd.read_csv(shared / "networks/string_v12_edges.tsv.gz", sep="\t", dtype=str)
    string[string["symbol_a"].isin(genes) & string["symbol_b"].isin(genes)] \
        .to_csv(out / "string_v12_edges.tsv.gz", sep="\t", index=False)
    files = [out / name for name in ("genes_human.tsv", "lincs_compoundinfo.tsv", "string_v12_edges.tsv.gz",
                                     "tahoe_slice.parquet", "replogle_slice.parquet")]
    return {"files": files, "drugs": drugs, "knockdowns": knockdowns, "readouts": readouts}


@pytest.fixture(scope="module")
def shared_slice(shared_data, tmp_path_factory):
    return write_slice(shared_data, tmp_path_factory.mktemp("slice"))


@pytest.fixture(scope="module")
def slice_run(shared_slice, neo4j_settings, neo4j_driver, tmp_path_factory):
    from conftest import wipe_graph

    home = tmp_path_factory.mktemp("slice-home")
    user, password = credentials(neo4j_settings)
    env = {"PERTURBGRAPH_HOME": str(home), "NEO4J_URI": neo4j_settings.effective_neo4j_uri,
           "NEO4J_USERNAME": user, "NEO4J_PASSWORD": password, "NEO4J_DATABASE": neo4j_settings.neo4j_database,
           "PERTURBGRAPH_INPUTS": ",".join(str(p) for p in shared_slice["files"])}
    wipe_graph(neo4j_driver, neo4j_settings.neo4j_database)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = reload_settings()
        from pipelines.definitions import defs

        n_kd = len(shared_slice["knockdowns"])
        config = {"ops": {
            "lpm_model": {"config": {"max_epochs": 6}},
            "evaluation_report": {"config": {"max_epochs": 2, "seeds": [0]}},
            # every knock-down gets a link, so MTOR's rank is visible wherever it lands
            "discoveries": {"config": {"mechanism_top_k": n_kd, "interaction_top_k": 10}},
        }, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
            result = defs.resolve_job_def("perturbgraph_all").execute_in_process(
                run_config=config, instance=instance, raise_on_error=False)
        yield result, settings
    reload_settings()


def _query(driver, settings, name, **params):
    from graph.db.discovery_reads import run_named_query

    return run_named_query(driver, name, params, database=settings.neo4j_database)


def test_every_asset_and_check_passes_on_real_files(slice_run):
    result, _ = slice_run
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks


def test_model_version_records_the_real_datasets(slice_run, neo4j_driver):
    result, settings = slice_run
    version = result.asset_value("discoveries")["version_id"]
    rows = neo4j_driver.execute_query(
        "MATCH (m:ModelVersion {version_id: $v})-[:TRAINED_ON]->(d:Dataset) RETURN d.dataset_id AS d",
        v=version, database_=settings.neo4j_database).records
    assert {"tahoe_slice", "replogle_slice"} <= {r["d"] for r in rows}


def test_proteasome_knockdowns_are_each_others_inferred_interactions(slice_run, neo4j_driver, shared_slice):
    """Knocking down any proteasome subunit gives the same response; the inferred interactions of
    PSMB1 should be dominated by other subunits (13 of the 60 knock-downs are PSM* genes)."""
    _, settings = slice_run
    rows = _query(neo4j_driver, settings, "interactions", gene="PSMB1", limit=10)
    partners = [r["partner"] for r in rows]
    assert len(partners) == 10
    share = sum(str(p).startswith("PSM") for p in partners) / len(partners)
    chance = 12 / (len(shared_slice["knockdowns"]) - 1)
    assert share >= 0.5 > 2 * chance, partners


def test_the_two_rapalogs_are_each_others_nearest_compounds(slice_run, neo4j_driver):
    _, settings = slice_run
    rows = _query(neo4j_driver, settings, "similar-compounds", compound="Everolimus", k=3)
    names = [str(r.get("name") or r.get("compound")).lower() for r in rows]
    assert "temsirolimus" in names, rows


def test_mtor_inhibitor_links_flag_mtor_as_the_annotated_target(slice_run, neo4j_driver, shared_slice):
    result, settings = slice_run
    version = result.asset_value("discoveries")["version_id"]
    knocked_down = neo4j_driver.execute_query(
        "MATCH (:Perturbation)-[:PERTURBS]->(g:Gene) RETURN count(DISTINCT g) AS n",
        database_=settings.neo4j_database).records[0]["n"]
    assert len(shared_slice["knockdowns"]) - 2 <= knocked_down <= len(shared_slice["knockdowns"])
    for compound in MTOR_INHIBITORS:
        rows = _query(neo4j_driver, settings, "mechanism", compound=compound, limit=100, all=True)
        assert len(rows) == knocked_down, compound  # top-k = every knock-down (see slice_run)
        # By default the query shows only the links that passed the version's FDR, and says so per row.
        significant = _query(neo4j_driver, settings, "mechanism", compound=compound, limit=100)
        assert {r["gene"] for r in significant} == {r["gene"] for r in rows if r["significant"]}
        assert {r["model_version"] for r in rows} == {version}
        flagged = {r["gene"] for r in rows if r["annotated_target"]}
        assert flagged == {"MTOR"}, (compound, flagged)
        ranks = sorted(r["rank"] for r in rows)
        assert ranks == list(range(1, len(rows) + 1))

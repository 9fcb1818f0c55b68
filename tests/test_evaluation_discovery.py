"""models.evaluation_discovery on tiny planted inputs (and one real-data smoke check)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import evaluation_discovery as E


def _emb(n, d=16, seed=0, prefix="G"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, d)), index=[f"{prefix}{i}" for i in range(n)])


def test_planted_mechanisms_score_perfectly_and_random_does_not():
    genes = _emb(40)
    comp = genes.loc[["G1", "G2", "G3"]].copy()
    comp.index = ["A", "B", "C"]
    targets = {"A": ["G1"], "B": ["G2", "NOT_MEASURED"], "C": ["G3"], "D": ["G4"]}  # D has no embedding
    res = E.evaluate_mechanisms(comp, genes, targets)
    assert res["n_compounds"] == 3 and res["n_positive_pairs"] == 3
    assert res["auroc"] == pytest.approx(1.0) and res["auprc"] == pytest.approx(1.0)
    assert res["recall@10"] == 1.0 and res["hit@10"] == 1.0 and res["median_rank_best_target"] == 1.0
    assert res["random_auprc"] == pytest.approx(3 / 120)
    rnd = E.evaluate_mechanisms(E.random_embedding(comp.index, 16, 5), genes, targets)
    assert rnd["median_rank_best_target"] > 1


def test_mechanisms_without_evaluable_compounds_report_counts_only():
    res = E.evaluate_mechanisms(_emb(3, prefix="C"), _emb(5), {"C0": ["XYZ"]})
    assert res == {"n_compounds": 0, "n_genes": 5, "n_compounds_total": 3, "n_positive_pairs": 0}


def test_pearson_similarity_is_connectivity():
    a = pd.DataFrame([[1.0, 2.0, 3.0]], index=["x"])
    b = pd.DataFrame([[10.0, 20.0, 30.0], [3.0, 2.0, 1.0]], index=["p", "q"])
    s = E.similarity_scores(a, b, similarity="pearson")
    assert s.loc["x", "p"] == pytest.approx(1.0) and s.loc["x", "q"] == pytest.approx(-1.0)


def test_gene_edges_with_and_without_prior():
    g = _emb(12, seed=2)
    g.loc["G1"] = g.loc["G0"] + 0.01  # planted true pair, also in the prior
    g.loc["G3"] = g.loc["G2"] + 0.01  # planted true pair, novel
    truth = [("G0", "G1"), ("G2", "G3")]
    res = E.evaluate_gene_edges(g, truth, prior_pairs=[("G1", "G0")], ks=(1, 2))
    assert res["n_genes"] == 12 and res["n_truth_pairs_among_genes"] == 2 and res["n_prior_pairs_among_genes"] == 1
    allp, excl = res["all_pairs"], res["excluding_prior"]
    assert allp["n_pairs"] == 66 and excl["n_pairs"] == 65
    assert allp["n_positive"] == 2 and excl["n_positive"] == 1
    assert allp["auprc"] == pytest.approx(1.0) and allp["precision@2"] == 1.0
    assert excl["precision@1"] == 1.0
    # a precomputed square score table is used as is
    scores = pd.DataFrame(0.0, index=g.index, columns=g.index)
    scores.loc["G4", "G5"] = scores.loc["G5", "G4"] = 1.0
    r2 = E.evaluate_gene_edges(scores, [("G4", "G5")], None, ks=(1,))
    assert r2["all_pairs"]["precision@1"] == 1.0


def test_corum_and_string_truth_pairs_are_read_as_the_ingest_reads_them(tmp_path, monkeypatch):
    """The truth pairs go through the ingest's readers and gene table: a previous symbol (OLDB) becomes the
    current one (BBB), an unknown gene is not a truth pair; with the knock-downs' names (`genes`) the pairs
    are named as the dataset names them."""
    from graph.settings import reload_settings
    from models.datasets import _read_network

    (tmp_path / "genes").mkdir()
    (tmp_path / "genes" / "genes_human.tsv").write_text("entrez_id\tsymbol\taliases\n1\tA\t\n2\tBBB\tOLDB\n3\tC\t\n")
    corum = tmp_path / "c.txt"
    corum.write_text("ComplexID\tComplexName\tOrganism\tsubunits(Gene name)\n1\tabc\tHuman\tA;OLDB;C\n"
                     "2\tmouse\tMouse\tX;Y\n3\ta\tHuman\tA;None;ZZZ\n")
    string = tmp_path / "s.tsv"
    string.write_text("entrez_a\tentrez_b\tsymbol_a\tsymbol_b\tcombined_score\n1\t2\tA\tOLDB\t900\n"
                      "1\t9\tA\tZZZ\t950\n3\t2\tC\tOLDB\t300\n")
    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path))
    reload_settings()
    _read_network.cache_clear()
    try:
        assert E.corum_pairs(corum) == {("A", "BBB"), ("A", "C"), ("BBB", "C")}
        assert E.corum_pairs(corum, genes=["A", "OLDB"]) == {("A", "OLDB")}
        assert E.string_pairs(string) == {("A", "BBB"), ("BBB", "C")}
        assert E.string_pairs(string, min_score=500, genes=["A", "OLDB", "C"]) == {("A", "OLDB")}
    finally:
        monkeypatch.undo()
        reload_settings()
        _read_network.cache_clear()


@pytest.mark.shared_data
def test_string_reader_on_real_file(shared_data):
    pairs = E.string_pairs(shared_data / "networks/string_v12_edges.tsv.gz", min_score=900)
    assert len(pairs) > 10_000 and all(a != b for a, b in list(pairs)[:100])


def test_mtor_rank_counts_the_knockdowns_scored_above_mtor():
    rng = np.random.default_rng(0)
    kd = pd.DataFrame(rng.normal(size=(6, 4)), index=["MTOR", "A", "B", "C", "D", "E"])
    rapalog = kd.loc[["MTOR"]].rename(index={"MTOR": "rapalog"}) * 2  # same direction as the MTOR knock-down
    other = kd.loc[["C"]].rename(index={"C": "otherdrug"})
    emb = pd.concat([kd, rapalog, other])
    ranks = E.mtor_ranks(emb, kd.index, {"rapalog": {"MTOR"}, "otherdrug": {"MTOR", "X"}, "untargeted": {"A"}})
    assert ranks["rapalog"] == 1
    scores = E.similarity_scores(emb.loc[["otherdrug"]], kd).loc["otherdrug"]
    assert ranks["otherdrug"] == int((scores > scores["MTOR"]).sum()) + 1 > 1
    assert set(ranks) == {"rapalog", "otherdrug"}
    assert E.mtor_ranks(emb, ["A", "B"], {"rapalog": {"MTOR"}}) == {}  # MTOR never knocked down


def test_replace_section_keeps_the_rest_of_the_document():
    doc = "# R\n\n## A\n\na\n\n## Discoveries on the real data\n\nz\n"
    body = "## Discoveries vs the simple answer\n\nnew 1\n"
    once = E.replace_section(doc, E.VS_SIMPLE_HEADING, body, before="## Discoveries on the real data")
    assert once == "# R\n\n## A\n\na\n\n## Discoveries vs the simple answer\n\nnew 1\n\n## Discoveries on the real data\n\nz\n"
    twice = E.replace_section(once, E.VS_SIMPLE_HEADING, body.replace("new 1", "new 2"))
    assert twice == once.replace("new 1", "new 2")  # regenerated in place, nothing else touched
    assert E.replace_section("# R\n", E.VS_SIMPLE_HEADING, body).endswith(body)


def test_mechanism_quality_reports_the_simple_answer_beside_the_embeddings():
    genes = _emb(30, seed=3)
    comp = genes.loc[["G1", "G2"]].copy()
    comp.index = ["A", "B"]
    targets = {"A": ["G1"], "B": ["G2"]}
    sig_genes = _emb(30, seed=4)  # unrelated signatures: the simple answer finds nothing here
    sig_comp = _emb(2, seed=5, prefix="X")
    sig_comp.index = ["A", "B"]
    sig_genes.columns = sig_comp.columns = [f"r{i}" for i in range(16)]
    from models import discovery as D

    links = D.mechanism_links(comp, genes, k=3, n_null=500, annotated_targets=targets)
    q = E.mechanism_quality(comp, genes, targets, compound_signatures=sig_comp, gene_signatures=sig_genes,
                            links=links, fdr=0.1)
    assert q["score"] == pytest.approx(1.0) and q["baseline_score"] < 1.0
    assert q["compounds_evaluated"] == 2 and q["tested_pairs"] == 60 and q["significant_annotated"] == 2
    none = E.mechanism_quality(comp, genes, {"A": ["NOPE"]})
    assert none["score"] is None and "no compound" in none["note"]


def _tiny_shared(tmp_path, first: str = "C14orf178"):
    """A shared folder with a tiny Replogle file (30 knock-downs x 2 lines, every readout ranked, one gene
    spelled `first`) and a tiny Tahoe file (2 drugs x 2 lines on the same readouts)."""
    rng = np.random.default_rng(0)
    genes = [first, *[f"G{i}" for i in range(29)]]
    rows = []
    for ctx in ("K562", "RPE1"):
        for kd in genes:
            rows += [(ctx, kd, "CRISPRi", g, r + 1, len(genes)) for r, g in enumerate(rng.permutation(genes))]
    rep = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    rows = [(ctx, drug, "compound", g, r + 1, len(genes)) for ctx in ("A498", "LOVO") for drug in ("drugA", "drugB")
            for r, g in enumerate(rng.permutation(genes))]
    tah = pd.DataFrame(rows, columns=rep.columns)
    for folder, name, frame in (("perturbseq", "replogle2022_k562_rpe1_crispri_top1000.parquet", rep),
                                ("chemical", "tahoe100m_ranked_signatures.parquet", tah)):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        frame.astype({"rank": "int32", "n_ranked": "int32"}).to_parquet(tmp_path / folder / name)
    return tmp_path


def test_the_discovery_lpm_gets_the_targets_the_loaders_recorded(tmp_path, monkeypatch):
    """train_discovery_lpm's side information comes from the loaders' records (resources_for_input), as on
    the CLI: the knock-down the loader names C14ORF178 (the ingest's id rule) targets C14orf178, the readout's
    spelling. Before, resources_for(df) alone fell back to the perturbation's own name (C14ORF178)."""
    from graph.settings import reload_settings
    from models.lpm import LPM

    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path / "no-shared-data"))  # no gene table, no networks
    reload_settings()
    try:
        shared = _tiny_shared(tmp_path / "shared")
        side = LPM.load(E.train_discovery_lpm(shared, tmp_path / "lpm.pt", epochs=1)).side
        assert side.perturbation_targets["C14ORF178"] == ["C14orf178"]
        loaded = E.discovery_training_input(shared)
        assert E.discovery_training_table(shared).equals(loaded.frame)
        assert loaded.perturbation_targets["C14ORF178"] == ["C14orf178"]
    finally:
        monkeypatch.undo()
        reload_settings()


def test_real_data_tables_are_read_by_the_benchmark_loaders(tmp_path, monkeypatch):
    """run_real's knock-down and compound tables come from read_replogle / read_tahoe (the ingest's names, the
    validation step): with a gene table that renames NARS to NARS1, the knock-down and its readout are NARS1 in
    the Replogle tables (as in make_results and the discovery LPM, whose embeddings these rows sit beside), the
    Tahoe readouts are met under that name, and the values are the loader's (up score, unlisted = 0)."""
    import models.datasets as D
    from graph.io.genes import GeneResolver
    from graph.records import GeneRecord

    monkeypatch.setattr(D, "gene_table_resolver", lambda: GeneResolver([GeneRecord(1, "NARS1", aliases=("NARS",))]))
    shared = _tiny_shared(tmp_path, first="NARS")
    rep_path = shared / "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet"
    loader = D.load_replogle(rep_path)
    kd = E.replogle_signatures(rep_path)
    assert "NARS1" in kd.index and "NARS" not in kd.index
    assert set(kd.index) == set(loader["perturbation"].astype(str))
    one = loader[(loader["perturbation"] == "NARS1") & (loader["context"] == "K562") & (loader["readout"] == "G3")]
    assert kd.loc["NARS1", "K562|G3"] == pytest.approx(float(one["value"].iloc[0]))
    kd_read = E.replogle_readout_signatures(rep_path)
    assert "NARS1" in kd_read.columns
    comp = E.tahoe_compound_signatures(shared / "chemical/tahoe100m_ranked_signatures.parquet", kd_read.columns)
    assert sorted(comp.index) == ["drugA", "drugB"] and set(comp.columns) == set(kd_read.columns)


def test_knockdown_gene_of_uses_the_recorded_target_not_the_tables_id():
    """The table's id of a knock-down is upper case (C14ORF178) while the references and readouts spell the
    gene as recorded (C14orf178); research_edges keyed signatures by the id, so such genes missed every
    reference pair. Knock-downs of two genes are left out; compounds are not knock-downs."""
    from models.datasets import Loaded, LoadReport

    frame = pd.DataFrame({"context": ["K562"] * 4, "perturbation": ["C14ORF178", "STAT1", "A+B", "drug"],
                          "perturbation_type": ["CRISPRi", "CRISPRi", "CRISPRi", "compound"],
                          "readout": ["G"] * 4, "value": [1.0, 2.0, 3.0, 4.0]})
    loaded = Loaded(frame, LoadReport(source="t"), perturbation_targets={"C14ORF178": ["C14orf178"],
                                                                       "A+B": ["A", "B"]})
    assert E.knockdown_gene_of(loaded) == {"C14ORF178": "C14orf178", "STAT1": "STAT1"}

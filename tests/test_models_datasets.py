"""models/datasets.py: Tahoe read from several ranked files as one table (issue 17, the 37-line Tahoe)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from models.datasets import TAHOE_FILES, dense_readouts, random_readouts, read_tahoe


def _ranked(path, contexts, perturbations, readouts, missing=()):
    """A ranked long table (the shared Tahoe layout) with every readout ranked in every signature except
    the (context, perturbation, readout) triples in `missing`."""
    rows = []
    for c in contexts:
        for p in perturbations:
            ranked = [r for r in readouts if (c, p, r) not in missing]
            for i, r in enumerate(ranked):
                rows.append((c, p, "compound", r, i + 1, len(ranked)))
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    df = df.astype({c: "category" for c in ["context", "perturbation", "perturbation_type", "readout"]})
    df.to_parquet(path)
    return path


def test_two_files_read_as_one_table_on_the_readouts_both_rank(tmp_path):
    # File 2 ranks a subset of file 1's readouts (as the shared files do) plus one of its own; G3 is
    # missing from one signature of file 2, so it is not dense over both files. The names are made up
    # (the real gene table knows G1 as an alias of PRB3): an empty gene table keeps them as written.
    from functools import partial

    from graph.io.genes import GeneResolver

    read = partial(read_tahoe, resolver=GeneResolver([]))
    a = _ranked(tmp_path / "a.parquet", ["L1", "L2"], ["d1", "d2"], ["G1", "G2", "G3", "G4"])
    b = _ranked(tmp_path / "b.parquet", ["L3"], ["d1", "d2", "d3"], ["G1", "G2", "G3", "X9"],
                missing={("L3", "d3", "G3")})
    both = read([a, b]).frame
    assert sorted(both["context"].unique()) == ["L1", "L2", "L3"]
    assert sorted(both["readout"].unique()) == ["G1", "G2"]  # G4 / X9 in one file only, G3 not dense
    assert len(both) == (2 * 2 + 3) * 2
    every = read([a, b], readouts="all").frame
    assert sorted(every["readout"].unique()) == ["G1", "G2", "G3"]
    assert len(every) == (2 * 2 + 3) * 3 - 1
    # the signed score of file 2's G1 in (L3, d1): rank 1 of 3 -> +1
    row = every[(every["context"] == "L3") & (every["perturbation"] == "d1") & (every["readout"] == "G1")]
    assert row["value"].tolist() == [1.0]
    # keep_contexts: readouts chosen on all lines, then only those lines kept
    kept = read([a, b], keep_contexts=["L1", "L2"]).frame
    assert sorted(kept["context"].unique()) == ["L1", "L2"]
    assert sorted(kept["readout"].unique()) == ["G1", "G2"]
    # one file alone: its own dense readouts, as before
    assert sorted(read(a).frame["readout"].unique()) == ["G1", "G2", "G3", "G4"]


@pytest.mark.shared_data
@pytest.mark.slow
def test_tahoe37_contexts_and_readouts(shared_data):
    import pyarrow.parquet as pq

    from models.datasets import load_dataset

    files = [shared_data / f for f in TAHOE_FILES["tahoe37"]]
    lines = [set(pq.read_table(f, columns=["context"]).column(0).unique().to_pylist()) for f in files]
    assert len(lines[0]) == 10 and len(lines[1]) == 27 and not lines[0] & lines[1]
    df = load_dataset("tahoe37", n_random=150, seed=0)
    assert set(df["context"].unique()) == lines[0] | lines[1]
    assert df["perturbation"].nunique() == 109
    n_sig = df.groupby(["context", "perturbation"]).ngroups
    assert n_sig == 1071 + 2727  # every signature of both files (README: 10 x 104-109, 27 x 41-109 drugs)
    counts = df.groupby("readout").size()
    assert len(counts) == 150 and (counts == n_sig).all()  # 150 readouts, each in every signature
    assert np.isfinite(df["value"]).all() and df["value"].between(-1, 1).all()
    # the readouts are the seeded draw (TAHOE_SMALL's rule) from the readouts dense over all 37 lines,
    # which lie in the second file's 12,339 and among the first file's 1,382 dense ones; drawn by the
    # files' names, stored under the ingest's (ingest_gene_names)
    from models.datasets import _read_ranked_files, ingest_gene_names

    dense = load_dataset("tahoe37")
    pool = dense_readouts(dense)
    assert len(pool) == dense["readout"].nunique() == 700
    assert set(pool) <= set(dense_readouts(load_dataset("tahoe")))
    stored, _ = ingest_gene_names(_read_ranked_files(files))
    source_of = {v: k for k, v in stored.items()}
    draw = random_readouts([source_of.get(r, r) for r in pool], 150, seed=0)
    assert sorted(df["readout"].unique()) == sorted(stored.get(r, r) for r in draw)


def test_compound_annotations_match_by_the_compound_name_rule(tmp_path, monkeypatch):
    """Targets and MoA from both compound tables as the ingest reads them (LINCS's merged fields too),
    joined by graph/io/identifiers' name rule (salts, case, an alias in parentheses); resources_for puts
    them in SideInformation with a coverage line."""
    from graph.settings import reload_settings
    from models.datasets import _annotation_table, compound_annotations, resources_for

    (tmp_path / "compounds").mkdir()
    (tmp_path / "compounds" / "repurposing_drugs_20200324.txt").write_text(
        "!header\npert_iname\tclinical_phase\tmoa\ttarget\tdisease_area\tindication\n"
        "trametinib\tLaunched\tMEK inhibitor\tMAP2K1|MAP2K2\t\t\nfumaric acid\tLaunched\t\t\t\t\n")
    (tmp_path / "compounds" / "lincs_compoundinfo.tsv").write_text(
        "pert_id\tcmap_name\tcanonical_smiles\ttarget\tmoa\tcompound_aliases\ttarget_merged\tmoa_merged\n"
        "BRD-1\ttrametinib\t\tMAP2K1\tMEK inhibitor|Raf inhibitor\t\tMAP2K1|CYP3A4\t\n"
        "BRD-2\tneratinib\t\t\t\t\tEGFR|ERBB2\tEGFR inhibitor\n")
    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path))
    reload_settings()
    _annotation_table.cache_clear()
    try:
        ann = compound_annotations(["Trametinib (GSK1120212)", "Neratinib maleate", "Neratinib", "Fumaric acid"])
        df = pd.DataFrame({"context": "A", "perturbation": ["Trametinib (GSK1120212)", "Fumaric acid", "KRAS"],
                           "perturbation_type": ["compound", "compound", "CRISPRi"], "readout": "G1", "value": 0.0})
        lines = []
        res = resources_for(df, gene_graph=False, info=lines.append, warn=lambda m: None)
    finally:
        monkeypatch.undo()
        reload_settings()
        _annotation_table.cache_clear()
    t = ann["Trametinib (GSK1120212)"]
    assert t.targets == ("CYP3A4", "MAP2K1", "MAP2K2") and t.moa == ("mek inhibitor", "raf inhibitor")
    assert t.parent == "trametinib"  # MoA of both tables, "MEK inhibitor" once (CompoundAnnotation.of)
    n, n_salt = ann["Neratinib"], ann["Neratinib maleate"]
    assert n.targets == ("EGFR", "ERBB2") and n.moa == ("egfr inhibitor",) and n_salt == n
    assert ann["Fumaric acid"].targets == () and ann["Fumaric acid"].moa == ()  # known name, no annotation
    assert set(res.compound_annotations) == {"Trametinib (GSK1120212)", "Fumaric acid"}  # compounds only
    assert "compound annotations: 1 of 2 compounds matched targets or a mechanism of action by name or alias " \
           "(1 with targets)" in lines


# --- prior networks: the ingest's readers and gene table (one data path) ------------------------------
TINY_GENES = "entrez_id\tsymbol\taliases\n1\tAAA\t\n2\tBBB\tOLDB\n3\tCCC\t\n4\tDDD\t\n"
TINY_STRING = ("entrez_a\tentrez_b\tsymbol_a\tsymbol_b\tcombined_score\n"
               "1\t2\tAAA\tOLDB\t950\n"    # OLDB: BBB's previous symbol (as an older file writes it)
               "2\t3\tOLDB\tCCC\t800\n"
               "3\t99\tCCC\tZZZ\t900\n"    # ZZZ: not in the gene table
               "1\t4\tAAA\tDDD\t500\n")    # below 700
TINY_CORUM = ("ComplexID\tComplexName\tOrganism\tsubunits(Gene name)\n"
              "1\tone\tHuman\tAAA;OLDB;CCC\n2\ttwo\tHuman\tBBB;DDD;ZZZ\n3\tmouse\tMouse\tAAA;DDD\n")
TINY_DOROTHEA = "tf\ttarget\tmor\tconfidence\nOLDB\tAAA\t1\tA\nCCC\tOLDB\t-1\tC\nAAA\tDDD\t1\tE\n"


@pytest.fixture
def tiny_shared(tmp_path, monkeypatch):
    """A shared-data folder with a gene table and STRING / CORUM files that name BBB by its old symbol."""
    from graph.settings import reload_settings
    from models import datasets as D

    for rel, text in (("genes/genes_human.tsv", TINY_GENES), ("networks/string_v12_edges.tsv.gz", TINY_STRING),
                      ("networks/corum_allComplexes_2018-06-27.txt", TINY_CORUM),
                      ("networks/dorothea_hs.tsv.gz", TINY_DOROTHEA)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(gzip.compress(text.encode()) if rel.endswith(".gz") else text.encode())
    monkeypatch.setenv("PERTURBGRAPH_SHARED_DATA", str(tmp_path))
    reload_settings()
    D._read_network.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    reload_settings()
    D._read_network.cache_clear()


def _pairs(frame):
    return sorted(zip(frame["source"], frame["target"], strict=True))


def test_networks_are_read_as_the_ingest_reads_them(tiny_shared):
    """A renamed symbol (OLDB -> BBB) and an unknown gene (ZZZ): the benchmarks' / CLI's network graphs
    (models.datasets) hold exactly the edges and co-complex pairs the ingest (pipelines.ingest.read_reference,
    the gene table among the run's inputs) hands to the graph; the unknown gene is quarantined and said."""
    from models import datasets as D
    from pipelines.ingest import read_reference
    from pipelines.inputs import InputSpec

    net = tiny_shared / "networks"
    bundle = read_reference([InputSpec(str(tiny_shared / "genes/genes_human.tsv"), "gene_table", "genes"),
                             InputSpec(str(net / "string_v12_edges.tsv.gz"), "string", "string"),
                             InputSpec(str(net / "corum_allComplexes_2018-06-27.txt"), "corum", "corum")],
                            progress=lambda line: None)
    ingest_edges = sorted((e.source_symbol, e.target_symbol) for e in bundle.prior_edges["string"])
    assert _pairs(D.string_gene_graph()) == ingest_edges == [("AAA", "BBB"), ("BBB", "CCC")]
    ingest_pairs = D.co_complex_pairs(c.member_symbols for c in bundle.complexes["corum"])
    pd.testing.assert_frame_equal(D.corum_gene_graph(), ingest_pairs)
    assert _pairs(ingest_pairs) == [("AAA", "BBB"), ("AAA", "CCC"), ("BBB", "CCC"), ("BBB", "DDD")]
    # the unknown gene is counted with its reason on both sides
    assert "gene …: unknown gene name: 1" in D.network_summary("string", min_score=0.7)
    assert {q.record_key for q in bundle.quarantine["corum"]} == {q.record_key for q in D.read_network("corum").quarantine}


def test_a_dataset_meets_the_networks_through_the_gene_table(tiny_shared):
    """A dataset that names BBB by its old symbol gets BBB's edges under its own name (resources_for's
    genes filter), and the coverage lines say what was renamed and what the networks quarantined."""
    from models import datasets as D

    genes = ["AAA", "OLDB", "CCC", "QQQ"]
    assert _pairs(D.string_gene_graph(genes=genes)) == [("AAA", "OLDB"), ("OLDB", "CCC")]
    assert _pairs(D.corum_gene_graph(genes=genes)) == [("AAA", "CCC"), ("AAA", "OLDB"), ("CCC", "OLDB")]
    dorothea = D.dorothea_gene_graph(genes=genes)  # directed TF -> target, weight by confidence letter
    assert list(zip(dorothea["source"], dorothea["target"], strict=True)) == [("OLDB", "AAA"), ("CCC", "OLDB")]
    assert dorothea["weight"].tolist() == pytest.approx([1.0, 0.6])
    df = pd.DataFrame({"context": "K562", "perturbation": ["OLDB", "CCC"], "perturbation_type": "CRISPRi",
                       "readout": ["AAA", "QQQ"], "value": 0.5})
    lines: list[str] = []
    res = D.resources_for(df, info=lines.append, warn=lambda m: None)
    assert _pairs(res.side.gene_graph) == [("AAA", "OLDB"), ("OLDB", "CCC")]
    text = "\n".join(lines)
    assert "1 of 4 met the networks under their current symbol (e.g. OLDB->BBB)" in text
    assert "1 not resolved by the gene table (e.g. QQQ" in text
    assert "string_v12_edges.tsv.gz: 3 read, 2 accepted, 1 quarantined" in text
    # names already current and known: counts without an empty "(e.g. )"
    assert D.gene_name_coverage(["AAA", "CCC"]) == ("gene names: 0 of 2 met the networks under their current "
                                                    "symbol, 0 not resolved by the gene table")


@pytest.mark.shared_data
def test_shared_networks_give_the_ingests_pairs_and_edges(shared_data):
    """On the real files: corum_knn's co-complex pairs and the STRING >= 700 gene graph of the
    benchmarks / CLI are exactly what the ingest writes to the graph (same gene table, same readers, same
    pairing rule), and differ from reading the symbols as the files write them (the mapping matters)."""
    from graph.io.networks import read_corum
    from models import datasets as D
    from pipelines.ingest import read_reference
    from pipelines.inputs import InputSpec

    files = {k: str(shared_data / v) for k, v in (("gene_table", "genes/genes_human.tsv"),
                                                   ("string", "networks/string_v12_edges.tsv.gz"),
                                                   ("corum", "networks/corum_allComplexes_2018-06-27.txt"))}
    bundle = read_reference([InputSpec(p, k, k) for k, p in files.items()], progress=lambda line: None)
    ingest_pairs = D.co_complex_pairs(c.member_symbols for c in bundle.complexes["corum"])
    pairs = D.corum_gene_graph()
    pd.testing.assert_frame_equal(pairs, ingest_pairs)
    as_written = D.co_complex_pairs(c.member_symbols for c in read_corum(files["corum"]).records)
    assert len(pairs) != len(as_written)
    edges = D.string_gene_graph(700)
    assert sorted(zip(edges["source"], edges["target"], strict=True)) == sorted(
        (e.source_symbol, e.target_symbol) for e in bundle.prior_edges["string"])


def _ranked_rows(path, rows):
    """A ranked long table from (context, perturbation, perturbation_type, readout, rank, n_ranked) rows."""
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked"])
    df.astype({c: "category" for c in ["context", "perturbation", "perturbation_type", "readout"]}).to_parquet(path)
    return path


def test_ranked_loaders_store_gene_names_as_the_ingest_does(tiny_shared):
    """read_replogle / read_tahoe name readouts and knock-downs as the ingest reader stores them (the gene
    table: OLDB -> BBB), keep the source name beside the table, and say what the table does not know
    (QQQ, ZZZ) without dropping it."""
    from models import datasets as D

    rows = [("K562", p, t, r, i + 1, 4) for p, t in (("OLDB", "CRISPRi"), ("CCC", "CRISPRi"), ("ZZZ", "CRISPRi"),
                                                     ("drug1", "compound"))
            for i, r in enumerate(["AAA", "OLDB", "CCC", "QQQ"])]
    path = _ranked_rows(tiny_shared / "kd.parquet", rows)
    loaded = D.read_replogle(path)
    df = loaded.frame
    assert sorted(df["readout"].unique()) == ["AAA", "BBB", "CCC", "QQQ"]
    assert sorted(df["perturbation"].unique()) == ["BBB", "CCC", "ZZZ", "drug1"]
    assert loaded.perturbation_names == {"BBB": "OLDB"}
    assert loaded.perturbation_targets == {"BBB": ["BBB"], "CCC": ["CCC"], "ZZZ": ["ZZZ"]}
    assert loaded.report.quarantined == 0 and len(df) == len(rows)
    notes = "\n".join(loaded.report.notes)
    # a row is counted once, by its target first (ZZZ x QQQ is a target row)
    assert "1 readouts (3 values); 1 perturbation targets (4 values)" in notes and "kept (unknown_genes='keep')" in notes
    assert "1 of 3 renamed (current symbols of the targets, upper case, sorted) (e.g. OLDB->BBB)" in notes
    # the ingest's reader on the same file: the same readouts and the same knock-down targets
    ingest = D.load_input(str(path))
    assert sorted(ingest.frame["readout"].unique()) == sorted(df["readout"].unique())
    assert sorted(map(tuple, ingest.perturbation_targets.values())) == sorted(map(tuple, loaded.perturbation_targets.values()))
    # read_tahoe: the same rule; an explicit readout list may use source or current names
    tahoe = D.read_tahoe(path, readouts=["OLDB", "CCC"])
    assert sorted(tahoe.frame["readout"].unique()) == ["BBB", "CCC"]
    assert sorted(D.read_tahoe(path, readouts=["BBB"]).frame["readout"].unique()) == ["BBB"]


def test_ranked_loaders_name_knock_downs_by_the_ingests_id_rule(tiny_shared):
    """A knock-down is named by graph/io/identifiers.genetic_perturbation_name on both routes: the benchmark
    loader's name is the ingest's perturbation id without its "CRISPRi:" part (targets upper case, sorted:
    C14orf178 -> C14ORF178, CCC+AAA -> AAA+CCC), with the same values; the targets keep the stored spelling."""
    from models import datasets as D

    rows = [("K562", p, "CRISPRi", r, i + 1, 4) for j, p in enumerate(("C14orf178", "CCC+AAA", "OLDB"))
            for i, r in enumerate(["AAA", "OLDB", "CCC", "DDD"][j:] + ["AAA", "OLDB", "CCC", "DDD"][:j])]
    path = _ranked_rows(tiny_shared / "names.parquet", rows)
    loaded = D.read_replogle(path)
    assert sorted(loaded.frame["perturbation"].unique()) == ["AAA+CCC", "BBB", "C14ORF178"]
    assert loaded.perturbation_names == {"AAA+CCC": "CCC+AAA", "BBB": "OLDB", "C14ORF178": "C14orf178"}
    assert loaded.perturbation_targets == {"AAA+CCC": ["CCC", "AAA"], "BBB": ["BBB"], "C14ORF178": ["C14orf178"]}
    ingest = D.load_input(str(path)).frame  # signed scores, as read_tahoe's (read_replogle: the up score)
    keys = ["context", "perturbation", "readout"]
    signed = D.read_tahoe(path).frame
    mine = signed.assign(perturbation="CRISPRi:" + signed["perturbation"]).sort_values(keys)
    pd.testing.assert_frame_equal(mine[[*keys, "value"]].reset_index(drop=True),
                                  ingest.sort_values(keys)[[*keys, "value"]].reset_index(drop=True))


def test_two_names_of_one_gene_as_the_ingest_handles_them(tiny_shared):
    """Two readouts naming one gene (BBB and its old symbol OLDB) are never merged: the one spelled as the
    current symbol keeps it, the other its source name (graph/io/identifiers.stored_gene_names, the ingest's
    rule). Two knock-downs naming one gene become one perturbation, as in the ingest: their rows meet at one
    key and follow the one duplicate policy (graph/io/validation.DEFAULT_DUPLICATES: averaged and counted, as
    the pipeline's training_set averages them; quarantine when asked), never dropped silently."""
    from graph.io.validation import CONFLICT
    from models import datasets as D

    both = [("K562", "CCC", "CRISPRi", r, i + 1, 3) for i, r in enumerate(["BBB", "OLDB", "AAA"])]
    loaded = D.read_replogle(_ranked_rows(tiny_shared / "readouts.parquet", both))
    assert sorted(loaded.frame["readout"].unique()) == ["AAA", "BBB", "OLDB"] and len(loaded.frame) == 3
    assert "'kept source name (another source readout resolves to the same gene)': 1" in "\n".join(loaded.report.notes)
    assert sorted(D.load_input(str(tiny_shared / "readouts.parquet")).frame["readout"].unique()) == ["AAA", "BBB", "OLDB"]

    kds = [("K562", p, "CRISPRi", r, i + 1, 2) for p, order in (("BBB", ["AAA", "CCC"]), ("OLDB", ["CCC", "AAA"]))
           for i, r in enumerate(order)] + [("K562", "DDD", "CRISPRi", r, i + 1, 2) for i, r in enumerate(["AAA", "CCC"])]
    path = _ranked_rows(tiny_shared / "kds.parquet", kds)
    loaded = D.read_replogle(path)
    assert sorted(loaded.frame["perturbation"].unique()) == ["BBB", "DDD"]
    bbb = loaded.frame[loaded.frame["perturbation"] == "BBB"].set_index("readout")["value"].to_dict()
    assert bbb == {"AAA": 0.75, "CCC": 0.75}  # up scores 1 and 0.5 of the two knock-downs, averaged
    assert loaded.report.quarantined == 0 and loaded.report.duplicates_resolved == 2
    assert any("2 keys with conflicting values (policy 'mean')" in n for n in loaded.report.notes)
    ingest = D.load_input(str(path))  # the CLI file route: two signatures of one experiment, averaged alike
    signed = D.read_tahoe(path).frame  # the signed score the ingest stores
    assert len(ingest.frame) == len(signed) == 4 and ingest.report.quarantined == 0
    assert sorted(ingest.frame["value"]) == sorted(signed["value"])
    asked = D.load_input(str(path), duplicates="quarantine")  # quarantine: an explicit choice
    assert asked.report.reasons.get(CONFLICT) == 4 and len(asked.frame) == 2


def test_combined_load_report_keeps_every_reason_note_and_quarantine_record():
    from graph.records import QuarantineRecord
    from models.datasets import LoadReport

    a = LoadReport("a.parquet", read=10, quarantined=2, duplicates_resolved=1, reasons={"bad rank": 2}, notes=["n1"])
    b = LoadReport("b.parquet", read=5, quarantined=1, reasons={"bad rank": 1}, notes=["n2"])
    b.quarantine.append(QuarantineRecord("b.parquet", "row 3", "bad rank"))
    out = LoadReport.combined([a, b])
    assert (out.source, out.read, out.quarantined, out.duplicates_resolved) == ("a.parquet + b.parquet", 15, 3, 1)
    assert out.reasons == {"bad rank": 3} and out.notes == ["n1", "n2"] and len(out.quarantine) == 1
    assert a.reasons == {"bad rank": 2}  # the parts are not changed

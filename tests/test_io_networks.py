"""STRING, CORUM, DoRothEA and GMT readers."""

from __future__ import annotations

import gzip

import pytest

from graph.io.common import InputFileError
from graph.io.genes import GeneResolver
from graph.io.networks import (
    NETWORK_READERS,
    complex_pairs,
    quarantine_summary,
    read_corum,
    read_dorothea,
    read_gmt,
    read_string_edges,
)
from graph.records import GeneRecord

GENES = [GeneRecord(1, "AAA"), GeneRecord(2, "BBB", aliases=("OLDB",)), GeneRecord(3, "CCC"),
         GeneRecord(4, "DDD", aliases=("SHARED",)), GeneRecord(5, "EEE", aliases=("SHARED",))]


@pytest.fixture
def resolver():
    return GeneResolver(GENES)


def _gz(path, text):
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


STRING = ("entrez_a\tentrez_b\tsymbol_a\tsymbol_b\texperiments\tdatabase\tcombined_score\n"
          "1\t2\tAAA\tOLDB\t0\t900\t950\n"
          "2\t1\tBBB\tAAA\t10\t0\t900\n"       # same pair again after resolution
          "3\t99\tCCC\tZZZ\t0\t0\t800\n"       # unknown gene
          "1\t3\tAAA\tCCC\t0\t0\t500\n"        # below min score
          "1\t3\tAAA\tCCC\t0\t0\tabc\n")       # bad score


def test_string(tmp_path, resolver):
    path = _gz(tmp_path / "s.tsv.gz", STRING)
    r = read_string_edges(path, min_score=0.7, resolver=resolver)
    assert r.report.read == 4 and r.report.accepted == 1 and r.report.quarantined == 3
    e = r.records[0]
    assert (e.source_symbol, e.target_symbol, e.score, e.directed) == ("AAA", "BBB", 0.95, False)
    assert e.evidence == "database=900"
    reasons = " ".join(q.reason for q in r.quarantine)
    assert "repeats" in reasons and "ZZZ" in reasons and "not a number" in reasons
    assert any("below min_score" in n for n in r.report.notes)
    unresolved = read_string_edges(path, min_score=0.0)  # without a resolver symbols are used as given
    assert unresolved.report.accepted == 4


def test_corum(tmp_path, resolver):
    head = "ComplexID\tComplexName\tOrganism\tsubunits(Gene name)\n"
    path = tmp_path / "corum.txt"
    path.write_text(head + "1\tC-one\tHuman\tAAA;OLDB;ZZZ\n2\tC-two\tMouse\tAAA;BBB\n3\tC-three\tHuman\tAAA;SHARED\n")
    r = read_corum(path, resolver=resolver)
    assert r.report.read == 2 and r.report.accepted == 1 and r.report.quarantined == 1
    assert r.records[0].member_symbols == ("AAA", "BBB") and r.records[0].complex_id == "CORUM:1"
    keys = {q.record_key: q.reason for q in r.quarantine}
    assert "unknown gene name" in keys["1:ZZZ"] and "ambiguous" in keys["3:SHARED"] and "only 1" in keys["3"]
    assert any("other organisms" in n for n in r.report.notes)


def test_dorothea(tmp_path, resolver):
    path = _gz(tmp_path / "d.tsv.gz", "tf\ttarget\tmor\tconfidence\nAAA\tBBB\t1\tA\nAAA\tCCC\t-1\tB\n"
                                      "AAA\tDDD\t1\tE\nAAA\tOLDB\t1\tC\nBBB\tCCC\t2\tA\n")
    r = read_dorothea(path, confidence="ABC", resolver=resolver)
    assert r.report.read == 4 and r.report.accepted == 2 and r.report.quarantined == 2
    signs = {(e.source_symbol, e.target_symbol): (e.sign, e.score, e.evidence, e.directed) for e in r.records}
    assert signs == {("AAA", "BBB"): (1, 1.0, "A", True), ("AAA", "CCC"): (-1, 0.8, "B", True)}
    assert read_dorothea(path, confidence="ABCDE").report.read == 5


def test_gmt(tmp_path, resolver):
    path = tmp_path / "sets.gmt"
    path.write_text("SET_A\thttp://x\tAAA\tOLDB\tZZZ\nBROKEN\n\nSET_B\tdesc\tZZZ\n")
    r = read_gmt(path, resolver=resolver)
    assert r.report.read == 3 and r.report.accepted == 1 and r.report.quarantined == 2
    assert r.records[0].member_symbols == ("AAA", "BBB")
    assert (r.records[0].complex_id, r.records[0].name, r.records[0].source) == ("SET_A", "http://x", "sets.gmt")


def test_complex_pairs_is_one_rule_for_symbols_and_entrez_ids():
    # every two distinct members once, (smaller, larger), sorted; repeats within and across complexes once
    assert complex_pairs([["C", "A", "B", "A"], ["B", "C"], ["D"]]) == [("A", "B"), ("A", "C"), ("B", "C")]
    assert complex_pairs([[3, 1, 2], [2, 3]], genes={1, 3}) == [(1, 3)]  # Entrez ids, as read from the graph
    assert complex_pairs([]) == []


def test_quarantine_summary_counts_every_unresolved_gene(tmp_path, resolver):
    r = read_string_edges(_gz(tmp_path / "s.tsv.gz", STRING), min_score=0.7, resolver=resolver)
    line = quarantine_summary(r)
    assert line.startswith("s.tsv.gz: 4 read, 1 accepted, 3 quarantined")
    # the gene name folded out of the reason, kept among the examples
    assert "gene …: unknown gene name: 1" in line and "CCC|ZZZ" in line and "below min_score" in line


def test_the_ingest_reads_every_network_kind_with_these_readers():
    from pipelines.ingest import NETWORK_KINDS

    assert set(NETWORK_KINDS) == set(NETWORK_READERS)
    assert NETWORK_READERS["corum"] is read_corum and NETWORK_READERS["string"] is read_string_edges


def test_missing_columns(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(InputFileError, match=r"x.tsv: missing columns \['confidence', 'mor', 'target', 'tf'\]"):
        read_dorothea(path)
    with pytest.raises(InputFileError, match="does not exist"):
        read_string_edges(tmp_path / "none.tsv")


@pytest.fixture(scope="module")
def real_resolver(shared_data):
    return GeneResolver.from_table(shared_data / "genes" / "genes_human.tsv")


@pytest.mark.shared_data
def test_real_string(shared_data, real_resolver):
    r = read_string_edges(shared_data / "networks" / "string_v12_edges.tsv.gz", min_score=0.9, resolver=real_resolver)
    assert r.report.read + int(r.report.notes[0].split()[0]) == 174_962
    assert r.report.accepted > 50_000 and r.report.quarantined < 0.01 * r.report.read
    assert all(0.9 <= e.score <= 1.0 for e in r.records)


@pytest.mark.shared_data
def test_real_corum_and_dorothea(shared_data, real_resolver):
    c = read_corum(shared_data / "networks" / "corum_allComplexes_2018-06-27.txt", resolver=real_resolver)
    assert c.report.read == 2390 and c.report.accepted > 2200
    assert all(len(x.member_symbols) >= 2 for x in c.records)
    d = read_dorothea(shared_data / "networks" / "dorothea_hs.tsv.gz", confidence="AB", resolver=real_resolver)
    assert d.report.read == 5434 + 974 and d.report.accepted > 6300
    assert {e.sign for e in d.records} == {1, -1}


def test_the_gene_prior_reads_its_networks_with_one_cut():
    """graph/io/networks.GENE_PRIOR, the LPM's gene prior everywhere: STRING >= 700 (what the benchmarks
    measured); a DoRothEA prior keeps the confidence letters whose score reaches the cut."""
    from graph.io.networks import GENE_PRIOR, GenePrior

    assert GENE_PRIOR.networks == ("string",) and GENE_PRIOR.filters("string") == {"min_score": 0.7}
    assert GENE_PRIOR.describe() == "STRING >= 700"
    both = GenePrior(("string", "dorothea"), 0.6)
    assert both.filters("dorothea") == {"confidence": "ABC"} and both.describe() == "STRING >= 600 + DoRothEA ABC"
    with pytest.raises(ValueError, match="not a gene-gene prior network"):
        both.filters("corum")

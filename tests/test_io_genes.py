"""Gene table reader and GeneResolver: symbols, aliases, retired and Excel-mangled names, ambiguity."""

from __future__ import annotations

import time

import pytest

from graph.io.common import InputFileError
from graph.io.genes import GeneResolver, read_gene_table, read_landmarks

TABLE = """entrez_id\tsymbol\tname\ttype\tchromosome\tmap_location\tensembl_id\taliases
1731\tSEPTIN1\tseptin 1\tprotein-coding\t16\t16p11.2\tENSG00000180096\tDIFF6|SEPT1
55016\tMARCHF1\tmembrane associated ring-CH-type finger 1\tprotein-coding\t4\t4q32.2\tENSG00000145416\tMARCH1|RNF171
8553\tBHLHE40\tbasic helix-loop-helix family member e40\tprotein-coding\t3\t3p26.1\tENSG00000134107\tDEC1|STRA13
50514\tDELEC1\tdeleted in esophageal cancer 1\tprotein-coding\t9\t9q32\tENSG00000173077\tDEC1
9868\tTOMM70\ttranslocase of outer mitochondrial membrane 70\tprotein-coding\t3\t3q13.2\tENSG00000154174\tTOMM70A
3045\tHBD\themoglobin subunit delta\tprotein-coding\t11\t11p15.4\tENSG00000223609\t
100187828\tHBD\thypophosphatemic bone disease\tunknown\t-\t-\t\t
7157\tTP53\ttumor protein p53\tprotein-coding\t17\t17p13.1\tENSG00000141510|ENSG00000999999\tP53|LFS1
1234\tCCR5\tC-C motif chemokine receptor 5\tprotein-coding\t3\t3p21.31\tENSG00000160791\tTP53
x12\tBAD1\tnot an id\t\t\t\t\t
7157\tTP53DUP\trepeated entrez\t\t\t\t\t
4512\tCOX1\tcytochrome c oxidase subunit I\tprotein-coding\tMT\t\tENSG00000198804\tCOI|MTCO1
"""


@pytest.fixture
def resolver(tmp_path):
    path = tmp_path / "genes.tsv"
    path.write_text(TABLE)
    return GeneResolver(read_gene_table(path).records)


def test_read_gene_table_counts_and_quarantine(tmp_path):
    path = tmp_path / "genes.tsv"
    path.write_text(TABLE)
    result = read_gene_table(path)
    assert result.report.read == 12 and result.report.accepted == 10 and result.report.quarantined == 2
    reasons = {q.record_key: q.reason for q in result.quarantine}
    assert "not a positive integer" in reasons["x12"] and "repeated" in reasons["7157"]
    tp53 = next(g for g in result.records if g.entrez_id == 7157)
    assert tp53.aliases == ("P53", "LFS1") and tp53.ensembl_id.startswith("ENSG00000141510")


def test_missing_columns_named(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("gene\tname\nA\tB\n")
    with pytest.raises(InputFileError, match=r"bad.tsv: missing columns \['entrez_id', 'symbol'\]"):
        read_gene_table(path)


@pytest.mark.parametrize("name, symbol, entrez, how", [
    ("TP53", "TP53", 7157, "symbol"), ("tp53", "TP53", 7157, "symbol"), (" Tp53 ", "TP53", 7157, "symbol"),
    ("TOMM70A", "TOMM70", 9868, "alias"), ("7157", "TP53", 7157, "entrez"), ("LOC7157", "TP53", 7157, "loc"),
    ("ENSG00000154174", "TOMM70", 9868, "ensembl"), ("ENSG00000154174.12", "TOMM70", 9868, "ensembl"),
    ("SEPT1", "SEPTIN1", 1731, "alias"), ("1-Sep", "SEPTIN1", 1731, "excel:alias"),
    ("Sep-01", "SEPTIN1", 1731, "excel:alias"), ("01-SEPT", "SEPTIN1", 1731, "excel:alias"),
    ("MARCH1", "MARCHF1", 55016, "alias"), ("1-Mar", "MARCHF1", 55016, "excel:alias"),
    ("MT-CO1", "COX1", 4512, "mito:alias"), ("mt-co1", "COX1", 4512, "mito:alias"), ("MTCO1", "COX1", 4512, "alias"),
])
def test_resolution_routes(resolver, name, symbol, entrez, how):
    m = resolver.resolve(name)
    assert (m.symbol, m.entrez_id, m.how) == (symbol, entrez, how)


def test_exact_symbol_beats_alias_of_another_gene(resolver):
    # TP53 is also listed as an alias of CCR5 in this fixture: the official symbol wins.
    assert resolver.resolve("TP53").entrez_id == 7157


def test_ambiguous_names_are_not_guessed(resolver):
    dec = resolver.resolve("DEC1")
    assert not dec.ok and dec.candidates == ("BHLHE40 (8553)", "DELEC1 (50514)") and "ambiguous" in dec.reason
    assert not resolver.resolve("1-Dec").ok  # Excel DEC1 is just as ambiguous
    hbd = resolver.resolve("HBD")
    assert not hbd.ok and len(hbd.candidates) == 2
    resolved, quarantine = resolver.resolve_many(["TP53", "DEC1", "nonsense", "TP53"], source="t")
    assert list(resolved) == ["TP53"]
    assert {q.record_key: q.reason for q in quarantine} == {"DEC1": "ambiguous alias: 2 genes",
                                                           "nonsense": "unknown gene name"}
    assert quarantine[0].raw["candidates"] == ["BHLHE40 (8553)", "DELEC1 (50514)"]


def test_lookalike_and_odd_names_do_not_crash(resolver):
    for name in ["", "T\u042053", "`TP53`", "{TP53}", "TP53'", None, "SEP-99", "99-Foo", "MT-ZZZ", "MT-"]:
        assert not resolver.resolve(name).ok
    assert resolver.symbol_map(["TP53", "TOMM70A", "zzz"]) == {"TP53": "TP53", "TOMM70A": "TOMM70"}


@pytest.mark.shared_data
def test_real_gene_table(shared_data):
    t0 = time.perf_counter()
    result = read_gene_table(shared_data / "genes" / "genes_human.tsv")
    resolver = GeneResolver(result.records)
    build_s = time.perf_counter() - t0
    assert result.report.read == 77_614 and result.report.accepted + result.report.quarantined == 77_614
    assert build_s < 20
    assert resolver.resolve("MARCH8").symbol == "MARCHF8"
    assert resolver.resolve("1-Sep").symbol == "SEPTIN1"
    assert resolver.resolve("TOMM70A").entrez_id == 9868
    dec = resolver.resolve("DEC1")
    assert not dec.ok and {"BHLHE40 (8553)", "DELEC1 (50514)"} <= set(dec.candidates)
    # 77k lookups stay fast (dict-based)
    t0 = time.perf_counter()
    hits = sum(resolver.resolve(g.symbol.lower() + " ").ok for g in result.records)
    assert time.perf_counter() - t0 < 10
    assert hits > 77_000  # only symbols shared by several Entrez ids are ambiguous


@pytest.mark.shared_data
def test_real_landmarks_resolve_to_their_entrez(shared_data):
    lm = read_landmarks(shared_data / "l1000" / "geneinfo_landmark.tsv")
    resolver = GeneResolver.from_table(shared_data / "genes" / "genes_human.tsv")
    assert len(lm) == 978
    by_symbol = [resolver.resolve(s) for s in lm["symbol"]]
    wrong = [m for m, e in zip(by_symbol, lm["entrez"], strict=True) if m.ok and m.entrez_id != e]
    unresolved = [m for m in by_symbol if not m.ok]
    assert not wrong  # an old symbol never lands on the wrong gene
    # the few unresolved ones are ambiguous aliases (e.g. HN1L: CRAMP1 or JPT2), reported with candidates
    assert len(unresolved) <= 8 and all("ambiguous" in m.reason and len(m.candidates) > 1 for m in unresolved)
    # the Entrez id settles every landmark, and gives the current NCBI symbol
    by_entrez = [resolver.resolve(str(e)).symbol for e in lm["entrez"]]
    assert by_entrez == lm["symbol_ncbi_2022"].tolist()
    assert (lm["symbol"] != lm["symbol_ncbi_2022"]).sum() == 47

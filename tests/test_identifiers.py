"""The identifier rules (graph/io/identifiers.py) on the strings that broke the old copies."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from graph.io import identifiers as I
from graph.io.genes import GeneResolver
from graph.io.identifiers import (
    canonical_gene_symbol,
    combination_members,
    compound_name_keys,
    gene_key,
    lookup_compound,
    moa_terms,
    normalise_compound_name,
    normalise_moa,
    parse_dose,
    signed_rank_score,
    split_combination,
    up_rank_score,
    valid_rank,
)
from graph.records import GeneRecord

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("raw, key", [
    ("Trametinib (GSK1120212)", "trametinib"), ("Vorinostat ", "vorinostat"), ("  vorinostat", "vorinostat"),
    ("imatinib mesylate", "imatinib"), ("Imatinib  Mesylate", "imatinib"), ("Berbamine dihydrochloride", "berbamine"),
    ("R-Verapamil hydrochloride", "rverapamil"), ("Apomorphine (hydrochloride hemihydrate)", "apomorphine"),
    ("Hydrocortisone acetate", "hydrocortisoneacetate"), ("Pemetrexed disodium", "pemetrexed"),
    ("Ifosfamide isethionate", "ifosfamide"), ("(+)-JQ1", "jq1"), ("sodium", "sodium"), ("VORINOSTAT", "vorinostat"),
])
def test_compound_names(raw, key):
    assert normalise_compound_name(raw) == key


def test_alias_in_parentheses_is_a_second_lookup_key():
    assert compound_name_keys("Trametinib (GSK1120212)") == ("trametinib", "gsk1120212")
    assert compound_name_keys("Apomorphine (hydrochloride hemihydrate)") == ("apomorphine",)  # salt words: no alias
    assert compound_name_keys("(+)-JQ1") == ("jq1",)  # a stereo bracket is part of the name
    table = {"gsk1120212": "SMILES-T"}
    assert lookup_compound("Trametinib (GSK1120212)", table) == "SMILES-T"
    assert lookup_compound("Trametinib", table) is None
    # acetate: an ester when the table knows the ester, a counter-ion otherwise (last resort)
    esters = {"hydrocortisoneacetate": "ESTER", "hydrocortisone": "PARENT", "pasireotide": "PEPTIDE"}
    assert lookup_compound("Hydrocortisone acetate", esters) == "ESTER"
    assert lookup_compound("Pasireotide acetate", esters) == "PEPTIDE"
    assert compound_name_keys("Pasireotide acetate") == ("pasireotideacetate",)  # join keys never drop it


def test_mechanisms_of_action_have_one_spelling():
    assert normalise_moa(" MEK  Inhibitor ") == normalise_moa("mek inhibitor") == "mek inhibitor"
    assert normalise_moa("ＨＤＡＣ inhibitor") == "hdac inhibitor"  # full-width letters (NFKC)
    assert normalise_moa(None) == normalise_moa("  ") == ""
    # a compound's mechanisms: each once, blanks dropped, sorted (CompoundAnnotation.of, the ingest's merge)
    assert moa_terms(["RAF inhibitor", "MEK inhibitor", "mek inhibitor", "", None]) == ("mek inhibitor", "raf inhibitor")
    assert moa_terms(None) == ()


def test_every_user_of_mechanisms_of_action_spells_them_one_way():
    from graph.db.rows import compound_row
    from graph.io.compounds import CompoundEntry, build_compounds
    from graph.records import CompoundRecord
    from models.side_information import CompoundAnnotation

    merged = build_compounds([CompoundEntry("Trametinib", "drugs", "d1", moa=("MEK inhibitor",)),
                              CompoundEntry("trametinib", "lincs", "l1", moa=("mek  inhibitor", "RAF inhibitor"))],
                             timeout_s=None).records
    assert [r.moa for r in merged] == [("mek inhibitor", "raf inhibitor")]  # ingest: one Compound, one spelling
    assert compound_row(CompoundRecord("K", "x", moa=("MEK Inhibitor", "mek inhibitor")))["moa"] == ["mek inhibitor"]
    assert CompoundAnnotation.of((), ["MEK Inhibitor", " mek inhibitor"]).moa == ("mek inhibitor",)
    # and nobody lower-cases a mechanism by hand (the old copy in models/side_information.py did)
    by_hand = [f"{path.relative_to(REPO)}:{i}" for folder in ("graph", "models", "pipelines", "benchmarks")
               for path in (REPO / folder).rglob("*.py") if path.name != "identifiers.py"
               for i, line in enumerate(path.read_text().splitlines(), 1)
               if "moa" in line.lower() and (".lower()" in line or ".casefold()" in line)]
    assert not by_hand, by_hand


def test_combinations():
    assert split_combination("(+)-JQ1") == ("(+)-JQ1",)
    assert split_combination("(S)-(+)-rolipram") == ("(S)-(+)-rolipram",)
    assert split_combination("crispri:A+B") == ("crispri:A", "crispri:B")
    assert split_combination("CRISPRi:A+B", keep_prefix=False) == ("A", "B")
    assert split_combination(" A + B+C ") == ("A", "B", "C")
    assert split_combination("CEBPE+ctrl") == ("CEBPE",) and split_combination("A+") == ("A+",)
    # a model embeds a control as one symbol, never as an empty combination
    assert combination_members("DMSO") == ("DMSO",) and combination_members("control:DMSO") == ("control:DMSO",)
    assert combination_members("A+B") == ("A", "B")


def test_gene_symbols_have_one_canonical_spelling():
    assert gene_key(" tp53 ") == "TP53"
    resolver = GeneResolver([GeneRecord(7157, "TP53", aliases=("P53",)), GeneRecord(10, "MARCHF8", aliases=("MARCH8",))])
    assert canonical_gene_symbol("march8", resolver) == "MARCHF8"
    assert canonical_gene_symbol("7157", resolver) == "TP53"
    assert canonical_gene_symbol(" NOTAGENE ", resolver) == "NOTAGENE"
    assert canonical_gene_symbol(" x ", None) == "x"


def test_doses():
    assert parse_dose("10 µM") == (10.0, "uM") and parse_dose("10 μM") == (10.0, "uM")
    assert parse_dose("500 nM") == (0.5, "uM") and parse_dose("10uM") == (10.0, "uM")
    with pytest.raises(ValueError, match="unparseable dose"):
        parse_dose("ten micromolar")


def test_rank_scores_endpoints_and_invalid_ranks():
    assert signed_rank_score(1, 5) == 1.0 and signed_rank_score(5, 5) == -1.0 and signed_rank_score(3, 5) == 0.0
    s = signed_rank_score(np.array([1, 2, 1000]), np.array([1000, 1000, 1000]))
    assert s.dtype == np.float32 and s[0] == 1 and s[2] == -1 and 0.99 < s[1] < 1
    assert signed_rank_score(np.array([1, 3]), np.array([3, 3]), dtype=np.float64).dtype == np.float64
    for rank, n in [(1, 1), (0, 5), (6, 5), (-7, 20), (999, 20), (2.5, 5), (np.nan, 5)]:
        assert np.isnan(signed_rank_score(rank, n)) and np.isnan(up_rank_score(rank, n)), (rank, n)
    assert up_rank_score(np.array([1, 1000]), np.array([1000, 1000])).tolist() == pytest.approx([1.0, 0.001])
    assert valid_rank([1, 20, 21], [20, 20, 20]).tolist() == [True, True, False]


def _defined_functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}


def test_each_rule_is_defined_once():
    """No copy of a rule outside identifiers.py (the old copies had drifted apart)."""
    rules = {"normalise_compound_name", "normalise_drug_name", "split_combination", "signed_score",
             "signed_score_from_rank", "signed_rank_score", "up_rank_score", "parse_dose", "parse_time",
             "is_control_name", "normalise_moa", "moa_terms"}
    where: dict[str, list[str]] = {}
    for folder in ("graph", "models", "pipelines", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for name in _defined_functions(path) & rules:
                where.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert all(paths == ["graph/io/identifiers.py"] for paths in where.values()), where


def test_a_pipe_joins_combination_members_too():
    """'STAT1|JAK2' (targets joined by a pipe) was one unknown target 'STAT1|JAK2'; it is the combination
    STAT1+JAK2, with the same perturbation id as 'STAT1+JAK2'."""
    from graph.io.identifiers import split_combination
    from graph.io.perturbations import make_perturbation_id

    assert split_combination("STAT1|JAK2") == split_combination("STAT1+JAK2") == ("STAT1", "JAK2")
    assert split_combination("STAT1|ctrl") == ("STAT1",)
    assert make_perturbation_id("CRISPRi", "STAT1|JAK2") == make_perturbation_id("CRISPRi", "JAK2+STAT1")


@pytest.mark.parametrize(("name", "expected"), [
    ("screen.v2.csv", "screen_v2"), ("Screen.V2.CSV.GZ", "screen_v2"), ("tahoe100m_ranked.parquet", "tahoe100m_ranked"),
    ("GSE92742_Level5_COMPZ.MODZ_n473647x12328.gctx", "gse92742_level5_compz_modz_n473647x12328"),
    ("my perturb-seq (run 2).h5ad", "my_perturb_seq_run_2"), ("...csv", "dataset")])
def test_dataset_id_for_one_rule_for_cli_and_pipeline(name, expected):
    from models import datasets
    from pipelines import inputs

    assert I.dataset_id_for(name) == expected
    # the CLI's readers and the pipeline's input specs name a file's dataset by this one function
    assert datasets.dataset_id_for is inputs.dataset_id_for is I.dataset_id_for


def test_norman_a_b_doubles_split_only_when_every_part_is_a_gene():
    """scPerturb writes Norman et al. 2019's doubles 'CEBPA_KLF1' (controls 'control'); they were one
    unresolved target. With a gene table, 'A_B' is a combination when every part is a current gene symbol and
    the whole name is no gene; a guide name, a symbol holding '_', an alias or Entrez number part, and every
    name without a gene table stay whole."""
    from graph.records import GeneRecord

    genes = GeneResolver([GeneRecord(1050, "CEBPA"), GeneRecord(10661, "KLF1"), GeneRecord(6772, "STAT1"),
                          GeneRecord(2, "A2M", aliases=("G1",)), GeneRecord(7, "GENE_X")])
    assert split_combination("CEBPA_KLF1", resolver=genes) == ("CEBPA", "KLF1")
    assert split_combination("CRISPRa:CEBPA_KLF1", keep_prefix=False, resolver=genes) == ("CEBPA", "KLF1")
    assert split_combination("CEBPA_ctrl", resolver=genes) == ("CEBPA",)
    assert split_combination("CEBPA_KLF1+STAT1", resolver=genes) == ("CEBPA", "KLF1", "STAT1")
    for whole in ("STAT1_g1", "STAT1_2", "STAT1_G1", "GENE_X", "CEBPA_"):  # G1: an alias; 2: an Entrez id
        assert split_combination(whole, resolver=genes) == (whole,), whole
    assert split_combination("CEBPA_KLF1") == ("CEBPA_KLF1",)  # no gene table: never split


def test_time_point_keeps_a_bare_number_apart_and_refuses_unreadable_text():
    from graph.io.identifiers import time_point

    assert time_point("24 h") == ((24.0, "h"), "|24h", False)
    assert time_point("30", "min") == ((0.5, "h"), "|0.5h", False)
    assert time_point("24") == ((None, ""), "|24", True)  # no unit anywhere: kept as written, never guessed
    assert time_point(" ") == ((None, ""), "", False)
    with pytest.raises(ValueError, match="unparseable time 'soon'"):
        time_point("soon")
    with pytest.raises(ValueError, match="no known unit"):
        time_point("24", "parsecs")  # a unit given but unknown is an error, not a bare number

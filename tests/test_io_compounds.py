"""Compound tables, RDKit standardisation under a time limit, name normalisation and merging."""

from __future__ import annotations

import time

import pytest

from graph.io import compounds as comp
from graph.io.common import InputFileError
from graph.io.compounds import (
    CompoundEntry,
    StructureStandardiser,
    build_compounds,
    name_index,
    normalise_compound_name,
    precheck_smiles,
    read_lincs_compoundinfo,
    read_repurposing_drugs,
    read_repurposing_samples,
)

ASPIRIN = "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"


@pytest.mark.parametrize("raw, key", [
    ("Imatinib Mesylate", "imatinib"), ("imatinib", "imatinib"), ("Apomorphine (hydrochloride hemihydrate)", "apomorphine"),
    ("5-Fluorouracil", "5fluorouracil"), ("Tofacitinib citrate", "tofacitinib"), ("Doxorubicin HCl", "doxorubicin"),
    ("Hydrocortisone acetate", "hydrocortisoneacetate"), ("sodium", "sodium"), ("ＩＭＡＴＩＮＩＢ", "imatinib"),
])
def test_normalise_compound_name(raw, key):
    assert normalise_compound_name(raw) == key


def test_standardise_strips_salts_and_neutralises():
    with StructureStandardiser(timeout_s=None) as st:
        out = st.standardise(["CC(=O)Oc1ccccc1C(=O)[O-].[Na+]", "CC(=O)Oc1ccccc1C(=O)O.Cl", "CC(=O)Oc1ccccc1C(=O)O.O"])
    assert {s.inchikey for s in out.values()} == {ASPIRIN}
    assert {s.smiles for s in out.values()} == {"CC(=O)Oc1ccccc1C(=O)O"}
    assert next(iter(out.values())).block1 == "BSYNRYMUTXBXSQ"


@pytest.mark.parametrize("smiles, issue", [
    ("", "empty SMILES"), ("C1CC", "could not parse"), ("C(C)(C)(C)(C)C", "could not parse"),
    ("c1ccccc1" * 300, "longer than"), ("CC O", "characters"), ("C%99" * 200, "ring closures"),
])
def test_invalid_smiles_rejected_with_reason(smiles, issue):
    with StructureStandardiser(timeout_s=5) as st:
        s = st.standardise([smiles])[smiles.strip()]
    assert not s.ok and issue in s.issue


def test_prechecks_are_cheap_and_pass_normal_molecules():
    assert precheck_smiles("CN1CCc2cccc-3c2[C@H]1Cc1ccc(O)c(O)c-31") == ""
    assert precheck_smiles("C" * 1501).startswith("SMILES longer")


def _slow_batch(batch):  # stands in for a pathological molecule; runs in the worker process
    if "SLOW" in batch:
        time.sleep(30)
    return comp._standardise_batch(batch)


@pytest.mark.slow
def test_time_limit_kills_a_hanging_molecule(monkeypatch):
    monkeypatch.setattr(comp, "precheck_smiles", lambda s: "")
    t0 = time.perf_counter()
    with StructureStandardiser(timeout_s=1.0, batch_size=10, worker=_slow_batch) as st:
        out = st.standardise(["CCO", "SLOW", "c1ccccc1"])
    assert time.perf_counter() - t0 < 60
    assert out["SLOW"].issue == "standardisation exceeded 1 s" and st.timeouts == 1
    assert out["CCO"].ok and out["c1ccccc1"].ok  # the batch was redone one by one after the timeout


def test_build_merges_deterministically():
    entries = [
        CompoundEntry("Aspirin", "drugs", "d1", moa=("COX inhibitor",), targets=("PTGS1",), clinical_phase="Launched"),
        CompoundEntry("aspirin sodium", "samples", "BRD-K1-001", smiles="CC(=O)Oc1ccccc1C(=O)[O-].[Na+]",
                      aliases=("BRD-K1", "BRD-K1-001")),
        CompoundEntry("acetylsalicylic acid", "lincs", "BRD-K1", smiles="CC(=O)Oc1ccccc1C(=O)O",
                      targets=("PTGS2", "PTGS1"), clinical_phase="4"),
        CompoundEntry('weird "name" {x} `y`', "lincs", "BRD-X", smiles="C1CC"),
        CompoundEntry("nostructure", "drugs", "d2", moa=("unknown",)),
    ]
    a = build_compounds(entries, timeout_s=None)
    b = build_compounds(list(reversed(entries)), timeout_s=None)
    assert [r.compound_id for r in a.records] == [r.compound_id for r in b.records]
    by_id = {r.compound_id: r for r in a.records}
    asp = by_id[ASPIRIN]
    assert asp.has_structure and asp.targets == ("PTGS1", "PTGS2") and asp.moa == ("cox inhibitor",)  # normalise_moa
    assert asp.name == "Aspirin" and {"aspirin sodium", "acetylsalicylic acid", "BRD-K1", "BRD-K1-001"} <= set(asp.aliases)
    assert asp.clinical_phase in {"Launched", "4"} and asp.source.split("|")[0] == "drugs"
    weird = by_id["name:weirdnamexy"]
    assert weird.name == 'weird "name" {x} `y`' and not weird.has_structure and "could not parse" in weird.structure_issue
    assert by_id["name:nostructure"].structure_issue == "no SMILES given"
    assert a.report.read == 5 and a.report.accepted == 5 and a.report.duplicates_resolved == 2
    idx = name_index(a.records)
    assert idx["aspirin"] == idx["acetylsalicylicacid"] == idx["BRD-K1"] == ASPIRIN


DRUGS = ("!Source\t\"x\"\t\t\r\n!Restrictions\tnon-commercial\t\t\r\n"
         "pert_iname\tclinical_phase\tmoa\ttarget\tdisease_area\tindication\r\n"
         "imatinib\tLaunched\tBCR-ABL inhibitor|KIT inhibitor\tABL1|KIT\toncology\tCML\r\n"
         "don't \"quote\"\tPhase 1\t\t\t\t\r\n"
         "\t\t\t\t\t\r\n")


def test_repurposing_drugs_file(tmp_path):
    path = tmp_path / "drugs.txt"
    path.write_bytes(DRUGS.encode())
    r = read_repurposing_drugs(path)
    assert r.report.read == 3 and r.report.accepted == 2 and r.report.quarantined == 1
    ima = r.records[0]
    assert ima.targets == ("ABL1", "KIT") and ima.moa == ("BCR-ABL inhibitor", "KIT inhibitor")
    assert r.records[1].name == "don't \"quote\""  # stored verbatim
    bad = tmp_path / "bad.txt"
    bad.write_text("name\tphase\nx\ty\n")
    with pytest.raises(InputFileError, match="bad.txt: missing columns"):
        read_repurposing_drugs(bad)


@pytest.mark.shared_data
def test_real_compound_tables(shared_data):
    d = shared_data / "compounds"
    drugs = read_repurposing_drugs(d / "repurposing_drugs_20200324.txt")
    samples = read_repurposing_samples(d / "repurposing_samples_20200324.txt")
    lincs = read_lincs_compoundinfo(d / "lincs_compoundinfo.tsv", nrows=400)
    assert drugs.report.read == 6798 and samples.report.read == 13553
    assert drugs.report.accepted + drugs.report.quarantined == 6798
    assert samples.records[0].aliases[0] == samples.records[0].row_key[:13]
    # a slice big enough to merge salts/sources, small enough for seconds
    names = {"imatinib", "vemurafenib", "atorvastatin", "venlafaxine", "vorinostat", "(r)-(-)-apomorphine"}
    subset = [e for e in drugs.records + samples.records if e.name.lower() in names]
    subset += lincs.records + [e for e in read_lincs_compoundinfo(d / "lincs_compoundinfo.tsv").records
                               if e.name.lower() in names]
    built = build_compounds(subset, timeout_s=10)
    by_name = {r.name.lower(): r for r in built.records if r.has_structure}
    assert {"imatinib", "vemurafenib", "atorvastatin", "venlafaxine", "vorinostat"} <= set(by_name)
    ima = by_name["imatinib"]
    assert ima.inchikey == "KTUFNOKKBVMGRW-UHFFFAOYSA-N" and "ABL1" in ima.targets  # mesylate stripped
    assert ima.inchikey_block1 == "KTUFNOKKBVMGRW"
    assert built.report.read == len(subset) and any(not r.has_structure for r in built.records)
    idx = name_index(built.records)
    assert idx["imatinib"] == ima.compound_id


def test_name_shared_by_stereo_variants_joins_one_representative():
    from graph.records import CompoundRecord

    def rec(key: str, name: str, phase: str = "") -> CompoundRecord:
        return CompoundRecord(compound_id=key, name=name, inchikey=key, inchikey_block1=key.split("-")[0],
                              has_structure=True, clinical_phase=phase)

    # everolimus in LINCS: no stereo, and two stereo assignments of one skeleton
    records = [rec("HKVAMNSJSFKALM-UHFFFAOYSA-N", "everolimus"), rec("HKVAMNSJSFKALM-VTDMOWJCSA-N", "everolimus"),
               rec("HKVAMNSJSFKALM-DHGBBOBXSA-N", "everolimus", "Launched"),
               rec("AAAAAAAAAAAAAA-UHFFFAOYSA-N", "samename"), rec("BBBBBBBBBBBBBB-UHFFFAOYSA-N", "samename")]
    idx = name_index(records)
    assert idx["everolimus"] == "HKVAMNSJSFKALM-DHGBBOBXSA-N"  # defined stereo, then the smallest key
    assert "samename" not in idx  # two different skeletons: not guessed
    assert name_index(records[:2])["everolimus"] == "HKVAMNSJSFKALM-VTDMOWJCSA-N"


def test_structureless_entry_joins_the_stereo_representative_of_its_name():
    """Repurposing Hub names everolimus without a SMILES; LINCS gives two stereo variants: the Hub's
    targets must land on the compound the name joins, not on a separate name-only record."""
    entries = [
        CompoundEntry("everolimus", "drugs", "d1", targets=("MTOR",), clinical_phase="Launched"),
        CompoundEntry("everolimus", "lincs", "BRD-A1", smiles="C[C@H](N)C(=O)O"),  # L-alanine as a stand-in
        CompoundEntry("everolimus", "lincs", "BRD-A2", smiles="C[C@@H](N)C(=O)O"),  # D-alanine: same skeleton
    ]
    built = build_compounds(entries, timeout_s=None)
    structured = [r for r in built.records if r.has_structure]
    assert not [r for r in built.records if not r.has_structure]
    rep = name_index(built.records)["everolimus"]
    assert rep in {r.compound_id for r in structured}
    assert next(r for r in built.records if r.compound_id == rep).targets == ("MTOR",)


def test_targets_separated_by_semicolons_or_commas_are_separate_genes(tmp_path):
    """A compound table exported from CLUE / ChEMBL or a spreadsheet lists targets as 'ABL1; KIT' or
    'EGFR, ERBB2'. Split on '|' only they became one target 'ABL1; KIT', later quarantined as 'not a Gene'
    (every real target lost); the one rule (identifiers.split_gene_list) splits on | ; and ,."""
    from graph.io.identifiers import split_gene_list

    assert split_gene_list("ABL1|KIT") == split_gene_list("ABL1; KIT") == split_gene_list(" ABL1 , KIT,") == ("ABL1", "KIT")
    assert split_gene_list("") == () and split_gene_list("HLA-A|HLA-A") == ("HLA-A",)
    path = tmp_path / "info.tsv"
    path.write_text("pert_id\tcmap_name\ttarget\tcanonical_smiles\n"
                    "BRD-1\timatinib\tABL1; KIT; PDGFRA\tC\nBRD-2\tgefitinib\tEGFR, ERBB2\tCC\n")
    assert [e.targets for e in read_lincs_compoundinfo(path).records] == [("ABL1", "KIT", "PDGFRA"), ("EGFR", "ERBB2")]
    drugs = tmp_path / "drugs.txt"
    drugs.write_text("pert_iname\tclinical_phase\tmoa\ttarget\nimatinib\tLaunched\tBCR-ABL inhibitor\tABL1;KIT\n")
    assert read_repurposing_drugs(drugs).records[0].targets == ("ABL1", "KIT")

"""Value and ranked long tables: streaming, quarantine, real Replogle/Tahoe files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from graph.io.common import InputFileError
from graph.io.genes import GeneResolver
from graph.io.tables import LongTableReader, read_long_table
from graph.records import MEASUREMENT_COLUMNS, GeneRecord


def _ranked(tmp_path, n_per=4):
    rows = []
    for ctx in ["K562", "HEC-1-A"]:
        for pert, ptype in [("AARS", "CRISPRi"), ("Pyridoxine", "compound"), ("Pyridoxine hydrochloride", "compound")]:
            for r in range(1, n_per + 1):
                rows.append((ctx, pert, ptype, f"G{r}", r, n_per, r == 1))
    df = pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "rank", "n_ranked", "in_up_set"])
    for c in ["context", "perturbation", "perturbation_type", "readout"]:
        df[c] = df[c].astype("category")
    df["rank"] = df["rank"].astype("int32")
    df["n_ranked"] = df["n_ranked"].astype("int32")
    return df


def test_ranked_parquet_streamed_in_batches(tmp_path):
    df = _ranked(tmp_path)
    path = tmp_path / "ranked.parquet"
    df.to_parquet(path, row_group_size=5)
    reader = LongTableReader(path, "r", batch_size=5)
    chunks = list(reader.iter_long())
    assert len(chunks) == 5 and all(list(c.columns) == list(MEASUREMENT_COLUMNS) for c in chunks)
    long = pd.concat(chunks)
    assert reader.ranked and len(long) == 24 and reader.report.accepted == 24
    assert long["value"].max() == 1.0 and long["value"].min() == -1.0
    assert set(long["context"].astype(str)) == {"K562", "HEC1A"}
    sigs = reader.signatures()
    assert len(sigs) == 6 and all(s.n_readouts == 4 for s in sigs)
    # two salt forms: one Perturbation (same parent), two signatures (source spelling kept)
    assert "compound:name:pyridoxine" in reader.perturbations
    assert {s.signature_id for s in sigs} >= {"r:K562|Pyridoxine", "r:K562|Pyridoxine hydrochloride"}
    assert reader.perturbations["CRISPRi:AARS"].target_symbols == ("AARS",)


def test_bad_rows_quarantined_with_reasons(tmp_path):
    df = pd.DataFrame({
        "context": ["A", "A", "A", "A", "A", "", "A"],
        "perturbation": ["p", "p", "p", "p", "q", "p", "p"],
        "perturbation_type": ["CRISPRko", "CRISPRko", "CRISPRko", "CRISPRko", "trt_mystery", "CRISPRko", "CRISPRko"],
        "readout": ["G1", "G2", "G3", "G1", "G1", "G1", "G4"],
        "value": ["1.5", "nan", "inf", "2.5", "1", "1", "-0.5"],
    })
    path = tmp_path / "values.csv"
    df.to_csv(path, index=False)
    long, reader = read_long_table(path, "v", duplicates="quarantine")
    rep = reader.report
    assert rep.read == 7 and rep.accepted + rep.quarantined == 7
    reasons = sorted(q.reason for q in reader.quarantine)
    assert any("not a number" in r for r in reasons) and any("infinite" in r for r in reasons)
    assert any("unknown perturbation type" in r for r in reasons) and any("empty context" in r for r in reasons)
    # the repeated (signature, G1) rows disagree (1.5, 2.5): both quarantined (explicit; the default averages)
    assert sum("conflicting duplicates" in r for r in reasons) == 2 and rep.duplicates_resolved == 0
    assert long.set_index("readout")["value"].to_dict() == {"G4": -0.5}
    assert rep.quarantined == 6 and len(reader.quarantine) == 6
    # the other policies resolve the conflict (counted, reported)
    first, r1 = read_long_table(path, "v", duplicates="first")
    assert first.set_index("readout")["value"].to_dict() == {"G1": 1.5, "G4": -0.5} and r1.report.duplicates_resolved == 1
    mean, r2 = read_long_table(path, "v", duplicates="mean")
    assert mean.set_index("readout")["value"].to_dict() == {"G1": 2.0, "G4": -0.5}
    assert any("conflicting values (policy 'mean')" in n for n in r2.report.notes)


def test_resolver_never_merges_two_source_readouts(tmp_path):
    genes = [GeneRecord(1, "TOMM70", ensembl_id="ENSG1", aliases=("TOMM70A",)), GeneRecord(2, "MARCHF8", aliases=("MARCH8",))]
    df = pd.DataFrame({"context": "K562", "perturbation": "X", "perturbation_type": "CRISPRi",
                       "readout": ["TOMM70", "ENSG1", "MARCH8"], "value": [1.0, 2.0, 3.0]})
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    long, reader = read_long_table(path, "t", resolver=GeneResolver(genes))
    # TOMM70 keeps the symbol, the Ensembl id that resolves to the same gene keeps its own name
    assert sorted(long["readout"].astype(str)) == ["ENSG1", "MARCHF8", "TOMM70"]
    assert reader.report.duplicates_resolved == 0


def test_missing_columns_and_bad_file(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"context": ["A"], "readout": ["G"], "value": [1]}).to_csv(path, index=False)
    with pytest.raises(InputFileError, match=r"x.csv: missing columns \['perturbation', 'perturbation_type'\]"):
        LongTableReader(path, "x")
    bad = tmp_path / "y.parquet"
    bad.write_bytes(b"PAR1 garbage")
    with pytest.raises(InputFileError, match="y.parquet: cannot read the table header"):
        LongTableReader(bad, "y")


def test_a_table_without_perturbation_type_needs_the_option(tmp_path):
    """The one rule (graph/io/options.py): no guessed type; the option fills it and says so."""
    path = tmp_path / "no_type.csv"
    pd.DataFrame({"context": ["A"], "perturbation": ["d"], "readout": ["G"], "value": [1.0]}).to_csv(path, index=False)
    with pytest.raises(InputFileError, match=r"no_type.csv: has no perturbation_type column.*--perturbation-type"):
        LongTableReader(path, "x")
    long, reader = read_long_table(path, "x", perturbation_type="CRISPRi")
    assert long["perturbation_type"].astype(str).tolist() == ["CRISPRi"]
    assert any("taken as 'CRISPRi' (the perturbation_type option)" in n for n in reader.report.notes)


def test_read_options_parse_one_text_form(tmp_path):
    from graph.io.options import ReadOptions

    (tmp_path / "names.txt").write_text("# wanted\nTP53\nMYC\nTP53\n")
    opts = ReadOptions.parse({"readouts": str(tmp_path / "names.txt"), "perturbation_type": "crispri",
                              "duplicates": "mean", "readout_seed": "4", "context": ""})
    assert opts.readouts == ("TP53", "MYC") and opts.perturbation_type == "CRISPRi" and opts.context is None
    assert ReadOptions.parse(opts.as_text()) == opts  # the text form round-trips
    assert ReadOptions(readouts=5).overridden({"readout_seed": "2"}) == ReadOptions(readouts=5, readout_seed=2)
    for bad, message in [({"readouts": "0"}, "N >= 1"), ({"duplicates": "sum"}, "one of quarantine"),
                         ({"perturbation_type": "magic"}, "unknown perturbation type"),
                         ({"colour": "red"}, "unknown read option"), ({"readout_seed": "x"}, "integer"),
                         ({"readouts": str(tmp_path / "none.txt")}, "readout list does not exist")]:
        with pytest.raises(ValueError, match=message):
            ReadOptions.parse(bad)


def test_readout_subset_streamed_equals_whole_table(tmp_path):
    """Two passes over streamed chunks choose what one pass over the whole table chooses."""
    from graph.io.common import concat_long
    from graph.io.options import ReadOptions, choose_readouts, keep_readouts, readout_counts, subset_table

    rng = np.random.default_rng(0)
    rows = [("A", f"d{p}", "compound", f"G{r}", float(rng.normal())) for p in range(6) for r in range(12)
            if not (p == 0 and r < 3)]  # G0..G2 are missing from one signature: not dense
    path = tmp_path / "t.parquet"
    pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"]).to_parquet(path)
    opts = ReadOptions(readouts=4, readout_seed=7)

    def chunks():
        return LongTableReader(path, "t", batch_size=10).iter_long()

    keep = choose_readouts(opts, *readout_counts(chunks()))
    streamed = concat_long([keep_readouts(c, keep) for c in chunks()])
    notes: list[str] = []
    whole = subset_table(concat_long(list(chunks())), opts, notes)
    assert len(keep) == 4 and not keep & {"G0", "G1", "G2"}  # drawn from the dense readouts
    assert sorted(streamed["readout"].astype(str).unique()) == sorted(keep)
    pd.testing.assert_frame_equal(streamed.reset_index(drop=True).astype(str), whole.astype(str))
    assert "4 of 12 readouts kept" in notes[0] and "seed 7" in notes[0]


def test_names_kept_verbatim(tmp_path):
    weird = ['drug "A"', "drug `B`", "{drug C}", "dr\u0430g D"]  # quotes, backticks, braces, Cyrillic a
    df = pd.DataFrame({"context": "A375", "perturbation": weird, "perturbation_type": "compound",
                       "readout": "G1", "value": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "w.parquet"
    df.to_parquet(path)
    long, reader = read_long_table(path, "w")
    assert sorted(p.name for p in reader.perturbations.values()) == sorted(weird)
    assert len({p.perturbation_id for p in reader.perturbations.values()}) == 4


@pytest.mark.shared_data
def test_real_replogle(shared_data):
    path = shared_data / "perturbseq" / "replogle2022_k562_rpe1_crispri_top1000.parquet"
    long, reader = read_long_table(path, "replogle", max_rows=200_000)
    assert len(long) == 200_000 and reader.report.quarantined == 0
    assert set(long["perturbation_type"]) == {"CRISPRi"} and set(long["context"]) <= {"K562", "RPE1"}
    # rank 1..1000 of n_ranked 1000: scores span the full up end only
    assert long["value"].max() == 1.0 and long["value"].min() == pytest.approx(-1.0)
    assert all(s.n_readouts == 1000 for s in reader.signatures())


@pytest.mark.shared_data
def test_real_tahoe_first_batch(shared_data):
    path = shared_data / "chemical" / "tahoe100m_ranked_signatures.parquet"
    assert pq.ParquetFile(path).metadata.num_rows == 12_421_812
    reader = LongTableReader(path, "tahoe", batch_size=100_000, max_rows=200_000)
    chunks = list(reader.iter_long())
    assert len(chunks) == 2 and sum(map(len, chunks)) == 200_000
    long = pd.concat(chunks)
    assert set(long["perturbation_type"].astype(str)) == {"compound"}
    assert long["value"].between(-1, 1).all()
    assert all(str(c) in {"A498", "HCT15", "HEC1A", "LOVO", "MIAPACA2", "NCIH23", "PANC0327", "SNU1", "SNU423", "SW48"}
               for c in reader.contexts)


def test_dose_and_time_columns(tmp_path):
    df = pd.DataFrame({"context": "A375", "perturbation": ["vemurafenib"] * 4 + ["DMSO"],
                       "perturbation_type": ["compound"] * 4 + ["ctl_vehicle"],
                       "readout": ["G1", "G1", "G1", "G2", "G1"], "value": [1.0, 2.0, 3.0, 4.0, 0.0],
                       "dose": ["10 uM", "500 nM", "10 µM", "10uM", None], "time": ["24 h", "24 h", "6 h", "24 h", "24 h"]})
    path = tmp_path / "d.tsv"
    df.to_csv(path, sep="\t", index=False)
    long, reader = read_long_table(path, "d")
    assert set(reader.perturbations) == {"compound:name:vemurafenib@10uM", "compound:name:vemurafenib@0.5uM", "control:DMSO"}
    # time separates signatures; "10uM" and "10 uM" are one signature (G1 from the first row, G2 from the last)
    sigs = {s.signature_id: s.n_readouts for s in reader.signatures()}
    assert sigs == {"d:A375|vemurafenib@10uM|24h": 2, "d:A375|vemurafenib@0.5uM|24h": 1,
                    "d:A375|vemurafenib@10uM|6h": 1, "d:A375|DMSO|24h": 1}
    bad = tmp_path / "bad.csv"
    df.assign(dose=["ten", "1 uM", "1 uM", "1 uM", None]).to_csv(bad, index=False)
    _, r = read_long_table(bad, "b")
    assert r.report.quarantined == 1 and "unparseable dose" in r.quarantine[0].reason


def test_quarantine_output_and_hash(tmp_path):
    """Readers' quarantine records land in the store's per-dataset table with the raw payload verbatim."""
    from graph.io.common import sha256_file
    from graph.records import QuarantineRecord
    from graph.settings import Settings
    from graph.store.quarantine import read_quarantine, write_quarantine

    settings = Settings(home=tmp_path)
    recs = [QuarantineRecord("f", "k1", "why", {"x": 1.5, "name": 'a "b" {c}'}), QuarantineRecord("f", "k2", "other")]
    write_quarantine(settings, "ds", recs)
    back = read_quarantine(settings, "ds")
    assert list(back.columns) == ["source", "record_key", "reason", "raw"] and len(back) == 2
    assert back.set_index("record_key").loc["k1", "raw"] == '{"name": "a \\"b\\" {c}", "x": 1.5}'
    (tmp_path / "h.txt").write_bytes(b"abc")
    assert sha256_file(tmp_path / "h.txt") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_compound_names_join_by_alias_and_coverage_is_reported(tmp_path):
    df = pd.DataFrame({"context": "A375", "perturbation": ["Trametinib (GSK1120212)", "Vorinostat ", "mystery"],
                       "perturbation_type": "compound", "readout": "G1", "value": [1.0, 2.0, 3.0]})
    path = tmp_path / "c.csv"
    df.to_csv(path, index=False)
    ids = {"gsk1120212": "INCHIKEY-T", "vorinostat": "INCHIKEY-V"}
    _, reader = read_long_table(path, "c", compound_ids=ids)
    assert set(reader.perturbations) == {"compound:INCHIKEY-T", "compound:INCHIKEY-V", "compound:name:mystery"}
    assert "compound names matched to a compound record: 2 of 3" in reader.report.notes


def test_repeats_across_batches_are_caught(tmp_path):
    df = pd.DataFrame({"context": "A", "perturbation": "p", "perturbation_type": "CRISPRi",
                       "readout": ["G1", "G2", "G3", "G1", "G4", "G2"], "value": [1.0, 2.0, 3.0, 9.0, 4.0, 9.0]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    reader = LongTableReader(path, "r", batch_size=2)
    long = pd.concat(list(reader.iter_long()))
    assert long.set_index("readout")["value"].to_dict() == {"G1": 1.0, "G2": 2.0, "G3": 3.0, "G4": 4.0}
    assert reader.report.duplicates_resolved == 2 and reader.signatures()[0].n_readouts == 4


def test_gctx_and_long_table_find_the_same_compound_ids(tmp_path):
    """One compound lookup for every reader (graph/io/identifiers.compound_id_for): a salt word, an alias
    in parentheses, a trailing space, an acetate counter-ion and case give the same compound id through a
    GCTX column and a long-table row."""
    from graph.io.gctx import GctxToLong, write_gctx

    index = {"gsk1120212": "CPD_TRAM", "imatinib": "CPD_IMA", "vorinostat": "CPD_VOR", "pasireotide": "CPD_PAS",
             "BRD-K00000001": "CPD_BRD"}
    names = ["Trametinib (GSK1120212)", "Imatinib Mesylate", "Vorinostat ", "Pasireotide acetate", "VORINOSTAT",
             "unknown drug"]
    col = pd.DataFrame({"id": [f"s{i}" for i in range(len(names))], "cell_id": "A375", "pert_iname": names,
                        "pert_id": [f"BRD-X{i}" for i in range(len(names))], "pert_type": "trt_cp"})
    row = pd.DataFrame({"id": ["r0", "r1"], "pr_gene_symbol": ["TP53", "MYC"]})
    gctx = write_gctx(tmp_path / "names.gctx", np.ones((len(names), 2), np.float32), row, col)
    pd.DataFrame({"context": "A375", "perturbation": names, "perturbation_type": "compound", "readout": "TP53",
                  "value": 1.0}).to_csv(tmp_path / "names.csv", index=False)
    got = {}
    for reader in (GctxToLong(gctx, "g", compound_ids=index), LongTableReader(tmp_path / "names.csv", "t",
                                                                              compound_ids=index)):
        list(reader.iter_long())
        got[type(reader).__name__] = sorted(rec.compound_id for rec in reader.perturbations.values())
    # "Vorinostat " and "VORINOSTAT" are one compound; an unknown name keeps its name key.
    assert got["GctxToLong"] == got["LongTableReader"] == ["CPD_IMA", "CPD_PAS", "CPD_TRAM", "CPD_VOR",
                                                           "name:unknowndrug"]
    # A GCTX column's pert_id wins over its name (a LINCS pert_id is the compound's own id).
    col["pert_id"] = "BRD-K00000001"
    reader = GctxToLong(write_gctx(tmp_path / "ids.gctx", np.ones((len(names), 2), np.float32), row, col), "i",
                        compound_ids=index)
    list(reader.iter_long())
    assert {rec.compound_id for rec in reader.perturbations.values()} == {"CPD_BRD"}


def test_type_column_comes_from_the_ids_one_rule(tmp_path, monkeypatch):
    """The stored perturbation_type is graph/io/perturbations.type_in_id of the perturbation's id (the rule that
    reads what make_perturbation_id wrote), not a second spelling of it: the reader asks that function, and each
    row's type equals its Perturbation record's type."""
    import graph.io.perturbations as perturbations
    import graph.io.tables as tables

    path = tmp_path / "ranked.parquet"
    _ranked(tmp_path).to_parquet(path)
    asked: list[str] = []

    def spy(pid):
        asked.append(pid)
        return perturbations.type_in_id(pid)

    monkeypatch.setattr(tables, "type_in_id", spy, raising=False)
    long, reader = read_long_table(path, "r")
    assert set(asked) == {"CRISPRi:AARS", "compound:name:pyridoxine"}
    pairs = long[["perturbation", "perturbation_type"]].astype(str).drop_duplicates()
    assert {p: t for p, t in pairs.itertuples(index=False)} == {
        p: reader.perturbations[p].perturbation_type for p in pairs["perturbation"]} == {
        "CRISPRi:AARS": "CRISPRi", "compound:name:pyridoxine": "compound"}


def _plain_long() -> pd.DataFrame:
    return pd.DataFrame({"context": ["K562"] * 4, "perturbation": ["STAT1", "STAT1", "JAK2", "JAK2"],
                         "perturbation_type": "CRISPRi", "readout": ["TP53", "MYC"] * 2, "value": [0.5, -1.0, 2.0, 0.25]})


def _read_any(path):
    """The CLI's and the pipeline's route: layout from the header (readers.table_kind), then that reader."""
    from graph.io.common import concat_long
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader, table_kind

    reader = open_streaming_reader(path, table_kind(path, ReadOptions()), "d")
    got = concat_long(list(reader.iter_long()))
    cols = ["context", "perturbation", "readout", "value"]
    return got[cols].astype({c: str for c in cols[:3]}).sort_values(cols[:3]).reset_index(drop=True)


def test_real_world_table_spellings_read_like_the_plain_csv(tmp_path):
    """Column names in other capitalisation, gzip-compressed CSV / TSV, and a parquet file whose readout
    column pandas stored as the index read exactly like the plain CSV (before: missing-column errors, a
    .tsv.gz split on commas, KeyError 'readout')."""
    df = _plain_long()
    df.to_csv(tmp_path / "plain.csv", index=False)
    expected = _read_any(tmp_path / "plain.csv")
    assert len(expected) == 4
    df.rename(columns=str.capitalize).to_csv(tmp_path / "capital.csv", index=False)
    df.rename(columns={"perturbation_type": "Perturbation Type", "readout": "READOUT"}).to_csv(
        tmp_path / "spaced.csv", index=False)
    df.to_csv(tmp_path / "table.tsv.gz", index=False, sep="\t")
    df.to_csv(tmp_path / "table.csv.gz", index=False)
    df.set_index("readout").to_parquet(tmp_path / "indexed.parquet")
    for name in ("capital.csv", "spaced.csv", "table.tsv.gz", "table.csv.gz", "indexed.parquet"):
        pd.testing.assert_frame_equal(_read_any(tmp_path / name), expected, obj=name)
    (tmp_path / "fake.csv.gz").write_text(df.to_csv(index=False))
    with pytest.raises(InputFileError, match="fake.csv.gz: is named .gz but is not gzip"):
        _read_any(tmp_path / "fake.csv.gz")


def test_a_semicolon_separated_csv_is_refused_with_the_reason(tmp_path):
    """European spreadsheet exports write ';'-separated .csv files (decimal commas): one line saying so,
    not only a list of missing columns next to a header that is one long name."""
    _plain_long().to_csv(tmp_path / "excel.csv", index=False, sep=";", decimal=",")
    with pytest.raises(InputFileError, match=r"excel.csv: missing columns .*looks ';'-separated"):
        _read_any(tmp_path / "excel.csv")


def test_a_cell_line_column_is_the_context(tmp_path):
    """A table naming its context column cell_line / Cell Type (as h5ad obs do) was read as context-free:
    every row got CONSENSUS and the two cell lines' values of one perturbation were averaged (counted as
    'conflicting' duplicates). The h5ad reader's context names (common.CONTEXT_SYNONYMS) now apply to tables."""
    df = _plain_long().assign(context=["K562", "RPE1"] * 2, perturbation="STAT1", readout=["TP53", "TP53", "MYC", "MYC"])
    df.to_csv(tmp_path / "plain.csv", index=False)
    expected = _read_any(tmp_path / "plain.csv")
    assert len(expected) == 4
    df.rename(columns={"context": "cell_line"}).to_csv(tmp_path / "cell_line.csv", index=False)
    df.rename(columns={"context": "Cell Type"}).to_csv(tmp_path / "cell_type.csv", index=False)
    wide = df.pivot_table(index=["context", "perturbation", "perturbation_type"], columns="readout", values="value")
    wide.reset_index().rename(columns={"context": "cell_id"}).to_csv(tmp_path / "wide.csv", index=False)
    for name in ("cell_line.csv", "cell_type.csv", "wide.csv"):
        pd.testing.assert_frame_equal(_read_any(tmp_path / name), expected, obj=name)


def test_comment_lines_above_the_header_are_skipped_by_every_reader(tmp_path):
    """'# exported by ...' above the header: the layout rule (common.table_header) skipped it but the
    readers took it for the header ('missing columns', 'a wide table needs a perturbation column')."""
    df = _plain_long()
    df.to_csv(tmp_path / "plain.csv", index=False)
    expected = _read_any(tmp_path / "plain.csv")
    (tmp_path / "noted.tsv").write_text("# exported by my pipeline v1.2\n# 2026-12-01\n" + df.to_csv(index=False, sep="\t"))
    pd.testing.assert_frame_equal(_read_any(tmp_path / "noted.tsv"), expected)
    wide = df.pivot_table(index=["context", "perturbation", "perturbation_type"], columns="readout", values="value")
    wide.reset_index().to_csv(tmp_path / "wide_plain.csv", index=False)
    (tmp_path / "wide_noted.csv").write_text("# note\n" + wide.reset_index().to_csv(index=False))
    pd.testing.assert_frame_equal(_read_any(tmp_path / "wide_noted.csv"), _read_any(tmp_path / "wide_plain.csv"))
    (tmp_path / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputFileError, match="broken.csv.gz"):
        _read_any(tmp_path / "broken.csv.gz")


def test_dose_and_time_unit_columns(tmp_path):
    """sci-Plex / CMap-style tables give the dose as a number beside its unit (dose 10, dose_unit nM). The
    unit column was ignored: 'dose 10 has no unit' quarantined every row and the file was refused."""
    df = _plain_long().assign(perturbation_type="compound", perturbation="vorinostat", readout=["TP53", "MYC"] * 2)
    df.assign(dose=["10 nM", "10 nM", "10 uM", "10 uM"], time="24 h").to_csv(tmp_path / "joined.csv", index=False)
    df.assign(dose=["10", "10", "10", "10"], dose_unit=["nM", "nM", "uM", "uM"], time="24", time_unit="h").to_csv(
        tmp_path / "units.csv", index=False)
    expected = _read_any(tmp_path / "joined.csv")
    assert set(expected["perturbation"]) == {"compound:name:vorinostat@0.01uM", "compound:name:vorinostat@10uM"}
    pd.testing.assert_frame_equal(_read_any(tmp_path / "units.csv"), expected)
    wide = pd.DataFrame({"perturbation": ["vorinostat"] * 2, "perturbation_type": "compound", "dose": ["10", "10"],
                         "dose_unit": ["nM", "uM"], "TP53": [1.0, 2.0]})
    wide.to_csv(tmp_path / "wide.csv", index=False)
    assert set(_read_any(tmp_path / "wide.csv")["perturbation"]) == {"compound:name:vorinostat@0.01uM",
                                                                    "compound:name:vorinostat@10uM"}


def test_a_bare_number_time_is_kept_apart_as_in_an_h5ad(tmp_path):
    """A table's time without a unit (time = 24, no time_unit column) quarantined every such row ('has no known
    unit'), so a whole sci-Plex-style table was refused, while an h5ad keeps such times apart as written. One
    rule now (identifiers.time_point): each bare time is its own signature ('|24'), no time recorded, a note
    names the time_unit column; unreadable text ('soon') is still quarantined with its reason."""
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader

    df = pd.concat([_plain_long().assign(time=t) for t in ("24", "72", "soon")], ignore_index=True)
    df.to_csv(tmp_path / "bare.csv", index=False)
    reader = open_streaming_reader(tmp_path / "bare.csv", "long_table", "d", ReadOptions())
    long = pd.concat(list(reader.iter_long()))
    assert reader.report.quarantined == 4 and {q.reason for q in reader.quarantine} == {
        "unparseable time 'soon'"}
    assert len(long) == 8 and sorted(set(long["signature_id"].astype(str))) == [
        "d:K562|JAK2|24", "d:K562|JAK2|72", "d:K562|STAT1|24", "d:K562|STAT1|72"]
    note = next(n for n in reader.report.notes if "without a unit" in n)
    assert "2 time value(s) without a unit ('24', '72') kept apart as written" in note and "'time_unit'" in note
    assert not reader.perturbations["CRISPRi:STAT1"].time_value  # the unit is not guessed


def test_the_perturbation_type_option_wins_over_the_files_types_on_every_reader(tmp_path):
    """`--perturbation-type` was ignored when a file has its own types (a note said 'not used'), so an
    scPerturb screen typed 'CRISPR' (ambiguous: quarantined) could only be read by rewriting the file. The
    option now wins for every non-control row of a long or wide table, an h5ad and a GCTX
    (options.TypeOverride, one rule); controls stay controls; a file of several treatment types is refused."""
    import anndata as ad

    from graph.io.gctx import GctxToLong, write_gctx
    from graph.io.h5ad import pseudobulk_h5ad
    from graph.io.options import ReadOptions
    from graph.io.wide import read_wide_table

    long = tmp_path / "screen.csv"
    pd.DataFrame({"context": "K562", "perturbation": ["STAT1", "STAT1", "non-targeting"],
                  "perturbation_type": ["CRISPR", "CRISPR", "control"], "readout": ["G1", "G2", "G1"],
                  "value": [1.0, 2.0, 0.5]}).to_csv(long, index=False)
    table, reader = read_long_table(long, "s", perturbation_type="CRISPRi")
    assert set(table["perturbation"].astype(str)) == {"CRISPRi:STAT1", "control:NON_TARGETING"}
    assert any("'CRISPRi' used instead of the file's type 'CRISPR'" in n for n in reader.report.notes)
    assert set(read_long_table(long, "s")[0]["perturbation"].astype(str)) == {"control:NON_TARGETING"}  # CRISPR: ambiguous
    wide = tmp_path / "wide.csv"
    pd.DataFrame({"perturbation": ["STAT1"], "perturbation_type": ["CRISPR"], "G1": [1.0]}).to_csv(wide, index=False)
    assert set(read_wide_table(wide, "w", perturbation_type="CRISPRa")[0]["perturbation"].astype(str)) == {"CRISPRa:STAT1"}
    counts = np.random.default_rng(5).poisson(5, size=(40, 3)).astype(np.int32)
    obs = pd.DataFrame({"perturbation": ["control"] * 20 + ["STAT1"] * 20, "perturbation_type": "CRISPR",
                        "cell_line": "K562"}, index=[f"c{i}" for i in range(40)])
    ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=["G1", "G2", "G3"])).write_h5ad(tmp_path / "cells.h5ad")
    r = pseudobulk_h5ad(tmp_path / "cells.h5ad", "c", options=ReadOptions(perturbation_type="CRISPRi"), min_cells=5)
    assert set(r.long["perturbation"].astype(str)) == {"CRISPRi:STAT1"}
    gctx = write_gctx(tmp_path / "x.gctx", np.ones((2, 2), np.float32),
                      pd.DataFrame({"id": ["1", "2"], "pr_gene_symbol": ["G1", "G2"]}),
                      pd.DataFrame({"id": ["a", "b"], "pert_type": ["trt_xpr", "ctl_vector"], "pert_iname": ["STAT1", "EMPTY"],
                                    "cell_id": ["A375", "A375"]}))
    assert set(GctxToLong(gctx, "g", perturbation_type="CRISPRi").perturbations) == {"CRISPRi:STAT1", "control:EMPTY"}
    mixed = tmp_path / "mixed.csv"
    pd.DataFrame({"context": "K562", "perturbation": ["STAT1", "vorinostat"], "perturbation_type": ["CRISPRi", "compound"],
                  "readout": "G1", "value": [1.0, 2.0]}).to_csv(mixed, index=False)
    with pytest.raises(InputFileError, match=r"\['CRISPRi', 'compound'\] are several treatment types"):
        read_long_table(mixed, "m", perturbation_type="compound")
    assert len(read_long_table(mixed, "m")[0]) == 2  # without the option, the file's own types


def test_options_a_file_kind_does_not_use_are_reported_not_silently_ignored(tmp_path):
    """The CLI flags are given once for every file of a run; a file kind an option does not apply to (bulk:
    h5ad only; signature_info: GCTX only) reads as before and says in its report that the option was not used."""
    import anndata as ad

    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader, read_h5ad

    table = tmp_path / "t.csv"
    pd.DataFrame({"context": ["A375"], "perturbation": ["x"], "perturbation_type": ["compound"], "readout": ["G1"],
                  "value": [1.0]}).to_csv(table, index=False)
    reader = open_streaming_reader(table, "long_table", "t", ReadOptions(bulk=True, signature_info="info.txt"))
    assert len(pd.concat(list(reader.iter_long()))) == 1
    note = next(n for n in reader.report.notes if n.startswith("option bulk not used"))
    assert note == ("option bulk not used: it applies to h5ad files, not this long_table; option signature_info not "
                    "used: it applies to gctx and gct files, not this long_table")
    assert not any("not used" in n for n in open_streaming_reader(table, "long_table", "t").report.notes)
    obs = pd.DataFrame({"perturbation": ["x"], "perturbation_type": ["compound"], "cell_line": ["A375"]}, index=["s"])
    ad.AnnData(X=np.ones((1, 1), np.float32), obs=obs, var=pd.DataFrame(index=["G1"])).write_h5ad(tmp_path / "b.h5ad")
    result = read_h5ad(tmp_path / "b.h5ad", "b", ReadOptions(bulk=True, signature_info="info.txt"))
    assert "option signature_info not used: it applies to gctx and gct files, not this h5ad" in result.report.notes

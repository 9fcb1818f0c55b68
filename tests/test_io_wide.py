"""Wide tables (graph/io/wide.py), context-free tables and readout key columns: one reader contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.io.common import InputFileError, table_layout
from graph.io.identifiers import CONSENSUS_CONTEXT
from graph.io.tables import read_long_table
from graph.io.wide import read_wide_table


def _long() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(c, p, "compound", g, float(rng.normal())) for c in ("A375", "MCF7") for p in ("drugA", "drugB", "drugC")
            for g in ("TP53", "MYC", "EGFR", "KRAS")]
    return pd.DataFrame(rows, columns=["context", "perturbation", "perturbation_type", "readout", "value"])


def _wide(long: pd.DataFrame) -> pd.DataFrame:
    wide = long.pivot(index=["context", "perturbation", "perturbation_type"], columns="readout", values="value")
    return wide.reset_index().rename_axis(columns=None)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    out = df.astype({c: str for c in df.columns if c != "value"})
    return out.sort_values(list(out.columns[:-1])).reset_index(drop=True)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "parquet"])
def test_wide_table_gives_the_long_tables_rows(tmp_path, suffix):
    long = _long()
    long.to_csv(tmp_path / "long.csv", index=False)
    path = tmp_path / f"wide.{suffix}"
    wide = _wide(long)
    if suffix == "parquet":
        wide.to_parquet(path, index=False)
    else:
        wide.to_csv(path, index=False, sep="\t" if suffix == "tsv" else ",")
    expected, _ = read_long_table(tmp_path / "long.csv", "d")
    # batch_size 8 cells = 2 matrix rows per block: streamed in 3 blocks.
    got, reader = read_wide_table(path, "d", batch_size=8)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(expected))
    assert reader.report.read == reader.report.accepted == len(long)
    assert {s.signature_id for s in reader.signatures()} == set(expected["signature_id"].astype(str))


def test_context_free_rows_take_the_placeholder_or_the_given_context(tmp_path):
    pd.DataFrame({"perturbation": ["drugA", "drugB"], "TP53": [1.0, 2.0], "MYC": [3.0, 4.0]}).to_csv(
        tmp_path / "consensus.csv", index=False)
    got, reader = read_wide_table(tmp_path / "consensus.csv", "d", perturbation_type="compound")
    assert set(got["context"]) == {CONSENSUS_CONTEXT} and len(got) == 4
    assert any("no context column" in n for n in reader.report.notes)
    got, _ = read_wide_table(tmp_path / "consensus.csv", "d", perturbation_type="compound", context="HEC-1-A")
    assert set(got["context"]) == {"HEC1A"}
    # The same rule for a long table without a context column.
    pd.DataFrame({"perturbation": ["drugA"] * 2, "perturbation_type": "compound", "readout": ["TP53", "MYC"],
                  "value": [1.0, 2.0]}).to_csv(tmp_path / "long.csv", index=False)
    got, _ = read_long_table(tmp_path / "long.csv", "d")
    assert set(got["context"]) == {CONSENSUS_CONTEXT}


def test_hostile_wide_tables(tmp_path):
    # A repeated gene column: identical values collapse, different values are quarantined (explicit policy).
    (tmp_path / "dup.csv").write_text("perturbation,TP53,MYC,TP53,MYC\ndrugA,1,2,1,5\n")
    got, reader = read_wide_table(tmp_path / "dup.csv", "d", perturbation_type="compound", duplicates="quarantine")
    assert got["readout"].astype(str).tolist() == ["TP53"]
    assert reader.report.quarantined == 2 and reader.report.duplicates_resolved == 1
    assert {q.reason.split(":")[0] for q in reader.quarantine} == {"conflicting duplicates"}
    got, _ = read_wide_table(tmp_path / "dup.csv", "d", perturbation_type="compound")  # the default: mean
    assert got.set_index(got["readout"].astype(str))["value"].to_dict() == {"TP53": 1.0, "MYC": 3.5}
    # Non-numeric and missing cells: quarantined with the reason, the cell shown in the record.
    (tmp_path / "text.csv").write_text("perturbation,TP53,MYC\ndrugA,high,2\ndrugB,,3\n")
    got, reader = read_wide_table(tmp_path / "text.csv", "d", perturbation_type="compound")
    assert len(got) == 2 and reader.report.quarantined == 2
    assert sorted(str(q.raw["value"]) for q in reader.quarantine) == ["high", "nan"]
    assert reader.report.read == reader.report.accepted + reader.report.quarantined
    # No readout column, no perturbation column, a ragged row: one error naming the file.
    (tmp_path / "empty.csv").write_text("context,perturbation\nA375,drugA\n")
    with pytest.raises(InputFileError, match="empty.csv: has no readout columns"):
        read_wide_table(tmp_path / "empty.csv", "d")
    (tmp_path / "nopert.csv").write_text("name,TP53\ndrugA,1\n")
    with pytest.raises(InputFileError, match="nopert.csv: a wide table needs a 'perturbation' column"):
        read_wide_table(tmp_path / "nopert.csv", "d")
    (tmp_path / "ragged.csv").write_text("perturbation,TP53\ndrugA,1,2,3\n")
    with pytest.raises(InputFileError, match="ragged.csv"):
        read_wide_table(tmp_path / "ragged.csv", "d", perturbation_type="compound")


def test_layout_rule_and_input_specs(tmp_path):
    from pipelines.inputs import spec_for

    assert table_layout(["perturbation", "TP53", "MYC"]) == "wide_table"
    assert table_layout(["context", "perturbation", "readout", "value"]) == "long_table"
    assert table_layout(["perturbation", "ensembl_id", "value"], "ensembl_id") == "long_table"
    assert table_layout(["context", "perturbation"]) is None
    pd.DataFrame({"perturbation": ["drugA"], "TP53": [1.0]}).to_csv(tmp_path / "w.csv", index=False)
    spec = spec_for(tmp_path / "w.csv")
    assert spec.kind == "wide_table" and spec.options == ()
    spec = spec_for(f"{tmp_path / 'w.csv'}?context=A375")
    assert spec.path == str(tmp_path / "w.csv") and spec.option_dict == {"context": "A375"}
    with pytest.raises(InputFileError, match="unknown or empty input option"):
        spec_for(f"{tmp_path / 'w.csv'}?colour=red")
    with pytest.raises(InputFileError, match=r"w.csv: duplicates must be one of quarantine, mean, first"):
        spec_for(f"{tmp_path / 'w.csv'}?duplicates=sum")


def test_readout_key_column_mapped_through_the_gene_table(tmp_path):
    from graph.io.genes import GeneResolver

    pd.DataFrame({"entrez_id": [7157, 4609], "symbol": ["TP53", "MYC"], "name": ["", ""], "type": ["", ""],
                  "ensembl_id": ["ENSG00000141510", "ENSG00000136997"], "aliases": ["", ""]}).to_csv(
        tmp_path / "genes.tsv", sep="\t", index=False)
    resolver = GeneResolver.from_table(tmp_path / "genes.tsv")
    pd.DataFrame({"context": "A375", "perturbation": "drugA", "perturbation_type": "compound",
                  "readout": ["x", "y", "z"], "ensembl_id": ["ENSG00000141510", "ENSG00000136997", "ENSG0000NONE"],
                  "value": [1.0, 2.0, 3.0]}).to_parquet(tmp_path / "ens.parquet", index=False)
    got, _ = read_long_table(tmp_path / "ens.parquet", "d", readout_key="ensembl_id", resolver=resolver)
    assert sorted(got["readout"].astype(str)) == ["ENSG0000NONE", "MYC", "TP53"]  # unresolved: source id kept
    with pytest.raises(InputFileError, match="no readout key column 'entrez'"):
        read_long_table(tmp_path / "ens.parquet", "d", readout_key="entrez")
    # A wide table's headers are its readout ids: the same resolver maps them.
    pd.DataFrame({"perturbation": ["drugA"], "ENSG00000141510": [1.0]}).to_csv(tmp_path / "w.csv", index=False)
    got, _ = read_wide_table(tmp_path / "w.csv", "d", perturbation_type="compound", resolver=resolver)
    assert got["readout"].astype(str).tolist() == ["TP53"]


def test_inbox_accepts_a_wide_table(tmp_path):
    from graph.settings import Settings
    from pipelines.inputs import scan_inbox

    settings = Settings(home=tmp_path / "home")
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"perturbation": ["drugA"], "TP53": [1.0]}).to_csv(settings.inbox_dir / "consensus.csv", index=False)
    specs, rejected = scan_inbox(settings)
    assert [s.kind for s in specs] == ["wide_table"] and not rejected


def test_demo_input_options_reach_the_ingest_reader(tmp_path):
    """`demo --inputs FILE?context=NAME`: read_experiment stores the wide table under that context."""
    from graph.settings import Settings
    from graph.store.measurements import load_training_table
    from pipelines.ingest import read_experiment
    from pipelines.inputs import resolve_inputs

    pd.DataFrame({"perturbation": ["drugA", "drugB"], "TP53": [1.0, 2.0], "MYC": [3.0, 4.0]}).to_parquet(
        tmp_path / "consensus.parquet", index=False)
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(InputFileError, match="consensus.parquet: has no perturbation_type column"):
        (spec,) = resolve_inputs(settings, f"{tmp_path / 'consensus.parquet'}?context=MCF 7")
        read_experiment(spec, settings, progress=lambda *_: None)
    (spec,) = resolve_inputs(settings, f"{tmp_path / 'consensus.parquet'}?context=MCF 7&perturbation_type=compound")
    bundle = read_experiment(spec, settings, progress=lambda *_: None)
    table = load_training_table(settings, [bundle.dataset.dataset_id])
    assert set(table["context"].astype(str)) == {"MCF7"} and len(table) == 4
    assert [c.context_id for c in bundle.contexts] == ["MCF7"]


def test_wide_spellings_and_a_long_table_with_other_column_names(tmp_path):
    """A gzip wide CSV, capitalised id columns and a parquet with pandas' unnamed index read as the plain
    wide CSV; a long table whose columns are named gene / logfc (read as wide, it stored one readout
    'logfc' and quarantined the gene names) is refused with one line naming the text column."""
    from graph.io.common import concat_long
    from graph.io.options import ReadOptions
    from graph.io.readers import open_streaming_reader, table_kind

    def read(path):
        reader = open_streaming_reader(path, table_kind(path, ReadOptions()), "d")
        got = concat_long(list(reader.iter_long()))
        cols = ["perturbation", "readout", "value"]
        return got[cols].astype({"perturbation": str, "readout": str}).sort_values(cols[:2]).reset_index(drop=True)

    wide = pd.DataFrame({"perturbation": ["STAT1", "JAK2", "KRAS"], "perturbation_type": "CRISPRi",
                         "TP53": [1.0, 2.0, 3.0], "MYC": [-1.0, 0.5, 0.0]})
    wide.to_csv(tmp_path / "plain.csv", index=False)
    expected = read(tmp_path / "plain.csv")
    assert len(expected) == 6
    wide.to_csv(tmp_path / "wide.csv.gz", index=False)
    wide.rename(columns={"perturbation": "Perturbation", "perturbation_type": "Perturbation_Type"}).to_csv(
        tmp_path / "capital.csv", index=False)
    wide.iloc[[0, 1, 2]].set_axis([5, 7, 9]).to_parquet(tmp_path / "indexed.parquet")  # __index_level_0__
    for name in ("wide.csv.gz", "capital.csv", "indexed.parquet"):
        pd.testing.assert_frame_equal(read(tmp_path / name), expected, obj=name)
    long = pd.DataFrame({"perturbation": ["STAT1"] * 3 + ["JAK2"] * 3, "perturbation_type": "CRISPRi",
                         "gene": ["TP53", "MYC", "EGFR"] * 2, "logfc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    long.to_csv(tmp_path / "gene_logfc.csv", index=False)
    with pytest.raises(InputFileError, match=r"gene_logfc.csv: .*\['gene'\] hold text"):
        read(tmp_path / "gene_logfc.csv")

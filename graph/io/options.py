"""Reading options that apply to any measurement file, the same from every entry point.

One record (`ReadOptions`), one text form and one parser: `perturbgraph train|evaluate|demo` options
(`--perturbation-type`, `--context`, `--readout-key`, `--readouts`, `--readout-seed`, `--duplicates`,
`--unknown-genes`), a file's own options in `--inputs FILE?readouts=150&readout_seed=0`,
the Dagster `input_manifest` config and an inbox file's `<name>.options` sidecar all go through
`ReadOptions.parse`, so an option means the same thing everywhere (docs/inputs.md).

Two rules live here and nowhere else:
- a table without a `perturbation_type` column needs the `perturbation_type` option (never a guess);
  without it the file is refused with one line naming the file and the option (`missing_type_error`);
- the readout subset: N random readouts (`random_readouts`: numpy default_rng(seed) over the sorted
  readouts measured in every accepted signature, or over all readouts when fewer than N are), or the
  names in a file (`read_readout_names`). It is chosen on the reader's accepted table (one row per
  signature and readout), so a streamed ingest (two passes, `readout_counts` then `keep_readouts`) and a
  whole-table load (`subset_table`) keep the same readouts; the dropped values are reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from graph.io.common import InputFileError, clean_text
from graph.io.contexts import UNKNOWN_CONTEXT
from graph.io.identifiers import CONSENSUS_CONTEXT
from graph.io.perturbations import normalise_perturbation_type
from graph.io.validation import DEFAULT_DUPLICATES, DUPLICATE_POLICIES, UNKNOWN_GENE_POLICIES


@dataclass(frozen=True)
class ReadOptions:
    """How to read a measurement file. Every field is optional; see the module docstring."""

    perturbation_type: str | None = None  # type of every row of a table without a perturbation_type column
    context: str | None = None  # context of every row of a table without a context column
    readout_key: str | None = None  # the column (h5ad var column, GCTX row field) of readout ids, mapped to symbols
    readouts: int | tuple[str, ...] | None = None  # N random readouts, or these names (from a list file)
    readout_seed: int = 0
    duplicates: str = DEFAULT_DUPLICATES  # conflicting copies of one key: mean (default) | quarantine | first
    unknown_genes: str = "keep"  # readouts / genetic targets the gene table does not resolve: keep | quarantine
    readouts_from: str = ""  # the list file the names came from (for messages and the text form)
    bulk: bool = False  # an h5ad of per-signature values (one obs row per signature), read as is, not pseudobulked
    signature_info: str | None = None  # a GCTX's signature metadata table (CMap sig_info / siginfo_beta), by sig_id

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> ReadOptions:
        """From text values (CLI options, FILE?k=v, Dagster config, sidecar); None / '' = not given.
        A bad value is a ValueError with one line naming the option (callers add the file)."""
        names = {f.name for f in fields(cls)} - {"readouts_from"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown read option(s) {unknown}; accepted: {', '.join(OPTION_NAMES)}")
        given = {k: str(v).strip() for k, v in values.items() if v is not None and str(v).strip() != ""}
        out: dict[str, object] = {}
        if "perturbation_type" in given:
            from graph.io.perturbations import normalise_perturbation_type

            try:
                out["perturbation_type"] = normalise_perturbation_type(given["perturbation_type"])
            except ValueError as exc:
                raise ValueError(f"perturbation_type: {exc}") from None
        for key in ("context", "readout_key", "signature_info"):
            if key in given:
                out[key] = given[key]
        for key, allowed in (("duplicates", DUPLICATE_POLICIES), ("unknown_genes", UNKNOWN_GENE_POLICIES)):
            if key in given:
                if given[key] not in allowed:
                    raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {given[key]!r}")
                out[key] = given[key]
        if "bulk" in given:
            flag = given["bulk"].lower()
            if flag not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(f"bulk must be true or false, got {given['bulk']!r}")
            out["bulk"] = flag in {"true", "1", "yes"}
        if "readout_seed" in given:
            if not given["readout_seed"].lstrip("-").isdigit():
                raise ValueError(f"readout_seed must be an integer, got {given['readout_seed']!r}")
            out["readout_seed"] = int(given["readout_seed"])
        if "readouts" in given:
            text = given["readouts"]
            if text.isdigit():
                if int(text) < 1:
                    raise ValueError("readouts needs N >= 1 (or a file of names)")
                out["readouts"] = int(text)
            else:
                out["readouts"] = tuple(read_readout_names(text))
                out["readouts_from"] = text
        return cls(**out)

    def overridden(self, values: Mapping[str, object]) -> ReadOptions:
        """These options with the given text values replacing theirs (a file's own options win)."""
        parsed = ReadOptions.parse(values)
        given = {k for k, v in values.items() if v is not None and str(v).strip() != ""}
        if "readouts" in given:
            given.add("readouts_from")
        return replace(self, **{f.name: getattr(parsed, f.name) for f in fields(self) if f.name in given})

    def as_text(self) -> dict[str, str]:
        """The options that differ from the defaults, as text values parse() reads back."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "readouts_from" or value == f.default:
                continue
            out[f.name] = (self.readouts_from if isinstance(value, tuple) else
                           str(value).lower() if isinstance(value, bool) else str(value))
        return out

    def describe_subset(self) -> str:
        if isinstance(self.readouts, int):
            return f"{self.readouts} random readouts of those in every signature, seed {self.readout_seed}"
        return f"{len(self.readouts or ())} readouts listed in {self.readouts_from or 'the readout list'}"


OPTION_NAMES = tuple(f.name for f in fields(ReadOptions) if f.name != "readouts_from")
# Options whose value names a file to read (readouts: a number, or a list file). A dropped file's sidecar may not
# give them: the inbox would read a path anywhere on the machine (pipelines.inputs.inbox_file_options).
PATH_OPTIONS = ("readouts", "signature_info")
# Help texts of the CLI options (train, evaluate, demo: --perturbation-type, --readouts, ...).
OPTION_HELP = {
    "perturbation_type": "type of every row that is not a control (compound, CRISPRi, CRISPRko, CRISPRa, shRNA, "
                         "ORF, ...): needed for a table without a perturbation_type column, and it replaces a file's "
                         "own types (e.g. scPerturb's ambiguous 'CRISPR')",
    "context": "context of every row of a table without a context column (default: CONSENSUS, context-free)",
    "readout_key": "column holding the readouts (e.g. ensembl_id, entrez_id; an h5ad's var column, a GCTX's row "
                   "field), mapped to gene symbols through the gene table",
    "readouts": "N: N random readouts (of those in every signature; --readout-seed), or a file of names",
    "readout_seed": "seed of the random readout subset",
    "duplicates": "rows repeating a (signature, readout) or, for files, a (context, perturbation, readout) with "
                  "different values: mean (averaged, counted in the report) | quarantine | first",
    "unknown_genes": "readouts and genetic perturbation targets the gene table does not resolve: keep (counted in "
                     "the report) | quarantine (needs a gene table)",
    "signature_info": "a GCTX file's signature metadata table (CMap sig_info.txt 2017 / siginfo_beta.txt 2020, "
                      "TSV keyed by sig_id) when the GCTX holds only the signature ids",
    "bulk": "read an h5ad as per-signature values (one obs row per signature: log fold changes, z-scores, "
            "pseudobulk profiles) instead of pseudobulking single-cell counts",
}
TYPE_OPTION_HINT = ("give every row's type with the perturbation_type option (--perturbation-type compound|CRISPRi|"
                    "shRNA|..., or FILE?perturbation_type=compound)")


CONTEXT_OPTION_HINT = ("name the real cell line with the context option (--context K562, --input-context on evaluate, "
                       "FILE?context=K562, context=K562 in an inbox .options file)")


def no_context_note(context: str, *, cells: bool, given: bool, unit: str | None = None) -> str:
    """The report line of a file without a context column, one text for the readers. The two placeholders
    differ on purpose: single cells (h5ad, pseudobulk or bulk) and GCTX signatures come from a real cell line
    the file does not record, so they get contexts.UNKNOWN_CONTEXT ('unknown', ContextRecord kind 'unknown');
    a table's rows are taken for context-free consensus signatures (summarised over cell lines),
    identifiers.CONSENSUS_CONTEXT. Neither is a cell line, and neither is ever merged with one; both name the
    option that gives the line. `unit` names what gets the context (default: cell or row)."""
    unit = unit or ("cell" if cells else "row")
    if given:
        return f"no context column: every {unit} gets context {context!r} (the context option)"
    meaning = (f"{unit}s of a cell line the file does not record, not a context-free consensus; two such files "
               "share this one context" if cells else
               "context-free consensus signatures (e.g. summarised over cell lines), not one cell line")
    return f"no context column: every {unit} gets the placeholder context {context!r} ({meaning}); {CONTEXT_OPTION_HINT}"


def file_context(option: str | None, *, column: str | None, cells: bool,
                 unit: str | None = None) -> tuple[str | None, str]:
    """The one rule of the context option, for every reader: (the context every row gets, as given or the
    placeholder, or None when the file has its own context column `column`; the report line). The option
    fills a missing column only; a file's own column wins and the option is reported as not used (never
    silently ignored)."""
    if column:
        return None, (f"context {option!r} not used: the file has a context column ({column!r})" if option else "")
    context = option or (UNKNOWN_CONTEXT if cells else CONSENSUS_CONTEXT)
    return context, no_context_note(context, cells=cells, given=bool(option), unit=unit)


def missing_type_error(path: str | Path) -> InputFileError:
    """The one rule for a measurement table without a perturbation_type column and no option."""
    return InputFileError(path, f"has no perturbation_type column; {TYPE_OPTION_HINT}")


class TypeOverride:
    """The one precedence rule of the perturbation_type option over a file's own types (a table's
    perturbation_type column, an h5ad's obs type column, a GCTX's pert_type): the option wins for every row
    the file does not type as a control. Why the option and not the file: it is what the user asked for
    this file, the file's types stay in it unchanged, and the case it serves is a file whose column cannot
    be used as it is (scPerturb's 'CRISPR', written for knock-out, interference and activation alike, is
    quarantined as ambiguous; `--perturbation-type CRISPRi` reads such a screen without rewriting it).
    Control rows (control, ctl_vehicle, ...) stay controls: a vehicle is never made a treatment. A file
    whose rows hold two or more treatment types is refused by `check`: one option would give them one type.
    Without the option the file's type is normalised as it is (a bad one: ValueError, quarantined)."""

    def __init__(self, option: str | None, path: str | Path):
        self.option, self.path = option, path
        self.file_types: set[str] = set()  # the file's non-control types the option replaced (as normalised)

    def type_of(self, file_type: object) -> str:
        """The canonical type of a row the file types `file_type` (graph/io/perturbations.PERTURBATION_TYPES)."""
        if self.option is None:
            return normalise_perturbation_type(file_type)
        try:
            canonical = normalise_perturbation_type(file_type)
        except ValueError:
            canonical = clean_text(file_type)  # unknown or ambiguous ('CRISPR'), or blank: the option gives it
        if canonical == "control":
            return "control"
        if canonical:
            self.file_types.add(canonical)
        return self.option

    def check(self) -> None:
        """Refuse (InputFileError) when the option replaced two or more of the file's treatment types."""
        if len(self.file_types) > 1:
            raise InputFileError(self.path, f"its perturbation types {sorted(self.file_types)} are several treatment "
                                            f"types: the perturbation_type option {self.option!r} would give them one; "
                                            "read it without the option (its own types are used)")

    def note(self) -> str:
        """The report line when the option replaced a type the file gives ('' when nothing was replaced)."""
        replaced = sorted(self.file_types - {self.option})
        return (f"perturbation_type option {self.option!r} used instead of the file's type {', '.join(map(repr, replaced))} "
                "(control rows stay controls)" if replaced else "")


# ------------------------------------------------------------------------------------- readout subset
def random_readouts(pool: Iterable, n: int, seed: int = 0) -> list[str]:
    """n readouts drawn without replacement from sorted(pool) with numpy's default_rng(seed): the rule
    behind docs/results.md's "150 random dense readouts" (chosen without looking at values)."""
    pool = sorted(map(str, pool))
    return list(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False))


def read_readout_names(path: str | Path) -> list[str]:
    """A readout list file: one name per line (or the first column of a CSV/TSV); '#' lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "readout list does not exist" if not path.exists() else "readout list is not a file")
    names = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        first = line.split("\t")[0].split(",")[0].strip()
        if first and not first.startswith("#"):
            names.append(first)
    if not names:
        raise InputFileError(path, "readout list has no names")
    return list(dict.fromkeys(names))


def readout_counts(chunks: Iterable[pd.DataFrame]) -> tuple[Counter, int]:
    """(signatures measuring each readout, number of signatures) over a reader's accepted chunks (one
    row per signature and readout: the readers collapse repeats)."""
    counts: Counter = Counter()
    signatures: set = set()
    for chunk in chunks:
        counts.update(chunk["readout"].astype(str).value_counts().to_dict())
        signatures.update(chunk["signature_id"].astype(str).unique())
    return counts, len(signatures)


def choose_readouts(options: ReadOptions, counts: Mapping[str, int], n_signatures: int) -> frozenset[str] | None:
    """The readouts to keep (None: no subset asked)."""
    if options.readouts is None:
        return None
    if isinstance(options.readouts, int):
        dense = [r for r, n in counts.items() if n == n_signatures and n > 0]
        pool = dense if len(dense) >= options.readouts else [r for r, n in counts.items() if n > 0]
        return frozenset(random_readouts(pool, options.readouts, options.readout_seed))
    return frozenset(options.readouts)


def keep_readouts(chunk: pd.DataFrame, keep: frozenset[str] | None) -> pd.DataFrame:
    if keep is None:
        return chunk
    return chunk[chunk["readout"].astype(str).isin(keep).to_numpy()]


def subset_note(options: ReadOptions, keep: frozenset[str], n_readouts: int, dropped: int) -> str:
    """The report line of a readout subset (the same text from every entry point)."""
    return (f"readout subset ({options.describe_subset()}): {len(keep):,} of {n_readouts:,} readouts kept, "
            f"{dropped:,} accepted values outside it not used")


def subset_table(frame: pd.DataFrame, options: ReadOptions, notes: list[str] | None = None) -> pd.DataFrame:
    """A whole accepted table (signature_id, readout, ...) reduced to the readout subset; the note is
    appended to `notes`. An empty result is a ValueError."""
    counts, n_sig = readout_counts([frame])
    keep = choose_readouts(options, counts, n_sig)
    if keep is None:
        return frame
    out = keep_readouts(frame, keep).reset_index(drop=True)
    if notes is not None:
        notes.append(subset_note(options, keep, len(counts), len(frame) - len(out)))
    if len(frame) and not len(out):
        raise ValueError(f"none of the {len(keep)} requested readouts is in the data (e.g. {sorted(keep)[:3]})")
    return out

"""Which input files a run reads: the simulated default dataset, ../shared/data, explicit paths, the inbox.

An `InputSpec` names a file, what kind of file it is (so the right reader runs) and the dataset id
its facts are recorded under. Kinds are detected from the extension and, for tables, the header.

The inbox is a drop folder, so each file in it is checked on its own (`scan_inbox`): a symbolic
link, anything that is not a regular file directly in the inbox, a file of no accepted format and
a file that cannot be opened as its format (truncated, corrupt) is moved to `inbox/rejected/`
with `<name>.reason.txt` beside it, and the other files proceed. Reasons never quote the file's
content, and a link is never followed (not even to read it).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import stat
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from graph.io.common import InputFileError, table_header, table_layout
from graph.io.identifiers import dataset_id_for
from graph.io.options import OPTION_NAMES, PATH_OPTIONS, ReadOptions
from graph.settings import Settings

log = logging.getLogger(__name__)

MEASUREMENT_KINDS = frozenset({"gctx", "gct", "h5ad", "long_table", "ranked_long_table", "wide_table"})
REFERENCE_KINDS = frozenset({"gene_table", "compound_lincs", "compound_repurposing_drugs",
                             "compound_repurposing_samples", "string", "corum", "dorothea", "gmt",
                             "cell_line_features", "landmarks"})


@dataclass(frozen=True)
class InputSpec:
    path: str
    kind: str
    dataset_id: str
    source: str = ""
    licence: str = ""
    simulated: bool = False
    options: tuple[tuple[str, str], ...] = ()  # reader options, e.g. (("max_rows", "100000"),)

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)


class UnreadableHeaderError(InputFileError):
    """A table whose header cannot be read at all (empty, corrupt, not text): told apart from a header that
    fits no accepted format, so the inbox can say 'unreadable' without repeating the content."""


def detect_kind(path: Path, readout_key: str | None = None) -> str:
    """The reader a file needs, from its extension and header; a clear error when none fits."""
    name = path.name.lower()
    if name.endswith(".gctx"):
        return "gctx"
    if name.endswith(".gct"):
        return "gct"
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(".gmt"):
        return "gmt"
    try:
        cols = set(table_header(path))  # the measurement readers' header rule (separator by extension, comments)
    except InputFileError as exc:
        raise UnreadableHeaderError(path, exc.problem) from None
    layout = table_layout(cols, readout_key)  # the measurement-table rule the CLI loader uses too
    if layout is not None:
        return layout
    if {"entrez_a", "entrez_b", "combined_score"} <= cols:
        return "string"
    if {"tf", "target", "mor"} <= cols:
        return "dorothea"
    if "ComplexID" in cols and any("subunits" in c for c in cols):
        return "corum"
    if {"cell_id", "gene_symbol"} <= cols:
        return "cell_line_features"
    if {"pert_id", "cmap_name", "canonical_smiles"} <= cols:
        return "compound_lincs"
    if {"broad_id", "pert_iname", "smiles"} <= cols:
        return "compound_repurposing_samples"
    if {"pert_iname", "clinical_phase", "moa", "target"} <= cols:
        return "compound_repurposing_drugs"
    if {"id", "symbol", "entrez", "feature_space"} <= cols:
        return "landmarks"
    if {"entrez_id", "symbol", "aliases"} <= cols:
        return "gene_table"
    raise InputFileError(path, f"cannot tell what kind of file this is from its name and columns {sorted(cols)[:12]}; "
                               "see docs/inputs.md for the accepted formats")


def parse_option_text(text: str, where: str | Path) -> dict[str, str]:
    """`k=v&k=v` (FILE?… and inbox sidecars, which may also put one k=v per line) -> {k: v}; the names
    are ReadOptions' (graph/io/options.py), checked there."""
    pairs = [p.strip().partition("=") for p in re.split(r"[&\n]", text) if p.strip() and not p.strip().startswith("#")]
    bad = [k for k, _, v in pairs if k.strip() not in OPTION_NAMES or not v.strip()]
    if bad:
        raise InputFileError(where, f"unknown or empty input option(s) {bad}; accepted: {', '.join(OPTION_NAMES)}=VALUE")
    return {k.strip(): v.strip() for k, _, v in pairs}


def spec_for(path: Path, *, simulated: bool = False, source: str = "",
             defaults: ReadOptions = ReadOptions(), file_options: dict[str, str] | None = None) -> InputSpec:
    """The spec of one file. Options: the run's `defaults` (CLI / Dagster config), replaced by the file's
    own (`FILE?k=v&…` or `file_options`); checked here, so a bad option is refused before any reading."""
    text = str(path)
    own = dict(file_options or {})
    if "?" in text and not Path(text).exists():
        text, query = text.split("?", 1)
        own.update(parse_option_text(query, text))
        path = Path(text)
    try:
        opts = defaults.overridden(own)
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None
    options = tuple(sorted(opts.as_text().items()))
    if not path.exists() and not path.is_symlink():
        raise InputFileError(path, "file does not exist")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not an input file")
    try:
        kind = detect_kind(path, opts.readout_key)
    except InputFileError:
        raise
    except (OSError, EOFError, ValueError, UnicodeError, zlib.error, pa.ArrowException) as exc:
        raise InputFileError(path, f"unreadable: truncated, corrupt or not text ({type(exc).__name__})") from None
    return InputSpec(path=str(path), kind=kind, dataset_id=dataset_id_for(path),
                     source=source or str(path), simulated=simulated, options=options)


# Real public files of ../shared/data (see its README for provenance and licences).
SHARED_FILES: dict[str, tuple[str, str]] = {
    "genes/genes_human.tsv": ("NCBI Gene 2022-09-12", "public domain (NCBI)"),
    "l1000/geneinfo_landmark.tsv": ("LINCS L1000 landmark genes", "BSD-3-Clause (cmapR)"),
    "compounds/repurposing_drugs_20200324.txt": ("Broad Drug Repurposing Hub 2020-03-24", "CC BY 4.0 (Broad)"),
    "compounds/repurposing_samples_20200324.txt": ("Broad Drug Repurposing Hub 2020-03-24", "CC BY 4.0 (Broad)"),
    "compounds/lincs_compoundinfo.tsv": ("LINCS compound info", "LINCS data release policy"),
    "networks/string_v12_edges.tsv.gz": ("STRING v12", "CC BY 4.0"),
    "networks/corum_allComplexes_2018-06-27.txt": ("CORUM 2018-06-27", "CORUM terms"),
    "networks/dorothea_hs.tsv.gz": ("DoRothEA human", "GPL-3 (dorothea)"),
    "contexts/lincs_cell_line_features.parquet": ("LINCS cell-line features", "LINCS data release policy"),
    "l1000/cmap_ds_level5_modz_n272x978.gctx": ("cmapR ds (LINCS L1000 level 5)", "BSD-3-Clause (cmapR)"),
    "l1000/cmap_kd_shrna_level4_n374x976.gctx": ("cmapR kd_gct (L1000 shRNA level 4)", "BSD-3-Clause (cmapR)"),
    "l1000/LJP005_A375_24H_level4_n377x978.gctx": ("cmapPy LJP005 A375 24H level 4", "BSD-3-Clause (cmapPy)"),
    "l1000/signatureSearch_SKB_level5_n100x5000.gctx": ("signatureSearch SKB level 5", "Artistic-2.0"),
    "perturbseq/replogle2022_k562_rpe1_crispri_top1000.parquet": ("Replogle et al. 2022 via sigrecon", "MIT"),
    "perturbseq/papalexi2021_thp1_eccite_crisprko.h5ad": ("Papalexi et al. 2021 via sceptre", "GPL-3"),
    "chemical/tahoe100m_ranked_signatures.parquet": ("Tahoe-100M via sigrecon", "MIT"),
}


def shared_inputs(settings: Settings, only: list[str] | None = None,
                  defaults: ReadOptions = ReadOptions()) -> list[InputSpec]:
    root = settings.shared_data
    if not (root / "README.md").exists():
        raise InputFileError(root, "the shared data folder is missing: set PERTURBGRAPH_SHARED_DATA or use the "
                                   "default (simulated) dataset")
    specs = []
    for rel, (source, licence) in SHARED_FILES.items():
        if only and not any(token in rel for token in only):
            continue
        path = root / rel
        if path.exists():
            spec = spec_for(path, source=source, defaults=defaults)
            specs.append(InputSpec(spec.path, spec.kind, spec.dataset_id, source, licence, options=spec.options))
    return specs


def default_inputs(settings: Settings, seed: int = 0, defaults: ReadOptions = ReadOptions()) -> list[InputSpec]:
    """The simulated world, generated once under $PERTURBGRAPH_HOME/data/default (deterministic)."""
    from graph.simulated import generate_default_dataset

    out = settings.data_dir / f"default-seed{seed}"
    marker = out / ".complete"
    if not marker.exists():
        generate_default_dataset(out, seed=seed)
        marker.write_text("ok\n")
    specs = []
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix in {".md", ".json"} or "truth" in path.parts:
            continue
        specs.append(spec_for(path, simulated=True, source=f"SIMULATED default dataset (seed {seed})", defaults=defaults))
    return specs


REJECTED_DIR = "rejected"
OPTIONS_SUFFIX = ".options"  # inbox/<file>.options: that file's read options (k=v per line or k=v&k=v)


@dataclass(frozen=True)
class InboxRejection:
    name: str  # the file's name in the inbox
    reason: str
    moved_to: str


def inbox_entries(inbox: Path) -> list[Path]:
    """What was dropped into the inbox: every visible entry except the rejected folder and the options
    sidecars (links included, not followed)."""
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if not p.name.startswith(".") and p.name != REJECTED_DIR
                  and not p.name.endswith(OPTIONS_SUFFIX))


def inbox_file_options(path: Path) -> dict[str, str]:
    """The options sidecar of an inbox file (`<name>.options`), if any: a regular file, never a link."""
    sidecar = path.with_name(path.name + OPTIONS_SUFFIX)
    try:
        info = sidecar.lstat()
    except FileNotFoundError:
        return {}
    if not stat.S_ISREG(info.st_mode) or info.st_size > 64 * 1024:
        raise InputFileError(path, f"its options file {sidecar.name} is not a small regular file")
    own = parse_option_text(sidecar.read_text(encoding="utf-8", errors="replace"), sidecar.name)
    for key in PATH_OPTIONS:  # a path named by a dropped file would be read from anywhere on the machine
        if key in own and not (key == "readouts" and own[key].isdigit()):  # N random readouts names no file
            raise InputFileError(path, f"its options file {sidecar.name}: {key} names a file, which is not taken in "
                                       f"the inbox (readouts must be a number N there); give it on the command line "
                                       f"(--{key.replace('_', '-')}) or as FILE?{key}=PATH in the Dagster config")
    return own


def _check_readable(path: Path, kind: str) -> None:
    """Open the file as its kind says (cheap: HDF5 layout, parquet footer, text without NUL bytes,
    gzip stream intact). The error names the problem, never the content."""
    try:
        if kind in ("gctx", "h5ad"):
            import h5py

            with h5py.File(path, "r") as handle:
                needed = "0/DATA/0/matrix" if kind == "gctx" else "X"
                if needed not in handle:
                    raise InputFileError(path, f"an HDF5 file without /{needed}, so not a {kind} file")
        elif path.name.endswith(".parquet"):
            pq.read_metadata(path)
        else:
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    if b"\0" in chunk:
                        raise InputFileError(path, f"binary content in what should be a {kind} text table")
    except InputFileError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, pa.ArrowException) as exc:
        raise InputFileError(path, f"not a readable {kind} file: truncated or corrupt "
                                   f"({type(exc).__name__})") from None


def validate_inbox_file(path: Path, inbox: Path, defaults: ReadOptions = ReadOptions()) -> InputSpec:
    """The spec of one inbox file, or InputFileError with a reason that quotes nothing from it. Its read
    options: the run's `defaults`, replaced by those of its `<name>.options` sidecar."""
    info = path.lstat()  # lstat: a link is judged as a link, never followed
    if stat.S_ISLNK(info.st_mode):
        raise InputFileError(path, "a symbolic link; the inbox does not follow links (copy the file in instead)")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(path, "not a regular file (put files, not folders or devices, into the inbox)")
    if path.resolve().parent != inbox.resolve():
        raise InputFileError(path, "resolves outside the inbox")
    own = inbox_file_options(path)
    try:
        kind = detect_kind(path, own.get("readout_key") or defaults.readout_key)
    except UnreadableHeaderError:
        raise InputFileError(path, "unreadable: truncated, corrupt or not text") from None
    except InputFileError:
        # detect_kind's own message lists the header's columns: content, so not repeated here.
        raise InputFileError(path, "no accepted input format matches its name and header (see docs/inputs.md)") from None
    except (OSError, EOFError, ValueError, zlib.error, pa.ArrowException) as exc:
        raise InputFileError(path, f"unreadable: truncated, corrupt or not text ({type(exc).__name__})") from None
    _check_readable(path, kind)
    return spec_for(path, source=f"inbox:{path.name}", defaults=defaults, file_options=own)


def reject_inbox_file(path: Path, inbox: Path, reason: str) -> InboxRejection:
    """Move `path` (the link itself for a link) to inbox/rejected/ and write `<name>.reason.txt`."""
    rejected = inbox / REJECTED_DIR
    rejected.mkdir(exist_ok=True)
    target = rejected / path.name
    if target.exists() or target.is_symlink():
        target = rejected / f"{path.name}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    os.rename(path, target)  # same folder tree: atomic, and a link is moved, not followed
    sidecar = path.with_name(path.name + OPTIONS_SUFFIX)
    if sidecar.exists() or sidecar.is_symlink():  # its options go with it
        os.rename(sidecar, target.with_name(target.name + OPTIONS_SUFFIX))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    (rejected / f"{target.name}.reason.txt").write_text(
        f"file: {path.name}\nrejected: {stamp}\nreason: {reason}\n"
        "Fix or replace the file and put it into the inbox again.\n")
    log.warning("inbox: %s rejected (%s); moved to %s", path.name, reason, target)
    return InboxRejection(path.name, reason, str(target))


def scan_inbox(settings: Settings, defaults: ReadOptions = ReadOptions()) -> tuple[list[InputSpec], list[InboxRejection]]:
    """Validate each inbox file on its own: the good ones as specs, the bad ones moved aside with a reason."""
    inbox = settings.inbox_dir
    specs, rejections = [], []
    for path in inbox_entries(inbox):
        try:
            specs.append(validate_inbox_file(path, inbox, defaults))
        except InputFileError as exc:
            rejections.append(reject_inbox_file(path, inbox, exc.problem))
        except OSError as exc:  # e.g. removed while scanning: nothing to move, nothing to read
            rejections.append(InboxRejection(path.name, f"could not be examined ({type(exc).__name__})", ""))
    return specs, rejections


def inbox_inputs(settings: Settings, defaults: ReadOptions = ReadOptions()) -> list[InputSpec]:
    return scan_inbox(settings, defaults)[0]


def resolve_inputs(settings: Settings, selection: str, defaults: ReadOptions = ReadOptions()) -> list[InputSpec]:
    """`default` (simulated), `shared`, `shared:<substring>,<substring>`, `inbox` (the inbox alone), or
    comma-separated file paths; the inbox's valid files are always added. `defaults`: the read options of
    every file (a file's `?k=v` or inbox sidecar replaces them)."""
    if selection == "inbox":
        specs = []
    elif selection == "default":
        specs = default_inputs(settings, defaults=defaults)
    elif selection == "shared":
        specs = shared_inputs(settings, defaults=defaults)
    elif selection.startswith("shared:"):
        specs = shared_inputs(settings, only=selection.split(":", 1)[1].split(","), defaults=defaults)
    else:
        specs = [spec_for(Path(p).expanduser(), defaults=defaults) for p in selection.split(",") if p.strip()]
    return specs + [s for s in inbox_inputs(settings, defaults) if s.path not in {x.path for x in specs}]

"""Perturbation types, stable perturbation ids and the one PerturbationRecord rule of the measurement
readers (the name, dose and combination rules are in identifiers.py)."""

from __future__ import annotations

import re

from graph.io.common import clean_text

# The identifier rules live in graph/io/identifiers.py; imported here because the ids below use them
# (and re-exported for readers that import the vocabulary from this module).
from graph.io.identifiers import (  # noqa: F401
    format_dose,
    gene_key,
    genetic_perturbation_name,
    is_control_name,
    normalise_compound_name,
    parse_dose,
    parse_time,
    split_combination,
)
from graph.records import PERTURBATION_TYPES, PerturbationRecord

# Source spellings -> canonical PERTURBATION_TYPES (lower-cased keys, '-'/' ' folded to '_').
_TYPE_ALIASES = {
    "trt_cp": "compound", "trt_poscon": "compound", "compound": "compound", "drug": "compound",
    "small_molecule": "compound", "chemical": "compound", "cp": "compound",
    "trt_sh": "shRNA", "trt_sh.cgs": "shRNA", "trt_sh.css": "shRNA", "shrna": "shRNA", "sh": "shRNA", "rnai": "shRNA",
    "trt_xpr": "CRISPRko", "crisprko": "CRISPRko", "crispr_ko": "CRISPRko", "ko": "CRISPRko",
    "knockout": "CRISPRko", "crispri": "CRISPRi", "crispr_i": "CRISPRi", "crispr_interference": "CRISPRi",
    "crispra": "CRISPRa", "crispr_a": "CRISPRa", "crispr_activation": "CRISPRa",
    "trt_oe": "ORF", "orf": "ORF", "overexpression": "ORF", "oe": "ORF", "trt_oe.mut": "ORF",
    "control": "control", "ctrl": "control", "ctl": "control",
}


# Spellings that name no one type: never guessed (a CRISPRi screen read as knock-out, or the reverse, would be
# a different perturbation id from the same screen read elsewhere).
AMBIGUOUS_TYPES = {"crispr": "knock-out, interference or activation"}


def normalise_perturbation_type(text: object) -> str:
    """A source's perturbation type -> one of PERTURBATION_TYPES (ctl_* -> control); unknown -> ValueError."""
    s = clean_text(text)
    key = re.sub(r"[\s\-]+", "_", s.lower())
    if key.startswith("ctl_") or key in {"ctl", "control", "ctrl"}:
        return "control"
    if s in PERTURBATION_TYPES:
        return s
    if key in _TYPE_ALIASES:
        return _TYPE_ALIASES[key]
    if key in AMBIGUOUS_TYPES:
        raise ValueError(f"perturbation type {s!r} is ambiguous ({AMBIGUOUS_TYPES[key]}); give the mode with the "
                         "perturbation_type option (--perturbation-type CRISPRi, FILE?perturbation_type=CRISPRi) or write "
                         "CRISPRko, CRISPRi or CRISPRa in the file's column (scPerturb writes 'CRISPR' for all three)")
    raise ValueError(f"unknown perturbation type {s!r}; expected one of {PERTURBATION_TYPES} or a CMap trt_*/ctl_* code")


def make_perturbation_id(
    perturbation_type: str,
    name: str = "",
    *,
    compound_id: str = "",
    targets: tuple[str, ...] | list[str] = (),
    dose_value: float | None = None,
    dose_unit: str = "",
) -> str:
    """Stable perturbation id, independent of input order and spelling noise.

    compound: "compound:<compound_id>@<dose>" (compound_id defaults to "name:<normalised name>", the
    dose part is left out when unknown); genetic: "<type>:<A>+<B>" with targets sorted (upper case);
    control: "control:<NAME>" (upper case, spaces/dashes folded to '_').
    """
    ptype = normalise_perturbation_type(perturbation_type)
    if ptype == "compound":
        if not compound_id:
            norm = normalise_compound_name(name)
            if not norm:
                raise ValueError("a compound perturbation needs a compound_id or a name")
            compound_id = f"name:{norm}"
        dose = format_dose(dose_value, dose_unit)
        return f"compound:{compound_id}" + (f"@{dose}" if dose else "")
    if ptype == "control":
        label = re.sub(r"[\s\-]+", "_", clean_text(name).upper()) or "CONTROL"
        return f"control:{label}"
    members = genetic_perturbation_name(targets or split_combination(name, keep_prefix=False))
    if not members:
        raise ValueError(f"a {ptype} perturbation needs target genes (name {name!r})")
    return f"{ptype}:{members}"


def type_in_id(perturbation_id: object) -> str | None:
    """The type make_perturbation_id wrote before the ':' of an id ("control:DMSO" -> "control",
    "CRISPRi:A+B" -> "CRISPRi"); None for a name that carries no type (a benchmark loader's "DMSO")."""
    head, sep, _ = clean_text(perturbation_id).partition(":")
    return head if sep and head in PERTURBATION_TYPES else None


def perturbation_record(perturbation_type: str, name: str, *, source: str = "", compound_id: str = "",
                        targets: tuple[str, ...] | list[str] = (), dose_value: float | None = None,
                        dose_unit: str = "", time_value: float | None = None, time_unit: str = "",
                        ) -> PerturbationRecord:
    """The record every measurement reader (GCTX, tables, h5ad) makes for one perturbation.

    `perturbation_type` is canonical (normalise_perturbation_type). The id is make_perturbation_id's. A
    compound keeps dose and time; without a matched compound record (`compound_id` '') its compound_id
    is the name-derived one of the id ("name:<normalised name>"). A genetic perturbation keeps its
    targets (symbols as the caller resolved them) sorted, unique, upper case. A control keeps its name
    only. A bad type, name or target is a ValueError (the readers quarantine the rows with it).
    """
    pid = make_perturbation_id(perturbation_type, name, compound_id=compound_id, targets=tuple(targets),
                               dose_value=dose_value, dose_unit=dose_unit)
    if perturbation_type == "compound":
        return PerturbationRecord(pid, name, perturbation_type,
                                  compound_id=compound_id or pid.split("@")[0][len("compound:"):],
                                  dose_value=dose_value, dose_unit=dose_unit, time_value=time_value,
                                  time_unit=time_unit, source=source)
    if perturbation_type == "control":
        return PerturbationRecord(pid, name, perturbation_type, source=source)
    symbols = tuple(sorted({gene_key(t) for t in targets if gene_key(t)}))
    return PerturbationRecord(pid, name, perturbation_type, target_symbols=symbols, source=source)

"""Perturbation vocabulary: doses, times, perturbation types, control spellings, combinations, stable ids."""

from __future__ import annotations

import math
import re

from graph.io.common import clean_text
from graph.records import PERTURBATION_TYPES

MISSING = {"", "-666", "-666.0", "na", "nan", "none", "null", "n/a"}

# Concentration units -> factor to micromolar. Keys are lower case after NFKC (which folds the
# micro sign U+00B5 to Greek mu U+03BC); "um" is the old ASCII CMap spelling ("0.04 um").
_CONC_TO_UM = {"pm": 1e-6, "nm": 1e-3, "um": 1.0, "μm": 1.0, "mm": 1e3, "m": 1e6}
_TIME_TO_H = {"s": 1 / 3600, "sec": 1 / 3600, "min": 1 / 60, "m": 1 / 60, "h": 1.0, "hr": 1.0, "hrs": 1.0,
              "hour": 1.0, "hours": 1.0, "d": 24.0, "day": 24.0, "days": 24.0}
_NUMBER_UNIT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*)?$")


def _is_missing(text: str) -> bool:
    return text.lower() in MISSING


def parse_dose(text: object, unit: object = None) -> tuple[float | None, str]:
    """("10 uM" | "10uM" | "10 µM" | "10 μM" | "500 nM" | "0.04 um" | "1 mM") -> (value, "uM").

    `unit` is used when `text` is a bare number (CMap's pert_dose + pert_dose_unit). Concentrations are
    converted to micromolar; other units ("ng/mL", "%", "uL") are kept as given with their value.
    Missing values (empty, -666, NA) -> (None, ""). Unparseable text -> ValueError naming the text.
    """
    s, u = clean_text(text), clean_text(unit)
    if _is_missing(s):
        return None, ""
    m = _NUMBER_UNIT.match(s)
    if not m:
        raise ValueError(f"unparseable dose {s!r}")
    value = float(m.group(1))
    given = (m.group(2) or "").strip() or ("" if _is_missing(u) else u)
    if not given:
        raise ValueError(f"dose {s!r} has no unit")
    factor = _CONC_TO_UM.get(given.lower())
    if factor is None:
        return value, given
    return _round(value * factor), "uM"


def parse_time(text: object, unit: object = None) -> tuple[float | None, str]:
    """("24 h" | "6h" | "30 min" | "2 d") -> (value, "h"); missing -> (None, ""); else ValueError."""
    s, u = clean_text(text), clean_text(unit)
    if _is_missing(s):
        return None, ""
    m = _NUMBER_UNIT.match(s)
    if not m:
        raise ValueError(f"unparseable time {s!r}")
    given = (m.group(2) or "").strip() or ("" if _is_missing(u) else u)
    factor = _TIME_TO_H.get(given.lower())
    if factor is None:
        raise ValueError(f"time {s!r} has no known unit (got {given!r})")
    return _round(float(m.group(1)) * factor), "h"


def _round(x: float) -> float:
    """Round to 6 significant digits so 0.1 * 1000 and 100 give the same id."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, 5 - int(math.floor(math.log10(abs(x)))))


# Source spellings -> canonical PERTURBATION_TYPES (lower-cased keys, '-'/' ' folded to '_').
_TYPE_ALIASES = {
    "trt_cp": "compound", "trt_poscon": "compound", "compound": "compound", "drug": "compound",
    "small_molecule": "compound", "chemical": "compound", "cp": "compound",
    "trt_sh": "shRNA", "trt_sh.cgs": "shRNA", "trt_sh.css": "shRNA", "shrna": "shRNA", "sh": "shRNA", "rnai": "shRNA",
    "trt_xpr": "CRISPRko", "crisprko": "CRISPRko", "crispr_ko": "CRISPRko", "crispr": "CRISPRko", "ko": "CRISPRko",
    "knockout": "CRISPRko", "crispri": "CRISPRi", "crispr_i": "CRISPRi", "crispr_interference": "CRISPRi",
    "trt_oe": "ORF", "orf": "ORF", "overexpression": "ORF", "oe": "ORF", "trt_oe.mut": "ORF",
    "control": "control", "ctrl": "control", "ctl": "control",
}


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
    raise ValueError(f"unknown perturbation type {s!r}; expected one of {PERTURBATION_TYPES} or a CMap trt_*/ctl_* code")


# Control spellings (compared after lower-casing and removing '-', '_', ' ', '.').
_CONTROL_NAMES = {
    "ctlvehicle", "ctlvector", "ctluntrt", "ctluntreated", "dmso", "dmsotf", "vehicle", "untrt", "untreated",
    "nontargeting", "nontarget", "ntc", "nt", "ctrl", "control", "negctrl", "negativecontrol", "emptyvector",
    "empty", "safetargeting", "scramble", "scrambled", "pbs", "water", "h2o", "mock",
}
# Numbered variants: "non-targeting_0012", "NTC-3", "ctrl1", "sgNTC_2".
_CONTROL_PATTERN = re.compile(r"^(sg)?(nontargeting|nontarget|ntc|nt|ctrl|control|safetargeting|scramble)\d*$")


def _control_key(text: str) -> str:
    return re.sub(r"[\s\-_.]+", "", text.lower())


def is_control_name(name: object) -> bool:
    """True for control spellings: DMSO, ctl_vehicle, UnTrt, EMPTY_VECTOR, non-targeting(_N), NTC, ctrl, ..."""
    key = _control_key(clean_text(name))
    return bool(key) and (key in _CONTROL_NAMES or bool(_CONTROL_PATTERN.match(key)))


def split_combination(name: object, sep: str = "+") -> tuple[str, ...]:
    """"A+B" -> ("A", "B"); GEARS "A+ctrl" -> ("A",); "ctrl" -> (). A '+' inside brackets
    ("(+)-JQ1", "(S)-(+)-rolipram") or with an empty side is part of the name, not a separator."""
    s = clean_text(name)
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    parts = [p.strip() for p in parts]
    if len(parts) > 1 and any(not p for p in parts):
        parts = [s]  # "A+" or "+A": not a combination
    return tuple(p for p in parts if p and not is_control_name(p))


def format_dose(value: float | None, unit: str) -> str:
    """Stable text for ids: 10.0 uM -> "10uM", 0.04 -> "0.04uM"; None -> ""."""
    if value is None:
        return ""
    return f"{_round(float(value)):g}{unit}"


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
            from graph.io.compounds import normalise_compound_name  # lazy: compounds imports rdkit

            norm = normalise_compound_name(name)
            if not norm:
                raise ValueError("a compound perturbation needs a compound_id or a name")
            compound_id = f"name:{norm}"
        dose = format_dose(dose_value, dose_unit)
        return f"compound:{compound_id}" + (f"@{dose}" if dose else "")
    if ptype == "control":
        label = re.sub(r"[\s\-]+", "_", clean_text(name).upper()) or "CONTROL"
        return f"control:{label}"
    members = sorted({clean_text(t).upper() for t in (targets or split_combination(name)) if clean_text(t)})
    if not members:
        raise ValueError(f"a {ptype} perturbation needs target genes (name {name!r})")
    return f"{ptype}:" + "+".join(members)

"""Identifier rules, each in one place: compound names, mechanisms of action, combinations, controls, gene
symbols, doses and times, rank -> score. The readers in graph/io and everything in models/ import these; nothing else
normalises a name or converts a rank.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from graph.io.common import clean_text

# ---------------------------------------------------------------------------------------------
# Compound names
# ---------------------------------------------------------------------------------------------

# Counter-ion, hydrate and salt words dropped from names for joining ("imatinib mesylate" == "Imatinib").
# Esters such as "acetate" or "propionate" are left alone: they are different molecules.
SALT_WORDS = frozenset("""
hydrochloride dihydrochloride trihydrochloride monohydrochloride hcl 2hcl hydrobromide hbr hydroiodide
mesylate dimesylate mesilate methanesulfonate besylate besilate tosylate ditosylate maleate dimaleate fumarate
hemifumarate tartrate bitartrate citrate dicitrate sulfate sulphate bisulfate hemisulfate disulfate phosphate
diphosphate succinate hemisuccinate lactate malate oxalate nitrate napsylate pamoate isethionate salt sodium
disodium trisodium potassium dipotassium calcium magnesium zinc lithium ammonium diammonium meglumine
tromethamine bromide chloride iodide hydrate monohydrate dihydrate trihydrate hemihydrate sesquihydrate
anhydrous solvate freebase
""".split())

# "Trametinib (GSK1120212)": a trailing parenthesised group after a space is an alias (or salt words);
# "(+)-JQ1" and "(S)-(+)-rolipram" have no space before the bracket and stay whole.
_TRAILING_ALIAS = re.compile(r"^(.*\S)\s+\(([^()]*)\)$")


def _name_key(text: str) -> str:
    s = text.lower().replace("free base", "freebase")
    words = [w for w in re.split(r"\s+", s) if w]
    kept = [w for w in words if re.sub(r"\W+", "", w) not in SALT_WORDS]
    return re.sub(r"[\W_]+", "", " ".join(kept or words))


def _split_alias(name: object) -> tuple[str, str]:
    s = clean_text(name)
    s = re.sub(r"\s+", " ", s)
    m = _TRAILING_ALIAS.match(s)
    return (m.group(1), m.group(2).strip()) if m else (s, "")


def _only_salt_words(text: str) -> bool:
    words = [re.sub(r"\W+", "", w) for w in text.lower().replace("free base", "freebase").split()]
    return bool(words) and all(w in SALT_WORDS for w in words if w)


def normalise_compound_name(name: object) -> str:
    """Name key for joining: NFKC, whitespace folded, lower case, a trailing "(alias)" and salt/hydrate
    words removed, punctuation removed.

    "Imatinib Mesylate" -> "imatinib"; "Apomorphine (hydrochloride hemihydrate)" -> "apomorphine";
    "Trametinib (GSK1120212)" -> "trametinib"; "Vorinostat " -> "vorinostat"; "5-Fluorouracil" ->
    "5fluorouracil"; "(+)-JQ1" -> "jq1". A name made only of salt words is kept as it is ("sodium").
    """
    base, _ = _split_alias(name)
    return _name_key(base)


# Words that name an ester ("hydrocortisone acetate" is its own molecule) or a counter-ion
# ("chlorhexidine diacetate", "pasireotide acetate"): kept in the key, dropped only as a last resort.
ESTER_OR_SALT_WORDS = frozenset({"acetate", "diacetate"})


def compound_name_keys(name: object, *, last_resort: bool = False) -> tuple[str, ...]:
    """Every key a structure lookup should try, best first: the name, then its alias in parentheses
    ("Trametinib (GSK1120212)" -> ("trametinib", "gsk1120212")). Salt-only brackets give no alias.
    last_resort=True appends the name without acetate words ("Pasireotide acetate" -> "pasireotide"),
    for lookups only: as a join key it would merge an ester with its parent."""
    base, alias = _split_alias(name)
    keys = [_name_key(base)]
    if alias and not _only_salt_words(alias):
        keys.append(_name_key(alias))
    if last_resort:
        words = [w for w in base.split() if re.sub(r"\W+", "", w.lower()) not in ESTER_OR_SALT_WORDS]
        if words and len(words) < len(base.split()):
            keys.append(_name_key(" ".join(words)))
    return tuple(k for k in dict.fromkeys(keys) if k)


def lookup_compound(name: object, table) -> str | None:
    """table[key] for the first of compound_name_keys(name, last_resort=True) the table holds (a dict
    keyed by compound_name_keys of its names); None when no key matches."""
    for key in compound_name_keys(name, last_resort=True):
        hit = table.get(key)
        if hit:
            return hit
    return None


def compound_id_for(name: object, compound_ids, pert_id: object = "") -> str:
    """The compound of a perturbation named `name` (and, for a GCTX column, `pert_id`), the one lookup
    every reader uses: the pert_id or the name verbatim (graph/io/compounds.name_index keys raw names
    and pert_ids too), then lookup_compound's keys (salt words, an alias in parentheses, whitespace,
    case folded). "" when the index (normalised name or pert_id -> compound_id) has none."""
    if not compound_ids:
        return ""
    for raw in (pert_id, name):
        hit = compound_ids.get(raw) if isinstance(raw, str) and raw else None
        if hit:
            return hit
    return lookup_compound(name, compound_ids) or ""


# ---------------------------------------------------------------------------------------------
# Mechanisms of action
# ---------------------------------------------------------------------------------------------


def normalise_moa(text: object) -> str:
    """The one spelling a mechanism of action is stored and compared by: NFKC, stripped, whitespace runs
    folded to one space, lower case. The Repurposing Hub and LINCS tables spell one mechanism differently
    ("MEK inhibitor" / "mek inhibitor"); "" for a blank value."""
    return re.sub(r"\s+", " ", clean_text(text)).lower()


def moa_terms(values) -> tuple[str, ...]:
    """normalise_moa of every value, blanks dropped, each once, sorted: a compound's mechanisms."""
    return tuple(sorted({m for m in map(normalise_moa, values or ()) if m}))


# ---------------------------------------------------------------------------------------------
# Controls and combinations
# ---------------------------------------------------------------------------------------------

# Control spellings (compared after lower-casing and removing '-', '_', ' ', '.').
_CONTROL_NAMES = {
    "ctlvehicle", "ctlvector", "ctluntrt", "ctluntreated", "dmso", "dmsotf", "vehicle", "untrt", "untreated",
    "nontargeting", "nontarget", "ntc", "nt", "ctrl", "control", "negctrl", "negativecontrol", "emptyvector",
    "empty", "safetargeting", "scramble", "scrambled", "pbs", "water", "h2o", "mock",
}
# Numbered variants: "non-targeting_0012", "NTC-3", "ctrl1", "sgNTC_2", "NegCtrl0" (Norman 2019).
_CONTROL_PATTERN = re.compile(r"^(sg)?(nontargeting|nontarget|ntc|nt|ctrl|control|safetargeting|scramble|negctrl)\d*$")


def _control_key(text: str) -> str:
    return re.sub(r"[\s\-_.]+", "", text.lower())


def is_control_name(name: object) -> bool:
    """True for control spellings: DMSO, ctl_vehicle, UnTrt, EMPTY_VECTOR, non-targeting(_N), NTC, ctrl, ..."""
    key = _control_key(clean_text(name))
    return bool(key) and (key in _CONTROL_NAMES or bool(_CONTROL_PATTERN.match(key)))


# A leading "<type>:" (perturbation ids "CRISPRi:A+B", user labels "crispri:A+B") applies to every member.
_TYPE_PREFIX = re.compile(r"^(compound|crisprko|crispri|crispra|shrna|orf|control|crispr|sh|oe|ko):(?=\S)", re.I)


def _underscore_members(part: str, resolver) -> list[str]:
    """scPerturb's Norman et al. 2019 doubles are written "CEBPA_KLF1": a name joined by '_' is a combination
    only when the gene table (`resolver`) knows no gene by the whole name and every piece is a current gene
    symbol there (route "symbol": an alias, an Entrez number or an Ensembl id never counts) or a control
    spelling ("CEBPA_ctrl" -> CEBPA), at least one a gene. Otherwise the name stays whole: a guide name
    ("STAT1_g1", "MYC_2"), a symbol that holds '_', and every name when there is no gene table."""
    if resolver is None or "_" not in part or resolver.resolve(part).ok:
        return [part]
    pieces = [p.strip() for p in part.split("_")]
    genes = [p for p in pieces if p and not is_control_name(p)]
    if not genes or not all(p for p in pieces):
        return [part]
    for p in genes:
        m = resolver.resolve(p)
        if not (m.ok and m.how == "symbol"):
            return [part]
    return pieces


def split_combination(name: object, sep: str = "+", *, keep_prefix: bool = True, resolver=None) -> tuple[str, ...]:
    """"A+B" -> ("A", "B"); "A|B" (a pipe, as some tables join targets) too; GEARS "A+ctrl" -> ("A",);
    "ctrl" -> (). A '+' inside brackets
    ("(+)-JQ1", "(S)-(+)-rolipram") or with an empty side is part of the name, not a separator.
    A type prefix is kept on every member: "crispri:A+B" -> ("crispri:A", "crispri:B"); with
    keep_prefix=False it is dropped (the target genes: ("A", "B")). With a gene table (`resolver`,
    graph/io/genes.GeneResolver) "A_B" of two gene symbols is ("A", "B") too (_underscore_members: only
    when both are genes and "A_B" is none); the readers pass it for genetic targets, never for compounds."""
    s = clean_text(name)
    m = _TYPE_PREFIX.match(s)
    s = s[len(m.group(0)):] if m else s
    prefix = m.group(0) if m and keep_prefix else ""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if (ch == sep or (sep == "+" and ch == "|")) and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    parts = [p.strip() for p in parts]
    if len(parts) > 1 and any(not p for p in parts):
        parts = [s]  # "A+" or "+A": not a combination
    parts = [m for p in parts for m in _underscore_members(p, resolver)]
    return tuple(prefix + p for p in parts if p and not is_control_name(p))


def combination_members(name: object) -> tuple[str, ...]:
    """The members a model embeds: split_combination, or the whole name when nothing is left
    (a control such as "DMSO" is one symbol, not an empty combination)."""
    return split_combination(name) or (clean_text(name),)


# ---------------------------------------------------------------------------------------------
# Gene symbols
# ---------------------------------------------------------------------------------------------


def gene_key(name: object) -> str:
    """The one canonical spelling a gene name is compared by: NFKC, stripped, upper case.
    GeneResolver (graph/io/genes.py) and SymbolMap (graph/db/symbols.py) both key their tables on it."""
    return clean_text(name).upper()


def genetic_perturbation_name(targets) -> str:
    """The one name of a genetic perturbation by its target genes: gene_key of each, each once, sorted,
    joined by '+' ("C14orf178" -> "C14ORF178"; ("b", "A") -> "A+B"); "" without a target. The ingest's
    perturbation id is "<type>:" + this (graph/io/perturbations.make_perturbation_id) and the benchmark
    loaders (models/datasets.from_ranked) name a knock-down by it, so both routes spell one knock-down alike."""
    return "+".join(sorted({gene_key(t) for t in targets if gene_key(t)}))


# Separators of a list of gene symbols in one cell: '|' (Repurposing Hub, LINCS), ';' (CLUE, ChEMBL exports),
# ',' (spreadsheets). No gene symbol contains one of them (NCBI symbols: letters, digits, '-', '.', '@', '_').
_GENE_LIST_SEPARATORS = re.compile(r"[|;,]")


def split_gene_list(value: object) -> tuple[str, ...]:
    """The gene symbols of one cell listing several ("ABL1|KIT", "ABL1; KIT", "EGFR, ERBB2"), cleaned,
    blanks dropped, each once in order; () for a blank cell."""
    return tuple(dict.fromkeys(p for p in (clean_text(x) for x in _GENE_LIST_SEPARATORS.split(clean_text(value))) if p))


def canonical_gene_symbol(name: object, resolver=None) -> str:
    """A readout or target name as stored: the current symbol when `resolver` (GeneResolver) resolves it
    unambiguously (symbol, alias, previous symbol, Entrez id, Ensembl id), else the cleaned source name."""
    s = clean_text(name)
    if resolver is None or not s:
        return s
    m = resolver.resolve(s)
    return m.symbol if m.ok else s


KEPT_SOURCE_NAME = "kept source name (another source readout resolves to the same gene)"
RENAMED = "resolved to a different current symbol"


def stored_gene_names(names, resolver=None) -> tuple[dict[str, str], dict[str, int]]:
    """The name each distinct readout of one file is stored under, the one rule of the ingest
    (graph/io/tables.LongTableReader) and of the benchmark loaders (models/datasets.read_tahoe,
    read_replogle): canonical_gene_symbol, except where several of the file's names resolve to one gene
    (e.g. an Ensembl id and an old symbol): the name spelled exactly like the current symbol keeps it and
    the others keep their source names; with no exact spelling all keep their source names, so two
    measured readouts never merge into one. A genetic perturbation's targets take a readout's stored name
    when the file measures that name, else canonical_gene_symbol.

    Returns ({cleaned source name: stored name}, route counts: RENAMED, and KEPT_SOURCE_NAME when any)."""
    out: dict[str, str] = {}
    by_symbol: dict[str, list[str]] = {}
    for n in sorted(names):
        s = clean_text(n)
        out[s] = canonical_gene_symbol(s, resolver)
        by_symbol.setdefault(out[s], []).append(s)
    routes: dict[str, int] = {}
    for symbol, sources in by_symbol.items():
        if len(sources) > 1:
            for src in sources:
                if src != symbol:
                    out[src] = src
                    routes[KEPT_SOURCE_NAME] = routes.get(KEPT_SOURCE_NAME, 0) + 1
    routes[RENAMED] = sum(1 for k, v in out.items() if k != v)
    return out, routes


# ---------------------------------------------------------------------------------------------
# Doses and times
# ---------------------------------------------------------------------------------------------

MISSING = {"", "-666", "-666.0", "na", "nan", "none", "null", "n/a"}

# Concentration units -> factor to micromolar. Keys are lower case after NFKC (which folds the
# micro sign U+00B5 to Greek mu U+03BC); "um" is the old ASCII CMap spelling ("0.04 um").
_CONC_TO_UM = {"pm": 1e-6, "nm": 1e-3, "um": 1.0, "μm": 1.0, "mm": 1e3, "m": 1e6}
_TIME_TO_H = {"s": 1 / 3600, "sec": 1 / 3600, "min": 1 / 60, "m": 1 / 60, "h": 1.0, "hr": 1.0, "hrs": 1.0,
              "hour": 1.0, "hours": 1.0, "d": 24.0, "day": 24.0, "days": 24.0}
_NUMBER_UNIT = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s].*)?$")


def is_missing(text: str) -> bool:
    return text.lower() in MISSING


def round_sig(x: float) -> float:
    """Round to 6 significant digits so 0.1 * 1000 and 100 give the same id."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, 5 - int(math.floor(math.log10(abs(x)))))


def _number_and_unit(text: object, unit: object, what: str) -> tuple[float, str, str] | None:
    """"10 uM" / "10" + unit "uM" -> (10.0, "uM", the cleaned text); None when missing; the unit "" when
    neither names one; ValueError "unparseable <what> ..." when the text is no number."""
    s, u = clean_text(text), clean_text(unit)
    if is_missing(s):
        return None
    m = _NUMBER_UNIT.match(s)
    if not m:
        raise ValueError(f"unparseable {what} {s!r}")
    return float(m.group(1)), (m.group(2) or "").strip() or ("" if is_missing(u) else u), s


def parse_dose(text: object, unit: object = None) -> tuple[float | None, str]:
    """("10 uM" | "10uM" | "10 µM" | "10 μM" | "500 nM" | "0.04 um" | "1 mM") -> (value, "uM").

    `unit` is used when `text` is a bare number (CMap's pert_dose + pert_dose_unit). Concentrations are
    converted to micromolar; other units ("ng/mL", "%", "uL") are kept as given with their value.
    Missing values (empty, -666, NA) -> (None, ""). Unparseable text -> ValueError naming the text.
    """
    parsed = _number_and_unit(text, unit, "dose")
    if parsed is None:
        return None, ""
    value, given, s = parsed
    if not given:
        raise ValueError(f"dose {s!r} has no unit")
    factor = _CONC_TO_UM.get(given.lower())
    if factor is None:
        return value, given
    return round_sig(value * factor), "uM"


_BARE_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def is_bare_number(text: object) -> bool:
    """A dose or time written without its unit ("10", "24.0"): the unit comes from a unit column."""
    return bool(_BARE_NUMBER.match(clean_text(text)))


def parse_time(text: object, unit: object = None) -> tuple[float | None, str]:
    """("24 h" | "6h" | "30 min" | "2 d") -> (value, "h"); missing -> (None, ""); else ValueError."""
    parsed = _number_and_unit(text, unit, "time")
    if parsed is None:
        return None, ""
    value, given, s = parsed
    factor = _TIME_TO_H.get(given.lower())
    if factor is None:
        raise ValueError(f"time {s!r} has no known unit (got {given!r})")
    return round_sig(value * factor), "h"


def time_point(text: object, unit: object = None) -> tuple[tuple[float | None, str], str, bool]:
    """The one rule of a measurement's time point, for every reader (tables, h5ad, GCTX): ((value, "h") or
    (None, ""), its signature label suffix, unitless). "24 h" -> ((24.0, "h"), "|24h", False); blank ->
    ((None, ""), "", False). A bare number with no unit ("24"; sci-Plex writes time = 24) is kept apart as
    written, with no time recorded: ((None, ""), "|24", True), so two time points are never one signature
    and the file is not lost to a guessed unit. Unreadable text ("soon", "24 parsecs"): ValueError."""
    given = clean_text(text)
    if not given:
        return (None, ""), "", False
    try:
        value = parse_time(given, unit or None)
    except ValueError:
        if not clean_text(unit) and is_bare_number(given):
            return (None, ""), f"|{given}", True
        raise
    return value, (f"|{format_dose(*value)}" if value[0] is not None else ""), False


def unitless_time_note(values: list[str], unit_column: str, example: str) -> str:
    """The report text for the bare-number times `time_point` kept apart (one text for every reader);
    `unit_column` is the reader's column that would give their unit."""
    return (f"{len(values)} time value(s) without a unit ({', '.join(map(repr, values[:5]))}) kept apart as written, "
            f"with no time recorded; a {unit_column!r} column gives their unit, e.g. {example}")


def format_dose(value: float | None, unit: str) -> str:
    """Stable text for ids: 10.0 uM -> "10uM", 0.04 -> "0.04uM"; None -> ""."""
    if value is None:
        return ""
    return f"{round_sig(float(value)):g}{unit}"


# ---------------------------------------------------------------------------------------------
# Rank -> score
# ---------------------------------------------------------------------------------------------


def valid_rank(rank, n_ranked) -> np.ndarray:
    """True where 1 <= rank <= n_ranked, rank is a whole number and n_ranked >= 2 (both finite)."""
    r = np.asarray(rank, dtype=np.float64)
    n = np.asarray(n_ranked, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(r) & np.isfinite(n) & (n >= 2) & (r >= 1) & (r <= n) & (r == np.round(r))
                & (n == np.round(n)))


def signed_rank_score(rank, n_ranked, dtype=np.float32):
    """s = 1 - 2 (rank - 1) / (n_ranked - 1): rank 1 -> +1 (most up), rank n_ranked -> -1 (most down).

    Scalars give a float, arrays `dtype`. NaN where the rank is invalid (see valid_rank); the
    validation step quarantines such rows before any score is used.
    """
    r = np.asarray(rank, dtype=np.float64)
    n = np.asarray(n_ranked, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 1.0 - 2.0 * (r - 1.0) / (n - 1.0)
    s = np.where(valid_rank(r, n), s, np.nan)
    return float(s) if s.ndim == 0 else s.astype(dtype)


def up_rank_score(rank, n_ranked, dtype=np.float32):
    """u = 1 - (rank - 1) / n_ranked: 1 for rank 1, 1/n for the last kept rank, for lists that hold only
    the up-regulated end (Replogle top-1,000), where the signed score would call the last rank "most
    down". NaN where the rank is invalid."""
    r = np.asarray(rank, dtype=np.float64)
    n = np.asarray(n_ranked, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 1.0 - (r - 1.0) / n
    s = np.where(valid_rank(r, n), s, np.nan)
    return float(s) if s.ndim == 0 else s.astype(dtype)


# ---------------------------------------------------------------------------------------------
# Contexts of context-free signatures
# ---------------------------------------------------------------------------------------------

# Consensus signatures (one per compound or gene over-expression / knock-down, summarised over cell
# lines) have no cell-line axis. A table without a context column, read without --context NAME, gets
# this one context, so its rows are still keyed (context, perturbation, readout) like every other
# input and never mix with a real cell line ("CONSENSUS" is no LINCS cell id). The reader notes it.
CONSENSUS_CONTEXT = "CONSENSUS"


_DATA_SUFFIXES = (".gz", ".parquet", ".pq", ".gctx", ".gct", ".h5ad", ".tsv", ".tab", ".txt", ".csv", ".gmt")


def dataset_id_for(path) -> str:
    """A dataset's id from its file name, the one rule every entry point uses (the CLI's readers, the
    pipeline's inputs): the data suffixes removed, lower case, runs of other characters as '_'
    ('Screen.v2.csv.gz' -> 'screen_v2')."""
    stem = Path(path).name
    for suffix in _DATA_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "dataset"

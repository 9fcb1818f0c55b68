"""Gene-gene edges from the best source, scored when a version is published (pure numpy / pandas).

Candidate sources of a gene x gene similarity, each a per-gene profile table (index = gene key as
text, e.g. the Entrez id):

* ``lpm_knockdown``  — the LPM's genetic-perturbation (knock-down) embeddings (centred cosine);
* ``lpm_readout``    — the LPM's readout embeddings (the gene as something measured);
* ``lpm_imputed``    — LPM-imputed response profiles of the knock-down in every context
  (`models.discovery.response_profiles`), including contexts where it was never run;
* ``signature_correlation`` — the simple answer: Pearson correlation of the genes' measured
  knock-down signatures in the version's own training table (`models.discovery.knockdown_signatures`);
* ``measured_pattern_correlation`` — Pearson correlation of the 0/1 pattern of which (context, readout)
  cells each gene's signature measured (`models.discovery.measured_pattern`; correlation-derived, so gated
  like any other non-correlation source); a candidate only on truncated signatures (`pattern_exclusion`);
* ``combined``       — the rank average of all the other sources' pair scores.

`score_edge_sources` scores every source on the references the graph holds (CORUM co-membership,
STRING pairs), over the *same* gene pairs for every source (genes every eligible source covers),
twice: over all pairs ("with prior") and with the pairs given to the model as its gene prior
removed ("without prior": a prior edge fed to the gene encoder is never a discovery). The source
chosen is the best on the without-prior AUPRC averaged over the references; it is published only if
it is at least as good as signature correlation on *every* reference, otherwise correlation is
published and tagged ``signature_correlation``. With no reference pair outside the prior among the
covered genes (a tiny world, or all references given to the model) nothing can be validated:
correlation is published, and the report says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.discovery import (
    INTERACTION_COLUMNS,
    _as_frame,
    _top_k,
    l2_normalise,
)

CORRELATION = "signature_correlation"
COMBINED = "combined"
MEASURED_PATTERN = "measured_pattern_correlation"
SOURCES = ("lpm_knockdown", "lpm_readout", "lpm_imputed", CORRELATION, MEASURED_PATTERN, COMBINED)
# The measured pattern is a candidate only when it can differ between genes. Its rule: the fraction of cells
# measured within the (gene, context) blocks a gene was run in (so which contexts were run, a design choice,
# never counts); at or above MAX_MEASURED_FRACTION (dense data: Tahoe, L1000, the simulated world measure every
# readout, fraction 1) at most 5% of a gene's cells could differ from another's, and it is left out. Replogle's
# top-1,000 lists are the case it is for (docs/results.md, issue 17 H-E1).
MAX_MEASURED_FRACTION = 0.95
SELECTION_METRIC = "auprc"


def similarity(profiles: pd.DataFrame, how: str = "cosine") -> pd.DataFrame:
    """Square gene x gene similarity of the rows. 'cosine': after removing the mean row (as
    `models.discovery.gene_interactions` scores embeddings); 'pearson': each row centred over its
    own features (the correlation of two signatures)."""
    prof = _as_frame(profiles)
    x = prof.to_numpy(np.float64)
    if how == "pearson":
        x = x - x.mean(axis=1, keepdims=True)
    elif how == "cosine":
        x = x - x.mean(axis=0, keepdims=True) if len(x) else x
    else:
        raise ValueError("how must be 'cosine' or 'pearson'")
    u = l2_normalise(x)
    return pd.DataFrame(u @ u.T, index=prof.index, columns=prof.index)


def rank_average(scores: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The mean, over sources, of each pair's rank percentile (off-diagonal) on the genes all share."""
    genes = _common_genes(scores.values())
    if len(genes) < 2:
        return pd.DataFrame(dtype=np.float64)
    iu, ju = np.triu_indices(len(genes), k=1)
    acc = np.zeros(len(iu))
    for s in scores.values():
        v = s.loc[genes, genes].to_numpy()[iu, ju]
        acc += pd.Series(v).rank(pct=True).to_numpy()
    out = np.zeros((len(genes), len(genes)))
    out[iu, ju] = out[ju, iu] = acc / len(scores)
    np.fill_diagonal(out, 1.0)
    return pd.DataFrame(out, index=genes, columns=genes)


def _common_genes(frames: Iterable[pd.DataFrame]) -> list[str]:
    frames = list(frames)
    if not frames:
        return []
    common = set(frames[0].index)
    for f in frames[1:]:
        common &= set(f.index)
    return sorted(common)


def _pairs(pairs: Iterable[tuple[Any, Any]] | None) -> set[frozenset[str]]:
    return {frozenset((str(a), str(b))) for a, b in (pairs or ()) if str(a) != str(b)}


def given_prior(config, gene_graph: pd.DataFrame | None) -> pd.DataFrame | None:
    """The gene pairs a model was given as its prior (the "prior" EdgeReferences removes): its gene graph
    (source, target) when its LPMConfig uses one (use_gene_graph), else none (the paper model)."""
    return gene_graph if config.use_gene_graph else None


@dataclass(frozen=True)
class EdgeReferences:
    """Reference gene pairs (reference name -> unordered pairs of gene keys) and the pairs the model
    was given as its gene prior."""

    pairs: Mapping[str, frozenset[frozenset[str]]]
    prior: frozenset[frozenset[str]] = frozenset()

    @classmethod
    def build(cls, pairs: Mapping[str, Iterable[tuple[Any, Any]]],
              prior: Iterable[tuple[Any, Any]] | None = None) -> EdgeReferences:
        return cls({name: frozenset(_pairs(p)) for name, p in pairs.items()}, frozenset(_pairs(prior)))


def _block(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    res: dict[str, Any] = {"pairs": int(len(y)), "positives": int(y.sum()),
                           "base_rate": float(y.mean()) if len(y) else None, "auprc": None, "auroc": None}
    if 0 < y.sum() < len(y):
        res["auprc"] = float(average_precision_score(y, s))
        res["auroc"] = float(roc_auc_score(y, s))
    return res


@dataclass(frozen=True)
class EdgeSourceReport:
    """What `score_edge_sources` found: per source and reference the scores with and without the
    prior, the source chosen, and whether it beats the simple answer."""

    genes_scored: int
    scores: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]  # source -> ref -> with/without
    coverage: Mapping[str, int]
    excluded: Mapping[str, str]  # source -> why it was not compared
    best: str | None  # best-scoring source (None: nothing could be validated)
    published: str  # the source whose edges are written
    reason: str
    references: tuple[str, ...] = field(default_factory=tuple)  # references with positives outside the prior

    def selection_score(self, source: str) -> float | None:
        vals = [self.scores[source][r]["without_prior"][SELECTION_METRIC] for r in self.references]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    def as_dict(self) -> dict[str, Any]:
        return {"genes_scored": self.genes_scored, "coverage": dict(self.coverage), "excluded": dict(self.excluded),
                "references": list(self.references), "best": self.best, "published": self.published,
                "reason": self.reason, "metric": f"{SELECTION_METRIC} without prior, mean over references",
                "published_score": self.selection_score(self.published) if self.references else None,
                "baseline_score": self.selection_score(CORRELATION) if self.references else None,
                "scores": {s: {r: dict(v) for r, v in by.items()} for s, by in self.scores.items()}}


def beats_correlation(scores: Mapping[str, Mapping[str, Mapping[str, Any]]], source: str,
                      references: Iterable[str]) -> bool:
    """True when `source` is at least as good as signature correlation (without-prior AUPRC) on every
    reference. The one rule both the selection and the blocking asset check use."""
    if source == CORRELATION:
        return True
    refs = list(references)
    if not refs or source not in scores or CORRELATION not in scores:
        return False
    for r in refs:
        ours = scores[source][r]["without_prior"][SELECTION_METRIC]
        base = scores[CORRELATION][r]["without_prior"][SELECTION_METRIC]
        if ours is None or base is None or ours < base:
            return False
    return True


def score_edge_sources(scores: Mapping[str, pd.DataFrame], references: EdgeReferences, *,
                       force: str | None = None, min_coverage: float = 0.5, max_genes: int = 2000,
                       seed: int = 0) -> EdgeSourceReport:
    """Score each square similarity table (`similarity` / `rank_average` output) against the
    references and choose the source to publish.

    A source covering fewer than `min_coverage` of the genes signature correlation covers is not
    compared (it could not give edges for most genes); all others are scored on the pairs of the genes
    they all cover (at most `max_genes`, a seeded sample beyond: pairs grow quadratically). `force`
    publishes a named source whatever it scores (the blocking check then decides)."""
    if CORRELATION not in scores:
        raise ValueError("signature correlation (the simple answer) must be among the sources")
    if force is not None and force not in scores:
        raise ValueError(f"edge source {force!r} is not available; have {sorted(scores)}")
    base_n = len(scores[CORRELATION])
    coverage = {name: int(len(s)) for name, s in scores.items()}
    excluded = {name: f"covers {len(s)} of the {base_n} genes correlation covers"
                for name, s in scores.items() if base_n and len(s) < min_coverage * base_n}
    excluded = {**getattr(scores, "excluded", {}), **excluded}  # CandidateScores: sources never built, and why
    eligible = {n: s for n, s in scores.items() if n not in excluded}
    genes = _common_genes(eligible.values())
    if len(genes) > max_genes:
        genes = sorted(np.random.default_rng(seed).choice(genes, size=max_genes, replace=False).tolist())
    iu, ju = np.triu_indices(len(genes), k=1)
    keys = [frozenset(p) for p in zip(np.asarray(genes, dtype=object)[iu], np.asarray(genes, dtype=object)[ju],
                                      strict=True)]
    in_prior = np.fromiter((k in references.prior for k in keys), bool, len(keys))
    truth = {r: np.fromiter((k in p for k in keys), bool, len(keys)) for r, p in references.pairs.items()}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, s in eligible.items():
        v = s.loc[genes, genes].to_numpy()[iu, ju] if len(genes) >= 2 else np.zeros(0)
        out[name] = {r: {"with_prior": _block(y, v), "without_prior": _block(y[~in_prior], v[~in_prior])}
                     for r, y in truth.items()}
    usable = tuple(r for r, y in truth.items() if 0 < int(y[~in_prior].sum()) < int((~in_prior).sum()))
    report = dict(genes_scored=len(genes), scores=out, coverage=coverage, excluded=excluded, references=usable)
    if not usable:
        why = ("no reference pairs among the covered genes" if not any(y.any() for y in truth.values())
               else "every reference pair among the covered genes was given to the model as prior")
        published = force or CORRELATION
        return EdgeSourceReport(best=None, published=published, reason=f"{why}: nothing can be validated, "
                                f"{'forced ' + force if force else 'signature correlation published'}", **report)
    tmp = EdgeSourceReport(best=None, published=CORRELATION, reason="", **report)
    def order(n: str) -> tuple[float, bool, str]:
        v = tmp.selection_score(n)
        return (-(v if v is not None else -1.0), n != CORRELATION, n)

    ranked = sorted(eligible, key=order)
    best = ranked[0]
    if force is not None:
        published, reason = force, f"forced by configuration (best: {best})"
    elif beats_correlation(out, best, usable):
        published = best
        reason = ("signature correlation scores best" if best == CORRELATION
                  else f"{best} scores at least as well as signature correlation on {', '.join(usable)}")
    else:
        published, reason = CORRELATION, f"{best} scores best on average but below correlation on some reference"
    return EdgeSourceReport(best=best, published=published, reason=reason, **report)


class CandidateScores(dict):
    """source -> square similarity table, plus `excluded`: sources not built and why (the report lists them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.excluded: dict[str, str] = {}


def measured_fraction(measured: pd.DataFrame) -> float:
    """Fraction of cells measured within the (gene, context) blocks each gene was run in (columns
    "context|readout"; columns without a context form one block)."""
    m = _as_frame(measured).to_numpy(np.float64) > 0
    if not m.size:
        return 1.0
    ctx = pd.Index([str(c).rsplit("|", 1)[0] if "|" in str(c) else "" for c in measured.columns])
    run = np.zeros_like(m)
    for c in ctx.unique():
        cols = np.asarray(ctx == c)
        run[:, cols] = m[:, cols].any(axis=1, keepdims=True)
    return float(m.sum() / run.sum()) if run.any() else 1.0


def pattern_exclusion(measured: pd.DataFrame) -> str | None:
    """Why the measured pattern is not a candidate (None: it is). The rule: MAX_MEASURED_FRACTION."""
    frac = measured_fraction(measured)
    if frac >= MAX_MEASURED_FRACTION:
        return (f"{frac:.3f} of the cells in the contexts each gene was run in are measured (>= "
                f"{MAX_MEASURED_FRACTION}): the pattern carries no information")
    return None


def candidate_scores(*, signatures: pd.DataFrame, knockdown: pd.DataFrame | None = None,
                     readout: pd.DataFrame | None = None, imputed: pd.DataFrame | None = None,
                     measured: pd.DataFrame | None = None, min_coverage: float = 0.5) -> CandidateScores:
    """Square similarity tables of every available source (profiles with fewer than 2 genes are left
    out), plus `combined`: the rank average of the sources covering at least `min_coverage` of the
    genes correlation covers (when there are at least two). `measured` (`models.discovery.measured_pattern`
    of the same table) adds measured_pattern_correlation unless `pattern_exclusion` leaves it out, recorded
    in `.excluded`. `combined` includes it when present: combined is the rank average of every eligible source,
    one rule, with no per-source exceptions."""
    out = CandidateScores()
    if len(signatures) >= 2:
        out[CORRELATION] = similarity(signatures, "pearson")
    if measured is not None and len(measured) >= 2:
        why = pattern_exclusion(measured)
        if why is None:
            out[MEASURED_PATTERN] = similarity(measured, "pearson")  # constant rows score 0, never NaN
        else:
            out.excluded[MEASURED_PATTERN] = why
    for name, prof in (("lpm_knockdown", knockdown), ("lpm_imputed", imputed), ("lpm_readout", readout)):
        if prof is not None and len(prof) >= 2:
            out[name] = similarity(prof, "cosine")
    if CORRELATION in out:
        n = len(out[CORRELATION])
        parts = {k: v for k, v in out.items() if len(v) >= min_coverage * n}
        if len(parts) >= 2:
            comb = rank_average(parts)
            if len(comb) >= 2:
                out[COMBINED] = comb
    return out


def edges_from_scores(scores: pd.DataFrame, *, k: int = 10, prior_pairs: Iterable[tuple[Any, Any]] | None = None,
                      method: str = "") -> pd.DataFrame:
    """Each gene's top-k most similar other genes from a square score table: INTERACTION_COLUMNS plus
    `method` (the source the edges come from)."""
    if len(scores) < 2:
        return pd.DataFrame(columns=[*INTERACTION_COLUMNS, "method"])
    s = scores.to_numpy(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    names = scores.index.astype(str).to_numpy()
    idx, vals = _top_k(s, min(k, len(names) - 1))
    rows = np.repeat(np.arange(len(names)), idx.shape[1])
    prior = _pairs(prior_pairs)
    out = pd.DataFrame({"source": names[rows], "target": names[idx.ravel()], "score": vals.ravel(),
                        "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(names)).astype(np.int64)})
    out["in_prior"] = [frozenset((a, b)) in prior for a, b in zip(out["source"], out["target"], strict=True)]
    out["method"] = method
    return out.loc[:, [*INTERACTION_COLUMNS, "method"]]


def edge_gate(edge_quality: Mapping[str, Any]) -> tuple[bool, str]:
    """The blocking rule on published edges (`EdgeSourceReport.as_dict()` plus `method`): edges from
    signature correlation pass (they are tagged as such); any other source passes only if it scores
    at least as well as correlation on every reference outside the prior."""
    method = edge_quality.get("method") or edge_quality.get("published")
    if method == CORRELATION:
        return True, "edges are signature correlation, tagged method='signature_correlation'"
    refs = list(edge_quality.get("references") or [])
    if not refs:
        return False, f"{method} edges cannot be validated (no reference pairs outside the prior) and are not correlation"
    if beats_correlation(edge_quality.get("scores") or {}, method, refs):
        return True, f"{method} scores at least as well as signature correlation on {', '.join(refs)}"
    return False, f"{method} edges score below signature correlation on at least one of {', '.join(refs)}"

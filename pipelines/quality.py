"""The quality rules the pipeline publishes by, on plain records (no Dagster, no Neo4j):

* `published_vs_strongest_baseline`: what the production predictor publishes scores at least the
  strongest baseline on the validation experiments (the blocking check on `lpm_model`);
* `production_margins`: production's test score minus the strongest baseline's, per seed
  (`evaluation_report`);
* `prediction_quality` + `quality_table`: the per-discovery-type quality record of a version
  (`discoveries`, `perturbgraph query model-versions`).

A Selection record is models.predictor.Selection.to_dict().
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MARGIN_METRIC = "pearson_per_signature"  # the production predictor's selection metric
SELECTION_COLUMNS = ("pearson_per_signature", "pearson", "rmse")


def finite(x: float) -> float | None:
    """A float for metadata and JSON: None for NaN / inf."""
    return float(x) if np.isfinite(x) else None


def num(x) -> float | None:
    return None if x is None else float(x)


def selection_table(selection: dict) -> str:
    """Markdown: every candidate's validation metrics, the chosen one marked."""
    lines = ["| candidate | " + " | ".join(SELECTION_COLUMNS) + " |", "|---|" + "---|" * len(SELECTION_COLUMNS)]
    for cand, m in selection["validation"].items():
        mark = " (chosen)" if cand == selection["chosen"] else ""
        lines.append(f"| {cand}{mark} | " + " | ".join(f"{m[k]:.3f}" for k in SELECTION_COLUMNS) + " |")
    return "\n".join(lines)


def published_vs_strongest_baseline(selection: dict) -> tuple[bool, dict]:
    """The rule of `production_not_below_strongest_baseline`: what the production predictor publishes
    scores at least the strongest baseline on the validation experiments. A baseline chosen is a pass
    (the simple answer is published); an LPM candidate must not score below it. Returns (passed, metadata)."""
    metric, chosen, best = selection["metric"], selection["chosen"], selection["best_baseline"]
    scores = {c: float(m[metric]) for c, m in selection["validation"].items()}
    ours, base = scores.get(chosen, float("nan")), scores.get(best, float("nan"))
    margin = ours - base
    passed = bool(np.isfinite(margin) and margin >= 0)
    if chosen not in scores or best not in scores:
        passed, verdict = False, f"refused: the selection record has no {metric} for {chosen!r} or {best!r}"
    elif chosen == best:  # a baseline won on validation: the simple answer is what gets published
        lost = (f"the LPM did not beat it by enough ({selection['passed_over']})" if selection.get("passed_over")
                else "the LPM did not beat it")
        verdict = f"published: {chosen}, {lost}" if passed else f"refused: {chosen} has no score"
    elif passed:
        verdict = f"published: {chosen}, {margin:+.4f} {metric} over {best}"
    else:
        verdict = f"refused: {chosen} scores {margin:+.4f} {metric} below the strongest baseline {best}"
    return passed, {"verdict": verdict, "chosen": chosen, "strongest_baseline": best, "metric": metric,
                    "chosen_score": ours, "strongest_baseline_score": base, "margin": margin,
                    "recorded_margin": float(selection.get("margin", float("nan"))),
                    "validation_scores": scores}


def production_margins(results: pd.DataFrame, metric: str = MARGIN_METRIC) -> dict:
    """Per seed of harness rows: the production predictor's test score minus the strongest baseline's of
    the same seed (the baseline with the best `metric` that seed; higher is better), and wins / losses /
    ties over seeds (a tie: |margin| < 1e-9, what a baseline chosen by the predictor gives)."""
    from models.registry import BASELINE_NAMES

    ok = results[results["error"] == ""] if "error" in results else results
    per_seed = []
    for seed, rows in ok.groupby("seed"):
        prod = rows.loc[rows["model"] == "production", metric]
        base = rows[rows["model"].isin(BASELINE_NAMES)].dropna(subset=[metric])
        if prod.empty or base.empty:
            continue
        best = base.loc[base[metric].idxmax()]
        margin = float(prod.iloc[0]) - float(best[metric])
        per_seed.append({"seed": int(seed), "production": float(prod.iloc[0]), "strongest_baseline": str(best["model"]),
                         "baseline_score": float(best[metric]), "margin": margin})
    margins = np.array([r["margin"] for r in per_seed])
    ties = np.abs(margins) < 1e-9
    return {"metric": metric, "per_seed": per_seed, "wins": int(((margins > 0) & ~ties).sum()),
            "losses": int(((margins < 0) & ~ties).sum()), "ties": int(ties.sum()),
            "mean_margin": float(margins.mean()) if len(margins) else None}


def margins_table(margins: dict) -> str:
    """Markdown of production_margins: one line per seed, then wins / losses / ties and the mean."""
    lines = [f"| seed | production | strongest baseline | its {margins['metric']} | margin |", "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['production']:.4f} | {r['strongest_baseline']} | {r['baseline_score']:.4f} | "
              f"{r['margin']:+.4f} |" for r in margins["per_seed"]]
    mean = margins["mean_margin"]
    lines.append(f"\nwins {margins['wins']}, losses {margins['losses']}, ties {margins['ties']}; mean margin "
                 + ("–" if mean is None else f"{mean:+.4f}"))
    return "\n".join(lines)


def prediction_quality(selection: dict) -> dict:
    """The predictions' quality record: the production predictor's choice on validation experiments
    against the strongest baseline, with the rule's verdict."""
    passed, meta = published_vs_strongest_baseline(selection)
    return {"method": meta["chosen"], "metric": f"{meta['metric']} on validation experiments",
            "score": meta["chosen_score"], "baseline": meta["strongest_baseline"],
            "baseline_score": meta["strongest_baseline_score"], "margin": meta["margin"], "passes": passed,
            "status": meta["verdict"]}


def quality_table(quality: dict) -> str:
    """Per discovery type: source published, its validation score, the simple answer and its score, status."""
    p, e, m = quality.get("predictions") or {}, quality.get("edges") or {}, quality.get("mechanisms") or {}
    mech_status = (f"{m.get('significant', 0)} links significant at q <= {m.get('fdr')}; {m.get('reason', '')}"
                   if m.get("method") else str(m.get("reason", "not computed")))
    rows = [("predictions (PREDICTED_EFFECT)", p.get("method"), p.get("metric"), p.get("score"), p.get("baseline"),
             p.get("baseline_score"), p.get("status")),
            ("gene-gene edges (PREDICTED_INTERACTION)", e.get("method"), e.get("metric"), e.get("score"),
             e.get("baseline"), e.get("baseline_score"), e.get("gate") or e.get("reason")),
            ("mechanism links (SHARES_MECHANISM_WITH)", m.get("method"), m.get("metric"), m.get("score"),
             m.get("baseline"), m.get("baseline_score"), mech_status)]
    lines = ["| discovery | source | metric | validation score | simple answer | its score | status |",
             "|---|---|---|---|---|---|---|"]
    for name, source, metric, score, base, base_score, status in rows:
        lines.append(f"| {name} | {source or '–'} | {metric or '–'} | {_fmt(score)} | {base or '–'} | "
                     f"{_fmt(base_score)} | {status or '–'} |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "–" if x is None else f"{float(x):.4f}"

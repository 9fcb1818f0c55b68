"""One code path that evaluates the LPM and every baseline on the same splits and seeds.

    results = run_benchmark(df, "unseen-experiment", context="A498", models=["lpm", "baselines"],
                            seeds=[0, 1, 2, 3, 4], resources=Resources(side=SideInformation(...)))
    table = markdown_table(summarize(results))

Leakage guard: models are fitted on `split.train` (+ `split.valid` for early stopping) and asked to
predict `split.test` with the `value` column removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation.baselines import KEY_COLUMNS
from models.evaluation.metrics import HIGHER_IS_BETTER, METRIC_NAMES, evaluate_predictions, summarize
from models.evaluation.splits import GENETIC_TYPES, Split, make_split
from models.registry import (  # noqa: F401 - re-exported: the harness's public names
    BASELINE_NAMES,
    LPM_NAMES,
    MODEL_NAMES,
    STACKED_MEMBERS,
    ZERO_SHOT_SYMBOL_DROPOUT,
    Resources,
    build_model,
    fit_model,
)


def expand_model_names(names: Iterable[str], df: pd.DataFrame, resources: Resources) -> list[str]:
    """'baselines' -> every baseline that applies to the data (Tanimoto kNN only with compounds and SMILES,
    mechanism kNN only with compounds and their annotations, network kNN only with genetic perturbations
    and a gene graph; else each equals context_mean)."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name == "baselines":
            types = df["perturbation_type"].astype(str)
            has_compounds = (types == "compound").any()
            applies = {"tanimoto_knn": has_compounds and bool(resources.compound_smiles),
                       "network_knn": types.isin(GENETIC_TYPES).any() and resources.gene_graph is not None,
                       "corum_knn": types.isin(GENETIC_TYPES).any() and resources.complex_graph is not None,
                       "mechanism_knn": has_compounds and bool(resources.compound_annotations)}
            out += [b for b in BASELINE_NAMES if applies.get(b, True)]
        elif name in MODEL_NAMES:
            out.append(name)
        else:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)} or baselines")
    return list(dict.fromkeys(out))


def _fit(model, split: Split):
    return fit_model(model, split.train, split.valid if len(split.valid) else None)


def evaluate_model(model, split: Split) -> dict[str, float]:
    """Fit on train (+valid), predict test without its values, score. Adds fit/predict seconds."""
    t0 = time.perf_counter()
    _fit(model, split)
    return score_fitted(model, split, fit_s=time.perf_counter() - t0)


def score_fitted(model, split: Split, *, fit_s: float) -> dict[str, float]:
    """Predict test without its values with a model already fitted on `split`, score; `fit_s` recorded."""
    t0 = time.perf_counter()
    # No `value`, and rows shuffled: predictions can see neither the answer nor the source's rank order.
    test = split.test.sample(frac=1.0, random_state=split.seed).reset_index(drop=True)
    pred = np.asarray(model.predict(test[KEY_COLUMNS].copy()), dtype=np.float64)
    out = evaluate_predictions(test, pred)
    out.update(fit_s=fit_s, predict_s=time.perf_counter() - t0)
    if hasattr(model, "describe"):  # e.g. the stacked weights or the production choice, beside the metrics
        out["detail"] = model.describe()
    elif getattr(model, "history", None):  # an LPM: how long it trained, which epoch it kept
        best = min(model.history, key=lambda h: h.get("valid_loss", h["train_loss"]))
        out["detail"] = f"{len(model.history)} epochs, best {best['epoch']}"
        if sel := getattr(model, "base_selection", None):  # a residual LPM's base, chosen on validation
            out["detail"] += f", base {sel['chosen']}"
        if (u := getattr(model, "valid_unscored", {})).get("rows"):  # LPM._scored_validation
            out["detail"] += f"; {u['rows']:,} validation rows ({u['readouts']:,} readouts without a gene node) not scored"
    return out


def evaluate_production_and_lpm(split: Split, *, seed: int, resources: Resources,
                                split_kind: str) -> tuple[dict[str, float], dict[str, float]]:
    """(`lpm` row, `production` row) on the same test rows for one LPM fit: the registry's `lpm` (the
    very model the `lpm` row builds: same seed, training rows and settings) is fitted once and handed to
    the production predictor as its prefitted LPM member. Production's fit_s includes its LPM's."""
    from models.predictor import ProductionPredictor
    from models.registry import production_members

    lpm = build_model("lpm", seed=seed, resources=resources, split_kind=split_kind)
    t0 = time.perf_counter()
    _fit(lpm, split)
    lpm_s = time.perf_counter() - t0
    predictor = ProductionPredictor(production_members(seed, resources, split_kind, lpm=lpm), seed=seed,
                                    prefitted=("lpm",))
    prod = evaluate_model(predictor, split)
    prod["fit_s"] += lpm_s
    return score_fitted(lpm, split, fit_s=lpm_s), prod


def run_benchmark(df: pd.DataFrame, split_kind: str, *, context: str | None = None,
                  models: Sequence[str] = ("baselines",), seeds: Sequence[int] = (0, 1, 2, 3, 4),
                  resources: Resources | None = None, split_kwargs: dict | None = None,
                  on_result: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Every model on the same split per seed. Returns one row per (model, seed) with all metrics,
    timings, split sizes and the split description. A model that fails is recorded with its error
    (metrics NaN) so one broken model does not lose the other rows. With both `lpm` and `production`,
    the `lpm` row is production's LPM member: one LPM fit per seed (evaluate_production_and_lpm)."""
    resources = resources or Resources()
    names = expand_model_names(models, df, resources)
    paired = {"lpm", "production"} <= set(names)
    rows = []
    for seed in seeds:
        split = make_split(df, split_kind, context=context, seed=seed, **(split_kwargs or {}))
        pair: dict[str, object] = {}  # the seed's (lpm, production) rows, computed at the first of the two
        for name in names:
            record = {"model": name, "seed": seed, "split": split_kind, "context": context or "",
                      "n_train": len(split.train), "n_test": len(split.test),
                      "n_test_experiments": len(split.experiments("test")), "description": split.description,
                      "error": ""}
            try:
                if paired and name in ("lpm", "production"):
                    if not pair:  # a failed fit fails both rows (recorded once, not refitted)
                        try:
                            pair.update(zip(("lpm", "production"), evaluate_production_and_lpm(
                                split, seed=seed, resources=resources, split_kind=split_kind), strict=True))
                        except Exception as exc:  # noqa: BLE001 - raised again for each of the two rows
                            pair["failed"] = exc
                    if "failed" in pair:
                        raise pair["failed"]
                    record.update(pair[name])
                else:
                    record.update(evaluate_model(build_model(name, seed=seed, resources=resources,
                                                             split_kind=split_kind), split))
            except Exception as exc:  # noqa: BLE001 - recorded, reported in the table
                record["error"] = f"{type(exc).__name__}: {exc}"
                record.update({m: float("nan") for m in METRIC_NAMES})
            rows.append(record)
            if on_result is not None:
                on_result(record)
    return pd.DataFrame(rows)


def _fmt(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.3f}" if np.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def markdown_table(results: pd.DataFrame, metrics: Sequence[str] = METRIC_NAMES) -> str:
    """mean ± sd over seeds per model; the best mean per metric in bold (ties all bold)."""
    summary = summarize(results)
    metrics = [m for m in metrics if m in summary["mean"].columns]
    n_seeds = results.groupby("model")["seed"].nunique()
    lines = ["| model | seeds | " + " | ".join(metrics) + " | fit s |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    best = {}
    for m in metrics:
        col = summary["mean"][m].dropna()
        if len(col):
            best[m] = col.max() if HIGHER_IS_BETTER[m] else col.min()
    for model in summary.index:
        cells = []
        for m in metrics:
            mean, sd = summary["mean"].at[model, m], summary["sd"].at[model, m]
            cell = _fmt(mean, sd)
            if m in best and not np.isnan(mean) and np.isclose(mean, best[m], atol=5e-4):
                cell = f"**{cell}**"
            cells.append(cell)
        fit_s = summary["mean"].at[model, "fit_s"] if "fit_s" in summary["mean"].columns else float("nan")
        lines.append(f"| {model} | {n_seeds[model]} | " + " | ".join(cells) + f" | {fit_s:.1f} |")
    errors = results.loc[results["error"].astype(bool), ["model", "seed", "error"]] if "error" in results else []
    for _, e in (errors.iterrows() if len(errors) else []):
        lines.append(f"\n- {e['model']} seed {e['seed']} failed: {e['error']}")
    return "\n".join(lines)


def write_results(results: pd.DataFrame, out_dir: str | Path, name: str = "results", title: str = "") -> tuple[Path, Path]:
    """<out_dir>/<name>.json (every row) and <name>.md (the mean ± sd table)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    records = json.loads(results.to_json(orient="records"))  # NaN -> null
    json_path.write_text(json.dumps(records, indent=1))
    header = f"## {title}\n\n" if title else ""
    desc = f"{results['description'].iloc[0]}\n\n" if len(results) else ""
    md_path.write_text(header + desc + markdown_table(results) + "\n")
    return json_path, md_path

"""One code path that evaluates the LPM and every baseline on the same splits and seeds.

    results = run_benchmark(df, "unseen-experiment", context="A498", models=["lpm", "baselines"],
                            seeds=[0, 1, 2, 3, 4], resources=Resources(compound_smiles=...))
    table = markdown_table(summarize(results))

Leakage guard: models are fitted on `split.train` (+ `split.valid` for early stopping) and asked to
predict `split.test` with the `value` column removed.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation.baselines import (
    KEY_COLUMNS,
    ContextReadoutMean,
    GlobalMean,
    LinearPCARidge,
    NoChange,
    OtherContextsMean,
    TanimotoKNN,
)
from models.evaluation.metrics import HIGHER_IS_BETTER, METRIC_NAMES, evaluate_predictions, summarize
from models.evaluation.splits import Split, make_split

BASELINE_NAMES = ("global_mean", "no_change", "context_mean", "other_contexts", "linear", "tanimoto_knn")
# lpm = LPMConfig() with every encoder; lpm_paper = the published model (learned embeddings only);
# lpm_zeroshot = lpm trained for unseen symbols: learned vectors dropped half the time (symbol_dropout).
# lpm_stacked = lpm and the simple baselines in one convex combination fitted on validation experiments.
LPM_NAMES = ("lpm", "lpm_paper", "lpm_zeroshot", "lpm_stacked")
ZERO_SHOT_SYMBOL_DROPOUT = 0.5
STACKED_MEMBERS = ("lpm", "context_mean", "other_contexts", "linear")


@dataclass
class Resources:
    """Side information handed to models that can use it (all optional)."""

    compound_smiles: dict[str, str] = field(default_factory=dict)
    gene_graph: pd.DataFrame | None = None  # source, target, weight
    context_features: pd.DataFrame | None = None
    perturbation_targets: dict[str, list[str]] | None = None
    perturbation_compounds: dict[str, str] | None = None  # perturbation -> key in compound_smiles
    perturbation_doses: dict[str, float] | None = None  # perturbation -> dose (uM)
    lpm_epochs: int | None = None  # None = LPMConfig default
    lpm_config: object | None = None  # an LPMConfig; overrides lpm_epochs


def expand_model_names(names: Iterable[str], df: pd.DataFrame, resources: Resources) -> list[str]:
    """'baselines' -> every baseline that applies to the data (Tanimoto kNN only with compounds and SMILES)."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name == "baselines":
            has_compounds = (df["perturbation_type"].astype(str) == "compound").any()
            out += [b for b in BASELINE_NAMES
                    if b != "tanimoto_knn" or (has_compounds and bool(resources.compound_smiles))]
        elif name in LPM_NAMES or name in BASELINE_NAMES:
            out.append(name)
        else:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(LPM_NAMES)}, baselines, "
                             f"{', '.join(BASELINE_NAMES)}")
    return list(dict.fromkeys(out))


def build_model(name: str, *, seed: int, resources: Resources, split_kind: str = ""):
    """A fresh, unfitted model. The linear baseline picks perturbation features that exist for the
    split: fingerprints for unseen compounds, the target gene's embedding for unseen genes, the
    perturbation's profile in other contexts otherwise."""
    if name == "lpm_stacked":
        from models.evaluation.stacking import StackedLPM

        return StackedLPM({m: build_model(m, seed=seed, resources=resources, split_kind=split_kind)
                           for m in STACKED_MEMBERS})
    if name in LPM_NAMES:
        from dataclasses import replace

        from models.lpm import LPM
        from models.module import LPMConfig

        config = resources.lpm_config
        if config is None:
            config = LPMConfig() if resources.lpm_epochs is None else LPMConfig(max_epochs=resources.lpm_epochs)
        if name == "lpm_paper":  # same training settings, every feature encoder off
            config = replace(config, use_compound_encoder=False, use_gene_graph=False, use_targets=False,
                             use_context_features=False)
        elif name == "lpm_zeroshot":
            config = replace(config, symbol_dropout=ZERO_SHOT_SYMBOL_DROPOUT)
        return LPM(config, compound_smiles=resources.compound_smiles or None, gene_graph=resources.gene_graph,
                   context_features=resources.context_features,
                   perturbation_targets=resources.perturbation_targets,
                   perturbation_compounds=resources.perturbation_compounds,
                   perturbation_doses=resources.perturbation_doses, seed=seed)
    if name == "linear":
        features = {"unseen-compound": "fingerprint", "unseen-gene": "target_gene"}.get(split_kind, "other_contexts")
        return LinearPCARidge(features=features, compound_smiles=resources.compound_smiles)
    if name == "tanimoto_knn":
        return TanimotoKNN(compound_smiles=resources.compound_smiles)
    simple = {"global_mean": GlobalMean, "no_change": NoChange, "context_mean": ContextReadoutMean,
              "other_contexts": OtherContextsMean}
    if name in simple:
        return simple[name]()
    raise ValueError(f"unknown model {name!r}")


def fit_model(model, train: pd.DataFrame, valid: pd.DataFrame | None, *, progress: bool = False):
    """LPM.fit takes progress=; baselines do not."""
    if "progress" in inspect.signature(model.fit).parameters:
        return model.fit(train, valid, progress=progress)
    return model.fit(train, valid)


def _fit(model, split: Split):
    return fit_model(model, split.train, split.valid if len(split.valid) else None)


def evaluate_model(model, split: Split) -> dict[str, float]:
    """Fit on train (+valid), predict test without its values, score. Adds fit/predict seconds."""
    t0 = time.perf_counter()
    _fit(model, split)
    t1 = time.perf_counter()
    # No `value`, and rows shuffled: predictions can see neither the answer nor the source's rank order.
    test = split.test.sample(frac=1.0, random_state=split.seed).reset_index(drop=True)
    pred = np.asarray(model.predict(test[KEY_COLUMNS].copy()), dtype=np.float64)
    t2 = time.perf_counter()
    out = evaluate_predictions(test, pred)
    out.update(fit_s=t1 - t0, predict_s=t2 - t1)
    if hasattr(model, "describe"):  # e.g. the stacked model's fitted weights, kept beside its metrics
        out["detail"] = model.describe()
    return out


def run_benchmark(df: pd.DataFrame, split_kind: str, *, context: str | None = None,
                  models: Sequence[str] = ("baselines",), seeds: Sequence[int] = (0, 1, 2, 3, 4),
                  resources: Resources | None = None, split_kwargs: dict | None = None,
                  on_result: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Every model on the same split per seed. Returns one row per (model, seed) with all metrics,
    timings, split sizes and the split description. A model that fails is recorded with its error
    (metrics NaN) so one broken model does not lose the other rows."""
    resources = resources or Resources()
    names = expand_model_names(models, df, resources)
    rows = []
    for seed in seeds:
        split = make_split(df, split_kind, context=context, seed=seed, **(split_kwargs or {}))
        for name in names:
            record = {"model": name, "seed": seed, "split": split_kind, "context": context or "",
                      "n_train": len(split.train), "n_test": len(split.test),
                      "n_test_experiments": len(split.experiments("test")), "description": split.description,
                      "error": ""}
            try:
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

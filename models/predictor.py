"""The production predictor: the candidate that wins on the validation experiments of its own data.

    predictor = build_model("production", seed=0, resources=res)   # models/registry.py
    predictor.fit(train, valid)          # members on train (the LPM early-stops on valid), choice on valid
    predictor.predict(rows)              # the chosen candidate's predictions
    predictor.selection.to_dict()        # chosen, every candidate's validation metrics, margin, weights
    predictor.save(folder); ProductionPredictor.load(folder)

Candidates: the LPM, each production baseline (models/registry.PRODUCTION_BASELINES) and
`lpm_stacked`, their convex combination (models/evaluation/stacking.py). They are compared by the mean
per-signature Pearson r (models/evaluation/metrics.py) on the validation experiments only: `fit` never
receives test rows.

Why cross-fitting over two folds of the validation experiments, not one stacking fold and one selection
fold: the validation set is small (on Tahoe A498, 16 experiments), and a fixed split would fit the
weights on half of them and choose on the other half, a noisy choice on 8 experiments. Instead the
validation experiments are split in two folds; the stacked candidate's score on each fold uses weights
fitted on the other, so every candidate is scored on every validation experiment and none is scored on
rows it was fitted to. The weights the chosen stacked model keeps are then refitted on all validation
experiments. Residual optimism: the LPM picks its stopping epoch and network_knn its shrinkage (one of
five values) on the same validation experiments (one number each), which can only favour them and
the stacked candidate. Ties go to the simpler candidate (baselines, then the LPM, then the stack), and
the LPM or the stack must lead the best baseline by MIN_MARGIN (0.001 r) to be chosen: below that the
baseline is published and the selection's `passed_over` names what led (a lead that small is noise here).
Members are not refitted on train + valid, so the weights and the scores describe the very models that
predict. The weights minimise the squared error (`stack_objective="mse"`, the default) or a per-signature
standardised error aimed at the selection metric (`"signature"`); on Tahoe sections 0, 1 and 14 the two
chose the same candidate on 14 of 15 seeds and validation did not prefer either (docs/results.md).

The embeddings behind mechanism links and gene-gene edges are the LPM's whatever is chosen: only the
LPM has embeddings. Saved without pickle: the LPM checkpoint as models/checkpoint.py writes it, each
baseline's fitted statistics as a .npz of numeric and unicode arrays (loaded with allow_pickle=False),
and a JSON manifest with the selection and every file's sha256; `load` refuses edited or mismatched
files with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation.baselines import (
    KEY_COLUMNS,
    Consensus,
    ContextReadoutMean,
    LinearPCARidge,
    MechanismKNN,
    NetworkKNN,
    OtherContextsMean,
    SimilarContexts,
    SimilarPerturbations,
    fit_model,
)
from models.evaluation.metrics import evaluate_predictions
from models.evaluation.stacking import STACK_OBJECTIVES, check_stack_objective, stack_weights

FORMAT = "perturbgraph-predictor/1"
MANIFEST = "predictor.json"
LPM_FILE = "lpm.pt"
STACKED = "lpm_stacked"
SELECTION_METRIC = "pearson_per_signature"
N_FOLDS = 2
# The stacked candidate's weights: "mse" (convex least squares) or "signature" (standardised per signature,
# aimed at the selection metric; models/evaluation/stacking.signature_convex_weights). mse stays: out-of-fold
# validation r of the stack, signature - mse, -0.0000 / -0.0002 / +0.0001 on Tahoe sections 1 / 0 / 14
# (benchmarks/research_stack_objective.py; docs/results.md "Production predictor").
STACK_OBJECTIVE = "mse"
# The LPM or the stack replaces the best baseline only when it beats it on validation by at least this much
# mean per-signature r; below it the simple answer is published and the selection says what was passed over.
# Why 0.001: of 50 stored production fits (docs/results.md, Tahoe sections 0, 1, 9-14, Replogle 6, 7) the LPM
# or the stack was chosen 29 times; the 20 chosen at a validation lead under 0.0015 were -0.008 to +0.0035 (mean
# -0.0001) against the baseline they beat on validation when scored on the test rows (noise), the 9 at 0.002 or
# more were +0.002 to +0.010 (all held). With 0.001 production is never below that baseline on a section's mean.
MIN_MARGIN = 0.001
# Baselines that can be saved and loaded (their fitted statistics are plain arrays).
SAVEABLE_BASELINES = {"context_mean": ContextReadoutMean, "consensus": Consensus, "other_contexts": OtherContextsMean,
                      "similar_contexts": SimilarContexts, "similar_perturbations": SimilarPerturbations,
                      "linear": LinearPCARidge, "network_knn": NetworkKNN, "mechanism_knn": MechanismKNN}


class PredictorError(ValueError):
    """A saved predictor that cannot be used: missing, edited or inconsistent files."""


@dataclass(frozen=True)
class Selection:
    """What the predictor chose and why (every score on validation experiments only)."""

    chosen: str
    metric: str
    validation: dict[str, dict[str, float]]  # candidate -> metrics on the validation experiments
    best_baseline: str
    margin: float  # chosen minus the best baseline on `metric` (0 when a baseline is chosen)
    stacking_weights: dict[str, float] = field(default_factory=dict)  # refitted on all validation rows
    fold_weights: list[dict[str, float]] = field(default_factory=list)  # the cross-fitted ones
    n_valid_experiments: int = 0
    protocol: str = ""
    embeddings_from: str = "lpm"
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not compared
    min_margin: float = 0.0  # what the LPM or the stack had to beat the best baseline by (0 before 2026-12-02)
    passed_over: str = ""  # the LPM or the stack when it led on validation by less than min_margin

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Selection:
        return cls(**dict(d))


def _experiment_folds(valid: pd.DataFrame, seed: int) -> np.ndarray:
    """Fold (0 or 1) of every validation row; whole (context, perturbation) experiments per fold."""
    key = valid["context"].astype(str) + "\x1f" + valid["perturbation"].astype(str)
    experiments = np.array(sorted(key.unique()), dtype=object)
    order = np.random.default_rng(seed).permutation(len(experiments))
    fold_of = dict(zip(experiments[order], np.arange(len(experiments)) % N_FOLDS, strict=True))
    return key.map(fold_of).to_numpy(dtype=int)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ProductionPredictor:
    name = "production"

    def __init__(self, members: Mapping[str, object], *, seed: int = 0, prefitted: tuple[str, ...] = (),
                 metric: str = SELECTION_METRIC, stack_objective: str = STACK_OBJECTIVE,
                 min_margin: float = MIN_MARGIN):
        check_stack_objective(stack_objective)
        if not (np.isfinite(min_margin) and min_margin >= 0):
            raise ValueError(f"min_margin must be a finite number >= 0, got {min_margin!r}")
        if "lpm" not in members:
            raise ValueError("the production predictor needs the LPM among its members (its embeddings are published)")
        if unknown := sorted(set(prefitted) - set(members)):
            raise ValueError(f"prefitted members {unknown} are not members")
        self.members = dict(members)
        self.seed, self.prefitted, self.metric = seed, tuple(prefitted), metric
        self.stack_objective, self.min_margin = stack_objective, float(min_margin)

    @property
    def lpm(self):
        return self.members["lpm"]

    @property
    def baseline_names(self) -> list[str]:
        return [m for m in self.members if m != "lpm"]

    # ------------------------------------------------------------------------------------- fit
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, *, progress: bool = False):
        if valid is None or not len(valid):
            raise ValueError("the production predictor chooses on validation experiments, and there are none; "
                             "give fit a validation part")
        for name, model in self.members.items():
            if name not in self.prefitted:
                fit_model(model, train, valid, progress=progress)
        self.selection = self._select(valid)
        return self

    def _select(self, valid: pd.DataFrame) -> Selection:
        keys = valid[KEY_COLUMNS].copy()
        preds = {name: np.asarray(m.predict(keys.copy()), dtype=np.float64) for name, m in self.members.items()}
        X = np.column_stack(list(preds.values()))
        folds = _experiment_folds(valid, self.seed)
        skipped, fold_weights, weights = {}, [], {}
        candidates = {name: preds[name] for name in (*self.baseline_names, "lpm")}  # tie order: simplest first
        if len(set(folds.tolist())) == N_FOLDS:
            oof = np.empty(len(valid))
            for f in range(N_FOLDS):
                w = stack_weights(X[folds != f], valid.loc[folds != f], self.stack_objective)
                fold_weights.append(dict(zip(self.members, w.tolist(), strict=True)))
                oof[folds == f] = X[folds == f] @ w
            candidates[STACKED] = oof
            weights = dict(zip(self.members, stack_weights(X, valid, self.stack_objective).tolist(), strict=True))
        else:
            skipped[STACKED] = "fewer than 2 validation experiments: no out-of-fold score for the stacked weights"
        validation = {name: evaluate_predictions(valid, p) for name, p in candidates.items()}
        score = {name: float(np.nan_to_num(m[self.metric], nan=-np.inf)) for name, m in validation.items()}
        chosen = max(score, key=lambda n: (score[n], -list(score).index(n)))  # first of equals: the simplest
        best_baseline = max(self.baseline_names, key=lambda n: (score[n], -list(score).index(n)))
        margin = 0.0 if chosen in self.baseline_names else score[chosen] - score[best_baseline]
        passed_over = ""
        if chosen not in self.baseline_names and margin < self.min_margin:
            passed_over = f"{chosen} {margin:+.4f} over {best_baseline}, under the {self.min_margin:g} required"
            chosen, margin = best_baseline, 0.0
        n_exp = int(valid[["context", "perturbation"]].astype(str).drop_duplicates().shape[0])
        protocol = (f"members fitted on the training experiments; candidates compared by mean {self.metric} on "
                    f"{n_exp} validation experiments; stacked weights ({self.stack_objective} objective) cross-fitted "
                    f"over {N_FOLDS} folds of them (seed {self.seed}), then refitted on all")
        return Selection(chosen=chosen, metric=self.metric, validation=validation, best_baseline=best_baseline,
                         margin=float(margin), stacking_weights=weights,
                         fold_weights=fold_weights, n_valid_experiments=n_exp, protocol=protocol, skipped=skipped,
                         min_margin=self.min_margin, passed_over=passed_over)

    # --------------------------------------------------------------------------------- predict
    def _require(self) -> Selection:
        if not hasattr(self, "selection"):
            raise RuntimeError("ProductionPredictor.predict before fit (or load)")
        return self.selection

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        sel = self._require()
        keys = rows[[c for c in KEY_COLUMNS if c in rows.columns]]
        if sel.chosen != STACKED:
            return np.asarray(self.members[sel.chosen].predict(keys.copy()), dtype=np.float64)
        out = np.zeros(len(rows))
        for name, w in sel.stacking_weights.items():
            if w > 0:  # members with no weight are not run
                out += w * np.asarray(self.members[name].predict(keys.copy()), dtype=np.float64)
        return out

    def describe(self) -> str:
        """e.g. 'lpm_stacked (validation r 0.851, +0.012 over other_contexts; lpm 0.58, other_contexts 0.42)'."""
        sel = self._require()
        r = sel.validation[sel.chosen][sel.metric]
        text = f"{sel.chosen} (validation r {r:.3f}, {sel.margin:+.3f} over {sel.best_baseline}"
        if sel.chosen == STACKED:
            text += "; " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(sel.stacking_weights.items(),
                                                                       key=lambda kv: -kv[1]) if v >= 0.005)
        if sel.passed_over:
            text += f"; passed over: {sel.passed_over}"
        return text + ")"

    # ------------------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write lpm.pt, one .npz per baseline and predictor.json (written last: a folder without it is
        an interrupted save). Returns the manifest path."""
        sel = self._require()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        self.lpm.save(folder / LPM_FILE)
        files["lpm"] = {"kind": "lpm", "file": LPM_FILE, "params": {}}
        for name in self.baseline_names:
            model = self.members[name]
            kind = next((k for k, cls in SAVEABLE_BASELINES.items() if type(model) is cls), None)
            if kind is None:
                raise PredictorError(f"member {name!r} ({type(model).__name__}) cannot be saved; "
                                     f"saveable: lpm, {', '.join(SAVEABLE_BASELINES)}")
            params, arrays = model.state()
            path = folder / f"{name}.npz"
            tmp = folder / f".{name}.tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
            files[name] = {"kind": kind, "file": path.name, "params": params}
        for entry in files.values():
            entry["sha256"] = _sha256(folder / entry["file"])
        vocab = self.lpm.vocab
        manifest = {"format": FORMAT, "selection": sel.to_dict(), "seed": self.seed, "members": files,
                    "stack_objective": self.stack_objective, "min_margin": self.min_margin,
                    "vocab_sizes": {k: len(vocab[k]) for k in ("context", "perturbation", "gene")}}
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, default=float))
        os.replace(tmp, folder / MANIFEST)
        return folder / MANIFEST

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ProductionPredictor:
        """Rebuild a saved predictor; raises PredictorError naming the file and the reason."""
        from models.checkpoint import CheckpointError
        from models.lpm import LPM

        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise PredictorError(f"{path} does not exist: not a saved production predictor (or an interrupted save)")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PredictorError(f"{path} is not readable JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise PredictorError(f"{path} is not a {FORMAT} manifest")
        entries = manifest.get("members")
        if not isinstance(entries, dict) or entries.get("lpm", {}).get("kind") != "lpm":
            raise PredictorError(f"{path}: member list missing or without the LPM")
        for name, entry in entries.items():
            f = folder / str(entry.get("file", ""))
            if not f.is_file() or f.parent != folder:
                raise PredictorError(f"{path}: member {name!r} file {f} is missing")
            if _sha256(f) != entry.get("sha256"):
                raise PredictorError(f"{f} was modified after the predictor was saved (sha256 differs from {path})")
        try:
            lpm = LPM.load(folder / LPM_FILE)
        except CheckpointError as exc:
            raise PredictorError(f"{folder / LPM_FILE}: {exc}") from exc
        members: dict[str, object] = {"lpm": lpm}
        for name, entry in entries.items():
            if name == "lpm":
                continue
            kind = SAVEABLE_BASELINES.get(entry.get("kind"))
            if kind is None:
                raise PredictorError(f"{path}: member {name!r} has unknown kind {entry.get('kind')!r}")
            f = folder / entry["file"]
            try:
                with np.load(f, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                members[name] = kind.from_state(entry["params"], arrays)
            except (ValueError, KeyError, OSError) as exc:
                raise PredictorError(f"{f}: {exc}") from exc
            cls._check_vocab(members[name], lpm, f)
        objective = manifest.get("stack_objective", "mse")  # manifests written before 2026-12-01: mse
        min_margin = manifest.get("min_margin", 0.0)  # before 2026-12-02: the leader was always chosen
        if isinstance(min_margin, bool) or not isinstance(min_margin, int | float) or not np.isfinite(min_margin) \
                or min_margin < 0:
            raise PredictorError(f"{path}: min_margin must be a number >= 0, got {min_margin!r}")
        if objective not in STACK_OBJECTIVES:
            raise PredictorError(f"{path}: unknown stacking objective {objective!r}")
        predictor = cls(members, seed=int(manifest.get("seed", 0)), prefitted=tuple(members),
                        stack_objective=objective, min_margin=min_margin)
        try:
            sel = Selection.from_dict(manifest["selection"])
        except (KeyError, TypeError) as exc:
            raise PredictorError(f"{path}: selection record unreadable ({exc})") from exc
        if sel.chosen not in (*members, STACKED):
            raise PredictorError(f"{path}: chosen candidate {sel.chosen!r} is not among the saved members")
        w = sel.stacking_weights
        if sel.chosen == STACKED and (set(w) - set(members) or min(w.values(), default=-1) < 0
                                      or abs(sum(w.values()) - 1) > 1e-6):
            raise PredictorError(f"{path}: stacking weights {w} are not convex weights over the saved members")
        sizes = {k: len(lpm.vocab[k]) for k in ("context", "perturbation", "gene")}
        if manifest.get("vocab_sizes") != sizes:
            raise PredictorError(f"{path}: vocabulary sizes {manifest.get('vocab_sizes')} != the LPM's {sizes}")
        predictor.selection = sel
        return predictor

    @staticmethod
    def _check_vocab(baseline, lpm, where: Path) -> None:
        """The baselines were fitted on the LPM's training rows: their contexts and readouts are the LPM's."""
        ctx = set(baseline.context_readout_mean_.index.get_level_values(0))
        rd = set(baseline.readout_mean_.index)
        extra_ctx, extra_rd = ctx - set(lpm.vocab["context"]), rd - set(lpm.vocab["gene"])
        if extra_ctx or extra_rd:
            raise PredictorError(f"{where}: fitted on contexts / readouts the LPM does not know "
                                 f"({sorted(extra_ctx)[:3]}, {sorted(extra_rd)[:3]}): not from the same training data")

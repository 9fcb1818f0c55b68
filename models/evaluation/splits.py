"""Train / validation / test splits of a long table (one row per context, perturbation, readout).

Every split holds out whole experiments (a perturbation in a context, all its readouts), never
single readouts, so no part of a test signature is seen in training. Four protocols:

- unseen experiment (perturblib): in one target context, `test_frac` of its perturbations go to test
  and `valid_frac` to validation; every other context stays fully in training, so the held-out
  perturbations are usually seen in other contexts.
- unseen compound / unseen genetic perturbation: perturbations of that type held out of every context.
- unseen context: every experiment of one context is held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GENETIC_TYPES = ("CRISPRi", "CRISPRko", "CRISPRa", "shRNA", "ORF")


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    description: str
    seed: int
    kind: str = ""

    def experiments(self, part: str) -> set[tuple[str, str]]:
        df = getattr(self, part)
        return set(zip(df["context"].astype(str), df["perturbation"].astype(str), strict=False))


def _n_of(n: int, frac: float) -> int:
    """At least one item for a non-zero fraction, so tiny contexts still get a test set."""
    return 0 if frac <= 0 or n == 0 else max(1, int(round(frac * n)))


def _pick(items, valid_frac: float, test_frac: float, seed: int) -> tuple[set, set]:
    items = sorted(map(str, items))
    order = np.random.default_rng(seed).permutation(len(items))
    n_test = _n_of(len(items), test_frac)
    n_valid = min(_n_of(len(items), valid_frac), len(items) - n_test - 1) if valid_frac > 0 else 0
    if n_test >= len(items):
        raise ValueError(f"cannot hold out {n_test} of {len(items)} items and keep any for training")
    test = {items[i] for i in order[:n_test]}
    valid = {items[i] for i in order[n_test:n_test + max(n_valid, 0)]}
    return valid, test


def _parts(df: pd.DataFrame, valid_mask, test_mask, description: str, seed: int, kind: str) -> Split:
    valid_mask = np.asarray(valid_mask, dtype=bool)
    test_mask = np.asarray(test_mask, dtype=bool)
    train = df[~valid_mask & ~test_mask].reset_index(drop=True)
    valid = df[valid_mask & ~test_mask].reset_index(drop=True)
    test = df[test_mask].reset_index(drop=True)
    if test.empty:
        raise ValueError(f"empty test set: {description}")
    return Split(train, valid, test, description, seed, kind)


def unseen_experiment(df: pd.DataFrame, target_context: str, *, valid_frac: float = 0.15,
                      test_frac: float = 0.15, seed: int = 0) -> Split:
    ctx = df["context"].astype(str)
    if target_context not in set(ctx):
        raise ValueError(f"target context {target_context!r} not in the data")
    in_target = (ctx == target_context).to_numpy()
    perts = df.loc[in_target, "perturbation"].astype(str).unique()
    valid, test = _pick(perts, valid_frac, test_frac, seed)
    pert = df["perturbation"].astype(str)
    desc = (f"unseen experiment in {target_context}: {len(test)} of {len(perts)} perturbations to test, "
            f"{len(valid)} to validation (seed {seed}); all other contexts in training")
    return _parts(df, in_target & pert.isin(valid).to_numpy(), in_target & pert.isin(test).to_numpy(), desc, seed,
                  "unseen-experiment")


def unseen_perturbation(df: pd.DataFrame, types: tuple[str, ...] | str, *, valid_frac: float = 0.15,
                        test_frac: float = 0.15, seed: int = 0, label: str = "perturbation") -> Split:
    """Hold perturbations of the given type(s) out of every context."""
    types = (types,) if isinstance(types, str) else tuple(types)
    of_type = df["perturbation_type"].astype(str).isin(types).to_numpy()
    perts = df.loc[of_type, "perturbation"].astype(str).unique()
    if len(perts) < 2:
        raise ValueError(f"need at least two {label}s of type {types}, found {len(perts)}")
    valid, test = _pick(perts, valid_frac, test_frac, seed)
    pert = df["perturbation"].astype(str)
    desc = (f"unseen {label}: {len(test)} of {len(perts)} {label}s held out of every context to test, "
            f"{len(valid)} to validation (seed {seed})")
    return _parts(df, pert.isin(valid).to_numpy(), pert.isin(test).to_numpy(), desc, seed, f"unseen-{label}")


def unseen_compound(df: pd.DataFrame, **kwargs) -> Split:
    return unseen_perturbation(df, "compound", label="compound", **kwargs)


def unseen_gene(df: pd.DataFrame, **kwargs) -> Split:
    return unseen_perturbation(df, GENETIC_TYPES, label="gene", **kwargs)


def unseen_context(df: pd.DataFrame, context: str, *, valid_frac: float = 0.15, seed: int = 0) -> Split:
    """Leave one context out. Validation: `valid_frac` of the remaining contexts (at least one when
    three or more remain, none otherwise), so early stopping also sees a context it did not train on."""
    ctx = df["context"].astype(str)
    contexts = sorted(set(ctx))
    if context not in contexts:
        raise ValueError(f"context {context!r} not in the data")
    others = [c for c in contexts if c != context]
    if not others:
        raise ValueError("unseen context needs at least one other context for training")
    n_valid = _n_of(len(others), valid_frac) if len(others) >= 3 else 0
    rng = np.random.default_rng(seed)
    valid = set(rng.choice(others, size=n_valid, replace=False).tolist()) if n_valid else set()
    desc = f"unseen context {context}: all its experiments to test; validation contexts {sorted(valid) or 'none'} (seed {seed})"
    return _parts(df, ctx.isin(valid).to_numpy(), (ctx == context).to_numpy(), desc, seed, "unseen-context")


SPLITS = {
    "unseen-experiment": unseen_experiment,
    "unseen-compound": unseen_compound,
    "unseen-gene": unseen_gene,
    "unseen-context": unseen_context,
}


def make_split(df: pd.DataFrame, kind: str, *, context: str | None = None, seed: int = 0, **kwargs) -> Split:
    """One entry point for the CLI and the benchmark script; `context` is the target / held-out context."""
    if kind == "unseen-experiment":
        if context is None:
            raise ValueError("unseen-experiment needs a target context")
        return unseen_experiment(df, context, seed=seed, **kwargs)
    if kind == "unseen-context":
        if context is None:
            raise ValueError("unseen-context needs the context to leave out")
        return unseen_context(df, context, seed=seed, **kwargs)
    if kind in SPLITS:
        return SPLITS[kind](df, seed=seed, **kwargs)
    raise ValueError(f"unknown split {kind!r}; choose from {sorted(SPLITS)}")

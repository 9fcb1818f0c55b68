"""Inputs of the LPM encoders: vocabularies, RDKit compound features, the dose feature.

Everything here is numpy/pandas (no torch) so it can be computed once and cached. The feature
vectors are what lets the model embed symbols it never saw in training.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Physico-chemical descriptors appended to the count fingerprint (RDKit descriptor names).
DESCRIPTORS: tuple[str, ...] = (
    "MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds",
    "RingCount", "NumAromaticRings", "HeavyAtomCount", "FractionCSP3", "NumHeteroatoms",
)  # fmt: skip


class Vocab:
    """Names -> 1-based indices; 0 is the "unknown" slot (its learned vector is fixed at zero)."""

    def __init__(self, names: Iterable[str]):
        self.names: list[str] = list(dict.fromkeys(str(n) for n in names))  # order-preserving unique
        self._index = {n: i + 1 for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, names: Iterable[str]) -> np.ndarray:
        """(n,) int64 indices, 0 for names outside the vocabulary."""
        return np.fromiter((self._index.get(str(n), 0) for n in names), dtype=np.int64)


def compound_feature_dim(fp_bits: int) -> int:
    return fp_bits + len(DESCRIPTORS) + 1  # + "structure parsed" flag


def compound_features(smiles: Sequence[str | None], fp_bits: int = 1024, radius: int = 2) -> np.ndarray:
    """(n, fp_bits + n_descriptors + 1) float32, un-standardised.

    Morgan (ECFP-like) *count* fingerprint, log1p'd so heavy substructure repeats do not dominate,
    then descriptors, then a flag that is 1 when the SMILES parsed. Unparseable or missing SMILES
    give an all-zero row (flag 0); non-finite descriptors become 0.
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors, rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")  # bad SMILES are expected and handled, not worth a log line each
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=fp_bits)
    funcs = [getattr(Descriptors, d) for d in DESCRIPTORS]
    out = np.zeros((len(smiles), compound_feature_dim(fp_bits)), dtype=np.float32)
    for i, smi in enumerate(smiles):
        mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) and smi else None
        if mol is None:
            continue
        out[i, :fp_bits] = np.log1p(gen.GetCountFingerprintAsNumPy(mol).astype(np.float32))
        desc = []
        for f in funcs:
            try:
                desc.append(float(f(mol)))
            except Exception:  # RDKit raises on a few exotic molecules; treat as missing
                desc.append(0.0)
        out[i, fp_bits:-1] = desc
        out[i, -1] = 1.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def dose_features(doses_um: Sequence[float | None]) -> np.ndarray:
    """(n, 2) float32: [log10(dose in uM), has_dose]; missing or non-positive doses give [0, 0]."""
    out = np.zeros((len(doses_um), 2), dtype=np.float32)
    for i, d in enumerate(doses_um):
        if d is not None and isinstance(d, (int, float)) and math.isfinite(d) and d > 0:
            out[i] = (math.log10(d), 1.0)
    return out


@dataclass
class Standardizer:
    """Per-column (x - mean) / std with statistics from the training rows only; NaN -> 0 (the mean)."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return cls(np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32))
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        mean = np.nan_to_num(mean, nan=0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)  # constant columns pass through centred
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def table_snapshot_id(df: pd.DataFrame, columns: Sequence[str] = ("context", "perturbation", "readout", "value")) -> str:
    """A content hash of a training table (order-sensitive), for checkpoint provenance."""
    h = hashlib.sha256()
    for col in columns:
        s = df[col]
        h.update(col.encode())
        if col == "value":
            h.update(np.ascontiguousarray(s.to_numpy(dtype=np.float32)).tobytes())
        else:
            cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")  # codes: fast on 10M rows
            h.update(pd.util.hash_array(cat.cat.categories.astype(str).to_numpy()).tobytes())
            h.update(np.ascontiguousarray(cat.cat.codes.to_numpy()).tobytes())
    return h.hexdigest()[:16]

"""LPM checkpoints: one torch.save'd dict of plain tensors, lists, strings and numbers.

Loaded with `torch.load(weights_only=True)` (no pickled code). Layout:

    format        FORMAT
    config        LPMConfig as a dict
    vocab         {"context": [...], "perturbation": [...], "member": [...], "gene": [...], "compound": [...]}
    vocab_hash    sha256 over the vocabularies (detects edited / mixed-up vocabularies)
    feature_dims  {"context": Fc, "compound": Fp}
    snapshot_id   hash of the training table (provenance)
    meta          everything needed to rebuild the feature tables (SMILES, doses, targets, graph, stats)
    state_dict    module weights
    train_state   optional: optimizer, scheduler, RNG states, epoch, history, early-stopping state
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "perturbgraph-lpm/1"
REQUIRED = ("format", "config", "vocab", "vocab_hash", "feature_dims", "snapshot_id", "meta", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or inconsistent with its model."""


def vocab_hash(vocab: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "format": FORMAT, "vocab_hash": vocab_hash(payload["vocab"])}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the envelope; raises CheckpointError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, wrong file type, pickled objects
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    if vocab_hash(payload["vocab"]) != payload["vocab_hash"]:
        raise CheckpointError(f"checkpoint {path}: vocabularies do not match their recorded hash (edited or corrupted)")
    return payload


def check_state_shapes(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights whose names or shapes differ from the model rebuilt from the vocabularies."""
    problems = [k for k in expected if k not in state_dict]
    problems += [k for k in state_dict if k not in expected]
    problems += [f"{k}: {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
                 for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"{where}: weights do not match the vocabularies / feature dims: {problems[:5]}")


def check_same_vocab(payload: dict[str, Any], vocab: dict[str, list[str]], feature_dims: dict[str, int]) -> None:
    """For resuming: the checkpoint must come from the same vocabularies and feature dims."""
    for k, names in vocab.items():
        if payload["vocab"].get(k) != names:
            raise CheckpointError(f"checkpoint vocabulary '{k}' differs from the data being trained "
                                  f"({len(payload['vocab'].get(k, []))} vs {len(names)} names)")
    if dict(payload["feature_dims"]) != dict(feature_dims):
        raise CheckpointError(f"checkpoint feature dims {payload['feature_dims']} != {feature_dims}")

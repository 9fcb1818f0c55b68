"""The plots the assets attach as metadata, as PNG bytes (matplotlib's Agg backend; no display, no Dagster)."""

from __future__ import annotations

import base64
import io

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes) -> str:
    """A PNG inline in markdown (what the Dagster UI shows for a md metadata value)."""
    return f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})"


def training_curve(history: list[dict]) -> bytes:
    """Train (and validation, when recorded) MSE per epoch of an LPM history."""
    fig, ax = _pyplot().subplots(figsize=(5, 3))
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    ax.plot(epochs, [h.get("train_loss") for h in history], label="train")
    if any(h.get("valid_loss") is not None for h in history):
        ax.plot(epochs, [h.get("valid_loss") for h in history], label="validation")
    ax.set_xlabel("epoch"), ax.set_ylabel("MSE"), ax.legend(), ax.set_title("LPM training curve")
    return _png(fig)


def embedding_pca(emb: pd.DataFrame, labels: pd.Series, title: str) -> bytes:
    """The first two principal components of embeddings (rows = names), coloured by the 8 commonest labels."""
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(emb.to_numpy())
    fig, ax = _pyplot().subplots(figsize=(5, 4))
    labels = labels.reindex(emb.index).fillna("unannotated").astype(str)
    top = labels.value_counts().index[:8]
    for name in top:
        mask = (labels == name).to_numpy()
        ax.scatter(xy[mask, 0], xy[mask, 1], s=12, label=name[:30])
    rest = ~labels.isin(top).to_numpy()
    ax.scatter(xy[rest, 0], xy[rest, 1], s=6, c="lightgrey", label="other")
    ax.set_title(title), ax.legend(fontsize=6, loc="best")
    return _png(fig)

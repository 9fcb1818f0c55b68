"""pipelines/plots.py: the metadata plots are PNG images, inline in markdown."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from pipelines import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curve_with_and_without_validation_loss():
    both = plots.training_curve([{"epoch": 1, "train_loss": 1.0, "valid_loss": 1.2},
                                 {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.9}])
    train_only = plots.training_curve([{"train_loss": 1.0}, {"train_loss": 0.7}])
    assert both.startswith(PNG) and train_only.startswith(PNG) and both != train_only


def test_embedding_pca_and_markdown_image():
    emb = pd.DataFrame(np.random.default_rng(0).normal(size=(12, 5)), index=[f"c{i}" for i in range(12)])
    png = plots.embedding_pca(emb, pd.Series({"c0": "MTOR", "c1": "MTOR"}), "compounds")
    assert png.startswith(PNG)
    md = plots.markdown_image(png)
    assert md.startswith("![plot](data:image/png;base64,") and base64.b64decode(md[30:-1]) == png

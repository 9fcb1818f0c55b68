"""Helpers shared by the readers: the input error, file hashing, result containers, quarantine output."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import pandas as pd

from graph.records import QuarantineRecord, ReadReport

T = TypeVar("T")


class InputFileError(ValueError):
    """A user-supplied file that cannot be read as promised; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class ReadResult(Generic[T]):
    """What a reader returns: accepted records, the counts, and the rejected records with reasons."""

    records: list[T]
    report: ReadReport
    quarantine: list[QuarantineRecord] = field(default_factory=list)


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def clean_text(value: object) -> str:
    """NFKC-normalised, stripped text ('' for None/NaN). NFKC folds the micro sign and full-width forms."""
    if type(value) is str:  # fast path: most values are plain ASCII text
        return value.strip() if value.isascii() else unicodedata.normalize("NFKC", value).strip()
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return unicodedata.normalize("NFKC", str(value)).strip()


def concat_long(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Join streamed long-table chunks into one frame (text columns categorical, as the store expects)."""
    from graph.records import MEASUREMENT_COLUMNS

    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=list(MEASUREMENT_COLUMNS))
    for col in MEASUREMENT_COLUMNS[:-1]:
        frame[col] = frame[col].astype("category")
    return frame

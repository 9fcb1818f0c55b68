"""Quarantined input records (rejected by a reader, by validation or by a graph writer), one parquet table per
dataset: `<settings.quarantine_dir>/<dataset_id>.parquet` with columns source, record_key, reason, raw (JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from graph.records import QuarantineRecord
from graph.settings import Settings
from graph.store.files import atomic_write_table, check_id

QUARANTINE_COLUMNS: tuple[str, ...] = ("source", "record_key", "reason", "raw")


@dataclass(frozen=True)
class QuarantineReport:
    dataset_id: str
    path: Path
    n_rows: int
    by_reason: dict[str, int]


def quarantine_path(settings: Settings, dataset_id: str) -> Path:
    return settings.quarantine_dir / f"{check_id(dataset_id)}.parquet"


def _raw_json(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)


def read_quarantine(settings: Settings, dataset_id: str) -> pd.DataFrame:
    path = quarantine_path(settings, dataset_id)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=str) for c in QUARANTINE_COLUMNS})
    return pq.read_table(path).to_pandas()


def write_quarantine(
    settings: Settings, dataset_id: str, records: Iterable[QuarantineRecord]
) -> QuarantineReport:
    """Add `records` to the dataset's quarantine table (deduplicated on source, record_key, reason;
    so re-running an ingest does not grow it). Always writes the file, even with no rows."""
    new = pd.DataFrame(
        [(r.source, r.record_key, r.reason, _raw_json(r.raw)) for r in records],
        columns=list(QUARANTINE_COLUMNS),
    )
    old = read_quarantine(settings, dataset_id)
    df = pd.concat([old, new], ignore_index=True) if len(old) else new
    df = df.astype(str).drop_duplicates(["source", "record_key", "reason"], keep="first")
    df = df.sort_values(["source", "reason", "record_key"], kind="stable").reset_index(drop=True)
    path = quarantine_path(settings, dataset_id)
    schema = pa.schema([(c, pa.string()) for c in QUARANTINE_COLUMNS])
    atomic_write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), path)
    return QuarantineReport(
        dataset_id, path, len(df), {str(k): int(v) for k, v in df["reason"].value_counts().sort_index().items()}
    )


def quarantine_counts(settings: Settings) -> dict[str, int]:
    """Quarantined rows per dataset, from every table under settings.quarantine_dir."""
    folder = settings.quarantine_dir
    if not folder.exists():
        return {}
    return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet"))}

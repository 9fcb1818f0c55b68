"""The columnar value store and the quarantine tables.

Measured values (signature x readout) never become Neo4j nodes. They live here, one parquet file
per dataset, in the canonical long format `graph.records.MEASUREMENT_COLUMNS`:

    <settings.store_dir>/<dataset_id>/measurements.parquet   sorted by (signature_id, readout)
    <settings.store_dir>/<dataset_id>/manifest.json          sha256 of the parquet file, rows, ...

Files are written to a temporary name in the same folder and moved into place with os.replace
(atomic on POSIX), the manifest after the data. The content hash (sha256 of the parquet bytes) is
also recorded on the Dataset node (`store_sha256`, see graph.writer.mark_dataset_complete), so a
training table can be rebuilt from a graph snapshot and checked: `load_training_table`.

Quarantined input records (rejected by a reader or by the writer) go to
`<settings.quarantine_dir>/<dataset_id>.parquet` with columns source, record_key, reason, raw (JSON).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from graph.io.common import sha256_file
from graph.records import MEASUREMENT_COLUMNS, QuarantineRecord
from graph.settings import Settings

MEASUREMENTS_FILE = "measurements.parquet"
MANIFEST_FILE = "manifest.json"
QUARANTINE_COLUMNS: tuple[str, ...] = ("source", "record_key", "reason", "raw")
_TEXT_COLUMNS = tuple(c for c in MEASUREMENT_COLUMNS if c != "value")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ROW_GROUP = 1_000_000


class StoreIntegrityError(RuntimeError):
    """A stored file does not match the hash recorded in its manifest or in the graph."""


@dataclass(frozen=True)
class StoreEntry:
    dataset_id: str
    relpath: str  # relative to settings.store_dir
    sha256: str
    n_rows: int
    n_signatures: int
    written_at: str

    def path(self, settings: Settings) -> Path:
        return settings.store_dir / self.relpath


@dataclass(frozen=True)
class QuarantineReport:
    dataset_id: str
    path: Path
    n_rows: int
    by_reason: dict[str, int]


def _check_id(dataset_id: str) -> str:
    if not _SAFE_ID.match(dataset_id) or ".." in dataset_id:
        raise ValueError(f"dataset id {dataset_id!r} is not usable as a file name ([A-Za-z0-9._-])")
    return dataset_id


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> OSError:
    """The same error, naming the file that could not be written (ENOSPC from write() names none)."""
    return OSError(exc.errno, f"cannot write {path} ({exc.strerror or exc}); the previous version is "
                              "left as it was")


def _atomic_write_table(table: pa.Table, path: Path, **kwargs: Any) -> str:
    """Write `table` to `path` atomically; returns the file's sha256."""
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp, compression="zstd", **kwargs)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = _tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def canonical_measurements(table: pd.DataFrame, dataset_id: str) -> pd.DataFrame:
    """Validated, canonical copy: exactly MEASUREMENT_COLUMNS, text as category, value float32,
    sorted by (signature_id, readout); one row per (signature_id, readout)."""
    cols = set(table.columns)
    if cols != set(MEASUREMENT_COLUMNS):
        raise ValueError(
            f"measurement table columns {sorted(cols)} != {list(MEASUREMENT_COLUMNS)} "
            f"(missing {sorted(set(MEASUREMENT_COLUMNS) - cols)}, extra {sorted(cols - set(MEASUREMENT_COLUMNS))})"
        )
    df = table.loc[:, list(MEASUREMENT_COLUMNS)].copy()
    for c in _TEXT_COLUMNS:
        df[c] = df[c].astype(str)
    other = set(df["dataset"].unique()) - {dataset_id}
    if other:
        raise ValueError(f"measurement rows of other datasets in {dataset_id!r}: {sorted(other)[:5]}")
    df["value"] = pd.to_numeric(df["value"], errors="raise").astype("float32")
    dup = df.duplicated(["signature_id", "readout"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (signature_id, readout) rows in {dataset_id!r}")
    df = df.sort_values(["signature_id", "readout"], kind="stable").reset_index(drop=True)
    for c in _TEXT_COLUMNS:
        df[c] = df[c].astype("category")
    return df


def _manifest_path(settings: Settings, dataset_id: str) -> Path:
    return settings.store_dir / _check_id(dataset_id) / MANIFEST_FILE


def read_manifest(settings: Settings, dataset_id: str) -> StoreEntry | None:
    path = _manifest_path(settings, dataset_id)
    if not path.exists():
        return None
    return StoreEntry(**json.loads(path.read_text(encoding="utf-8")))


def write_measurements(settings: Settings, dataset_id: str, table: pd.DataFrame) -> StoreEntry:
    """Store one dataset's measurements (atomically); returns the entry to record on the Dataset node.

    Re-writing identical content keeps the existing file and manifest (same hash, same entry).
    """
    _check_id(dataset_id)
    df = canonical_measurements(table, dataset_id)
    folder = settings.store_dir / dataset_id
    path = folder / MEASUREMENTS_FILE
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    previous = read_manifest(settings, dataset_id)
    digest = _atomic_write_table(arrow, path, row_group_size=_ROW_GROUP)
    if previous is not None and previous.sha256 == digest:
        return previous
    entry = StoreEntry(
        dataset_id=dataset_id,
        relpath=f"{dataset_id}/{MEASUREMENTS_FILE}",
        sha256=digest,
        n_rows=len(df),
        n_signatures=int(df["signature_id"].nunique()),
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _atomic_write_text(json.dumps(asdict(entry), indent=2, sort_keys=True), folder / MANIFEST_FILE)
    return entry


def verify_entry(settings: Settings, entry: StoreEntry) -> None:
    path = entry.path(settings)
    if not path.exists():
        raise StoreIntegrityError(f"{entry.dataset_id}: store file {path} is missing")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise StoreIntegrityError(
            f"{entry.dataset_id}: {path} has sha256 {actual}, manifest records {entry.sha256}"
        )


def _graph_records(driver: Any, dataset_ids: Sequence[str], database: str | None) -> dict[str, dict]:
    from graph import queries as Q

    records, _, _ = driver.execute_query(
        Q.DATASET_STORE_RECORDS, dataset_ids=list(dataset_ids), database_=database, routing_="r"
    )
    return {r["dataset_id"]: dict(r) for r in records}


def load_training_table(
    settings: Settings,
    dataset_ids: Sequence[str],
    driver: Any = None,
    *,
    database: str | None = None,
    signature_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The measurements of `dataset_ids` (canonical MEASUREMENT_COLUMNS), after checking each file's
    sha256 against its manifest and, when a driver is given, against the Dataset node in the graph
    (which must be 'complete' and record the same hash). Raises StoreIntegrityError on any mismatch.
    `signature_ids` restricts the rows (predicate pushed down to parquet)."""
    ids = list(dict.fromkeys(dataset_ids))
    graph = _graph_records(driver, ids, database) if driver is not None else {}
    frames = []
    wanted = None if signature_ids is None else sorted(set(signature_ids))
    for dataset_id in ids:
        entry = read_manifest(settings, dataset_id)
        if entry is None:
            raise StoreIntegrityError(f"{dataset_id}: no measurements in the store ({settings.store_dir})")
        verify_entry(settings, entry)
        if driver is not None:
            g = graph.get(dataset_id) or {}
            if g.get("status") != "complete":
                raise StoreIntegrityError(f"{dataset_id}: Dataset node is {g.get('status')!r}, not 'complete'")
            if g.get("store_sha256") != entry.sha256:
                raise StoreIntegrityError(
                    f"{dataset_id}: graph records store sha256 {g.get('store_sha256')}, file has {entry.sha256}"
                )
        filters = None if wanted is None else [("signature_id", "in", wanted)]
        frames.append(pq.read_table(entry.path(settings), filters=filters).to_pandas())
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float32" if c == "value" else "category")
                             for c in MEASUREMENT_COLUMNS})
    if len(frames) > 1:
        frames = [f.astype({c: str for c in _TEXT_COLUMNS}) for f in frames]
        out = pd.concat(frames, ignore_index=True)
    else:
        out = frames[0]
    for c in _TEXT_COLUMNS:
        out[c] = out[c].astype("category")
    out["value"] = out["value"].astype("float32")
    return out.loc[:, list(MEASUREMENT_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Quarantine
# ---------------------------------------------------------------------------------------------


def quarantine_path(settings: Settings, dataset_id: str) -> Path:
    return settings.quarantine_dir / f"{_check_id(dataset_id)}.parquet"


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
    _atomic_write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), path)
    return QuarantineReport(
        dataset_id, path, len(df), {str(k): int(v) for k, v in df["reason"].value_counts().sort_index().items()}
    )


def quarantine_counts(settings: Settings) -> dict[str, int]:
    """Quarantined rows per dataset, from every table under settings.quarantine_dir."""
    folder = settings.quarantine_dir
    if not folder.exists():
        return {}
    return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet"))}

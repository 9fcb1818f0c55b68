"""File handling shared by the store's tables: safe dataset ids as folder names, atomic writes (temp name
in the same folder, fsync, os.replace) whose errors name the file, and removal of temps left by dead writers."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from graph.io.common import sha256_file
from graph.processes import pid_alive

T = TypeVar("T")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_id(dataset_id: str) -> str:
    if not _SAFE_ID.match(dataset_id) or ".." in dataset_id:
        raise ValueError(f"dataset id {dataset_id!r} is not usable as a file name ([A-Za-z0-9._-])")
    return dataset_id


def tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_error(path: Path, exc: OSError) -> OSError:
    """The same error, naming the file that could not be written (ENOSPC from write() names none)."""
    return OSError(exc.errno, f"cannot write {path} ({exc.strerror or exc}); the previous version is "
                              "left as it was")


def atomic_write(path: Path, write: Callable[[Path], T]) -> T:
    """Run `write(tmp)` on a temp name beside `path`, fsync it, then os.replace it onto `path`: readers
    see the old file or the new one, never half of one. Returns what `write` returned; an OSError
    names `path`, and the temp is removed whatever happens."""
    tmp = tmp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result = write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


def atomic_write_table(table: pa.Table, path: Path, **kwargs: Any) -> str:
    """Write `table` to `path` atomically; returns the file's sha256."""

    def write(tmp: Path) -> str:
        pq.write_table(table, tmp, compression="zstd", **kwargs)
        return sha256_file(tmp)

    return atomic_write(path, write)


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stale_temps(folder: Path) -> None:
    """Temp files and spill folders of writers that died (their pid is gone) are removed."""
    for p in folder.glob(".*tmp-*"):
        m = re.search(r"tmp-(\d+)-", p.name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

"""Batched writes, shared by every writer: `WriteStats` (what one call did) and `BatchWriter`, the base
that holds the driver, the database and the batch size.

Every write is a batch of rows sent as `$rows` to an `UNWIND ... MERGE` query (which returns
`written`) inside a managed write transaction (`session.execute_write`), so the driver may retry a
batch and re-sending the same rows changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from neo4j import Driver, ManagedTransaction

from graph.records import QuarantineRecord

DEFAULT_BATCH_SIZE = 5_000

Row = dict[str, Any]
# Called inside the transaction when a batch wrote fewer rows than it sent: the rows it could not
# write, as quarantine records with a reason (e.g. a referenced node is missing).
OnShort = Callable[[ManagedTransaction, list[Row]], list[QuarantineRecord]]


def now(timespec: str = "seconds") -> str:
    return datetime.now(UTC).isoformat(timespec=timespec)


@dataclass
class WriteStats:
    """What one writer call did (an accumulator, filled batch by batch). `written` counts rows the
    queries accepted; `quarantined` the rows refused, each with its reason."""

    what: str
    rows: int = 0
    written: int = 0
    batches: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    properties_set: int = 0
    seconds: float = 0.0
    quarantined: list[QuarantineRecord] = field(default_factory=list)

    def add_counters(self, counters: Any) -> None:
        self.nodes_created += counters.nodes_created
        self.relationships_created += counters.relationships_created
        self.properties_set += counters.properties_set

    def merge(self, other: WriteStats) -> WriteStats:
        self.rows += other.rows
        self.written += other.written
        self.batches += other.batches
        self.nodes_created += other.nodes_created
        self.relationships_created += other.relationships_created
        self.properties_set += other.properties_set
        self.seconds += other.seconds
        self.quarantined.extend(other.quarantined)
        return self

    def add_side_writes(self, other: WriteStats) -> WriteStats:
        """Count the graph changes of a dependent write (e.g. a node writer's relationships) without
        its rows, so `rows`/`written` keep describing the records asked for."""
        self.nodes_created += other.nodes_created
        self.relationships_created += other.relationships_created
        self.properties_set += other.properties_set
        self.seconds += other.seconds
        return self

    @property
    def rows_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    if size <= 0:
        raise ValueError("batch_size must be positive")
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class BatchWriter:
    """Base of the graph writers: one driver, one database (None = the server's default), one batch size."""

    def __init__(self, driver: Driver, database: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self.driver = driver
        self.database = database
        self.batch_size = batch_size

    def run_batches(self, query: str, rows: Iterable[Row], stats: WriteStats, *, batch_size: int | None = None,
                    params: dict[str, Any] | None = None, on_short: OnShort | None = None) -> WriteStats:
        """Send `rows` in batches to `query`, one managed write transaction per batch; adds to `stats`."""
        with self.driver.session(database=self.database) as session:
            return self._batches(lambda work: session.execute_write(work), query, rows, stats,
                                 batch_size=batch_size, params=params, on_short=on_short)

    def run_batches_in(self, tx: ManagedTransaction, query: str, rows: Iterable[Row], stats: WriteStats, *,
                       batch_size: int | None = None, params: dict[str, Any] | None = None) -> WriteStats:
        """The same batches, all inside the caller's transaction `tx` (they commit or roll back with it)."""
        return self._batches(lambda work: work(tx), query, rows, stats, batch_size=batch_size, params=params)

    def _batches(self, execute: Callable[[Callable[[ManagedTransaction], Any]], Any], query: str,
                 rows: Iterable[Row], stats: WriteStats, *, batch_size: int | None,
                 params: dict[str, Any] | None, on_short: OnShort | None = None) -> WriteStats:
        """One `UNWIND $rows` run per batch, each through `execute(work)` (its own transaction, or the
        caller's); adds rows, written, counters and short rows' quarantine records to `stats`."""
        extra = dict(params or {})
        start = time.perf_counter()
        for batch in batches(rows, batch_size or self.batch_size):

            def work(tx: ManagedTransaction, batch: list[Row] = batch) -> tuple[int, Any, list]:
                result = tx.run(query, rows=batch, **extra)
                record = result.single()
                counters = result.consume().counters
                written = record["written"] if record else 0
                short = on_short(tx, batch) if written < len(batch) and on_short is not None else []
                return written, counters, short

            written, counters, short = execute(work)
            stats.rows += len(batch)
            stats.written += written
            stats.batches += 1
            stats.add_counters(counters)
            stats.quarantined.extend(short)
        stats.seconds += time.perf_counter() - start
        return stats

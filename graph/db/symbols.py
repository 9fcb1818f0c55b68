"""Gene names -> Entrez ids of the Gene nodes already in the graph, for every writer that links to genes.

Relationships to genes (TARGETS, PERTURBS, INTERACTS_WITH, REGULATES, MEMBER_OF and the discovery
relationships) are keyed by Entrez id. A name resolves as: the current symbol, then the canonical
spelling (`graph.io.identifiers.gene_key`), then an alias that names exactly one gene, then a numeric
Entrez id present in the graph. Unresolvable names never create Gene nodes: the writers quarantine them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from neo4j import Driver

from graph.db import queries as Q
from graph.db.batching import DEFAULT_BATCH_SIZE, BatchWriter
from graph.io.identifiers import gene_key


class SymbolMap:
    """The graph's gene table, keyed for resolution (built once per ingest or publish: one read)."""

    def __init__(self, genes: Iterable[tuple[int, str, Sequence[str]]]):
        self.by_symbol: dict[str, int] = {}
        self.by_upper: dict[str, int] = {}
        self.ids: set[int] = set()
        alias_hits: dict[str, set[int]] = {}
        for entrez_id, symbol, aliases in genes:
            self.ids.add(int(entrez_id))
            if symbol:
                self.by_symbol.setdefault(symbol, int(entrez_id))
                self.by_upper.setdefault(gene_key(symbol), int(entrez_id))
            for alias in aliases or ():
                alias_hits.setdefault(gene_key(alias), set()).add(int(entrez_id))
        self.by_alias = {a: next(iter(ids)) for a, ids in alias_hits.items() if len(ids) == 1}

    @classmethod
    def from_graph(cls, driver: Driver, *, database: str | None = None) -> SymbolMap:
        records, _, _ = driver.execute_query(Q.GENE_SYMBOL_TABLE, database_=database, routing_="r")
        return cls((r["entrez_id"], r["symbol"], r["aliases"]) for r in records)

    def resolve(self, symbol: str) -> int | None:
        if not symbol:
            return None
        if symbol in self.by_symbol:
            return self.by_symbol[symbol]
        up = gene_key(symbol)  # the one canonical spelling (graph/io/identifiers.py)
        if up in self.by_upper:
            return self.by_upper[up]
        if up in self.by_alias:
            return self.by_alias[up]
        if symbol.isdigit() and int(symbol) in self.ids:
            return int(symbol)
        return None

    def entrez(self, name: Any) -> int | None:
        """Like `resolve`, but an integer (a model's gene index may be Entrez ids) must be a Gene in the graph."""
        if isinstance(name, int | np.integer) and not isinstance(name, bool):
            return int(name) if int(name) in self.ids else None
        return self.resolve(str(name))


class GeneLinkWriter(BatchWriter):
    """A writer whose relationships end at Gene nodes: the graph's `SymbolMap`, read on first use (and
    again after `forget_symbols`, when the writer itself added genes)."""

    def __init__(self, driver: Driver, database: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__(driver, database, batch_size)
        self._symbols: SymbolMap | None = None

    @property
    def symbols(self) -> SymbolMap:
        if self._symbols is None:
            self._symbols = SymbolMap.from_graph(self.driver, database=self.database)
        return self._symbols

    def forget_symbols(self) -> None:
        self._symbols = None

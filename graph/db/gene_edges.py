"""Gene-level edges of an ingest: compound targets, prior networks, complexes and gene sets.

`GeneEdgeWrites` is the part of `graph.db.graph_writer.GraphWriter` that links to Gene nodes by
Entrez id: every symbol goes through the writer's `SymbolMap`; one that names no Gene in the graph
creates nothing and is returned as a `QuarantineRecord` in `WriteStats.quarantined`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from graph.db import queries as Q
from graph.db.batching import WriteStats
from graph.db.rows import blank_to_none
from graph.db.symbols import GeneLinkWriter
from graph.records import ComplexRecord, CompoundRecord, PriorEdgeRecord, QuarantineRecord

# Sources whose prior edges are directed regulation (TF -> target) and go to REGULATES.
REGULATORY_SOURCES = frozenset({"DoRothEA", "dorothea"})


class GeneEdgeWrites(GeneLinkWriter):
    """Batched writes of relationships to Gene nodes; resolves symbols against the graph's genes."""

    def write_compound_targets(self, compounds: Iterable[CompoundRecord], dataset_id: str, *,
                               source: str = "") -> WriteStats:
        """(Compound)-[:TARGETS {dataset, source}]->(Gene) for each record's target symbols that resolve
        to a Gene node; the rest are quarantined (no Gene node is ever created from a symbol)."""
        stats = WriteStats("TARGETS")
        rows: list[dict[str, Any]] = []
        for c in compounds:
            for sym in dict.fromkeys(c.targets):
                entrez = self.symbols.resolve(sym)
                if entrez is None:
                    stats.quarantined.append(
                        QuarantineRecord(dataset_id, f"{c.compound_id}->{sym}", "target symbol not a Gene in the graph",
                                         {"compound_id": c.compound_id, "symbol": sym}))
                else:
                    rows.append({"compound_id": c.compound_id, "entrez_id": entrez, "symbol": sym,
                                 "source": source or c.source or dataset_id})
        rows = list({(r["compound_id"], r["entrez_id"]): r for r in rows}.values())
        return self.run_batches(Q.MERGE_TARGETS, rows, stats, params={"dataset_id": dataset_id})

    def write_prior_edges(self, edges: Iterable[PriorEdgeRecord], dataset_id: str) -> WriteStats:
        """Prior gene-gene edges: undirected ones as INTERACTS_WITH (stored once, lower Entrez id first;
        duplicates keep the highest score), directed ones (DoRothEA or `directed=True`) as REGULATES
        with sign and confidence. Unresolvable symbols are quarantined."""
        stats = WriteStats("prior edges")
        undirected: dict[tuple[int, int], dict[str, Any]] = {}
        directed: dict[tuple[int, int], dict[str, Any]] = {}
        for e in edges:
            a, b = self.symbols.resolve(e.source_symbol), self.symbols.resolve(e.target_symbol)
            if a is None or b is None:
                bad = [s for s, v in ((e.source_symbol, a), (e.target_symbol, b)) if v is None]
                stats.quarantined.append(
                    QuarantineRecord(dataset_id, f"{e.source_symbol}-{e.target_symbol}",
                                     f"symbol not a Gene in the graph: {', '.join(bad)}",
                                     {"source_symbol": e.source_symbol, "target_symbol": e.target_symbol,
                                      "source": e.source, "score": e.score}))
                continue
            row = {"a": a, "b": b, "source": e.source, "score": float(e.score), "sign": int(e.sign),
                   "evidence": blank_to_none(e.evidence)}
            if e.directed or e.source in REGULATORY_SOURCES:
                key, keep = (a, b), directed
            else:
                row["a"], row["b"] = min(a, b), max(a, b)
                key, keep = (row["a"], row["b"]), undirected
            prev = keep.get(key)
            if prev is None or row["score"] > prev["score"]:
                keep[key] = row
        params = {"dataset_id": dataset_id}
        self.run_batches(Q.MERGE_INTERACTS_WITH, undirected.values(), stats, params=params)
        self.run_batches(Q.MERGE_REGULATES, directed.values(), stats, params=params)
        return stats

    def write_complexes(self, complexes: Iterable[ComplexRecord], dataset_id: str) -> WriteStats:
        """Complex nodes and (Gene)-[:MEMBER_OF]->(Complex) for resolvable member symbols."""
        return self._write_groups(list(complexes), dataset_id, "Complex", "complex_id", Q.MERGE_COMPLEXES,
                                  Q.MERGE_COMPLEX_MEMBERS)

    def write_gene_sets(self, gene_sets: Iterable[Any], dataset_id: str, *, source: str) -> WriteStats:
        """GeneSet nodes with (Gene)-[:MEMBER_OF]->(GeneSet) for resolvable members. Each item is a
        (gene_set_id, name, member symbols) tuple or a ComplexRecord (graph.io.networks.read_gmt's: the id is
        the set's GMT name)."""
        recs = []
        for item in gene_sets:
            gid, name, members = item if isinstance(item, tuple) else (item.complex_id, item.name, item.member_symbols)
            recs.append(ComplexRecord(gid, name, tuple(members), source))
        return self._write_groups(recs, dataset_id, "GeneSet", "gene_set_id", Q.MERGE_GENE_SETS,
                                  Q.MERGE_GENE_SET_MEMBERS)

    def _write_groups(self, recs: Sequence[ComplexRecord], dataset_id: str, label: str, key: str, node_query: str,
                      member_query: str) -> WriteStats:
        """Group nodes (`label`, keyed by `key`) and their (Gene)-[:MEMBER_OF]->(group) edges; the stats
        count the group nodes, with the edges as side writes."""
        params = {"dataset_id": dataset_id}
        stats = self.run_batches(
            node_query, ({key: c.complex_id, "name": c.name, "source": c.source} for c in recs),
            WriteStats(label), params=params)
        rows = self._member_rows(recs, key, dataset_id, stats)
        return stats.add_side_writes(self.run_batches(member_query, rows, WriteStats("MEMBER_OF"), params=params))

    def _member_rows(self, recs: Sequence[ComplexRecord], key: str, dataset_id: str,
                     stats: WriteStats) -> list[dict[str, Any]]:
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for c in recs:
            for sym in c.member_symbols:
                entrez = self.symbols.resolve(sym)
                if entrez is None:
                    stats.quarantined.append(
                        QuarantineRecord(dataset_id, f"{c.complex_id}<-{sym}", "member symbol not a Gene in the graph",
                                         {key: c.complex_id, "symbol": sym}))
                else:
                    rows.setdefault((c.complex_id, entrez),
                                    {key: c.complex_id, "entrez_id": entrez, "symbol": sym, "source": c.source})
        return list(rows.values())

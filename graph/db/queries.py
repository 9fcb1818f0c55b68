"""Named, parameterised Cypher for ingest and basic lookups.

Every query is a module-level constant and is registered by name in `QUERIES`. Labels and
relationship types are written literally (all of them are in `graph.db.schema`'s allowlist; a test
checks that); every value arrives as a parameter. Writes are `UNWIND $rows AS row MERGE ...` and
are safe to re-run: node properties are only filled when absent (`coalesce(existing, new)`), list
properties are unioned, and relationships are keyed by (endpoints, type, dataset), so a re-run of
the same ingest changes nothing and a later dataset adds to the graph without rewriting it.

Templated Cypher is built at import time only, from labels and types that pass
`graph.db.schema.require_label` / `require_rel_type`: `merge_nodes` / `merge_relationships` (the one
shape of every row write: UNWIND, MATCH the ends by key, MERGE, SET; also used by
graph/db/discovery_queries.py) and `count_nodes_query` / `count_relationships_query`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from graph.db.schema import COMPOUND_ALIAS_INDEX, require_label, require_property, require_rel_type

# Append $dataset_id to a node's `sources` list once (idempotent).
_SOURCES = (
    "CASE WHEN $dataset_id IN coalesce({v}.sources, []) THEN {v}.sources "
    "ELSE coalesce({v}.sources, []) + $dataset_id END"
)


def _sources(var: str) -> str:
    return _SOURCES.format(v=var)


def _union(var: str, prop: str, row_field: str) -> str:
    return (
        f"coalesce({var}.{prop}, []) + "
        f"[x IN coalesce(row.{row_field}, []) WHERE NOT x IN coalesce({var}.{prop}, [])]"
    )


def _node_set(
    var: str, scalars: dict[str, str], lists: dict[str, str] | None = None, on_match: dict[str, str] | None = None
) -> str:
    """ON CREATE: plain assignment (first load, cheap). ON MATCH: fill only absent properties, union
    lists and append $dataset_id to `sources`, so an existing node is never rewritten."""
    lists = lists or {}
    on_create = [f"{var}.{p} = row.{f}" for p, f in scalars.items()]
    on_create += [f"{var}.{p} = coalesce(row.{f}, [])" for p, f in lists.items()]
    on_create.append(f"{var}.sources = [$dataset_id]")
    on_match_sets = [f"{var}.{p} = " + (on_match or {}).get(p, f"coalesce({var}.{p}, row.{f})")
                     for p, f in scalars.items()]
    on_match_sets += [f"{var}.{p} = {_union(var, p, f)}" for p, f in lists.items()]
    on_match_sets.append(f"{var}.sources = {_sources(var)}")
    sep = ",\n    "
    return f"ON CREATE SET\n    {sep.join(on_create)}\nON MATCH SET\n    {sep.join(on_match_sets)}"


@dataclass(frozen=True)
class RowNode:
    """One node of an `UNWIND $rows AS row` write: `(var:Label {key: row.field})`, label allowlisted."""

    var: str
    label: str
    key: str
    field: str

    def __post_init__(self) -> None:
        require_label(self.label)
        for name in (self.var, self.key, self.field):
            require_property(name)

    def pattern(self) -> str:
        return f"({self.var}:{self.label} {{{self.key}: row.{self.field}}})"


GENE = RowNode("g", "Gene", "entrez_id", "entrez_id")


def merge_nodes(node: RowNode, sets: str) -> str:
    """UNWIND $rows, MERGE one node per row, then `sets` (this module's literal SET clauses)."""
    require_label(node.label)  # RowNode checks it too; the text below must never hold an unchecked label
    return f"\nUNWIND $rows AS row\nMERGE {node.pattern()}\n{sets}\nRETURN count(*) AS written\n"


def merge_relationships(start: RowNode, rel: str, end: RowNode, keys: str, sets: str) -> str:
    """UNWIND $rows, MATCH both (existing) ends, MERGE (start)-[r:REL {keys}]->(end), then `sets`. A row
    whose end is missing writes nothing (written < rows). `rel` must be allowlisted; `keys` / `sets`
    are literal Cypher of the query modules, never data."""
    return (f"\nUNWIND $rows AS row\nMATCH {start.pattern()}\nMATCH {end.pattern()}\n"
            f"MERGE ({start.var})-[r:{require_rel_type(rel)} {{{keys}}}]->({end.var})\n{sets}\n"
            "RETURN count(*) AS written\n")


_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_KEY_VALUE = re.compile(r"^(\$[a-z][a-z0-9_]*|row\.[a-z][a-z0-9_]*)$")


def upsert_versioned_relationships(start: RowNode, rel: str, end: RowNode, keys: Mapping[str, str],
                                   sets: str) -> str:
    """What `merge_relationships` does, for the model-version relationships: find the (start)-[r:REL]->(end)
    whose properties equal `keys` (name -> `$param` or `row.field`) among the relationships between the two
    nodes, create it when there is none, then `sets`.

    Not a MERGE because of the index on r.modelVersion (it serves pruning and counting by version): while
    a type has few relationships (a graph's first version), the planner answers MERGE's match with that
    index, reading every relationship of the version for each row, quadratic in the version's size (18 s
    instead of 0.8 s for the default world's 17,520 effects). Filtering the pair's own relationships in a
    list leaves the planner nothing to index: Expand(Into) on the two nodes. Rows with the same key in one
    call must be merged by the caller first (they would both create; `DiscoveryWriter` keeps the last, as
    MERGE + SET did). One version is written by one process (no lock taken on the pair)."""
    if not keys:
        raise ValueError("a versioned relationship needs key properties")
    for name, value in keys.items():
        if not _KEY_NAME.match(name) or not _KEY_VALUE.match(value):
            raise ValueError(f"key {name!r}: {value!r} is not a property name and a $param or row.field")
    rel = require_rel_type(rel)
    s, e = start.var, end.var
    same_key = " AND ".join(f"x.{name} = {value}" for name, value in keys.items())
    key_map = ", ".join(f"{name}: {value}" for name, value in keys.items())
    existing = f"[x IN [({s})-[y:{rel}]->({e}) | y] WHERE {same_key}]"
    return (f"\nUNWIND $rows AS row\nMATCH {start.pattern()}\nMATCH {end.pattern()}\n"
            f"WITH {s}, {e}, row, {existing} AS found\n"
            f"CALL ({s}, {e}, row, found) {{\n"
            f"  WITH {s}, {e}, row, found WHERE found = []\n"
            f"  CREATE ({s})-[r:{rel} {{{key_map}}}]->({e})\n"
            "  RETURN r\n"
            "  UNION ALL\n"
            "  WITH found WHERE found <> []\n"
            "  RETURN found[0] AS r\n"
            f"}}\n{sets}\n"
            "RETURN count(*) AS written\n")


# ---------------------------------------------------------------------------------------------
# Schema inspection
# ---------------------------------------------------------------------------------------------

SHOW_CONSTRAINTS = "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties"
SHOW_INDEXES = "SHOW INDEXES YIELD name, state"
AWAIT_INDEXES = "CALL db.awaitIndexes($timeout_s)"

# Graphs written before the case-folded lookup keys existed get them here (a no-op afterwards).
BACKFILL_LOOKUP_KEYS = (
    """
MATCH (g:Gene) WHERE g.symbol IS NOT NULL AND g.symbol_upper IS NULL
CALL (g) { SET g.symbol_upper = toUpper(g.symbol) } IN TRANSACTIONS OF 10000 ROWS
""",
    """
MATCH (c:Compound) WHERE c.name IS NOT NULL AND c.name_lower IS NULL
CALL (c) { SET c.name_lower = toLower(c.name) } IN TRANSACTIONS OF 10000 ROWS
""",
)

# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------

GET_DATASET = """
MATCH (d:Dataset {dataset_id: $dataset_id})
RETURN d {.*} AS dataset
"""

MERGE_DATASET = """
MERGE (d:Dataset {dataset_id: $dataset_id})
ON CREATE SET d += $props, d.status = $status, d.sources = [$dataset_id]
RETURN d.status AS status
"""

MARK_DATASET_COMPLETE = """
MATCH (d:Dataset {dataset_id: $dataset_id})
SET d += $props,
    d.status = 'complete',
    d.completed_at = coalesce(d.completed_at, $now)
RETURN d.status AS status
"""

# ---------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------

MERGE_GENES = f"""
UNWIND $rows AS row
MERGE (g:Gene {{entrez_id: row.entrez_id}})
{_node_set("g", {"symbol": "symbol", "name": "symbol", "description": "description", "ensembl_id": "ensembl_id",
                 "gene_type": "gene_type", "source": "source"}, {"aliases": "aliases"})}
SET g.symbol_upper = toUpper(g.symbol)
RETURN count(*) AS written
"""

MERGE_COMPOUNDS = f"""
UNWIND $rows AS row
MERGE (c:Compound {{compound_id: row.compound_id}})
{_node_set("c", {"name": "name", "smiles": "smiles", "inchikey": "inchikey", "inchikey_block1": "inchikey_block1",
                 "has_structure": "has_structure", "structure_issue": "structure_issue",
                 "clinical_phase": "clinical_phase", "source": "source"},
           {"aliases": "aliases", "moa": "moa", "target_symbols": "targets"},
           on_match={"has_structure": "coalesce(c.has_structure, false) OR row.has_structure"})}
SET c.name_lower = toLower(c.name)
RETURN count(*) AS written
"""

MERGE_CONTEXTS = merge_nodes(RowNode("x", "CellLine", "context_id", "context_id"),
                             _node_set("x", {"name": "name", "kind": "kind", "source": "source"}))

_PERTURBATION_SET = _node_set(
    "p",
    {"name": "name", "perturbation_type": "perturbation_type", "dose_value": "dose_value", "dose_unit": "dose_unit",
     "time_value": "time_value", "time_unit": "time_unit", "compound_id": "compound_id", "source": "source"},
    {"target_symbols": "target_symbols"},
)

# Compound perturbations are written only when their Compound node exists.
MERGE_COMPOUND_PERTURBATIONS = f"""
UNWIND $rows AS row
MATCH (c:Compound {{compound_id: row.compound_id}})
MERGE (p:Perturbation {{perturbation_id: row.perturbation_id}})
{_PERTURBATION_SET}
MERGE (p)-[r:OF_COMPOUND]->(c)
ON CREATE SET r.dataset = $dataset_id
RETURN count(*) AS written
"""

PERTURBATION = RowNode("p", "Perturbation", "perturbation_id", "perturbation_id")
MERGE_PERTURBATIONS = merge_nodes(PERTURBATION, _PERTURBATION_SET)

# rows: {perturbation_id, entrez_id, symbol}
MERGE_PERTURBS = merge_relationships(PERTURBATION, "PERTURBS", GENE, "dataset: $dataset_id",
                                     "ON CREATE SET r.symbol = row.symbol")

MISSING_COMPOUNDS = """
UNWIND $keys AS key
OPTIONAL MATCH (c:Compound {compound_id: key})
WITH key, c WHERE c IS NULL
RETURN collect(key) AS missing
"""

# ---------------------------------------------------------------------------------------------
# Signatures (experiments)
# ---------------------------------------------------------------------------------------------

_SIGNATURE_MATCH = """
UNWIND $rows AS row
MATCH (d:Dataset {dataset_id: row.dataset_id})
MATCH (x:CellLine {context_id: row.context_id})
MATCH (p:Perturbation {perturbation_id: row.perturbation_id})
"""

MERGE_SIGNATURES = f"""{_SIGNATURE_MATCH}
MERGE (s:Signature {{signature_id: row.signature_id}})
SET s.name = coalesce(s.name, row.name),
    s.dataset_id = coalesce(s.dataset_id, row.dataset_id),
    s.context_id = coalesce(s.context_id, row.context_id),
    s.perturbation_id = coalesce(s.perturbation_id, row.perturbation_id),
    s.n_readouts = coalesce(s.n_readouts, row.n_readouts),
    s.n_replicates = coalesce(s.n_replicates, row.n_replicates),
    s.source_id = coalesce(s.source_id, row.source_id),
    s.sources = CASE WHEN row.dataset_id IN coalesce(s.sources, []) THEN s.sources
                     ELSE coalesce(s.sources, []) + row.dataset_id END
MERGE (s)-[r1:IN_CONTEXT]->(x) ON CREATE SET r1.dataset = row.dataset_id
MERGE (s)-[r2:OF_PERTURBATION]->(p) ON CREATE SET r2.dataset = row.dataset_id
MERGE (s)-[r3:FROM_DATASET]->(d) ON CREATE SET r3.dataset = row.dataset_id
RETURN count(*) AS written
"""

# First load of a dataset that has no signatures yet: CREATE instead of MERGE (the uniqueness
# constraint still rejects a duplicate; the writer then falls back to MERGE_SIGNATURES).
CREATE_SIGNATURES = f"""{_SIGNATURE_MATCH}
CREATE (s:Signature {{signature_id: row.signature_id, name: row.name, dataset_id: row.dataset_id,
                     context_id: row.context_id, perturbation_id: row.perturbation_id,
                     n_readouts: row.n_readouts, n_replicates: row.n_replicates,
                     source_id: row.source_id, sources: [row.dataset_id]}})
CREATE (s)-[:IN_CONTEXT {{dataset: row.dataset_id}}]->(x)
CREATE (s)-[:OF_PERTURBATION {{dataset: row.dataset_id}}]->(p)
CREATE (s)-[:FROM_DATASET {{dataset: row.dataset_id}}]->(d)
RETURN count(*) AS written
"""

COUNT_DATASET_SIGNATURES = """
MATCH (s:Signature {dataset_id: $dataset_id})
RETURN count(s) AS n
"""

MISSING_SIGNATURE_REFS = """
UNWIND $rows AS row
OPTIONAL MATCH (d:Dataset {dataset_id: row.dataset_id})
OPTIONAL MATCH (x:CellLine {context_id: row.context_id})
OPTIONAL MATCH (p:Perturbation {perturbation_id: row.perturbation_id})
WITH row, d, x, p WHERE d IS NULL OR x IS NULL OR p IS NULL
RETURN row.signature_id AS key, d IS NULL AS no_dataset, x IS NULL AS no_context,
       p IS NULL AS no_perturbation
"""

# ---------------------------------------------------------------------------------------------
# Gene-level edges (rows carry resolved Entrez ids)
# ---------------------------------------------------------------------------------------------

COMPOUND = RowNode("c", "Compound", "compound_id", "compound_id")
GENE_A, GENE_B = RowNode("a", "Gene", "entrez_id", "a"), RowNode("b", "Gene", "entrez_id", "b")

# rows: {compound_id, entrez_id, symbol, source}
MERGE_TARGETS = merge_relationships(COMPOUND, "TARGETS", GENE, "dataset: $dataset_id",
                                    "ON CREATE SET r.source = row.source, r.symbol = row.symbol")

# rows: {a, b, source, score, evidence}; undirected: a < b
MERGE_INTERACTS_WITH = merge_relationships(
    GENE_A, "INTERACTS_WITH", GENE_B, "dataset: $dataset_id",
    "ON CREATE SET r.source = row.source, r.score = row.score, r.evidence = row.evidence")

# rows: {a (TF), b (target), source, score, sign, evidence}
MERGE_REGULATES = merge_relationships(
    GENE_A, "REGULATES", GENE_B, "dataset: $dataset_id",
    "ON CREATE SET r.source = row.source, r.score = row.score, r.sign = row.sign, r.confidence = row.evidence")

COMPLEX = RowNode("x", "Complex", "complex_id", "complex_id")
GENE_SET = RowNode("x", "GeneSet", "gene_set_id", "gene_set_id")
MERGE_COMPLEXES = merge_nodes(COMPLEX, _node_set("x", {"name": "name", "source": "source"}))
MERGE_GENE_SETS = merge_nodes(GENE_SET, _node_set("x", {"name": "name", "source": "source"}))

# rows: {complex_id | gene_set_id, entrez_id, symbol, source}
MERGE_COMPLEX_MEMBERS = merge_relationships(GENE, "MEMBER_OF", COMPLEX, "dataset: $dataset_id",
                                            "ON CREATE SET r.source = row.source")
MERGE_GENE_SET_MEMBERS = merge_relationships(GENE, "MEMBER_OF", GENE_SET, "dataset: $dataset_id",
                                             "ON CREATE SET r.source = row.source")

# ---------------------------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------------------------

GENE_SYMBOL_TABLE = """
MATCH (g:Gene)
RETURN g.entrez_id AS entrez_id, g.symbol AS symbol, coalesce(g.aliases, []) AS aliases
"""

GENE_BY_SYMBOL = """
MATCH (g:Gene {symbol: $symbol})
RETURN g {.*} AS gene
"""

COMPOUND_BY_ID = """
MATCH (c:Compound {compound_id: $compound_id})
RETURN c {.*} AS compound
"""

# "Which experiments measured compound X in cell line Y?" $compound matches the compound id,
# the name (case-insensitive) or an alias (each an index seek); $context the context id or the
# cell-line name.
# Only signatures of complete datasets are returned.
EXPERIMENTS_FOR_COMPOUND_IN_CONTEXT = """
CALL () {
  MATCH (c:Compound {compound_id: $compound}) RETURN c
  UNION
  MATCH (c:Compound {name_lower: toLower($compound)}) RETURN c
  UNION
  WITH 1 AS one WHERE size($compound) > 0
  CALL db.index.fulltext.queryNodes('__ALIAS_INDEX__', __ALIAS_PHRASE__) YIELD node
  WITH node AS c WHERE c:Compound AND $compound IN c.aliases
  RETURN c
}
MATCH (x:CellLine)
WHERE x.context_id = $context OR toLower(x.name) = toLower($context)
MATCH (c)<-[:OF_COMPOUND]-(p:Perturbation)<-[:OF_PERTURBATION]-(s:Signature)-[:IN_CONTEXT]->(x)
MATCH (s)-[:FROM_DATASET]->(d:Dataset)
WHERE d.status = 'complete'
RETURN s.signature_id AS signature_id, d.dataset_id AS dataset_id, c.compound_id AS compound_id,
       c.name AS compound, x.context_id AS context_id, p.perturbation_id AS perturbation_id,
       p.dose_value AS dose_value, p.dose_unit AS dose_unit, p.time_value AS time_value,
       p.time_unit AS time_unit, s.n_readouts AS n_readouts, d.store_path AS store_path,
       d.store_sha256 AS store_sha256
ORDER BY dataset_id, dose_value, time_value, signature_id
""".replace("__ALIAS_INDEX__", COMPOUND_ALIAS_INDEX.index_name).replace(
    "__ALIAS_PHRASE__", COMPOUND_ALIAS_INDEX.exact_phrase("compound"))

# Per dataset id: the Dataset node's status and the store file it records (null when absent).
DATASET_STORE_RECORDS = """
UNWIND $dataset_ids AS dataset_id
OPTIONAL MATCH (d:Dataset {dataset_id: dataset_id})
RETURN dataset_id, d.status AS status, d.store_path AS store_path, d.store_sha256 AS store_sha256,
       d.store_rows AS store_rows
"""


# ---------------------------------------------------------------------------------------------
# Integrity checks
# ---------------------------------------------------------------------------------------------

ORPHAN_CHECKS: dict[str, str] = {
    "signature_without_context": "MATCH (s:Signature) WHERE NOT (s)-[:IN_CONTEXT]->(:CellLine) RETURN count(s) AS n",
    "signature_without_perturbation": (
        "MATCH (s:Signature) WHERE NOT (s)-[:OF_PERTURBATION]->(:Perturbation) RETURN count(s) AS n"
    ),
    "signature_without_dataset": (
        "MATCH (s:Signature) WHERE NOT (s)-[:FROM_DATASET]->(:Dataset) RETURN count(s) AS n"
    ),
    "compound_perturbation_without_compound": (
        "MATCH (p:Perturbation {perturbation_type: 'compound'}) "
        "WHERE NOT (p)-[:OF_COMPOUND]->(:Compound) RETURN count(p) AS n"
    ),
    # Provenance of ingested facts (discoveries carry a modelVersion instead; see discovery_queries).
    "node_without_sources": (
        "MATCH (n) WHERE any(l IN labels(n) WHERE l IN $ingest_labels) "
        "AND (n.sources IS NULL OR size(n.sources) = 0) RETURN count(n) AS n"
    ),
    "node_without_name": (
        "MATCH (n) WHERE any(l IN labels(n) WHERE l IN $ingest_labels) AND n.name IS NULL RETURN count(n) AS n"
    ),
    "relationship_without_dataset": (
        "MATCH ()-[r]->() WHERE type(r) IN $ingest_rel_types AND r.dataset IS NULL RETURN count(r) AS n"
    ),
    "incomplete_dataset": "MATCH (d:Dataset) WHERE d.status <> 'complete' RETURN count(d) AS n",
}

LABELS_IN_USE = "CALL db.labels() YIELD label RETURN collect(label) AS names"
REL_TYPES_IN_USE = "CALL db.relationshipTypes() YIELD relationshipType RETURN collect(relationshipType) AS names"
TOTAL_NODES = "MATCH (n) RETURN count(n) AS n"
TOTAL_RELATIONSHIPS = "MATCH ()-[r]->() RETURN count(r) AS n"


def count_nodes_query(label: str) -> str:
    """Count-store lookup for one allowlisted label."""
    return f"MATCH (n:{require_label(label)}) RETURN count(n) AS n"


def count_relationships_query(rel_type: str) -> str:
    """Count-store lookup for one allowlisted relationship type."""
    return f"MATCH ()-[r:{require_rel_type(rel_type)}]->() RETURN count(r) AS n"


QUERIES: dict[str, str] = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
}
QUERIES.update({f"ORPHAN_CHECKS.{k}": v for k, v in ORPHAN_CHECKS.items()})
QUERIES.update({f"BACKFILL_LOOKUP_KEYS.{i}": v for i, v in enumerate(BACKFILL_LOOKUP_KEYS)})

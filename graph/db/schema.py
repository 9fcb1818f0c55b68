"""The PerturbGraph graph schema: the allowlist of labels and relationship types, node keys,
uniqueness constraints and indexes.

Labels and relationship types never come from data. Any Cypher that has to name a label or a
relationship type that is not written literally in a query constant must obtain it through
`require_label` / `require_rel_type`, which only return members of the allowlists below. The
discovery layer (graph/db/discovery_queries.py) uses the same allowlists: its labels and types are
already listed here, and `NODE_KEYS` / `CONSTRAINTS` can be extended there by building new
`NodeKey` tuples from allowlisted labels.

See docs/graph-schema.md for the picture and the meaning of every property.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# Allowlists
# ---------------------------------------------------------------------------------------------

# Entities and experiments written by ingest.
INGEST_NODE_LABELS: frozenset[str] = frozenset(
    {
        "Dataset",
        "Gene",
        "Compound",
        "CellLine",
        "Perturbation",
        "Signature",
        "Complex",
        "Pathway",
        "GeneSet",
    }
)

# Written by the discovery layer (model runs write their results back).
DISCOVERY_NODE_LABELS: frozenset[str] = frozenset(
    {
        "ModelVersion",
        "Embedding",
        "EvaluationRun",
        "Discovery",
    }
)

NODE_LABELS: frozenset[str] = INGEST_NODE_LABELS | DISCOVERY_NODE_LABELS

INGEST_REL_TYPES: frozenset[str] = frozenset(
    {
        "TARGETS",  # (Compound)-[:TARGETS {source, dataset}]->(Gene)
        "PERTURBS",  # (Perturbation)-[:PERTURBS {dataset}]->(Gene)   genetic perturbations
        "OF_COMPOUND",  # (Perturbation)-[:OF_COMPOUND]->(Compound)
        "IN_CONTEXT",  # (Signature)-[:IN_CONTEXT]->(CellLine)
        "OF_PERTURBATION",  # (Signature)-[:OF_PERTURBATION]->(Perturbation)
        "FROM_DATASET",  # (Signature)-[:FROM_DATASET]->(Dataset)
        "INTERACTS_WITH",  # (Gene)-[:INTERACTS_WITH {source, score, dataset}]->(Gene) undirected prior
        "REGULATES",  # (Gene)-[:REGULATES {source, sign, confidence, dataset}]->(Gene) TF -> target
        "MEMBER_OF",  # (Gene)-[:MEMBER_OF {source, dataset}]->(Complex|Pathway|GeneSet)
    }
)

DISCOVERY_REL_TYPES: frozenset[str] = frozenset(
    {
        "SHARES_MECHANISM_WITH",
        "PREDICTED_INTERACTION",
        "PREDICTED_EFFECT",
        "PREDICTED_TARGET",
        "HAS_EMBEDDING",
        "TRAINED_ON",
        "EVALUATED",
        "PRODUCED_BY",
        "SIMILAR_TO",
    }
)

REL_TYPES: frozenset[str] = INGEST_REL_TYPES | DISCOVERY_REL_TYPES

_PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_PROPERTY = re.compile(r"^[a-z][a-z0-9_]*$")

# Dataset.status values. A dataset is 'complete' only after every write of its ingest succeeded.
STATUS_LOADING = "loading"
STATUS_COMPLETE = "complete"
DATASET_STATUSES: tuple[str, ...] = (STATUS_LOADING, STATUS_COMPLETE)


class SchemaError(ValueError):
    """A label, relationship type or property name outside the allowlist."""


def require_label(label: str) -> str:
    """`label` if it is an allowlisted node label, else SchemaError. Use before templating Cypher."""
    if label not in NODE_LABELS or not _PASCAL.match(label):
        raise SchemaError(f"node label {label!r} is not in the schema allowlist")
    return label


def require_rel_type(rel_type: str) -> str:
    """`rel_type` if it is an allowlisted relationship type, else SchemaError."""
    if rel_type not in REL_TYPES or not _UPPER_SNAKE.match(rel_type):
        raise SchemaError(f"relationship type {rel_type!r} is not in the schema allowlist")
    return rel_type


def require_property(name: str) -> str:
    """`name` if it is a plain snake_case property name (used for keys and index definitions)."""
    if not _PROPERTY.match(name):
        raise SchemaError(f"property name {name!r} is not snake_case")
    return name


# ---------------------------------------------------------------------------------------------
# Keys, constraints, indexes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeKey:
    label: str
    key: str

    def __post_init__(self) -> None:
        require_label(self.label)
        require_property(self.key)

    @property
    def constraint_name(self) -> str:
        return f"{self.label.lower()}_{self.key}_unique"

    def constraint_cypher(self) -> str:
        return (
            f"CREATE CONSTRAINT {self.constraint_name} IF NOT EXISTS "
            f"FOR (n:{self.label}) REQUIRE n.{self.key} IS UNIQUE"
        )


@dataclass(frozen=True)
class PropertyIndex:
    label: str
    prop: str

    def __post_init__(self) -> None:
        require_label(self.label)
        require_property(self.prop)

    @property
    def index_name(self) -> str:
        return f"{self.label.lower()}_{self.prop}_idx"

    def index_cypher(self) -> str:
        return f"CREATE INDEX {self.index_name} IF NOT EXISTS FOR (n:{self.label}) ON (n.{self.prop})"


NODE_KEYS: dict[str, NodeKey] = {
    nk.label: nk
    for nk in (
        NodeKey("Dataset", "dataset_id"),
        NodeKey("Gene", "entrez_id"),
        NodeKey("Compound", "compound_id"),
        NodeKey("CellLine", "context_id"),
        NodeKey("Perturbation", "perturbation_id"),
        NodeKey("Signature", "signature_id"),
        NodeKey("Complex", "complex_id"),
        NodeKey("Pathway", "pathway_id"),
        NodeKey("GeneSet", "gene_set_id"),
    )
}

@dataclass(frozen=True)
class FulltextIndex:
    """A Lucene index over string / string-list properties. With the `keyword` analyzer every value
    is one exact token: the index answers list-membership lookups that a range index cannot."""

    label: str
    props: tuple[str, ...]
    analyzer: str = "keyword"

    def __post_init__(self) -> None:
        require_label(self.label)
        for prop in self.props:
            require_property(prop)

    @property
    def index_name(self) -> str:
        return f"{self.label.lower()}_{'_'.join(self.props)}_ftidx"

    @staticmethod
    def exact_phrase(param: str) -> str:
        """Cypher for the Lucene query that matches the string parameter `$param` as one whole value:
        quoted, with backslashes and quotes escaped (under the keyword analyzer a phrase is one term)."""
        require_property(param)
        return rf"""'"' + replace(replace(${param}, '\\', '\\\\'), '"', '\\"') + '"'"""

    def index_cypher(self) -> str:
        on = ", ".join(f"n.{p}" for p in self.props)
        return (f"CREATE FULLTEXT INDEX {self.index_name} IF NOT EXISTS FOR (n:{self.label}) ON EACH [{on}] "
                f"OPTIONS {{indexConfig: {{`fulltext.analyzer`: '{self.analyzer}'}}}}")


# symbol_upper / name_lower: case-folded copies (set by the writer) so that case-insensitive
# lookups are index seeks, not scans of every Gene / Compound.
PROPERTY_INDEXES: tuple[PropertyIndex, ...] = (
    PropertyIndex("Gene", "symbol"),
    PropertyIndex("Gene", "symbol_upper"),
    PropertyIndex("Compound", "name"),
    PropertyIndex("Compound", "name_lower"),
    PropertyIndex("Compound", "inchikey_block1"),
    PropertyIndex("CellLine", "name"),
    PropertyIndex("Perturbation", "perturbation_type"),
    PropertyIndex("Signature", "dataset_id"),
    PropertyIndex("Dataset", "status"),
)

# Compound aliases (pert_ids, other names) are a string list.
COMPOUND_ALIAS_INDEX = FulltextIndex("Compound", ("aliases",))
FULLTEXT_INDEXES: tuple[FulltextIndex, ...] = (COMPOUND_ALIAS_INDEX,)


def schema_statements() -> list[str]:
    """DDL in the order it must run: uniqueness constraints first, then the lookup indexes."""
    return [nk.constraint_cypher() for nk in NODE_KEYS.values()] + [
        ix.index_cypher() for ix in (*PROPERTY_INDEXES, *FULLTEXT_INDEXES)
    ]

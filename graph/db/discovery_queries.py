"""All Cypher of the discovery layer: model versions, embeddings, write-back of discoveries, pruning,
and the named read-only query surface (`NAMED_QUERIES`, used by `perturbgraph query`).

Rules (the same as graph/db/queries.py):

* every query is a module-level constant, registered by name in `QUERIES`;
* labels, relationship types and property names are written literally or come from the
  allowlist constants below (checked with `graph.db.schema.require_label` / `require_rel_type`
  when the few generated queries are built at import time) — never from data;
* every value (ids, names, vectors, the vector dimension, batch sizes, limits) is a parameter;
* writes are `UNWIND $rows AS row MERGE ...` keyed by (endpoints, modelVersion), so writing the
  same model version twice changes nothing.

Model of the discoveries (see docs/queries.md):

    (:ModelVersion {version_id, current, status, config, data_snapshot, dataset_ids,
                    dataset_hashes, metrics, trained_at, code_version, ...})-[:TRAINED_ON]->(:Dataset)
    (:Compound)-[:SHARES_MECHANISM_WITH {modelVersion, score, rank, zscore, pvalue, qvalue,
                                         significant, method, isAnnotatedTarget}]->(:Gene)
    (:Gene)-[:PREDICTED_INTERACTION {modelVersion, score, rank, inPrior, basis, method}]->(:Gene)
    (:Perturbation)-[:PREDICTED_EFFECT {modelVersion, context, value, direction, rank,
                                        readout}]->(:Gene)

Embeddings of the current model live on the nodes as LIST<FLOAT> properties
(`embedding_perturbation`, `embedding_readout`, `embedding_context`) with `<property>_version`
naming the model version; each has a cosine vector index (`VECTOR_INDEXES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graph.db.queries import COMPOUND, GENE, GENE_A, GENE_B, PERTURBATION, upsert_versioned_relationships
from graph.db.schema import COMPOUND_ALIAS_INDEX, NodeKey, require_label, require_property, require_rel_type

# ---------------------------------------------------------------------------------------------
# What the discovery layer writes (all members of graph.db.schema's allowlists)
# ---------------------------------------------------------------------------------------------

MODEL_VERSION_LABEL = require_label("ModelVersion")
MECHANISM_REL = require_rel_type("SHARES_MECHANISM_WITH")
INTERACTION_REL = require_rel_type("PREDICTED_INTERACTION")
EFFECT_REL = require_rel_type("PREDICTED_EFFECT")
TRAINED_ON_REL = require_rel_type("TRAINED_ON")

# Relationship types that carry `modelVersion` and are pruned with their version.
VERSIONED_REL_TYPES: tuple[str, ...] = (MECHANISM_REL, INTERACTION_REL, EFFECT_REL)

MODEL_VERSION_KEY = NodeKey(MODEL_VERSION_LABEL, "version_id")


@dataclass(frozen=True)
class EmbeddingTarget:
    """Where one kind of embedding is stored: label, key property, vector property, index name."""

    kind: str
    label: str
    key: str
    prop: str

    def __post_init__(self) -> None:
        require_label(self.label)
        require_property(self.key)
        require_property(self.prop)

    @property
    def index_name(self) -> str:
        return f"{self.label.lower()}_{self.prop}_vidx"

    @property
    def version_prop(self) -> str:
        return f"{self.prop}_version"


# kind -> target. 'compound' = a compound's perturbations aggregated over doses; 'gene_perturbation'
# = the genetic perturbation(s) of a gene (knock-down embedding); 'readout' = the gene as a readout.
EMBEDDING_TARGETS: dict[str, EmbeddingTarget] = {
    t.kind: t
    for t in (
        EmbeddingTarget("compound", "Compound", "compound_id", "embedding_perturbation"),
        EmbeddingTarget("perturbation", "Perturbation", "perturbation_id", "embedding_perturbation"),
        EmbeddingTarget("gene_perturbation", "Gene", "entrez_id", "embedding_perturbation"),
        EmbeddingTarget("readout", "Gene", "entrez_id", "embedding_readout"),
        EmbeddingTarget("context", "CellLine", "context_id", "embedding_context"),
    )
}


def _vector_index_cypher(t: EmbeddingTarget) -> str:
    # The dimension is a parameter ($dim, validated as a positive int by the writer).
    return (
        f"CREATE VECTOR INDEX {t.index_name} IF NOT EXISTS FOR (n:{t.label}) ON n.{t.prop} "
        "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine'}}"
    )


def _drop_index_cypher(t: EmbeddingTarget) -> str:
    return f"DROP INDEX {t.index_name} IF EXISTS"


def _rel_index_cypher(rel: str) -> str:
    return (f"CREATE INDEX {rel.lower()}_model_version_idx IF NOT EXISTS "
            f"FOR ()-[r:{require_rel_type(rel)}]-() ON (r.modelVersion)")


# ---------------------------------------------------------------------------------------------
# Schema of the discovery layer
# ---------------------------------------------------------------------------------------------

MODEL_VERSION_CONSTRAINT = MODEL_VERSION_KEY.constraint_cypher()
REL_VERSION_INDEXES: dict[str, str] = {rel: _rel_index_cypher(rel) for rel in VERSIONED_REL_TYPES}
VECTOR_INDEX_DDL: dict[str, str] = {k: _vector_index_cypher(t) for k, t in EMBEDDING_TARGETS.items()}
DROP_VECTOR_INDEX: dict[str, str] = {k: _drop_index_cypher(t) for k, t in EMBEDDING_TARGETS.items()}
SHOW_VECTOR_INDEXES = (
    "SHOW VECTOR INDEXES YIELD name, state, labelsOrTypes, properties, options "
    "RETURN name, state, labelsOrTypes, properties, options.indexConfig.`vector.dimensions` AS dimensions"
)
AWAIT_INDEXES = "CALL db.awaitIndexes($timeout_s)"
# Vector (like full-text) indexes are eventually consistent: wait until committed writes are visible.
AWAIT_INDEX_REFRESH = "CALL db.index.fulltext.awaitEventuallyConsistentIndexRefresh()"

# ---------------------------------------------------------------------------------------------
# Model versions
# ---------------------------------------------------------------------------------------------

# $props: config (JSON), data_snapshot (JSON), dataset_ids, dataset_hashes, metrics (JSON),
# trained_at (ISO-8601), code_version, embedding_dim, ... A new version starts non-current with
# status 'writing'; existing versions keep their properties (idempotent re-run).
MERGE_MODEL_VERSION = """
MERGE (m:ModelVersion {version_id: $version_id})
ON CREATE SET m += $props, m.current = false, m.status = 'writing', m.created_at = $now, m.status_at = $now
RETURN m.config AS config, m.status AS status, m.current AS current
"""

UPDATE_MODEL_VERSION_METRICS = """
MATCH (m:ModelVersion {version_id: $version_id})
SET m.metrics = $metrics
RETURN count(m) AS updated
"""

LINK_MODEL_DATASETS = """
MATCH (m:ModelVersion {version_id: $version_id})
UNWIND $dataset_ids AS dataset_id
MATCH (d:Dataset {dataset_id: dataset_id})
MERGE (m)-[:TRAINED_ON]->(d)
RETURN count(*) AS linked
"""

# Exactly one current version: every other version is written (which also locks all version nodes,
# so two concurrent publishes serialise instead of both ending current). A refused or abandoned version
# is never made current (no row back: the caller raises).
SET_CURRENT_VERSION = """
MATCH (m:ModelVersion {version_id: $version_id})
WHERE NOT coalesce(m.status, '') IN ['refused', 'abandoned']
CALL (m) {
  MATCH (o:ModelVersion) WHERE o <> m
  SET o.current = false
}
SET m.status_at = CASE WHEN m.status = 'complete' THEN coalesce(m.status_at, $now) ELSE $now END,
    m.current = true, m.status = 'complete', m.published_at = coalesce(m.published_at, $now)
RETURN m.version_id AS version_id
"""

CURRENT_VERSION = """
MATCH (m:ModelVersion {current: true})
RETURN m.version_id AS version_id
"""

LIST_MODEL_VERSIONS_RAW = """
MATCH (m:ModelVersion)
RETURN m.version_id AS version_id, m.current AS current, m.status AS status,
       coalesce(m.trained_at, m.created_at) AS trained_at, m.created_at AS created_at
ORDER BY trained_at DESC, created_at DESC, version_id DESC
"""

GET_MODEL_VERSION = """
MATCH (m:ModelVersion {version_id: $version_id})
RETURN m {.*} AS model_version
"""

DELETE_MODEL_VERSION = """
MATCH (m:ModelVersion {version_id: $version_id})
WHERE NOT coalesce(m.current, false)
DETACH DELETE m
RETURN count(*) AS deleted
"""


def _delete_version_links(rel: str) -> str:
    return (f"MATCH ()-[r:{require_rel_type(rel)}]->() WHERE r.modelVersion = $version_id "
            "WITH r LIMIT $batch_size DELETE r RETURN count(*) AS deleted")


# One batch (at most $batch_size relationships) per call; the writer repeats until 0.
DELETE_VERSION_LINKS: dict[str, str] = {rel: _delete_version_links(rel) for rel in VERSIONED_REL_TYPES}


def _count_version_links(rel: str) -> str:
    return (f"MATCH ()-[r:{require_rel_type(rel)}]->() WHERE r.modelVersion = $version_id "
            "RETURN count(r) AS n")


COUNT_VERSION_LINKS: dict[str, str] = {rel: _count_version_links(rel) for rel in VERSIONED_REL_TYPES}

# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------


def _set_embedding(t: EmbeddingTarget) -> str:
    # An unchanged vector is not rewritten (no churn in the eventually consistent vector index).
    return (f"UNWIND $rows AS row MATCH (n:{t.label} {{{t.key}: row.key}}) "
            f"SET n.{t.prop} = CASE WHEN n.{t.prop} = row.vector THEN n.{t.prop} ELSE row.vector END, "
            f"n.{t.version_prop} = $version_id "
            "RETURN count(*) AS written")


def _clear_stale_embeddings(t: EmbeddingTarget) -> str:
    return (f"MATCH (n:{t.label}) WHERE n.{t.version_prop} IS NOT NULL AND n.{t.version_prop} <> $version_id "
            f"WITH n LIMIT $batch_size REMOVE n.{t.prop}, n.{t.version_prop} RETURN count(*) AS cleared")


def _clear_version_embeddings(t: EmbeddingTarget) -> str:
    return (f"MATCH (n:{t.label}) WHERE n.{t.version_prop} = $version_id "
            f"WITH n LIMIT $batch_size REMOVE n.{t.prop}, n.{t.version_prop} RETURN count(*) AS cleared")


SET_EMBEDDINGS: dict[str, str] = {k: _set_embedding(t) for k, t in EMBEDDING_TARGETS.items()}
# Embeddings written by any version other than $version_id (the model no longer has those names).
CLEAR_STALE_EMBEDDINGS: dict[str, str] = {k: _clear_stale_embeddings(t) for k, t in EMBEDDING_TARGETS.items()}
# Embeddings written by $version_id (used when that version is pruned).
CLEAR_VERSION_EMBEDDINGS: dict[str, str] = {k: _clear_version_embeddings(t) for k, t in EMBEDDING_TARGETS.items()}

# ---------------------------------------------------------------------------------------------
# Discoveries (write-back)
# ---------------------------------------------------------------------------------------------

# rows: {compound_id, entrez_id, score, rank, zscore, pvalue, qvalue, significant, method}. `significant`
# (q <= the version's FDR, BH over every pair tested) marks a published discovery; the other stored
# links (each compound's top-k) are kept for `--all` and version comparison.
WRITE_MECHANISM_LINKS = upsert_versioned_relationships(
    COMPOUND, MECHANISM_REL, GENE, {"modelVersion": "$version_id"},
    "SET r.score = row.score, r.rank = row.rank, r.zscore = row.zscore, r.pvalue = row.pvalue,\n"
    "    r.qvalue = row.qvalue, r.significant = row.significant, r.method = row.method,\n"
    "    r.isAnnotatedTarget = EXISTS { (c)-[:TARGETS]->(g) }")

# rows: {a, b, score, rank, method}  (b is among a's top-k); $basis: 'embedding' | 'profile';
# method: the edge source the version published (models.edge_sources), e.g. 'signature_correlation'.
WRITE_GENE_INTERACTIONS = upsert_versioned_relationships(
    GENE_A, INTERACTION_REL, GENE_B, {"modelVersion": "$version_id"},
    "SET r.score = row.score, r.rank = row.rank, r.basis = $basis, r.method = row.method,\n"
    "    r.inPrior = EXISTS { (a)-[:INTERACTS_WITH]-(b) }")

# rows: {perturbation_id, entrez_id, readout, context, value, direction, rank}
WRITE_PREDICTED_EFFECTS = upsert_versioned_relationships(
    PERTURBATION, EFFECT_REL, GENE, {"modelVersion": "$version_id", "context": "row.context"},
    "SET r.value = row.value, r.direction = row.direction, r.rank = row.rank, r.readout = row.readout")

# What the discovery computations need from the graph: each perturbation with its compound and the
# genes it perturbs (genetic perturbations), and the annotated targets / prior edges.
PERTURBATION_MAP = """
MATCH (p:Perturbation)
OPTIONAL MATCH (p)-[:OF_COMPOUND]->(c:Compound)
RETURN p.perturbation_id AS perturbation_id, p.perturbation_type AS perturbation_type,
       c.compound_id AS compound_id,
       COLLECT { MATCH (p)-[:PERTURBS]->(g:Gene) RETURN DISTINCT g.entrez_id } AS entrez_ids
"""

ANNOTATED_TARGETS = """
MATCH (c:Compound)-[:TARGETS]->(g:Gene)
RETURN c.compound_id AS compound_id, collect(DISTINCT g.entrez_id) AS entrez_ids
"""

PRIOR_PAIRS = """
MATCH (a:Gene)-[:INTERACTS_WITH]->(b:Gene)
RETURN DISTINCT a.entrez_id AS a, b.entrez_id AS b
"""

# Reference gene pairs for scoring edge sources, among the genes $entrez_ids only (index seeks on
# Gene.entrez_id): each complex's members among them, named by the complex's source (CORUM), one row per
# complex (grows with members, not pairs; graph.io.networks.complex_pairs pairs them, the one pairing
# rule), and prior interactions.
REFERENCE_COMPLEX_MEMBERS = """
MATCH (g:Gene)-[:MEMBER_OF]->(x:Complex)
WHERE g.entrez_id IN $entrez_ids
WITH x, collect(DISTINCT g.entrez_id) AS members
WHERE size(members) > 1
RETURN coalesce(x.source, 'complex') AS reference, x.complex_id AS complex_id, members
"""

REFERENCE_INTERACTION_PAIRS = """
MATCH (a:Gene)-[r:INTERACTS_WITH]-(b:Gene)
WHERE a.entrez_id IN $entrez_ids AND b.entrez_id IN $entrez_ids AND a.entrez_id < b.entrez_id
RETURN DISTINCT coalesce(r.source, 'interaction') AS reference, a.entrez_id AS a, b.entrez_id AS b
"""

SET_MODEL_VERSION_STATUS = """
MATCH (m:ModelVersion {version_id: $version_id})
SET m.status = $status, m.status_at = $now
RETURN m.version_id AS version_id
"""

# A version a blocking check refused: never current, status 'refused' with the check's reason. Its
# links stay until pruned, but no named query reads them (they read published versions only).
REFUSE_MODEL_VERSION = """
MATCH (m:ModelVersion {version_id: $version_id})
WHERE NOT coalesce(m.current, false)
SET m.status = 'refused', m.refused_reason = $reason, m.refused_at = $now, m.status_at = $now
RETURN m.version_id AS version_id
"""

# Versions `perturbgraph prune-versions` removes: refused and abandoned ones, and with $non_current also
# every published version that is not current. Versions in flight ('writing', 'awaiting_check') are
# kept until they are older than the stale age (then ABANDON_MODEL_VERSION marks them first).
VERSIONS_TO_PRUNE = """
MATCH (m:ModelVersion)
WHERE NOT coalesce(m.current, false)
  AND (m.status IN ['refused', 'abandoned'] OR ($non_current AND m.status = 'complete'))
RETURN m.version_id AS version_id, m.status AS status, m.refused_reason AS refused_reason,
       m.abandoned_reason AS abandoned_reason
ORDER BY coalesce(m.trained_at, m.created_at), m.version_id
"""

# Non-current versions still in flight ('writing', 'awaiting_check', or no status: written by code older
# than the statuses) whose last status change ($cutoff: ISO-8601) is older than the stale age: their
# write or their check never finished (a crash between the steps). status_at is absent on versions
# written before it existed: created_at stands in; a version with neither timestamp is stale.
STALE_IN_FLIGHT_VERSIONS = """
MATCH (m:ModelVersion)
WHERE NOT coalesce(m.current, false) AND coalesce(m.status, 'writing') IN ['writing', 'awaiting_check']
WITH m, coalesce(m.status_at, m.created_at) AS since
WHERE since IS NULL OR datetime(since) < datetime($cutoff)
RETURN m.version_id AS version_id, m.status AS status, since
ORDER BY since, version_id
"""

# Marks one stale in-flight version abandoned (never current, never read; prune-versions deletes it).
# The WHERE repeats the in-flight test so a version that moved on meanwhile is left alone.
ABANDON_MODEL_VERSION = """
MATCH (m:ModelVersion {version_id: $version_id})
WHERE NOT coalesce(m.current, false) AND coalesce(m.status, 'writing') IN ['writing', 'awaiting_check']
SET m.status = 'abandoned', m.abandoned_reason = $reason, m.abandoned_at = $now, m.status_at = $now
RETURN m.version_id AS version_id
"""

# Per discovery type: the source published, its validation score and the simple answer's score
# (flat properties for `model-versions`), and the whole scoring as JSON (discovery_quality).
SET_DISCOVERY_QUALITY = """
MATCH (m:ModelVersion {version_id: $version_id})
SET m.edge_method = $edge_method, m.edge_score = $edge_score, m.edge_baseline_score = $edge_baseline_score,
    m.edge_metric = $edge_metric, m.edge_gate = $edge_gate, m.predictor_status = $predictor_status,
    m.mechanism_method = $mechanism_method,
    m.mechanism_score = $mechanism_score, m.mechanism_baseline_score = $mechanism_baseline_score,
    m.mechanism_metric = $mechanism_metric, m.mechanism_fdr = $mechanism_fdr,
    m.significant_mechanism_links = $significant_mechanism_links, m.discovery_quality = $quality
RETURN m.version_id AS version_id
"""

# ---------------------------------------------------------------------------------------------
# The named query surface (read-only)
# ---------------------------------------------------------------------------------------------

# $version: a version id, or null for the current version. Only published versions (status
# 'complete': the current one and those current before it) are read; a version awaiting its check
# or refused by it never answers a named query.
_VERSION = """
MATCH (mv:ModelVersion)
WHERE (($version IS NULL AND mv.current = true) OR mv.version_id = $version) AND mv.status = 'complete'
WITH mv.version_id AS v
"""

# $compound: compound id, else a name (case-insensitive), else an alias (exact); every step is an
# index seek (name_lower: range index; aliases: keyword fulltext index, whose Lucene query is the
# quoted, escaped $compound). A name can belong to several compounds (stereo variants listed
# apart): the one the model embedded (it carries the discoveries) wins, then the exact spelling,
# then the smallest compound_id.
# $compound as one quoted Lucene phrase (backslashes and quotes escaped): with the keyword analyzer
# it matches exactly one whole alias, whatever characters the alias has.
ALIAS_PHRASE = COMPOUND_ALIAS_INDEX.exact_phrase("compound")
_RESOLVE_COMPOUND = """
OPTIONAL MATCH (c1:Compound {compound_id: $compound})
OPTIONAL CALL (c1) {
  WITH c1 WHERE c1 IS NULL
  MATCH (c2:Compound {name_lower: toLower($compound)})
  RETURN c2 ORDER BY c2.embedding_perturbation IS NULL, c2.name <> $compound, c2.compound_id LIMIT 1
}
WITH __CARRY__coalesce(c1, c2) AS hit
OPTIONAL CALL (hit) {
  WITH hit WHERE hit IS NULL AND size($compound) > 0
  CALL db.index.fulltext.queryNodes('__ALIAS_INDEX__', __ALIAS_PHRASE__) YIELD node
  WITH node AS x WHERE x:Compound AND $compound IN x.aliases
  RETURN x ORDER BY x.embedding_perturbation IS NULL, x.compound_id LIMIT 1
}
WITH __CARRY__coalesce(hit, x) AS c
""".replace("__ALIAS_INDEX__", COMPOUND_ALIAS_INDEX.index_name).replace("__ALIAS_PHRASE__", ALIAS_PHRASE)
_COMPOUND = _RESOLVE_COMPOUND.replace("__CARRY__", "v, ") + "WHERE c IS NOT NULL\n"

# $gene: symbol or Entrez id, else a case-insensitive symbol (symbol_upper); all index seeks.
_GENE = """
OPTIONAL MATCH (g1:Gene {symbol: $gene})
OPTIONAL MATCH (g2:Gene {entrez_id: toInteger($gene)})
WITH v, coalesce(g1, g2) AS hit
OPTIONAL CALL (hit) {
  WITH hit WHERE hit IS NULL
  MATCH (x:Gene {symbol_upper: toUpper($gene)})
  RETURN x ORDER BY x.entrez_id LIMIT 1
}
WITH v, coalesce(hit, x) AS g
WHERE g IS NOT NULL
"""

# $all: false = significant links only (q <= the version's FDR; a link written before calibration
# has no `significant` and counts as not significant), true = every stored link.
MECHANISM_OF_COMPOUND = f"""{_VERSION}{_COMPOUND}
MATCH (c)-[r:SHARES_MECHANISM_WITH]->(t:Gene)
WHERE r.modelVersion = v AND ($all OR coalesce(r.significant, false))
RETURN c.compound_id AS compound_id, c.name AS compound, t.symbol AS gene, t.entrez_id AS entrez_id,
       r.rank AS rank, r.score AS score, r.zscore AS zscore, r.pvalue AS pvalue, r.qvalue AS qvalue,
       coalesce(r.significant, false) AS significant, r.isAnnotatedTarget AS annotated_target,
       r.method AS method, v AS model_version
ORDER BY rank
LIMIT $limit
"""

COMPOUNDS_MIMICKING_GENE = f"""{_VERSION}{_GENE}
MATCH (c:Compound)-[r:SHARES_MECHANISM_WITH]->(g)
WHERE r.modelVersion = v AND ($all OR coalesce(r.significant, false))
RETURN g.symbol AS gene, c.compound_id AS compound_id, c.name AS compound, r.score AS score,
       r.rank AS rank_for_compound, r.zscore AS zscore, r.pvalue AS pvalue, r.qvalue AS qvalue,
       coalesce(r.significant, false) AS significant, r.isAnnotatedTarget AS annotated_target,
       r.method AS method, v AS model_version
ORDER BY score DESC, compound_id
LIMIT $limit
"""

INTERACTIONS_OF_GENE = f"""{_VERSION}{_GENE}
MATCH (g)-[r:PREDICTED_INTERACTION]-(o:Gene)
WHERE r.modelVersion = v
WITH v, g, o, max(r.score) AS score, min(r.rank) AS rank, count(r) AS n_directions,
     head(collect(r.method)) AS method
WITH v, g, o, score, rank, n_directions, method,
     COLLECT {{ MATCH (g)-[p:INTERACTS_WITH]-(o) RETURN DISTINCT p.source }} AS prior_sources
WHERE NOT ($novel_only AND size(prior_sources) > 0)
RETURN g.symbol AS gene, o.symbol AS partner, o.entrez_id AS partner_entrez_id, score, rank,
       n_directions = 2 AS mutual,
       CASE WHEN size(prior_sources) > 0 THEN 'prior' ELSE 'novel' END AS evidence,
       prior_sources, method, v AS model_version
ORDER BY score DESC, partner
LIMIT $limit
"""

PREDICTED_RESPONSE = f"""{_VERSION}{_COMPOUND}
OPTIONAL MATCH (ctx:CellLine)
WHERE ctx.context_id = $context OR ctx.name = $context
WITH v, c, collect(ctx.context_id) + [$context] AS contexts
MATCH (c)<-[:OF_COMPOUND]-(p:Perturbation)-[r:PREDICTED_EFFECT]->(t:Gene)
WHERE r.modelVersion = v AND r.context IN contexts
RETURN c.name AS compound, p.perturbation_id AS perturbation_id, p.dose_value AS dose_value,
       p.dose_unit AS dose_unit, r.context AS context, r.direction AS direction, r.rank AS rank,
       t.symbol AS gene, r.value AS value, v AS model_version
ORDER BY perturbation_id, direction DESC, rank
LIMIT $limit
"""

SIMILAR_COMPOUNDS = _RESOLVE_COMPOUND.replace("__CARRY__", "") + """\
WHERE c IS NOT NULL AND c.embedding_perturbation IS NOT NULL
CALL db.index.vector.queryNodes('compound_embedding_perturbation_vidx', $k * 2 + 10, c.embedding_perturbation)
YIELD node, score
WITH c, node, score WHERE node <> c
RETURN c.name AS query, node.compound_id AS compound_id, node.name AS compound, score,
       node.embedding_perturbation_version AS model_version
ORDER BY score DESC, compound_id
LIMIT $k
"""

# $space: 'perturbation' (knock-down embeddings) or 'readout' (genes as readouts).
SIMILAR_GENES = """
OPTIONAL MATCH (g1:Gene {symbol: $gene})
OPTIONAL MATCH (g2:Gene {entrez_id: toInteger($gene)})
WITH coalesce(g1, g2) AS hit
OPTIONAL CALL (hit) {
  WITH hit WHERE hit IS NULL
  MATCH (x:Gene {symbol_upper: toUpper($gene)})
  RETURN x ORDER BY x.entrez_id LIMIT 1
}
WITH coalesce(hit, x) AS g
WITH g, CASE $space WHEN 'readout' THEN g.embedding_readout ELSE g.embedding_perturbation END AS vec,
     CASE $space WHEN 'readout' THEN 'gene_embedding_readout_vidx'
                 ELSE 'gene_embedding_perturbation_vidx' END AS index_name
WHERE g IS NOT NULL AND vec IS NOT NULL
CALL db.index.vector.queryNodes(index_name, $k * 2 + 10, vec) YIELD node, score
WITH g, node, score WHERE node <> g
RETURN g.symbol AS query, node.symbol AS gene, node.entrez_id AS entrez_id, score, $space AS space
ORDER BY score DESC, gene
LIMIT $k
"""

SIMILAR_CONTEXTS = """
MATCH (x:CellLine)
WHERE x.context_id = $context OR x.name = $context
WITH x WHERE x.embedding_context IS NOT NULL
ORDER BY x.context_id LIMIT 1
CALL db.index.vector.queryNodes('cellline_embedding_context_vidx', $k * 2 + 10, x.embedding_context)
YIELD node, score
WITH x, node, score WHERE node <> x
RETURN x.context_id AS query, node.context_id AS context_id, node.name AS name, score
ORDER BY score DESC, context_id
LIMIT $k
"""

# Link counts are stored on the version when it is published (record_version_summary), so this
# reads a few properties instead of counting every link of every version.
MODEL_VERSIONS = """
MATCH (m:ModelVersion)
RETURN m.version_id AS version_id, m.current AS current, m.status AS status, m.trained_at AS trained_at,
       m.code_version AS code_version, m.dataset_ids AS dataset_ids,
       m.mechanism_links AS mechanism_links, m.significant_mechanism_links AS significant_mechanism_links,
       m.interaction_links AS interaction_links, m.effect_links AS effect_links,
       m.edge_method AS edge_method, m.edge_metric AS edge_metric, m.edge_score AS edge_score,
       m.edge_baseline_score AS edge_correlation_score,
       m.mechanism_method AS mechanism_method, m.mechanism_metric AS mechanism_metric,
       m.mechanism_score AS mechanism_score, m.mechanism_baseline_score AS mechanism_baseline_score,
       m.mechanism_fdr AS mechanism_fdr,
       m.edge_gate AS edge_gate,
       m.predictor AS predictor, m.predictor_metric AS predictor_metric, m.predictor_score AS predictor_score,
       m.predictor_best_baseline AS predictor_best_baseline,
       m.predictor_baseline_score AS predictor_baseline_score, m.predictor_margin AS predictor_margin,
       m.predictor_passed_over AS predictor_passed_over,
       m.predictor_status AS predictor_status,
       m.predictor_validation AS predictor_validation, m.embeddings_from AS embeddings_from,
       m.refused_reason AS refused_reason, m.abandoned_reason AS abandoned_reason, m.status_at AS status_at
ORDER BY coalesce(m.trained_at, m.created_at) DESC, version_id DESC
"""

# The version ($version or the current one) and the published version trained just before it that
# is still kept (a refused or unchecked version is never "the previous one"). __PUBLISHED__: the
# named query reads published versions only; the summary at publish time reads the version written.
_VERSION_PAIR = """
MATCH (new:ModelVersion)
WHERE (($version IS NULL AND new.current = true) OR new.version_id = $version)__PUBLISHED__
OPTIONAL CALL (new) {
  MATCH (o:ModelVersion)
  WHERE o.status = 'complete'
    AND (coalesce(o.trained_at, o.created_at) < coalesce(new.trained_at, new.created_at)
     OR (coalesce(o.trained_at, o.created_at) = coalesce(new.trained_at, new.created_at)
         AND o.created_at < new.created_at))
  RETURN o AS old
  ORDER BY coalesce(o.trained_at, o.created_at) DESC, o.created_at DESC
  LIMIT 1
}
WITH new.version_id AS v, old.version_id AS prev
"""


def _pair_has_link(rel: str, version: str, same: str = "") -> str:
    """Cypher: (a)-[:REL]->(b) has a link of `version`. The pair's own links are filtered as a list so
    the planner cannot answer it from the r.modelVersion index (a scan of the whole index per row when
    its statistics are small, as they are after a graph's first version; see
    graph.db.queries.upsert_versioned_relationships)."""
    # coalesce: with no previous version (null) the answer is false, not null (NOT null drops a row)
    return (f"any(o IN [(a)-[x:{require_rel_type(rel)}]->(b) | x] "
            f"WHERE coalesce(o.modelVersion = {version}{same}, false))")


# Counts per relationship type: links only in the new version (added), only in the previous one
# (removed), in both (kept). Links are compared by their endpoints (and context for effects).
# It touches every link of both versions (seconds on a large graph), so it runs once, when a version
# is published, and its rows are stored on the version (STORE_VERSION_SUMMARY).
def _summary_counts(rel: str, same: str = "") -> str:
    """Added / removed / kept counts of one relationship type between versions v and prev; `same`: what
    else must match for a link to count as kept (effects: the context)."""
    rel = require_rel_type(rel)
    return (f"  MATCH (a)-[r:{rel}]->(b) WHERE r.modelVersion = v\n"
            "  WITH count(r) AS n_new,\n"
            f"       sum(CASE WHEN {_pair_has_link(rel, 'prev', same)} THEN 1 ELSE 0 END) AS kept\n"
            f"  OPTIONAL MATCH ()-[o:{rel}]->() WHERE o.modelVersion = prev\n"
            f"  RETURN '{rel}' AS relationship, n_new - kept AS added, count(o) - kept AS removed, kept\n")


COMPUTE_VERSION_SUMMARY = (
    _VERSION_PAIR.replace("__PUBLISHED__", "") + "\nCALL (v, prev) {\n"
    + "  UNION ALL\n".join([_summary_counts(MECHANISM_REL), _summary_counts(INTERACTION_REL),
                            _summary_counts(EFFECT_REL, " AND o.context = r.context")])
    + "}\n")
COMPUTE_VERSION_SUMMARY += """RETURN v AS model_version, prev AS previous_version, relationship, added, removed, kept
"""

# COMPUTE_VERSION_SUMMARY's rows as aligned lists, and the version's link counts (added + kept).
STORE_VERSION_SUMMARY = """
MATCH (m:ModelVersion {version_id: $version_id})
SET m.summary_previous_version = $previous_version,
    m.summary_relationships = $relationships,
    m.summary_added = $added,
    m.summary_removed = $removed,
    m.summary_kept = $kept,
    m.summary_at = $now,
    m.mechanism_links = $mechanism_links,
    m.interaction_links = $interaction_links,
    m.effect_links = $effect_links
RETURN m.version_id AS version_id
"""

VERSIONS_WITHOUT_SUMMARY = """
MATCH (m:ModelVersion) WHERE m.summary_relationships IS NULL AND m.status = 'complete'
RETURN m.version_id AS version_id
"""

# What a version changed, as stored when it was published (vs the previous version kept then).
MODEL_VERSION_SUMMARY = """
MATCH (m:ModelVersion)
WHERE (($version IS NULL AND m.current = true) OR m.version_id = $version) AND m.status = 'complete'
UNWIND range(0, size(coalesce(m.summary_relationships, [])) - 1) AS i
RETURN m.version_id AS model_version, m.summary_previous_version AS previous_version,
       m.summary_relationships[i] AS relationship, m.summary_added[i] AS added,
       m.summary_removed[i] AS removed, m.summary_kept[i] AS kept
"""

# The individual mechanism and interaction links added or removed (vs the previous version).
def _changed_links(change: str, rel: str, a_label: str, b_label: str, name: str) -> str:
    """The links of one type only in v ('added') or only in prev ('removed'), named by `name`."""
    this, other, guard = ("v", "prev", "") if change == "added" else ("prev", "v", "prev IS NOT NULL AND ")
    rel, a_label, b_label = require_rel_type(rel), require_label(a_label), require_label(b_label)
    return (f"  MATCH (a:{a_label})-[r:{rel}]->(b:{b_label}) WHERE {guard}r.modelVersion = {this}\n"
            f"    AND NOT {_pair_has_link(rel, other)}\n"
            f"  RETURN '{change}' AS change, '{rel}' AS relationship, a.{require_property(name)} AS source, "
            f"b.symbol AS target,\n         r.score AS score, r.rank AS rank\n")


MODEL_VERSION_CHANGES = (
    _VERSION_PAIR.replace("__PUBLISHED__", " AND new.status = 'complete'") + "\nCALL (v, prev) {\n"
    + "  UNION ALL\n".join(_changed_links(change, rel, a, "Gene", name)
                           for rel, a, name in ((MECHANISM_REL, "Compound", "name"), (INTERACTION_REL, "Gene", "symbol"))
                           for change in ("added", "removed"))
    + "}\n")
MODEL_VERSION_CHANGES += """WITH v, prev, change, relationship, source, target, score, rank
LIMIT $limit
RETURN v AS model_version, prev AS previous_version, change, relationship, source, target, score, rank
"""

# ---------------------------------------------------------------------------------------------
# Registry of the named queries (what `perturbgraph query NAME` runs)
# ---------------------------------------------------------------------------------------------

REQUIRED = object()  # marker: a parameter without a default


@dataclass(frozen=True)
class Param:
    type: type
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class NamedQuery:
    name: str
    cypher: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)

    def bind(self, values: dict[str, Any]) -> dict[str, Any]:
        """Parameters for the driver: `values` converted to their declared types, defaults filled in."""
        unknown = set(values) - set(self.params)
        if unknown:
            raise ValueError(f"query {self.name!r} has no parameter(s) {sorted(unknown)}; "
                             f"it takes {sorted(self.params)}")
        out: dict[str, Any] = {}
        for name, spec in self.params.items():
            if name in values and values[name] is not None:
                out[name] = coerce(values[name], spec.type, name)
                if spec.choices and out[name] not in spec.choices:
                    raise ValueError(f"--{name} must be one of {list(spec.choices)}, not {out[name]!r}")
            elif spec.required:
                raise ValueError(f"query {self.name!r} needs --{name}")
            else:
                out[name] = spec.default
        return out


def coerce(value: Any, kind: type, name: str = "value") -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "y"}:
            return True
        if text in {"0", "false", "no", "n"}:
            return False
        raise ValueError(f"--{name} must be true or false, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--{name} must be {kind.__name__}, not {value!r}") from exc


_V = Param(str, None, "model version id (default: the current version)")
_LIMIT = Param(int, 20, "maximum rows")
_K = Param(int, 10, "number of neighbours")
_ALL = Param(bool, False, "also links that are not significant (default: significant only)")

NAMED_QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in (
        NamedQuery("mechanism", MECHANISM_OF_COMPOUND,
                   "Genes whose perturbation most resembles a compound's (its likely mechanism), from the source the "
                   "version published (`method`: signature_connectivity or lpm_embeddings). "
                   "Significant links only (BH q <= the version's FDR over every pair tested); --all shows "
                   "every stored link (each compound's top k) with its q-value.",
                   {"compound": Param(str, help="compound id, name or alias"), "version": _V, "limit": _LIMIT,
                    "all": _ALL}),
        NamedQuery("mimics", COMPOUNDS_MIMICKING_GENE,
                   "Compounds whose effect resembles the knock-down of a gene. Significant links only; --all "
                   "shows every stored link.",
                   {"gene": Param(str, help="gene symbol or Entrez id"), "version": _V, "limit": _LIMIT,
                    "all": _ALL}),
        NamedQuery("interactions", INTERACTIONS_OF_GENE,
                   "Inferred gene-gene interactions of a gene, with evidence (in the prior network or novel) and "
                   "the method (edge source) the version published.",
                   {"gene": Param(str, help="gene symbol or Entrez id"), "version": _V, "limit": _LIMIT,
                    "novel_only": Param(bool, False, "only edges absent from the prior network")}),
        NamedQuery("response", PREDICTED_RESPONSE,
                   "Predicted top up/down genes of a compound in a context where it was not measured.",
                   {"compound": Param(str, help="compound id, name or alias"),
                    "context": Param(str, help="cell line id or name"), "version": _V,
                    "limit": Param(int, 50, "maximum rows")}),
        NamedQuery("similar-compounds", SIMILAR_COMPOUNDS,
                   "Nearest compounds by LPM embedding (cosine vector index, current model).",
                   {"compound": Param(str, help="compound id, name or alias"), "k": _K}),
        NamedQuery("similar-genes", SIMILAR_GENES,
                   "Nearest genes by LPM embedding (knock-down or readout space; cosine vector index).",
                   {"gene": Param(str, help="gene symbol or Entrez id"), "k": _K,
                    "space": Param(str, "perturbation", "perturbation | readout",
                                   choices=("perturbation", "readout"))}),
        NamedQuery("similar-contexts", SIMILAR_CONTEXTS,
                   "Nearest cell lines by LPM context embedding (cosine vector index).",
                   {"context": Param(str, help="cell line id or name"), "k": _K}),
        NamedQuery("model-versions", MODEL_VERSIONS,
                   "Model versions in the graph (newest first) with their link counts and, per discovery type, "
                   "the source published, its validation score and the simple answer's.", {}),
        NamedQuery("version-summary", MODEL_VERSION_SUMMARY,
                   "Links added / removed / kept by a model version vs the version before it (stored at publish time).",
                   {"version": _V}),
        NamedQuery("version-changes", MODEL_VERSION_CHANGES,
                   "The mechanism and interaction links a model version added or removed vs the previous one.",
                   {"version": _V, "limit": Param(int, 100, "maximum rows")}),
    )
}

QUERIES: dict[str, str] = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
}
for _group in ("REL_VERSION_INDEXES", "VECTOR_INDEX_DDL", "DROP_VECTOR_INDEX", "DELETE_VERSION_LINKS",
               "COUNT_VERSION_LINKS", "SET_EMBEDDINGS", "CLEAR_STALE_EMBEDDINGS", "CLEAR_VERSION_EMBEDDINGS"):
    QUERIES.update({f"{_group}.{k}": v for k, v in globals()[_group].items()})
QUERIES.update({f"NAMED.{k}": q.cypher for k, q in NAMED_QUERIES.items()})

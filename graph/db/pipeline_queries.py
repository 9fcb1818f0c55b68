"""Named read queries the pipeline uses to assemble a training set from the graph.

The LPM's side information comes from the graph, not from the input files: the prior gene-gene
network (for the gene encoder), compound structures and dose (for the compound encoder) and the
targets of genetic perturbations; the complexes' members give corum_knn its co-complex pairs.
"""

from graph.db.queries import DATASET_STORE_RECORDS

# Datasets whose values are in the columnar store and whose ingest finished.
MEASUREMENT_DATASETS = """
MATCH (d:Dataset)
WHERE d.status = 'complete' AND d.store_path IS NOT NULL
RETURN d.dataset_id AS dataset_id, d.store_sha256 AS store_sha256, d.simulated AS simulated
ORDER BY dataset_id
"""

# The relationship each prior network's edges are stored as (graph/db/gene_edges.write_prior_edges).
PRIOR_RELATIONSHIPS = {"string": "INTERACTS_WITH", "dorothea": "REGULATES"}

# Prior edges of the given relationship types (undirected STRING, TF -> target regulation), as symbol
# pairs with a weight in [0, 1].
PRIOR_GENE_EDGES = """
MATCH (a:Gene)-[r:INTERACTS_WITH|REGULATES]->(b:Gene)
WHERE type(r) IN $types AND coalesce(r.score, 1.0) >= $min_score
RETURN a.symbol AS source, b.symbol AS target, coalesce(r.score, 1.0) AS weight, type(r) AS kind
"""

# Each complex (CORUM) with its members' symbols: one row per complex, so the result grows with the
# members, not with their pairs; models.datasets.co_complex_pairs pairs them (graph.io.networks.complex_pairs,
# the one pairing rule, also of the benchmarks' corum_gene_graph and of the discovery references).
# A member appears once per complex whatever the datasets.
COMPLEX_MEMBER_SYMBOLS = """
MATCH (g:Gene)-[:MEMBER_OF]->(x:Complex)
RETURN x.complex_id AS complex_id, collect(DISTINCT g.symbol) AS members
ORDER BY complex_id
"""

# Per perturbation: type, compound structure, dose and genetic targets.
PERTURBATION_SIDE_INFO = """
MATCH (p:Perturbation)
OPTIONAL MATCH (p)-[:OF_COMPOUND]->(c:Compound)
OPTIONAL MATCH (p)-[:PERTURBS]->(g:Gene)
RETURN p.perturbation_id AS perturbation_id, p.perturbation_type AS perturbation_type,
       p.dose_value AS dose_value, p.dose_unit AS dose_unit, c.compound_id AS compound_id,
       c.smiles AS smiles, c.target_symbols AS compound_targets, c.moa AS moa,
       collect(DISTINCT g.symbol) AS targets
"""

# Annotated targets of compounds (for evaluating mechanism links).
COMPOUND_TARGET_SYMBOLS = """
MATCH (c:Compound)-[:TARGETS]->(g:Gene)
RETURN c.compound_id AS compound_id, c.name AS name, collect(DISTINCT g.symbol) AS targets
"""

# Signatures per dataset (reconciling the graph against what the readers accepted).
SIGNATURES_PER_DATASET = """
MATCH (s:Signature)
RETURN s.dataset_id AS dataset_id, count(s) AS n
"""

# Examples for the main job's summary: the most significant published mechanism links of the current
# model version (q <= its FDR; annotated targets first). None when no link passed.
EXAMPLE_MECHANISM_LINKS = """
MATCH (mv:ModelVersion {current: true})
MATCH (c:Compound)-[m:SHARES_MECHANISM_WITH]->(g:Gene)
WHERE m.modelVersion = mv.version_id AND coalesce(m.significant, false)
RETURN c.name AS compound, g.symbol AS gene, m.score AS score, m.rank AS rank, m.qvalue AS qvalue,
       m.method AS method, coalesce(m.isAnnotatedTarget, false) AS annotated
ORDER BY annotated DESC, qvalue, score DESC
LIMIT 2
"""

# The strongest predicted gene-gene edge not already in the prior network.
EXAMPLE_PREDICTED_INTERACTIONS = """
MATCH (mv:ModelVersion {current: true})
MATCH (a:Gene)-[p:PREDICTED_INTERACTION]->(b:Gene)
WHERE p.modelVersion = mv.version_id
RETURN a.symbol AS a, b.symbol AS b, p.score AS score, coalesce(p.inPrior, false) AS in_prior
ORDER BY in_prior ASC, score DESC
LIMIT 1
"""

# All mechanism links / predicted interactions of the current model version (evaluation against a
# known truth, e.g. the simulated default dataset).
CURRENT_MECHANISM_LINKS = """
MATCH (mv:ModelVersion {current: true})
MATCH (c:Compound)-[m:SHARES_MECHANISM_WITH]->(g:Gene)
WHERE m.modelVersion = mv.version_id
RETURN toLower(c.name) AS compound, g.symbol AS gene, m.rank AS rank, m.score AS score,
       coalesce(m.significant, false) AS significant
"""

CURRENT_PREDICTED_INTERACTIONS = """
MATCH (mv:ModelVersion {current: true})
MATCH (a:Gene)-[p:PREDICTED_INTERACTION]->(b:Gene)
WHERE p.modelVersion = mv.version_id
RETURN a.symbol AS a, b.symbol AS b, p.score AS score, coalesce(p.inPrior, false) AS in_prior
"""

# The Cypher the demo's summary prints for people to paste into the Neo4j Browser.
CYPHER_HINT = (
    "MATCH (mv:ModelVersion {current: true})\n"
    "MATCH (c:Compound)-[m:SHARES_MECHANISM_WITH {modelVersion: mv.version_id}]->(g:Gene)\n"
    "RETURN c.name, g.symbol, m.rank, m.score, m.isAnnotatedTarget ORDER BY m.score DESC LIMIT 10")


# The functions the pipeline calls: each runs one query above on the read route and returns plain
# dicts, so no module outside graph/ holds Cypher or touches a driver session.
def _read(driver, query: str, database: str, **params) -> list[dict]:
    return [r.data() for r in driver.execute_query(query, params, database_=database, routing_="r").records]


def measurement_datasets(driver, *, database: str) -> list[dict]:
    """Complete datasets with values in the store: dataset_id, store_sha256, simulated."""
    return _read(driver, MEASUREMENT_DATASETS, database)


def dataset_store_records(driver, dataset_ids, *, database: str) -> dict[str, dict]:
    """{dataset_id: {status, store_path, store_sha256, store_rows}} for graph.store's hash check."""
    return {r["dataset_id"]: r for r in _read(driver, DATASET_STORE_RECORDS, database, dataset_ids=list(dataset_ids))}


def prior_gene_edges(driver, *, database: str, min_score: float, networks) -> list[dict]:
    """Prior gene-gene edges of `networks` (PRIOR_RELATIONSHIPS' kinds; the LPM's gene prior is
    graph/io/networks.GENE_PRIOR) scoring at least min_score: source, target, weight, kind."""
    unknown = sorted(set(networks) - set(PRIOR_RELATIONSHIPS))
    if unknown:
        raise ValueError(f"not gene-gene prior networks: {unknown}; choose from {sorted(PRIOR_RELATIONSHIPS)}")
    types = sorted({PRIOR_RELATIONSHIPS[n] for n in networks})
    return _read(driver, PRIOR_GENE_EDGES, database, min_score=min_score, types=types)


def complex_member_symbols(driver, *, database: str) -> dict[str, list[str]]:
    """complex_id -> its member genes' symbols, for every complex in the graph."""
    return {r["complex_id"]: r["members"] for r in _read(driver, COMPLEX_MEMBER_SYMBOLS, database)}


def perturbation_side_info(driver, *, database: str) -> list[dict]:
    """Per perturbation: type, dose, compound id, SMILES, annotated targets and MoA, genetic targets."""
    return _read(driver, PERTURBATION_SIDE_INFO, database)


def compound_target_symbols(driver, *, database: str) -> list[dict]:
    """Per compound: compound_id, name, annotated target symbols."""
    return _read(driver, COMPOUND_TARGET_SYMBOLS, database)


def signatures_per_dataset(driver, *, database: str) -> dict[str, int]:
    """Signature count per dataset_id in the graph."""
    return {r["dataset_id"]: r["n"] for r in _read(driver, SIGNATURES_PER_DATASET, database)}


def example_mechanism_links(driver, *, database: str) -> list[dict]:
    return _read(driver, EXAMPLE_MECHANISM_LINKS, database)


def example_predicted_interactions(driver, *, database: str) -> list[dict]:
    return _read(driver, EXAMPLE_PREDICTED_INTERACTIONS, database)


def current_mechanism_links(driver, *, database: str) -> list[dict]:
    return _read(driver, CURRENT_MECHANISM_LINKS, database)


def current_predicted_interactions(driver, *, database: str) -> list[dict]:
    return _read(driver, CURRENT_PREDICTED_INTERACTIONS, database)

"""Named read queries the pipeline uses to assemble a training set from the graph.

The LPM's side information comes from the graph, not from the input files: the prior gene-gene
network (for the gene encoder), compound structures and dose (for the compound encoder) and the
targets of genetic perturbations.
"""

# Datasets whose values are in the columnar store and whose ingest finished.
MEASUREMENT_DATASETS = """
MATCH (d:Dataset)
WHERE d.status = 'complete' AND d.store_path IS NOT NULL
RETURN d.dataset_id AS dataset_id, d.store_sha256 AS store_sha256, d.simulated AS simulated
ORDER BY dataset_id
"""

# Undirected prior edges plus TF -> target regulation, as symbol pairs with a weight in [0, 1].
PRIOR_GENE_EDGES = """
MATCH (a:Gene)-[r:INTERACTS_WITH|REGULATES]->(b:Gene)
WHERE coalesce(r.score, 1.0) >= $min_score
RETURN a.symbol AS source, b.symbol AS target, coalesce(r.score, 1.0) AS weight, type(r) AS kind
"""

# Per perturbation: type, compound structure, dose and genetic targets.
PERTURBATION_SIDE_INFO = """
MATCH (p:Perturbation)
OPTIONAL MATCH (p)-[:OF_COMPOUND]->(c:Compound)
OPTIONAL MATCH (p)-[:PERTURBS]->(g:Gene)
RETURN p.perturbation_id AS perturbation_id, p.perturbation_type AS perturbation_type,
       p.dose_value AS dose_value, p.dose_unit AS dose_unit, c.compound_id AS compound_id,
       c.smiles AS smiles, collect(DISTINCT g.symbol) AS targets
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

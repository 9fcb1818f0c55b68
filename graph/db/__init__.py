"""The Neo4j layer: everything that talks to the database, and the only place Cypher lives.

`server` runs the managed Neo4j process, `connection` opens drivers; `schema` is the label/type allowlist;
`queries`, `discovery_queries` and `pipeline_queries` hold every statement as named parameterised Cypher;
`GraphWriter` (`graph_writer`) and `DiscoveryWriter` (`discovery_writer`) write batches; `cypher_guard`
runs people's raw Cypher read-only. Named `db`, not `neo4j`, so it never shadows the driver package.
"""

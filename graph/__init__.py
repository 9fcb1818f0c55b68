"""PerturbGraph's knowledge-graph layer: settings, the Neo4j runtime, readers, schema and named Cypher queries."""

"""The parquet store: measured values per dataset (`measurements`) and quarantined records (`quarantine`),
written atomically (`files`). Knows nothing of Neo4j: callers pass the graph's Dataset records in."""

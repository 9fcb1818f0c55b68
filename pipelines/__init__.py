"""Dagster assets, resources and the `perturbgraph` command line."""

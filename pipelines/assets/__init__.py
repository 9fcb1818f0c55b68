"""Dagster assets, one module per group, in pipeline order:
sources → graph → training → model → evaluation → discoveries."""

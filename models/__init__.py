"""The Large Perturbation Model (LPM), its training loop, baselines and evaluation harness.

Nothing in this package knows about Neo4j or Dagster: it consumes long tables of
(context, perturbation, readout, value) and feature matrices.
"""

"""Readers for the file formats users have, and the normalisation of their identifiers."""

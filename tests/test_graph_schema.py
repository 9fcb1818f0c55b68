"""graph.db.schema: allowlists, node keys and the DDL built from them."""

from __future__ import annotations

import re

import pytest

from graph.db import schema


def test_allowlists_follow_naming_conventions():
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", label) for label in schema.NODE_LABELS)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", t) for t in schema.REL_TYPES)
    assert schema.INGEST_NODE_LABELS <= schema.NODE_LABELS
    assert schema.DISCOVERY_NODE_LABELS <= schema.NODE_LABELS


def test_discovery_names_are_already_allowlisted():
    assert {"ModelVersion"} <= schema.NODE_LABELS
    assert {"SHARES_MECHANISM_WITH", "PREDICTED_INTERACTION", "PREDICTED_EFFECT", "HAS_EMBEDDING"} <= schema.REL_TYPES


def test_every_ingest_entity_has_a_key():
    assert schema.NODE_KEYS["Gene"].key == "entrez_id"
    assert schema.NODE_KEYS["Compound"].key == "compound_id"
    assert schema.NODE_KEYS["CellLine"].key == "context_id"
    assert schema.NODE_KEYS["Perturbation"].key == "perturbation_id"
    assert schema.NODE_KEYS["Signature"].key == "signature_id"
    assert schema.NODE_KEYS["Dataset"].key == "dataset_id"
    assert schema.NODE_KEYS["Complex"].key == "complex_id"
    assert set(schema.NODE_KEYS) == schema.INGEST_NODE_LABELS


@pytest.mark.parametrize("bad", ["Gene) DETACH DELETE (n", "gene", "Foo", "`Gene`", "Gene:Compound", ""])
def test_require_label_rejects_anything_outside_the_allowlist(bad):
    with pytest.raises(schema.SchemaError):
        schema.require_label(bad)


@pytest.mark.parametrize("bad", ["TARGETS]->() DELETE r //", "targets", "KNOWS", ""])
def test_require_rel_type_rejects_anything_outside_the_allowlist(bad):
    with pytest.raises(schema.SchemaError):
        schema.require_rel_type(bad)


def test_node_key_refuses_unknown_labels_and_odd_properties():
    with pytest.raises(schema.SchemaError):
        schema.NodeKey("Person", "id")
    with pytest.raises(schema.SchemaError):
        schema.NodeKey("Gene", "id} RETURN 1 //")


def test_schema_statements_constraints_first_and_idempotent_ddl():
    stmts = schema.schema_statements()
    kinds = ["CONSTRAINT" if s.startswith("CREATE CONSTRAINT") else "INDEX" for s in stmts]
    assert kinds == sorted(kinds)  # all constraints before all indexes
    assert all("IF NOT EXISTS" in s for s in stmts)
    assert "CREATE CONSTRAINT gene_entrez_id_unique IF NOT EXISTS FOR (n:Gene) REQUIRE n.entrez_id IS UNIQUE" in stmts
    assert "CREATE INDEX gene_symbol_idx IF NOT EXISTS FOR (n:Gene) ON (n.symbol)" in stmts

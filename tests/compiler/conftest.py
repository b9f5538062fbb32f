"""Every graph imported by the compiler tests is checked by the graph verifier before the
first pass and after each one (compiler/passes: VERDIGRIS_VERIFY_GRAPH)."""

import pytest


@pytest.fixture(autouse=True)
def verify_every_graph(monkeypatch):
    monkeypatch.setenv("VERDIGRIS_VERIFY_GRAPH", "1")

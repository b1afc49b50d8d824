"""Shared fixtures. Model fixtures live in plugin modules owned by the area that builds them:
tests/fixtures_training.py (a tiny model trained on the seeds) and tests/fixtures_export.py
(that model exported to ONNX), both session-scoped so each is built once per run."""

import importlib.util

import pytest

pytest_plugins = [
    name
    for name in ("tests.fixtures_training", "tests.fixtures_export", "tests.service_fixtures")
    if importlib.util.find_spec(name) is not None
]

# What `make test-fast` leaves out: a test that builds, exports or serves a model (through these
# fixtures, found in its fixture closure) or is marked `model` because it trains one itself.
MODEL_FIXTURES = {"tiny_model_dir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if MODEL_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.model)

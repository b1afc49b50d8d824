"""Shared fixtures. Model fixtures live in plugin modules owned by the area that builds them:
tests/fixtures_training.py (a tiny model trained on the seeds) and tests/fixtures_export.py
(that model exported to ONNX), both session-scoped so each is built once per run."""

import importlib.util

pytest_plugins = [
    name
    for name in ("tests.fixtures_training", "tests.fixtures_export", "tests.service_fixtures")
    if importlib.util.find_spec(name) is not None
]

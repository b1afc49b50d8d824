"""Session fixtures for tests that need a trained model (training, evaluation, export, service).

``tiny_model_dir`` is the path to a Hugging Face model directory (config.json with id2label from
serving.schema, model.safetensors, tokenizer.json, metrics.json, README.md): a small BERT built from
scratch and trained on annotations/seeds.jsonl until it fits them (training-set entity F1 >= 0.9).
It is built once per test session, with real training steps (about 10 s on 2 idle CPU cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "annotations" / "seeds.jsonl"

# Small enough to train in seconds, big enough to fit the seeds; see training/scratch.py.
TINY_MODEL_ARGS = [
    "--from-scratch",
    "--hidden-size",
    "128",
    "--layers",
    "2",
    "--heads",
    "2",
    "--intermediate-size",
    "256",
    "--epochs",
    "25",
    "--no-progress",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from training.train import main

    output = tmp_path_factory.mktemp("tiny-model") / "model"
    assert main(["--data", str(SEEDS), "--output", str(output), *TINY_MODEL_ARGS]) == 0
    fit = json.loads((output / "metrics.json").read_text(encoding="utf-8"))["training_set"]
    assert fit["f1"] >= 0.9, f"the tiny model does not fit the seeds: {fit}"
    return output


def _train_one_epoch(output: Path, *options: str) -> dict:
    """One epoch of a one-layer model on the seeds (training.train in-process); its metrics."""
    from tests.test_training import TINY
    from training import train

    assert train.main(["--data", str(SEEDS), "--output", str(output), *TINY, "--epochs", "1", *options]) == 0
    return json.loads((output / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def plain_training_windows(tmp_path_factory) -> int:
    """How many training windows one epoch on the seeds has without any short-text augmentation."""
    return _train_one_epoch(tmp_path_factory.mktemp("plain"))["training_windows"]


def windows_added_by(work_dir: Path, plain_windows: int, *options: str) -> tuple[int, dict]:
    """Train as ``plain_training_windows`` does, with ``options`` (a short-text augmentation of
    training.train); how many training windows the options added, and the run's metrics."""
    augmented = _train_one_epoch(work_dir / "augmented", *options)
    return augmented["training_windows"] - plain_windows, augmented

"""Session fixtures for tests that need an exported ONNX runtime directory (tagger, tag CLI, service).

``tiny_onnx_dir`` is ``tiny_model_dir`` (tests/fixtures_training.py: a small BERT trained on the
seeds) exported by ``python -m training.export`` with the default int8 quantisation: model.onnx,
tokenizer.json, ner_config.json, README.md, export_report.json; load it with
``serving.Tagger.load``. ``tiny_onnx_fp32_dir`` is the same model exported with ``--quantize none``.
Each is built once per test session, in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _export(model_dir: Path, output: Path, quantize: str) -> Path:
    from training.export import main

    assert main(["--model", str(model_dir), "--output", str(output), "--quantize", quantize]) == 0
    return output


@pytest.fixture(scope="session")
def tiny_onnx_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return _export(tiny_model_dir, tmp_path_factory.mktemp("tiny-onnx") / "tiny-int8", "int8")


@pytest.fixture(scope="session")
def tiny_onnx_fp32_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return _export(tiny_model_dir, tmp_path_factory.mktemp("tiny-onnx-fp32") / "tiny-fp32", "none")

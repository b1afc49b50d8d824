"""The runtime: shared text/span core, ONNX Runtime tagger and the BentoML service.

Importing this package is cheap: the core modules need only the standard library, and
``serving.Tagger`` (onnxruntime, tokenizers, numpy) is imported on first use.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("Tagger", "Entity"):
        from . import tagger

        return getattr(tagger, name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")

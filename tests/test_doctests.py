"""The worked examples in the core modules' docstrings are executed, so they cannot rot."""

import doctest

import pytest

from serving import (
    annotation,
    conll,
    decoding,
    encoding,
    guard,
    interchange,
    schema,
    spans,
    tagger,
    text,
    windows,
    word_reader,
    worker_deaths,
)
from training import evaluate, model_dir, quantize, scoring, stats, train


@pytest.mark.parametrize(
    "module",
    [
        schema,
        text,
        spans,
        annotation,
        conll,
        interchange,
        windows,
        encoding,
        decoding,
        word_reader,
        tagger,
        guard,
        worker_deaths,
        stats,
        model_dir,
        quantize,
        scoring,
        evaluate,
        train,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0

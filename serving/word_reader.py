"""Window logits -> one tag per word: the reader that serving, evaluation and training's dev scores share.

A text is encoded into windows by ``serving.encoding.encode_text``; whatever runs the windows (ONNX
Runtime in ``serving.tagger``, PyTorch in ``training.predict`` and in the Trainer's evaluation loop)
hands their logits here. Each word is read at its first sub-word in the window where it sits most
centrally; its tag probabilities are the softmax of those logits; each sentence's tags are decoded
together (``serving.decoding``), and a word's confidence is the probability of the tag chosen for it.
Because every backend goes through ``read_words``, the scores training reports are those of the
decision the served model makes.

Only numpy is needed here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from .decoding import TagDecoder
from .encoding import EncodedText
from .schema import OUTSIDE

DECODINGS = ("model", "constraints", "argmax")


class WordDecoder(Protocol):
    """What ``read_words`` needs of a decoder (``TagDecoder`` or ``ArgmaxDecoder``)."""

    labels: tuple[str, ...]

    def decode_words(
        self, log_probabilities: np.ndarray, read_words: Sequence[int], word_count: int, sentence_starts: Collection[int] = ()
    ) -> list[int]: ...


class ArgmaxDecoder:
    """Each word's most probable tag on its own (a word without sub-words is O): what
    ``--decoding argmax`` scores, to measure what the sequence decoder contributes.

    >>> ArgmaxDecoder(("O", "B-PERS", "I-PERS")).decode_words(np.log([[0.2, 0.1, 0.7]]), [1], 3)
    [0, 2, 0]
    """

    def __init__(self, labels: Sequence[str]):
        self.labels = tuple(labels)

    def decode_words(
        self, log_probabilities: np.ndarray, read_words: Sequence[int], word_count: int, sentence_starts: Collection[int] = ()
    ) -> list[int]:
        label_ids = [self.labels.index(OUTSIDE)] * word_count
        for word, label_id in zip(read_words, log_probabilities.argmax(axis=1).tolist(), strict=True):
            label_ids[word] = label_id
        return label_ids


def make_decoder(labels: Sequence[str], tag_transitions: dict[str, float] | None, decoding: str = "model") -> WordDecoder:
    """The decoder a model directory asks for (``model``: Viterbi under its tag-transition prior),
    or one of the alternatives evaluation measures it against (``constraints``: Viterbi under the
    IOB2 constraints alone; ``argmax``: each word alone).

    >>> make_decoder(("O", "B-PERS", "I-PERS"), None, "argmax").__class__.__name__
    'ArgmaxDecoder'
    >>> make_decoder(("O",), None, "beam")
    Traceback (most recent call last):
    ValueError: unknown decoding 'beam' (expected one of: model, constraints, argmax)
    """
    if decoding == "model":
        return TagDecoder(labels, tag_transitions)
    if decoding == "constraints":
        return TagDecoder(labels, None)
    if decoding == "argmax":
        return ArgmaxDecoder(labels)
    raise ValueError(f"unknown decoding {decoding!r} (expected one of: {', '.join(DECODINGS)})")


def pad_windows(windows: Sequence[Sequence[int]], pad_id: int, dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` for windows of different lengths, padded on the right.

    >>> ids, mask = pad_windows([[1, 5, 2], [1, 2]], pad_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[1, 5, 2], [1, 2, 0]], [[1, 1, 1], [1, 1, 0]])
    """
    width = max(len(ids) for ids in windows)
    input_ids = np.full((len(windows), width), pad_id, dtype=dtype)
    attention_mask = np.zeros((len(windows), width), dtype=dtype)
    for row, ids in enumerate(windows):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log softmax in float64 (stable: the row maximum is subtracted first).

    >>> np.exp(log_softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]]))).round(3).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class WordTags(NamedTuple):
    """One tag per word, and the probability the model gave that tag (1.0 for a word without
    sub-words, which is O for certain)."""

    tags: list[str]
    confidence: list[float]


def read_words(
    decoder: WordDecoder, read: Sequence[int], logits: np.ndarray, word_count: int, sentence_starts: Collection[int] = ()
) -> WordTags:
    """Tags of ``word_count`` words, of which the words ``read`` have a row of ``logits`` each
    (in that order); the others are O.

    >>> decoder = TagDecoder(("O", "B-PERS", "I-PERS"), None)
    >>> read_words(decoder, [0, 2], np.log([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]), 3).tags
    ['B-PERS', 'O', 'O']
    """
    if len(read) != len(logits):
        raise ValueError(f"{len(read)} words read but {len(logits)} rows of logits")
    log_probabilities = log_softmax(logits) if len(read) else np.zeros((0, len(decoder.labels)))
    with np.errstate(divide="ignore"):  # a probability of 0 is an impossible tag: log -inf, never chosen
        chosen = decoder.decode_words(log_probabilities, read, word_count, sentence_starts)
    confidence = [1.0] * word_count
    if read:
        # Plain Python values from here: per-word numpy calls would cost more than the maths.
        chosen_rows = log_probabilities[np.arange(len(read)), [chosen[word] for word in read]]
        for word, probability in zip(read, np.exp(chosen_rows).tolist(), strict=True):
            confidence[word] = probability
    return WordTags([decoder.labels[label_id] for label_id in chosen], confidence)


def read_text(decoder: WordDecoder, encoded: EncodedText, window_logits: Sequence[np.ndarray]) -> WordTags:
    """Tags of one encoded text's words from its windows' logits (``(len(window), labels)`` each,
    in the order of ``encoded.windows``).

    >>> from serving.encoding import encode_text
    >>> from serving.text import segment_words
    >>> text = "زار بوتين موسكو"
    >>> encoded = encode_text(text, segment_words(text), [[5], [6], [7]], max_length=8, overlap=1, cls_id=1, sep_id=2)
    >>> logits = np.log([[[0.9, 0.05, 0.05]] * 2 + [[0.1, 0.8, 0.1]] + [[0.9, 0.05, 0.05]] * 2])
    >>> read_text(TagDecoder(("O", "B-PERS", "I-PERS"), None), encoded, logits).tags
    ['O', 'B-PERS', 'O']
    """
    if len(window_logits) != len(encoded.windows):
        raise ValueError(f"{len(encoded.windows)} windows but {len(window_logits)} logits arrays")
    read = [word for word, source in enumerate(encoded.word_sources) if source.position >= 0]
    rows = [window_logits[encoded.word_sources[word].window][encoded.word_sources[word].position] for word in read]
    logits = np.stack(rows) if rows else np.zeros((0, len(decoder.labels)))
    return read_words(decoder, read, logits, len(encoded.tokens), encoded.sentence_starts)

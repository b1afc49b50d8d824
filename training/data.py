"""Annotation file -> model inputs: validate, split into sentences, encode windows, align labels.

The straight line of a token-classification fine-tune (as in transformers' ``run_ner.py``), built
on the shared core so training sees words exactly as serving does:

1. ``load_training_documents``: validate the file (``serving.annotation.validate_file``) and read it;
   any problem stops here, before a model is loaded.
2. ``document_segments``: shared word segmentation, gold IOB2 tags from the spans, and sentences
   from ``serving.text.sentence_ranges`` given the tags, so no entity is cut in two.
3. ``encode_examples``: each sentence becomes one or more windows of at most ``max_length``
   sub-words (``serving.encoding.encode_segment``), nothing truncated; a word's label sits on its
   first sub-word, every other position is ``-100`` (ignored by the loss). The label is the bitmask
   of the tags the word may have given what its source annotates (``training.loss.allowed_mask``):
   one bit, its gold tag, for our own fully annotated data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from serving.annotation import Document, InvalidDataError, Problem, read_documents, validate_file
from serving.encoding import encode_segment, subword_ids_per_word
from serving.schema import ENTITY_LABELS
from serving.spans import spans_to_tags
from serving.text import Token, segment_words, sentence_ranges

from .loss import IGNORED_LABEL, allowed_mask

# Position-embedding slots that some model families reserve before the first real position:
# RoBERTa-style models count positions from padding_idx + 1.
_POSITION_OFFSET_MODEL_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "longformer"})


@dataclass(frozen=True)
class Segment:
    """One sentence of a document: its words (with offsets into the document text), gold tags, the
    labels its document annotates, and the training source it comes from."""

    document_id: str
    tokens: tuple[Token, ...]
    tags: tuple[str, ...]
    annotated: tuple[str, ...] = ENTITY_LABELS
    source: str | None = None

    @property
    def words(self) -> list[str]:
        return [token.text for token in self.tokens]


def load_training_documents(path: str | os.PathLike) -> list[Document]:
    """Validate an annotation file and read it; raises InvalidDataError listing every problem."""
    problems = validate_file(path)
    if problems:
        raise InvalidDataError(str(path), problems)
    documents = read_documents(path)
    if not documents:
        raise InvalidDataError(str(path), [Problem(str(path), 0, "no documents")])
    return documents


def document_tags(document: Document) -> tuple[list[Token], list[str]]:
    """The document's words and one gold IOB2 tag per word."""
    tokens = segment_words(document.text)
    return tokens, spans_to_tags(document.text, document.spans, tokens)


def document_segments(document: Document, source: str | None = None) -> list[Segment]:
    """Split a document into sentences that never cut a gold entity.

    >>> from serving.spans import Span
    >>> doc = Document("a", "زار موسكو. ثم عاد", [Span(4, 9, "GPE", "موسكو")])
    >>> [(s.words, s.tags) for s in document_segments(doc)]
    [(['زار', 'موسكو', '.'], ('O', 'B-GPE', 'O')), (['ثم', 'عاد'], ('O', 'O'))]
    """
    tokens, tags = document_tags(document)
    return [
        Segment(document.id, tuple(tokens[first:end]), tuple(tags[first:end]), document.annotated, source)
        for first, end in sentence_ranges(document.text, tokens, tags)
    ]


def usable_max_length(config, requested: int | None = None) -> int:
    """The longest input (special tokens included) the model can read.

    Taken from ``config.max_position_embeddings``, not from the tokenizer, whose ``model_max_length``
    is often unset (CAMeLBERT's is); RoBERTa-style models lose ``pad_token_id + 1`` slots.
    ``requested`` may only lower it.
    """
    limit = int(config.max_position_embeddings)
    if getattr(config, "model_type", None) in _POSITION_OFFSET_MODEL_TYPES:
        limit -= int(config.pad_token_id or 0) + 1
    if requested is not None:
        if requested < 3:
            raise ValueError(f"max length must leave room for [CLS], [SEP] and one sub-word, got {requested}")
        limit = min(limit, requested)
    return limit


def default_overlap(max_length: int) -> int:
    """Sub-words shared by consecutive windows: a quarter of the window gives every word some
    context on both sides in the window it is read from.

    >>> default_overlap(512)
    127
    """
    return max(0, (max_length - 2) // 4)


def encode_examples(
    segments: Sequence[Segment],
    tokenizer,
    max_length: int,
    overlap: int,
    label_every_window: bool = True,
    loss: str = "partial",
) -> list[dict]:
    """Model inputs for every window of every segment: ``input_ids``, ``attention_mask``, ``labels``
    (allowed-tag bitmasks for ``loss``, see ``training.loss``), ``segment`` (the index of the
    segment the window came from) and ``word_index`` (per position, the segment's word whose label
    sits there, -1 elsewhere).

    ``tokenizer`` is a ``PreTrainedTokenizerFast``. With ``label_every_window`` (training), a word
    shared by two overlapping windows is labelled in both; without it (evaluation), only in the
    window it is predicted from, so each word is scored exactly once.
    """
    backend = tokenizer.backend_tokenizer
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    examples = []
    for index, segment in enumerate(segments):
        word_ids = subword_ids_per_word(backend, segment.words)
        windows, sources = encode_segment(word_ids, max_length, overlap, cls_id, sep_id)
        masks = [allowed_mask(tag, segment.annotated, loss) for tag in segment.tags]
        labels = [[IGNORED_LABEL] * len(encoded.input_ids) for encoded in windows]
        words = [[-1] * len(encoded.input_ids) for encoded in windows]
        if label_every_window:
            for w, encoded in enumerate(windows):
                for offset, position in enumerate(encoded.first_subword_positions):
                    if position >= 0:
                        labels[w][position] = masks[encoded.window.first + offset]
                        words[w][position] = encoded.window.first + offset
        else:
            for word, source in enumerate(sources):
                if source.position >= 0:
                    labels[source.window][source.position] = masks[word]
                    words[source.window][source.position] = word
        for encoded, window_labels, window_words in zip(windows, labels, words, strict=True):
            examples.append(
                {
                    "input_ids": encoded.input_ids,
                    "attention_mask": [1] * len(encoded.input_ids),
                    "labels": window_labels,
                    "segment": index,
                    "word_index": window_words,
                }
            )
    return examples

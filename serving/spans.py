"""Character spans <-> word-level IOB2 tags: the only place this conversion is written.

Modelled on spaCy's ``training/iob_utils.py``: pure functions, explicit errors for misaligned or
overlapping spans, never a silent drop.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .schema import OUTSIDE, split_tag
from .text import Token, segment_words

CONTEXT_CHARS = 20


@dataclass(frozen=True, order=True)
class Span:
    """An entity mention: ``text[start:end]`` labelled ``label``."""

    start: int
    end: int
    label: str
    text: str = ""


class SpanAlignmentError(ValueError):
    """A span that cannot be expressed as word tags (off word boundaries, or overlapping another)."""


def _context(text: str, start: int, end: int) -> str:
    left = text[max(0, start - CONTEXT_CHARS) : start]
    right = text[end : end + CONTEXT_CHARS]
    return f"…{left}[{text[start:end]}]{right}…".replace("\n", "⏎")


def describe_span(span: Span, text: str) -> str:
    """Name a span and the text around it, for error messages.

    >>> describe_span(Span(4, 9, "GPE"), "زار موسكو أمس")
    "span 4-9 GPE 'موسكو' in '…زار [موسكو] أمس…'"
    """
    return f"span {span.start}-{span.end} {span.label} {text[span.start : span.end]!r} in {_context(text, span.start, span.end)!r}"


def spans_to_tags(text: str, spans: Sequence[Span], tokens: Sequence[Token] | None = None) -> list[str]:
    """Convert character spans to one IOB2 tag per word token.

    >>> text = "زار الرئيس الروسي موسكو"
    >>> spans_to_tags(text, [Span(4, 17, "OCC"), Span(18, 23, "GPE")])
    ['O', 'B-OCC', 'I-OCC', 'B-GPE']

    Raises SpanAlignmentError, naming the span and its context, when a span does not start at a
    token start and end at a token end, or overlaps another span.
    """
    if tokens is None:
        tokens = segment_words(text)
    starts = {token.start: i for i, token in enumerate(tokens)}
    ends = {token.end: i for i, token in enumerate(tokens)}
    tags = [OUTSIDE] * len(tokens)
    previous: Span | None = None
    for span in sorted(spans):
        if span.start not in starts or span.end not in ends or span.start >= span.end:
            raise SpanAlignmentError(f"{describe_span(span, text)} does not start and end on word boundaries")
        if previous is not None and span.start < previous.end:
            raise SpanAlignmentError(f"{describe_span(span, text)} overlaps {describe_span(previous, text)}")
        first, last = starts[span.start], ends[span.end]
        tags[first] = f"B-{span.label}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{span.label}"
        previous = span
    return tags


def tag_ranges(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Decode IOB2 (or malformed IOB) tags into entity token ranges ``(first, last + 1, label)``.

    Robust like seqeval: an I- after O or after another label starts a new entity.

    >>> tag_ranges(["B-PERS", "I-PERS", "O", "I-GPE", "I-ORG", "B-ORG"])
    [(0, 2, 'PERS'), (3, 4, 'GPE'), (4, 5, 'ORG'), (5, 6, 'ORG')]
    """
    ranges: list[tuple[int, int, str]] = []
    current: list = []  # [first, end, label] of the open entity
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "I" and current and current[2] == label and current[1] == i:
            current[1] = i + 1
            continue
        if current:
            ranges.append(tuple(current))
            current = []
        if label is not None:
            current = [i, i + 1, label]
    if current:
        ranges.append(tuple(current))
    return ranges


def tags_to_spans(text: str, tokens: Sequence[Token], tags: Sequence[str]) -> list[Span]:
    """Convert one tag per token back into character spans over ``text``.

    >>> text = "زار الرئيس الروسي موسكو"
    >>> tags_to_spans(text, segment_words(text), ["O", "B-OCC", "I-OCC", "B-GPE"])
    [Span(start=4, end=17, label='OCC', text='الرئيس الروسي'), Span(start=18, end=23, label='GPE', text='موسكو')]
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    spans = []
    for first, end, label in tag_ranges(tags):
        start, stop = tokens[first].start, tokens[end - 1].end
        spans.append(Span(start, stop, label, text[start:stop]))
    return spans


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 (I- opens an entity unless it continues the same label) as IOB2.

    >>> iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"])
    ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC']
    """
    converted = []
    previous_label: str | None = None
    for tag in tags:
        prefix, label = split_tag(tag)
        if prefix == "I" and previous_label != label:
            prefix = "B"
        converted.append(tag if label is None else f"{prefix}-{label}")
        previous_label = label
    return converted


def _is_word(token: Token) -> bool:
    return unicodedata.category(token.text[0])[0] in "LNM"


def trim_to_words(start: int, end: int, tokens: Sequence[Token]) -> tuple[int, int] | None:
    """Shrink ``[start, end)`` to the words lying wholly inside it, dropping punctuation and symbol
    tokens at either edge (inner punctuation stays); None when no word is left.

    For spans imported from corpora whose tokens carry glued punctuation («بوش.»).

    >>> text = "قال «بوش.» أمس"
    >>> tokens = segment_words(text)
    >>> start, end = trim_to_words(4, 10, tokens)
    >>> text[start:end]
    'بوش'
    >>> trim_to_words(4, 5, tokens) is None
    True
    """
    inside = [token for token in tokens if start <= token.start and token.end <= end]
    words = [i for i, token in enumerate(inside) if _is_word(token)]
    if not words:
        return None
    return inside[words[0]].start, inside[words[-1]].end


def expand_to_words(start: int, end: int, tokens: Sequence[Token]) -> tuple[int, int]:
    """Widen ``[start, end)`` so that both edges fall on word boundaries: an edge inside a word
    moves out to that word's edge.

    For spans of corpora that split clitics off: once «و» is attached again, the entity
    «السودان» sits inside the word «والسودان», which our guidelines annotate whole.

    >>> text = "زار والسودان"
    >>> start, end = expand_to_words(5, 12, segment_words(text))
    >>> text[start:end]
    'والسودان'
    """
    for token in tokens:
        if token.start < start < token.end:
            start = token.start
        if token.start < end < token.end:
            end = token.end
    return start, end

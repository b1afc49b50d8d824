"""CoNLL reading and writing: one ``token TAG`` per line, a blank line between sentences.

Input may be IOB1 or IOB2 (normalised to IOB2). Tokens may carry invisible marks such as U+200E
(common in exports of Arabic corpora); they are kept in the token and never break reading, and a
line holding only such marks counts as blank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from .annotation import Document, atomic_write_text
from .spans import Span, iob1_to_iob2, spans_to_tags, tag_ranges
from .schema import split_tag
from .text import INVISIBLE_CHARS, segment_words, sentence_ranges, strip_invisible


class ConllFormatError(ValueError):
    """A CoNLL line that is not ``token TAG``."""


@dataclass
class ConllSentence:
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line of the first token


def parse_conll(lines: Iterable[str], source: str = "<conll>") -> list[ConllSentence]:
    """Parse CoNLL lines into sentences with IOB2 tags.

    The tag is the last whitespace-separated field, the token the first (extra middle columns,
    such as POS tags, are ignored).

    >>> [(s.tokens, s.tags) for s in parse_conll(["\\u200eموسكو I-LOC", "أمس O", "", "بوتين B-PER"])]
    [(['\\u200eموسكو', 'أمس'], ['B-LOC', 'O']), (['بوتين'], ['B-PER'])]
    """
    sentences: list[ConllSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush() -> None:
        if tokens:
            sentences.append(ConllSentence(list(tokens), iob1_to_iob2(tags), first_line))
            tokens.clear()
            tags.clear()

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not strip_invisible(line).strip() or line.startswith("-DOCSTART-"):
            flush()
            continue
        fields = line.split()
        if len(fields) < 2:
            raise ConllFormatError(f"{source}:{number}: expected 'token TAG', got {line!r}")
        tag = strip_invisible(fields[-1])
        try:
            split_tag(tag)
        except ValueError as exc:
            raise ConllFormatError(f"{source}:{number}: {exc}") from None
        if not tokens:
            first_line = number
        tokens.append(fields[0])
        tags.append(tag)
    flush()
    return sentences


def read_conll(path: str | os.PathLike) -> list[ConllSentence]:
    with open(path, encoding="utf-8") as handle:
        return parse_conll(handle, str(path))


def _visible_bounds(token: str) -> tuple[int, int]:
    """Offsets of the first and past the last visible character of a token.

    >>> _visible_bounds("\u200eموسكو\u200f")
    (1, 6)
    """
    start = len(token) - len(token.lstrip(INVISIBLE_CHARS))
    return start, len(token.rstrip(INVISIBLE_CHARS))


def conll_sentences_to_document(sentences: Sequence[ConllSentence], doc_id: str, source: str = "<conll>") -> Document:
    """Join CoNLL sentences into one Document (tokens separated by spaces, sentences by newlines).

    Invisible marks at a token's edges stay in the text but out of the spans, which therefore fall
    on the shared segmentation's word boundaries. A CoNLL token holding punctuation ("U.S.") becomes
    several words; its tag covers all of them.

    >>> conll_sentences_to_document(parse_conll(["\u200eموسكو B-GPE"]), "x").spans
    [Span(start=1, end=6, label='GPE', text='موسكو')]
    """
    pieces: list[str] = []
    spans: list[Span] = []
    offset = 0
    for sentence in sentences:
        starts = []
        for token in sentence.tokens:
            starts.append(offset)
            pieces.append(token)
            offset += len(token) + 1
            pieces.append(" ")
        pieces[-1] = "\n"
        for first, end, label in tag_ranges(sentence.tags):
            first_token, last_token = sentence.tokens[first], sentence.tokens[end - 1]
            start = starts[first] + _visible_bounds(first_token)[0]
            stop = starts[end - 1] + _visible_bounds(last_token)[1]
            if start >= stop:
                raise ConllFormatError(f"{source}:{sentence.line + first}: entity {label} has no visible characters ({first_token!r})")
            spans.append(Span(start, stop, label, ""))
    text = "".join(pieces)
    return Document(doc_id, text, [Span(s.start, s.end, s.label, text[s.start : s.end]) for s in spans])


def document_to_conll(document: Document) -> str:
    """Render a document as CoNLL: shared segmentation, one sentence per block, IOB2 tags.

    >>> print(document_to_conll(Document("a", "زار موسكو.", [])), end="")
    زار O
    موسكو O
    . O
    <BLANKLINE>
    """
    tokens = segment_words(document.text)
    tags = spans_to_tags(document.text, document.spans, tokens)
    blocks = []
    for first, end in sentence_ranges(document.text, tokens, tags):
        # A CoNLL token cannot contain whitespace; segmentation never produces one, but a token
        # may hold invisible marks, which stay (readers of this format accept them).
        blocks.append("".join(f"{tokens[i].text} {tags[i]}\n" for i in range(first, end)))
    return "\n".join(blocks) + ("\n" if blocks else "")


def write_conll(path: str | os.PathLike, documents: Iterable[Document]) -> None:
    atomic_write_text(path, "\n".join(document_to_conll(d) for d in documents))

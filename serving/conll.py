"""CoNLL reading and writing: one ``token TAG`` per line, a blank line between sentences.

Input may be IOB1 or IOB2 (normalised to IOB2). Tokens may carry invisible marks such as U+200E
(common in exports of Arabic corpora); they are kept in the token and never break reading, and a
line holding only such marks counts as blank.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .annotation import Document, atomic_write_text
from .schema import OUTSIDE, split_tag
from .spans import Span, iob1_to_iob2, spans_to_tags, tag_ranges
from .text import INVISIBLE_CHARS, segment_words, sentence_ranges, strip_invisible


class ConllFormatError(ValueError):
    """A CoNLL line that is not ``token TAG``."""


DOCUMENT_START = "-DOCSTART-"


@dataclass(frozen=True)
class ConllLayout:
    """Where the token and the tag sit on a line of a CoNLL-style file.

    ``separator`` None splits on runs of whitespace. Nested multi-column files (Wojood) put one
    tag per nesting level after the token, outermost first, and leave the inner columns out where
    a token has no inner entity: ``level`` picks the column ``tag_column + level`` and reads a
    missing column as O. ``segment_marker`` is a token that ends a segment (Wojood's ``$#$``): a
    sentence break, never a word.
    """

    token_column: int = 0
    tag_column: int = -1
    separator: str | None = None
    level: int = 0
    segment_marker: str | None = None

    def __post_init__(self) -> None:
        if self.level < 0 or (self.level and self.tag_column < 0):
            raise ValueError(
                f"a nested level ({self.level}) needs a tag column counted from the start (0 or more), got tag column {self.tag_column}"
            )


@dataclass
class ConllSentence:
    tokens: list[str]
    tags: list[str]
    token_lines: list[int] = field(default_factory=list)  # 1-based line of each token
    starts_document: bool = False  # the first sentence after a -DOCSTART- line


def is_segment_marker(token: str, layout: ConllLayout) -> bool:
    """Whether a token is the layout's segment marker (invisible marks aside).

    >>> is_segment_marker("\u200e$#$", ConllLayout(segment_marker="$#$")), is_segment_marker("$#$", ConllLayout())
    (True, False)
    """
    return layout.segment_marker is not None and strip_invisible(token) == layout.segment_marker


def read_conll_sentences(lines: Iterable[str], layout: ConllLayout = ConllLayout(), source: str = "<conll>") -> list[ConllSentence]:
    """Sentences of tokens and raw tags (not yet checked as IOB: a label map may repair them).

    Blank lines (or lines of invisible marks only), ``-DOCSTART-`` lines and segment markers end a
    sentence; line ends may be CRLF; invisible marks are stripped from tags, kept in tokens.

    >>> layout = ConllLayout(tag_column=1, level=1, segment_marker="$#$")
    >>> [(s.tokens, s.tags, s.token_lines) for s in read_conll_sentences(["مجلس B-ORG", "الأسد I-ORG B-PERS", "$#$ O", "غدا B-DATE"], layout)]
    [(['مجلس', 'الأسد'], ['O', 'B-PERS'], [1, 2]), (['غدا'], ['O'], [4])]
    """
    sentences: list[ConllSentence] = []
    current = ConllSentence([], [])
    document_start = False

    def flush() -> None:
        nonlocal current, document_start
        if current.tokens:
            current.starts_document = document_start
            document_start = False
            sentences.append(current)
        current = ConllSentence([], [])

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not strip_invisible(line).strip():
            flush()
            continue
        if line.startswith(DOCUMENT_START):
            flush()
            document_start = True
            continue
        fields = line.split(layout.separator)
        token = fields[layout.token_column] if -len(fields) <= layout.token_column < len(fields) else ""
        if is_segment_marker(token, layout):
            flush()
            continue
        if len(fields) < 2 or not token:
            raise ConllFormatError(f"{source}:{number}: expected 'token TAG', got {line!r}")
        column = layout.tag_column + layout.level
        tag = strip_invisible(fields[column]).strip() if -len(fields) <= column < len(fields) else ""
        if not tag and not layout.level:  # an inner level may be left out; the main tag may not
            raise ConllFormatError(f"{source}:{number}: no tag in column {layout.tag_column}: {line!r}")
        current.tokens.append(token)
        current.tags.append(tag or OUTSIDE)
        current.token_lines.append(number)
    flush()
    return sentences


def parse_conll(lines: Iterable[str], source: str = "<conll>", layout: ConllLayout = ConllLayout()) -> list[ConllSentence]:
    """Parse CoNLL lines into sentences with IOB2 tags.

    By default the tag is the last whitespace-separated field, the token the first (extra middle
    columns, such as POS tags, are ignored).

    >>> [(s.tokens, s.tags) for s in parse_conll(["\\u200eموسكو I-LOC", "أمس O", "", "بوتين B-PER"])]
    [(['\\u200eموسكو', 'أمس'], ['B-LOC', 'O']), (['بوتين'], ['B-PER'])]
    """
    sentences = read_conll_sentences(lines, layout, source)
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            try:
                split_tag(tag)
            except ValueError as exc:
                raise ConllFormatError(f"{source}:{sentence.token_lines[offset]}: {exc}") from None
        sentence.tags = iob1_to_iob2(sentence.tags)
    return sentences


def read_conll(path: str | os.PathLike, layout: ConllLayout = ConllLayout()) -> list[ConllSentence]:
    """``parse_conll`` over a UTF-8 file (a byte-order mark is skipped)."""
    with open(path, encoding="utf-8-sig") as handle:
        return parse_conll(handle, str(path), layout)


def _visible_bounds(token: str) -> tuple[int, int]:
    """Offsets of the first and past the last visible character of a token.

    >>> _visible_bounds("\u200eموسكو\u200f")
    (1, 6)
    """
    start = len(token) - len(token.lstrip(INVISIBLE_CHARS))
    return start, len(token.rstrip(INVISIBLE_CHARS))


@dataclass(frozen=True)
class CliticGlue:
    """Clitics that a corpus split off as tokens of their own, to attach again when rebuilding the
    text (standard orthography writes «والسودان», «مدنها», never «و السودان», «مدن ها»).

    A proclitic token is attached to the next token when that one starts with an Arabic letter; an
    enclitic token to the previous one when that one ends with an Arabic letter, whose final ة is
    then written ت, as before any suffix («عاصمة» + «ها» -> «عاصمتها»). The article's alef drops
    after the preposition ل («ل» + «الاتحاد» -> «للاتحاد»).
    """

    proclitics: frozenset[str] = frozenset()
    enclitics: frozenset[str] = frozenset()


def _is_arabic_letter(ch: str) -> bool:
    return "\u0621" <= ch <= "\u064a" or "\u0671" <= ch <= "\u06d3"


def _attaches_proclitic(visible: Sequence[str], owner: Sequence[int | None], glue: CliticGlue, i: int) -> bool:
    """Whether token ``i - 1`` is a proclitic to attach to token ``i``."""
    return (
        visible[i - 1] in glue.proclitics and visible[i][:1] != "" and _is_arabic_letter(visible[i][0]) and owner[i - 1] in (None, owner[i])
    )


def _attaches_enclitic(visible: Sequence[str], owner: Sequence[int | None], glue: CliticGlue, i: int) -> bool:
    """Whether token ``i`` is an enclitic to attach to token ``i - 1``."""
    return (
        visible[i] in glue.enclitics
        and visible[i - 1][-1:] != ""
        and _is_arabic_letter(visible[i - 1][-1])
        and owner[i] in (None, owner[i - 1])
    )


def assemble_text(
    sentences: Sequence[Sequence[str]],
    glue: CliticGlue | None = None,
    strip_marks: bool = False,
    mentions: Sequence[Sequence[int | None]] | None = None,
) -> tuple[str, list[list[tuple[int, int]]]]:
    r"""Rebuild a text from tokens: spaces between tokens (none where ``glue`` attaches a clitic),
    a newline after each sentence. Returns the text and, per sentence, each token's ``(start, end)``
    in it, invisible marks at the token's edges excluded; ``strip_marks`` drops those marks from
    the text altogether (attaching clitics implies it). ``mentions`` gives each token's entity
    mention (None outside any): a clitic inside a mention is attached only to a token of the same
    mention, so attaching never joins two entities nor stretches one over a word not its own.

    >>> glue = CliticGlue(frozenset({"و", "ل"}), frozenset({"ها"}))
    >>> text, offsets = assemble_text([["\u200eو", "\u200eالسودان", "عاصمة", "ها", "ل", "الاتحاد"]], glue)
    >>> text, offsets
    ('والسودان عاصمتها للاتحاد\n', [[(0, 1), (1, 8), (9, 14), (14, 16), (17, 18), (18, 24)]])
    """
    strip_marks = strip_marks or glue is not None
    pieces: list[str] = []
    offsets: list[list[tuple[int, int]]] = []
    position = 0
    for tokens in sentences:
        visible = [strip_invisible(token) for token in tokens]
        owner = mentions[len(offsets)] if mentions is not None else [None] * len(tokens)
        attached = [False] + [
            glue is not None and (_attaches_proclitic(visible, owner, glue, i) or _attaches_enclitic(visible, owner, glue, i))
            for i in range(1, len(tokens))
        ]
        sentence_offsets = []
        for i, token in enumerate(tokens):
            if i and not attached[i]:
                pieces.append(" ")
                position += 1
            written = visible[i] if strip_marks else token
            if i + 1 < len(tokens) and attached[i + 1] and visible[i + 1] in glue.enclitics and written.endswith("\u0629"):
                written = written[:-1] + "\u062a"  # ة before a suffix is written ت
            if attached[i] and visible[i - 1] == "\u0644" and written.startswith("\u0627\u0644"):
                written = written[1:]  # ل + ال -> لل
            lead, trail = (0, len(written)) if strip_marks else _visible_bounds(token)
            sentence_offsets.append((position + lead, position + trail))
            pieces.append(written)
            position += len(written)
        pieces.append("\n")
        position += 1
        offsets.append(sentence_offsets)
    return "".join(pieces), offsets


def conll_sentences_to_document(sentences: Sequence[ConllSentence], doc_id: str, source: str = "<conll>") -> Document:
    """Join CoNLL sentences into one Document (tokens separated by spaces, sentences by newlines).

    Invisible marks at a token's edges stay in the text but out of the spans, which therefore fall
    on the shared segmentation's word boundaries. A CoNLL token holding punctuation ("U.S.") becomes
    several words; its tag covers all of them.

    >>> conll_sentences_to_document(parse_conll(["\u200eموسكو B-GPE"]), "x").spans
    [Span(start=1, end=6, label='GPE', text='موسكو')]
    """
    text, offsets = assemble_text([sentence.tokens for sentence in sentences])
    spans: list[Span] = []
    for sentence, token_offsets in zip(sentences, offsets, strict=True):
        for first, end, label in tag_ranges(sentence.tags):
            start, stop = token_offsets[first][0], token_offsets[end - 1][1]
            if start >= stop:
                raise ConllFormatError(
                    f"{source}:{sentence.token_lines[first]}: entity {label} has no visible characters ({sentence.tokens[first]!r})"
                )
            spans.append(Span(start, stop, label, text[start:stop]))
    return Document(doc_id, text, spans)


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

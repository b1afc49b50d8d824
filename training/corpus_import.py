"""CoNLL-style corpora -> our annotation JSONL, through a label map, with nothing lost silently.

    python -m training.convert --from conll --label-map annotations/label_maps/anercorp.toml \\
        annotations/corpora/anercorp/ANERCorp_CamelLab_train.txt runs/corpora/anercorp.jsonl

For each file: read sentences (``serving.conll.read_conll_sentences``: BOM, CRLF, invisible marks,
segment markers, nested levels), repair tags the map lists under ``[tag_fixes]``, decode entities
(an I- that opens an entity counts as a B-, and is reported in IOB2 files), map each native type
to our label, a label set or nothing, group sentences into documents and rebuild each document's
text from its tokens (split-off clitics attached again where the map says so). Then every span is
fitted to our word segmentation:

* an edge inside a word (an attached clitic) moves out to the word's edge (clitics stay inside,
  as in our guidelines);
* title words the map lists are moved out of the start of a span (OCC beside PERS, not inside),
  and a span that is a title alone is read as O (a title names no person);
* punctuation glued to a token at a span's edge is trimmed off;
* a span left with no word is dropped and reported with FILE:LINE.

``ImportSummary`` counts what was kept, trimmed, dropped and why; the converter prints it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serving.annotation import Document
from serving.conll import ConllFormatError, ConllSentence, assemble_text, is_segment_marker, read_conll_sentences
from serving.schema import split_tag
from serving.spans import Span, expand_to_words, tag_ranges, trim_to_words
from serving.text import Token, segment_words, strip_invisible

from .label_maps import LabelMap

MAX_LISTED = 20  # problems listed one by one in the summary; the rest are counted


class ConversionError(ValueError):
    """Input that cannot be converted as the label map describes; names FILE:LINE."""


@dataclass
class ImportSummary:
    """What a conversion read, kept, changed and dropped."""

    files: int = 0
    sentences: int = 0
    tokens: int = 0
    documents: int = 0
    native_entities: Counter = field(default_factory=Counter)  # native type -> mentions read
    kept: Counter = field(default_factory=Counter)  # our span label -> spans written
    mapped_to_outside: Counter = field(default_factory=Counter)  # native type -> mentions read as O by the map
    tag_fixes: Counter = field(default_factory=Counter)  # raw tag -> occurrences repaired by [tag_fixes]
    opened_by_inside_tag: list[str] = field(default_factory=list)  # FILE:LINE of I- tags that opened an entity (IOB2 files)
    titles_moved_out: Counter = field(default_factory=Counter)  # word -> times moved out of a span's start
    title_only: list[str] = field(default_factory=list)  # FILE:LINE of spans that were a title alone, read as O
    punctuation_trimmed: list[str] = field(default_factory=list)  # FILE:LINE
    widened_over_clitics: int = 0
    dropped: list[str] = field(default_factory=list)  # "FILE:LINE: reason"
    invisible_marks_removed: int = 0
    segment_markers: int = 0
    clitics_attached: int = 0

    def render(self) -> str:
        """A human-readable account, one line per kind of event."""
        lines = [
            f"read {self.files} file(s): {self.sentences:,} sentences, {self.tokens:,} tokens -> {self.documents:,} documents",
            f"native entities read: {sum(self.native_entities.values()):,} ({_counts(self.native_entities)})",
            f"kept: {sum(self.kept.values()):,} spans ({_counts(self.kept)})",
        ]
        for label, value in (
            ("read as O by the label map", self.mapped_to_outside),
            ("tags repaired by [tag_fixes]", self.tag_fixes),
            ("I- tags opening an entity, read as B-", self.opened_by_inside_tag),
            ("title words moved out of the start of a span", self.titles_moved_out),
            ("spans that are a title alone, read as O", self.title_only),
            ("spans trimmed of punctuation at an edge", self.punctuation_trimmed),
            ("spans widened over an attached clitic", self.widened_over_clitics),
            ("split-off clitics attached again", self.clitics_attached),
            ("invisible marks removed from tokens", self.invisible_marks_removed),
            ("segment markers read as sentence breaks", self.segment_markers),
        ):
            if value:
                lines.append(f"{label}: {_amount(value)}")
        lines.append(f"dropped: {len(self.dropped)}" + ("" if not self.dropped else ":"))
        lines += [f"  {problem}" for problem in self.dropped[:MAX_LISTED]]
        if len(self.dropped) > MAX_LISTED:
            lines.append(f"  ... and {len(self.dropped) - MAX_LISTED} more")
        return "\n".join(lines)


def _amount(value) -> str:
    """A summary line's figure: a count by kind (a Counter), places (a list of FILE:LINE), or a number."""
    if isinstance(value, dict):
        return f"{sum(value.values()):,} ({_counts(value)})"
    if isinstance(value, list):
        return f"{len(value):,} ({_places(value)})"
    return f"{value:,}"


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {count:,}" for key, count in counter.most_common())


def _places(places: list[str]) -> str:
    shown = ", ".join(places[:5])
    return shown + (f", ... {len(places) - 5} more" if len(places) > 5 else "")


@dataclass(frozen=True)
class _Mention:
    """A native entity mapped to our label, by token positions in its sentence."""

    first: int
    end: int
    label: str
    line: int


def _sentence_mentions(sentence: ConllSentence, label_map: LabelMap, path: str, summary: ImportSummary) -> list[_Mention]:
    """Repair, check and decode one sentence's tags; map each entity to our label."""
    tags = []
    for tag, line in zip(sentence.tags, sentence.token_lines, strict=True):
        if tag in label_map.tag_fixes:
            summary.tag_fixes[tag] += 1
            tag = label_map.tag_fixes[tag]
        try:
            split_tag(tag)
        except ValueError as exc:
            raise ConversionError(f"{path}:{line}: {exc} (list it under [tag_fixes] in {label_map.path} to repair it)") from None
        tags.append(tag)
    mentions = []
    for first, end, native in tag_ranges(tags):
        line = sentence.token_lines[first]
        if label_map.reader.scheme == "iob2" and tags[first].startswith("I-"):
            summary.opened_by_inside_tag.append(f"{path}:{line}")
        summary.native_entities[native] += 1
        try:
            target = label_map.target(native)
        except ValueError as exc:
            raise ConversionError(f"{path}:{line}: {exc}") from None
        if target is None:
            summary.mapped_to_outside[native] += 1
        else:
            mentions.append(_Mention(first, end, target, line))
    return mentions


def _fit_span(
    text: str, tokens: Sequence[Token], start: int, end: int, mention: _Mention, label_map: LabelMap, path: str, summary: ImportSummary
) -> Span | None:
    """The mention's characters fitted to our words (see the module docstring), or None (reported)."""
    widened = expand_to_words(start, end, tokens)
    if widened != (start, end):
        summary.widened_over_clitics += 1
        start, end = widened
    inside = [t for t in tokens if start <= t.start and t.end <= end]
    trimmed_titles = 0
    while trimmed_titles < len(inside) and label_map.is_leading_word(mention.label, inside[trimmed_titles].text):
        summary.titles_moved_out[inside[trimmed_titles].text] += 1
        trimmed_titles += 1
    if trimmed_titles == len(inside):
        summary.title_only.append(f"{path}:{mention.line}")  # a title alone names no person (our OCC)
        return None
    if trimmed_titles:
        start = inside[trimmed_titles].start
    fitted = trim_to_words(start, end, tokens)
    if fitted is None:
        summary.dropped.append(f"{path}:{mention.line}: {mention.label} {text[start:end]!r} has no whole word")
        return None
    if fitted != (start, end):
        summary.punctuation_trimmed.append(f"{path}:{mention.line}")
    return Span(fitted[0], fitted[1], mention.label, text[fitted[0] : fitted[1]])


def _document(
    doc_id: str,
    sentences: Sequence[ConllSentence],
    mentions: Sequence[list[_Mention]],
    label_map: LabelMap,
    path: str,
    summary: ImportSummary,
) -> Document:
    """One document: the text rebuilt from its sentences' tokens, the mentions as fitted spans."""
    owners = []
    for sentence, sentence_mentions in zip(sentences, mentions, strict=True):
        owner: list[int | None] = [None] * len(sentence.tokens)
        for number, mention in enumerate(sentence_mentions):
            owner[mention.first : mention.end] = [number] * (mention.end - mention.first)
        owners.append(owner)
    text, offsets = assemble_text([s.tokens for s in sentences], label_map.reader.glue, strip_marks=True, mentions=owners)
    tokens = segment_words(text)
    summary.invisible_marks_removed += sum(len(t) - len(strip_invisible(t)) for s in sentences for t in s.tokens)
    summary.clitics_attached += sum(
        previous[1] == current[0] for token_offsets in offsets for previous, current in itertools.pairwise(token_offsets)
    )
    spans = []
    for token_offsets, sentence_mentions in zip(offsets, mentions, strict=True):
        for mention in sentence_mentions:
            start, end = token_offsets[mention.first][0], token_offsets[mention.end - 1][1]
            if start >= end:
                summary.dropped.append(f"{path}:{mention.line}: {mention.label} has no visible characters")
                continue
            span = _fit_span(text, tokens, start, end, mention, label_map, path, summary)
            if span is not None and spans and span.start < spans[-1].end:
                summary.dropped.append(
                    f"{path}:{mention.line}: {span.label} {span.text!r} overlaps {spans[-1].label} {spans[-1].text!r} once fitted to words"
                )
            elif span is not None:
                spans.append(span)
                summary.kept[span.label] += 1
    return Document(doc_id, text, spans, source=label_map.source, annotated=label_map.annotated)


def _document_groups(sentences: Sequence[ConllSentence], size: int) -> list[list[int]]:
    """Sentence indices of each document: a new one at each -DOCSTART-, and every ``size``
    sentences when ``size`` > 0."""
    groups: list[list[int]] = []
    for index, sentence in enumerate(sentences):
        if not groups or sentence.starts_document or (size and len(groups[-1]) == size):
            groups.append([])
        groups[-1].append(index)
    return groups


def import_conll_file(path: str | Path, label_map: LabelMap, summary: ImportSummary) -> list[Document]:
    """Documents of one CoNLL file, ids ``SOURCE-STEM`` or ``SOURCE-STEM-NNNN`` (stable for an
    unchanged file); raises ConversionError naming FILE:LINE."""
    path = str(path)
    layout = label_map.reader.layout
    try:
        with open(path, encoding="utf-8-sig") as handle:  # lines as serving.conll.read_conll reads them
            lines = list(handle)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        sentences = read_conll_sentences(lines, layout, path)
    except ConllFormatError as exc:
        raise ConversionError(str(exc)) from None
    if layout.segment_marker is not None:
        tokens = (line.rstrip("\r\n").split(layout.separator) for line in lines if line.strip())
        summary.segment_markers += sum(
            1
            for fields in tokens
            if -len(fields) <= layout.token_column < len(fields) and is_segment_marker(fields[layout.token_column], layout)
        )
    mentions = [_sentence_mentions(sentence, label_map, path, summary) for sentence in sentences]
    groups = _document_groups(sentences, label_map.reader.document_sentences)
    stem = f"{label_map.source}-{Path(path).stem}"
    documents = []
    for number, group in enumerate(groups):
        doc_id = stem if len(groups) == 1 else f"{stem}-{number:04d}"
        documents.append(_document(doc_id, [sentences[i] for i in group], [mentions[i] for i in group], label_map, path, summary))
    summary.files += 1
    summary.sentences += len(sentences)
    summary.tokens += sum(len(s.tokens) for s in sentences)
    summary.documents += len(documents)
    return documents


def import_conll(paths: Sequence[str | Path], label_map: LabelMap) -> tuple[list[Document], ImportSummary]:
    """Documents of every file, in order, and the summary of the whole conversion."""
    summary = ImportSummary()
    documents: list[Document] = []
    first_file: dict[str, str] = {}  # document id -> the file it came from
    for path in paths:
        for document in import_conll_file(path, label_map, summary):
            if document.id in first_file:
                raise ConversionError(
                    f"{path}: document id {document.id!r} is also made from {first_file[document.id]} (ids come from file names; rename one)"
                )
            first_file[document.id] = str(path)
            documents.append(document)
    return documents, summary

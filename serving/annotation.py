"""The annotation format (one JSON object per line) and its validator.

    {"id": str, "text": str, "spans": [{"start": int, "end": int, "label": str, "text": str}],
     "source": str, "annotated": [str, ...]}                              # the last two optional

Coverage, for documents converted from corpora that do not mark all of our labels:

* ``annotated`` lists the labels the document marks exhaustively; a word outside every span may
  still be an entity of any other label. Absent means all nine (our own annotation).
* a span label may be a label set, ``"GPE|LOC|FAC"``: the mention is one of those labels (a native
  tag that merges labels we keep apart). A span of a label outside ``annotated`` is still certain.
* ``source`` names the corpus (per-source dev scores group by it).

Reading never drops anything silently: a malformed line or field is an error naming the file and
line. ``validate_documents`` reports every span problem as ``FILE:LINE: span START-END LABEL: reason``.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .schema import ENTITY_LABELS, known_labels, label_members
from .spans import Span
from .text import segment_words


class AnnotationFormatError(ValueError):
    """A line of an annotation file that is not a well-formed document."""


@dataclass
class Document:
    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    line: int = 0  # 1-based line in the file it was read from; 0 when built in memory
    source: str | None = None  # the corpus the document was converted from
    annotated: tuple[str, ...] = ENTITY_LABELS  # labels marked exhaustively, in schema order

    def to_json(self) -> dict:
        record = {
            "id": self.id,
            "text": self.text,
            "spans": [{"start": s.start, "end": s.end, "label": s.label, "text": s.text} for s in sorted(self.spans)],
        }
        if self.source is not None:
            record["source"] = self.source
        if self.annotated != ENTITY_LABELS:
            record["annotated"] = list(self.annotated)
        return record


@dataclass(frozen=True)
class Problem:
    path: str
    line: int  # 0: not about one line (a whole file, or a document converted from another format)
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class InvalidDataError(ValueError):
    """Annotations that failed validation; ``problems`` holds every message."""

    def __init__(self, path: str, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"{path}: {len(self.problems)} problem(s)\n" + "\n".join(str(p) for p in self.problems))


def _require(obj: dict, key: str, kind: type, where: str):
    if key not in obj:
        raise AnnotationFormatError(f"{where}: missing field {key!r}")
    value = obj[key]
    # bool is an int subclass; a start of `true` is a mistake, not an offset.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AnnotationFormatError(f"{where}: field {key!r} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_document(line: str, where: str) -> Document:
    """Parse one JSONL line into a Document; ``where`` ("FILE:LINE") prefixes every error.

    >>> parse_document('{"id": "a", "text": "زار موسكو", "spans": [{"start": 4, "end": 9, "label": "GPE", "text": "موسكو"}]}', "x:1").spans
    [Span(start=4, end=9, label='GPE', text='موسكو')]
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise AnnotationFormatError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise AnnotationFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    doc_id = _require(obj, "id", str, where)
    text = _require(obj, "text", str, where)
    raw_spans = obj.get("spans", [])
    if not isinstance(raw_spans, list):
        raise AnnotationFormatError(f"{where}: field 'spans' must be a list, got {type(raw_spans).__name__}")
    spans = []
    for k, raw in enumerate(raw_spans):
        span_where = f"{where}: spans[{k}]"
        if not isinstance(raw, dict):
            raise AnnotationFormatError(f"{span_where}: expected an object, got {type(raw).__name__}")
        start = _require(raw, "start", int, span_where)
        end = _require(raw, "end", int, span_where)
        label = _require(raw, "label", str, span_where)
        span_text = _require(raw, "text", str, span_where)
        spans.append(Span(start, end, label, span_text))
    source = obj.get("source")
    if source is not None and not isinstance(source, str):
        raise AnnotationFormatError(f"{where}: field 'source' must be str, got {type(source).__name__} {source!r}")
    return Document(doc_id, text, spans, source=source, annotated=_annotated_labels(obj, where))


def _annotated_labels(obj: dict, where: str) -> tuple[str, ...]:
    """The ``annotated`` field as known labels in schema order (all of them when absent)."""
    if "annotated" not in obj:
        return ENTITY_LABELS
    try:
        return known_labels(obj["annotated"])
    except ValueError as exc:
        raise AnnotationFormatError(f"{where}: field 'annotated': {exc}") from None


def read_documents(path: str | os.PathLike) -> list[Document]:
    """Read an annotation JSONL file; blank lines are skipped, anything else must be a document."""
    documents = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            document = parse_document(line, f"{path}:{number}")
            document.line = number
            documents.append(document)
    return documents


def mode_under_umask(directory: bool = False) -> int:
    """The permission bits ``open()`` (0o666) or ``mkdir()`` (0o777) would give now: the process's
    umask applied. ``tempfile.mkstemp``/``mkdtemp`` ignore it (0o600/0o700), so whatever they make
    to be published is given these bits.

    >>> old = os.umask(0o027); modes = oct(mode_under_umask()), oct(mode_under_umask(directory=True)); _ = os.umask(old)
    >>> modes
    ('0o640', '0o750')
    """
    umask = os.umask(0o022)  # the only way to read it portably; set back at once
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_text(path: str | os.PathLike, content: str) -> None:
    """Write a file so that readers see either the old content or the new, never half of it.
    It gets the mode a plain ``open(path, "w")`` would give (the umask respected)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode_under_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_documents(path: str | os.PathLike, documents: Iterable[Document]) -> None:
    atomic_write_text(path, "".join(json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in documents))


def _is_edge_junk(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


def span_problems(document: Document) -> Iterator[str]:
    """Yield "span START-END LABEL: reason" for every problem of one document's spans.

    >>> list(span_problems(Document("a", "زار موسكو", [Span(4, 9, "CITY", "موسكو")])))
    ['span 4-9 CITY: unknown label (known: PERS, NORP, OCC, ORG, GPE, LOC, FAC, EVENT, DATE, or a set of them such as GPE|LOC|FAC)']
    >>> list(span_problems(Document("a", "زار موسكو", [Span(4, 9, "GPE|LOC", "موسكو")])))
    []
    """
    text = document.text
    tokens = segment_words(text)
    starts = {t.start for t in tokens}
    ends = {t.end for t in tokens}
    previous: Span | None = None
    for span in sorted(document.spans):
        name = f"span {span.start}-{span.end} {span.label}"
        if span.label not in ENTITY_LABELS:
            try:
                label_members(span.label)
            except ValueError:
                yield f"{name}: unknown label (known: {', '.join(ENTITY_LABELS)}, or a set of them such as GPE|LOC|FAC)"
        if not 0 <= span.start < span.end <= len(text):
            yield f"{name}: out of range (text has {len(text)} characters; need 0 <= start < end <= {len(text)})"
            continue
        covered = text[span.start : span.end]
        if span.text != covered:
            yield f"{name}: text {span.text!r} differs from text[{span.start}:{span.end}] = {covered!r}"
        if _is_edge_junk(covered[0]) or _is_edge_junk(covered[-1]):
            yield f"{name}: whitespace or punctuation at an edge of {covered!r}"
        elif span.start not in starts or span.end not in ends:
            yield f"{name}: not on word boundaries ({covered!r} cuts a word: …{text[max(0, span.start - 10) : span.end + 10]}…)"
        if previous is not None and span.start < previous.end:
            yield f"{name}: overlaps span {previous.start}-{previous.end} {previous.label}"
        if previous is None or span.end > previous.end:
            previous = span


def validate_documents(path: str, documents: Iterable[Document]) -> list[Problem]:
    """Every problem in a file's documents: span problems plus duplicate ids."""
    problems = []
    first_line_of: dict[str, int] = {}
    for document in documents:
        if document.id in first_line_of:
            problems.append(Problem(path, document.line, f"duplicate id {document.id!r} (first on line {first_line_of[document.id]})"))
        else:
            first_line_of[document.id] = document.line
        problems.extend(Problem(path, document.line, message) for message in span_problems(document))
    return problems


def validate_file(path: str | os.PathLike) -> list[Problem]:
    """Validate one file, reporting malformed lines too and carrying on past them."""
    path = str(path)
    problems: list[Problem] = []
    documents: list[Document] = []
    try:
        with open(path, encoding="utf-8") as handle:
            lines = list(handle)
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(path, 0, f"cannot read: {exc}")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = parse_document(line, f"{path}:{number}")
        except AnnotationFormatError as exc:
            problems.append(Problem(path, number, str(exc).split(": ", 1)[1]))
            continue
        document.line = number
        documents.append(document)
    return problems + validate_documents(path, documents)

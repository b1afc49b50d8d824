"""Import and export for the annotation tools users already have: Label Studio and doccano.

Label Studio stores text offsets as the browser counts them, in UTF-16 code units; Python counts
code points. They differ only after an astral character (most emoji), and the conversion below
keeps both right. Every import error names the task and result it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .annotation import AnnotationFormatError, Document
from .spans import Span

LABEL_STUDIO_FROM_NAME = "label"
LABEL_STUDIO_TO_NAME = "text"


def utf16_offsets(text: str) -> list[int]:
    """UTF-16 offset of every code-point offset 0..len(text).

    >>> utf16_offsets("a😀b")
    [0, 1, 3, 4]
    """
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return offsets


def _label_studio_result(span: Span, text: str, to_utf16: list[int], score: float | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "from_name": LABEL_STUDIO_FROM_NAME,
        "to_name": LABEL_STUDIO_TO_NAME,
        "type": "labels",
        "value": {"start": to_utf16[span.start], "end": to_utf16[span.end], "text": text[span.start : span.end], "labels": [span.label]},
    }
    if score is not None:
        result["score"] = score
    return result


def to_label_studio_task(document: Document, scores: Sequence[float] | None = None, model_version: str | None = None) -> dict[str, Any]:
    """One Label Studio task. Gold spans go in ``annotations``; with ``model_version`` the spans are
    model output and go in ``predictions`` (pre-annotations a person corrects).

    >>> task = to_label_studio_task(Document("a", "زار موسكو", [Span(4, 9, "GPE", "موسكو")]))
    >>> task["annotations"][0]["result"][0]["value"]
    {'start': 4, 'end': 9, 'text': 'موسكو', 'labels': ['GPE']}
    """
    to_utf16 = utf16_offsets(document.text)
    spans = sorted(document.spans)
    results = [_label_studio_result(span, document.text, to_utf16, None if scores is None else scores[i]) for i, span in enumerate(spans)]
    task: dict[str, Any] = {"data": {"id": document.id, "text": document.text}}
    if model_version is None:
        task["annotations"] = [{"result": results}]
    else:
        mean = sum(scores) / len(scores) if scores else 0.0
        task["predictions"] = [{"model_version": model_version, "score": mean, "result": results}]
    return task


def _code_point_offset(utf16: int, to_utf16: list[int], where: str) -> int:
    # to_utf16 is strictly increasing, so a binary search finds the code point, if one starts there.
    lo, hi = 0, len(to_utf16) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if to_utf16[mid] == utf16:
            return mid
        if to_utf16[mid] < utf16:
            lo = mid + 1
        else:
            hi = mid - 1
    raise AnnotationFormatError(f"{where}: offset {utf16} falls inside a character or outside the text")


def from_label_studio_task(task: dict[str, Any], where: str, use_predictions: bool = False) -> Document:
    """A Document from one task of a Label Studio JSON export (its latest non-cancelled annotation,
    or its latest prediction with ``use_predictions``)."""
    data = task.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise AnnotationFormatError(f"{where}: task has no data.text string")
    text = data["text"]
    doc_id = str(data.get("id", task.get("id", "")))
    if not doc_id:
        raise AnnotationFormatError(f"{where}: task has neither data.id nor id")
    key = "predictions" if use_predictions else "annotations"
    candidates = [a for a in task.get(key) or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not candidates:
        raise AnnotationFormatError(f"{where}: task {doc_id!r} has no {key} (export with annotations, or pass --use-predictions)")
    to_utf16 = utf16_offsets(text)
    spans = []
    for k, result in enumerate(candidates[-1].get("result") or []):
        if result.get("type") != "labels":
            continue  # relations, choices, text areas: not entity spans
        value = result.get("value") or {}
        result_where = f"{where}: task {doc_id!r} result {k}"
        labels = value.get("labels")
        if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            raise AnnotationFormatError(f"{result_where}: value.labels must hold exactly one label, got {labels!r}")
        if not isinstance(value.get("start"), int) or not isinstance(value.get("end"), int):
            raise AnnotationFormatError(f"{result_where}: value.start and value.end must be integers")
        start = _code_point_offset(value["start"], to_utf16, result_where)
        end = _code_point_offset(value["end"], to_utf16, result_where)
        spans.append(Span(start, end, labels[0], text[start:end]))
    return Document(doc_id, text, sorted(spans))


def to_label_studio(documents: Iterable[Document]) -> list[dict[str, Any]]:
    return [to_label_studio_task(d) for d in documents]


def from_label_studio(tasks: Any, source: str, use_predictions: bool = False) -> list[Document]:
    if not isinstance(tasks, list):
        raise AnnotationFormatError(f"{source}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    return [from_label_studio_task(task, f"{source}: task {i}", use_predictions) for i, task in enumerate(tasks)]


def to_doccano(document: Document) -> dict[str, Any]:
    """One doccano sequence-labelling line: ``{"id", "text", "label": [[start, end, LABEL], ...]}``.

    >>> to_doccano(Document("a", "زار موسكو", [Span(4, 9, "GPE", "موسكو")]))
    {'id': 'a', 'text': 'زار موسكو', 'label': [[4, 9, 'GPE']]}
    """
    return {"id": document.id, "text": document.text, "label": [[s.start, s.end, s.label] for s in sorted(document.spans)]}


def from_doccano(record: Any, where: str) -> Document:
    """A Document from one doccano JSONL record, in either export shape: ``"label": [[s, e, L]]``
    (sequence labelling) or ``"entities": [{"start_offset", "end_offset", "label"}]`` (relations)."""
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise AnnotationFormatError(f"{where}: expected an object with a 'text' string")
    text = record["text"]
    if "id" not in record:
        raise AnnotationFormatError(f"{where}: missing field 'id'")
    spans = []
    if "entities" in record:
        triples = [(e.get("start_offset"), e.get("end_offset"), e.get("label")) for e in record["entities"]]
    else:
        triples = [tuple(item) if isinstance(item, list) and len(item) == 3 else (None, None, item) for item in record.get("label", [])]
    for start, end, label in triples:
        if not isinstance(start, int) or not isinstance(end, int) or not isinstance(label, str):
            raise AnnotationFormatError(f"{where}: label entries must be [start, end, LABEL], got {[start, end, label]!r}")
        if not 0 <= start < end <= len(text):
            raise AnnotationFormatError(f"{where}: span {start}-{end} {label} is out of range (text has {len(text)} characters)")
        spans.append(Span(start, end, label, text[start:end]))
    return Document(str(record["id"]), text, sorted(spans))

"""Annotation statistics and inter-annotator agreement.

    python -m training.stats annotations/seeds.jsonl
    python -m training.stats annotations/passes/pass1.jsonl --compare annotations/passes/pass2.jsonl

The first prints span counts per label and per document as a Markdown table; ``--compare``
prints span-level agreement between two annotation passes of the same texts (exact start, end
and label; precision/recall/F1 of the second pass against the first, overall and per label) and
lists every disagreement.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass

from serving.annotation import Document, read_documents
from serving.schema import ENTITY_LABELS
from serving.spans import Span  # noqa: F401  (the docstring examples build spans)


def count_table(documents: list[Document]) -> str:
    """Markdown table: one row per document, one column per label, with totals."""
    header = ["document", *ENTITY_LABELS, "total"]
    rows = []
    totals: Counter = Counter()
    for document in documents:
        counts = Counter(span.label for span in document.spans)
        totals.update(counts)
        rows.append([document.id, *(str(counts[label]) for label in ENTITY_LABELS), str(len(document.spans))])
    rows.append(["**total**", *(str(totals[label]) for label in ENTITY_LABELS), str(sum(totals.values()))])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Agreement:
    matched: int
    only_first: int
    only_second: int

    @property
    def precision(self) -> float:
        return self.matched / (self.matched + self.only_second) if self.matched + self.only_second else 0.0

    @property
    def recall(self) -> float:
        return self.matched / (self.matched + self.only_first) if self.matched + self.only_first else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _keyed_spans(documents: list[Document], label: str | None = None) -> set[tuple[str, int, int, str]]:
    return {(d.id, s.start, s.end, s.label) for d in documents for s in d.spans if label is None or s.label == label}


def agreement(first: list[Document], second: list[Document], label: str | None = None) -> Agreement:
    """Exact-match span agreement; ``label`` restricts it to one label.

    >>> a = [Document("x", "زار موسكو وطهران", [Span(4, 9, "GPE"), Span(10, 16, "GPE")])]
    >>> b = [Document("x", "زار موسكو وطهران", [Span(4, 9, "GPE"), Span(10, 16, "LOC")])]
    >>> round(agreement(a, b).f1, 2)
    0.5
    """
    texts_first = {d.id: d.text for d in first}
    for document in second:
        if texts_first.get(document.id) != document.text:
            raise ValueError(f"document {document.id!r} is missing from the first pass or has another text")
    a, b = _keyed_spans(first, label), _keyed_spans(second, label)
    return Agreement(len(a & b), len(a - b), len(b - a))


def disagreements(first: list[Document], second: list[Document]) -> list[str]:
    """One line per span that only one pass has, in text order, with the other pass's overlapping spans."""
    lines = []
    second_by_id = {d.id: d for d in second}
    for document in first:
        other = second_by_id.get(document.id)
        if other is None:
            continue
        mine, theirs = set(document.spans), set(other.spans)
        for span, side, against in sorted([(s, "1st only", theirs) for s in mine - theirs] + [(s, "2nd only", mine) for s in theirs - mine]):
            overlapping = [f"{o.label} {document.text[o.start:o.end]!r}" for o in sorted(against) if o.start < span.end and span.start < o.end]
            shown = document.text[span.start : span.end]
            lines.append(f"{document.id} {span.start}-{span.end} {side}: {span.label} {shown!r}  other pass: {', '.join(overlapping) or '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.stats", description=__doc__.splitlines()[0])
    parser.add_argument("file", help="annotation JSONL")
    parser.add_argument("--compare", metavar="OTHER", help="a second annotation pass of the same texts")
    args = parser.parse_args(argv)
    first = read_documents(args.file)
    if not args.compare:
        print(count_table(first))
        return 0
    second = read_documents(args.compare)
    overall = agreement(first, second)
    print(f"span-level agreement (exact start, end, label), {args.compare} against {args.file}:")
    print("| label | both | 1st only | 2nd only | F1 |\n|---|---|---|---|---|")
    for label in (*ENTITY_LABELS, None):
        result = overall if label is None else agreement(first, second, label)
        print(f"| {label or '**all**'} | {result.matched} | {result.only_first} | {result.only_second} | {result.f1:.3f} |")
    print(f"\nprecision {overall.precision:.3f}, recall {overall.recall:.3f}, F1 {overall.f1:.3f}\n")
    for line in disagreements(first, second):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

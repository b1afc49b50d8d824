"""Annotation statistics and inter-annotator agreement.

    python -m training.stats annotations/seeds.jsonl
    python -m training.stats annotations/passes/pass1.jsonl --compare annotations/passes/pass2.jsonl
    python -m training.stats runs/corpora/anercorp.jsonl --compare runs/corpora/newsfane.jsonl --by-sentence

The first prints span counts per label and per document as a Markdown table; ``--compare``
prints span-level agreement between two annotation passes of the same texts (exact start, end
and label; precision/recall/F1 of the second pass against the first, overall and per label) and
lists every disagreement. ``--by-sentence`` compares two corpora that annotate the same sentences in
files of their own (NewsFANE re-annotates ANERcorp with other tokens, spelling, documents and
sentence order): lines are matched on their normalised text and spans on the stretch of it they
cover.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass

from serving.annotation import Document, read_documents
from serving.schema import ENTITY_LABELS, label_members
from serving.spans import Span  # noqa: F401  (the docstring examples build spans)
from training.dev_splits import normalised_text
from training.modelcard import table_cell

PROG = "python -m training.stats"  # the name in its usage line (arabic-ner passes its own)


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


# A span as sentence-matched agreement sees it: (the line's normalised text, start, end in it, label).
_LineSpan = tuple[str, int, int, str]


def spans_by_line(documents: list[Document]) -> dict[str, list[_LineSpan]]:
    r"""Each line's spans keyed by the line's normalised text (``training.dev_splits.normalised_text``:
    letters and digits only, spelling variants unified), with offsets into that text, so that
    another tokenisation or spelling of the same line gives the same keys. A line met again keeps
    its first annotation.

    >>> document = Document("x", "زار «موسكو».\nوقال بوتين", [Span(5, 10, "GPE"), Span(18, 23, "PERS")])
    >>> spans_by_line([document])
    {'زارموسكو': [('زارموسكو', 3, 8, 'GPE')], 'وقالبوتين': [('وقالبوتين', 4, 9, 'PERS')]}
    """
    lines: dict[str, list[_LineSpan]] = {}
    for document in documents:
        line_start = 0
        for line in document.text.split("\n"):
            line_end = line_start + len(line)
            key = normalised_text(line)
            if key and key not in lines:
                lines[key] = [
                    (
                        key,
                        len(normalised_text(line[: span.start - line_start])),
                        len(normalised_text(line[: span.end - line_start])),
                        span.label,
                    )
                    for span in document.spans
                    if line_start <= span.start and span.end <= line_end
                ]
            line_start = line_end + 1
    return lines


def sentence_agreement(first: list[Document], second: list[Document]) -> tuple[int, dict[str, Agreement]]:
    r"""Agreement per label of ``first`` over the lines both annotate, and how many lines that is.
    A label may name alternatives (``GPE|LOC|FAC``): a span of ``second`` counts toward it when
    one of its own labels is among them; a label of ``second`` that no label of ``first`` covers is
    a row of its own. Only labels both mark exhaustively (``Document.annotated``) are compared.

    >>> a = [Document("a", "زار بوتين موسكو", [Span(4, 9, "PERS"), Span(10, 15, "GPE|LOC|FAC")])]
    >>> b = [Document("b", "زار بوتين موسكو .\nخبر آخر", [Span(0, 9, "PERS"), Span(10, 15, "GPE")])]
    >>> lines, by_label = sentence_agreement(a, b)
    >>> lines, by_label["PERS"], by_label["GPE|LOC|FAC"]
    (1, Agreement(matched=0, only_first=1, only_second=1), Agreement(matched=1, only_first=0, only_second=0))
    """
    first_lines, second_lines = spans_by_line(first), spans_by_line(second)
    shared = first_lines.keys() & second_lines.keys()
    labels = {span[3] for key in shared for span in first_lines[key]}
    # A label only the second corpus uses (on these lines) gets a row of its own, all "2nd only".
    labels |= {
        span[3]
        for key in shared
        for span in second_lines[key]
        if not any(set(label_members(span[3])) & set(label_members(label)) for label in labels)
    }
    # A label one corpus does not mark exhaustively (NORP in NewsFANE, not in ANERcorp) is left out.
    marked_by_both = {label for d in first for label in d.annotated} & {label for d in second for label in d.annotated}
    result = {}
    for label in sorted(labels):
        alternatives = set(label_members(label))
        if not alternatives <= marked_by_both:
            continue
        mine = {span[:3] for key in shared for span in first_lines[key] if span[3] == label}
        theirs = {span[:3] for key in shared for span in second_lines[key] if set(label_members(span[3])) & alternatives}
        result[label] = Agreement(len(mine & theirs), len(mine - theirs), len(theirs - mine))
    return len(shared), result


def agreement_table(by_label: dict[str, Agreement]) -> str:
    r"""A Markdown table of agreement per label, in the order given.

    >>> print(agreement_table({"GPE|LOC": Agreement(3, 1, 0)}))
    | label | both | 1st only | 2nd only | F1 |
    |---|---|---|---|---|
    | GPE\|LOC | 3 | 1 | 0 | 0.857 |
    """
    rows = [f"| {table_cell(label)} | {a.matched} | {a.only_first} | {a.only_second} | {a.f1:.3f} |" for label, a in by_label.items()]
    return "\n".join(["| label | both | 1st only | 2nd only | F1 |", "|---|---|---|---|---|", *rows])


def disagreements(first: list[Document], second: list[Document]) -> list[str]:
    """One line per span that only one pass has, in text order, with the other pass's overlapping spans."""
    lines = []
    second_by_id = {d.id: d for d in second}
    for document in first:
        other = second_by_id.get(document.id)
        if other is None:
            continue
        mine, theirs = set(document.spans), set(other.spans)
        for span, side, against in sorted(
            [(s, "1st only", theirs) for s in mine - theirs] + [(s, "2nd only", mine) for s in theirs - mine]
        ):
            overlapping = [
                f"{o.label} {document.text[o.start : o.end]!r}" for o in sorted(against) if o.start < span.end and span.start < o.end
            ]
            shown = document.text[span.start : span.end]
            lines.append(
                f"{document.id} {span.start}-{span.end} {side}: {span.label} {shown!r}  other pass: {', '.join(overlapping) or '-'}"
            )
    return lines


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("file", help="annotation JSONL")
    parser.add_argument("--compare", metavar="OTHER", help="a second annotation pass of the same texts")
    parser.add_argument(
        "--by-sentence",
        action="store_true",
        help="OTHER annotates the same sentences in files of its own: match lines by their normalised text",
    )
    args = parser.parse_args(argv)
    if args.by_sentence and not args.compare:
        parser.error("--by-sentence compares two files: give the other with --compare OTHER")
    first = read_documents(args.file)
    if not args.compare:
        print(count_table(first))
        return 0
    second = read_documents(args.compare)
    if args.by_sentence:
        lines, by_label = sentence_agreement(first, second)
        print(
            f"span-level agreement (the same stretch of normalised text, a label in common) over the {lines:,} lines both annotate, {args.compare} against {args.file}:"
        )
        print(agreement_table(by_label))
        return 0
    overall = agreement(first, second)
    print(f"span-level agreement (exact start, end, label), {args.compare} against {args.file}:")
    print(agreement_table({label: agreement(first, second, label) for label in ENTITY_LABELS} | {"**all**": overall}))
    print(f"\nprecision {overall.precision:.3f}, recall {overall.recall:.3f}, F1 {overall.f1:.3f}\n")
    for line in disagreements(first, second):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Document-level dev splits, reproducible from a seed, and kept apart from training text
(the command that writes them: ``python -m training.splits``).

Each source gives ``dev_fraction`` of its documents to its dev set, chosen by ranking documents on
``sha256(seed:source:id)``: the same ids whatever the file order or the machine. Sources can
share text (NewsFANE re-annotates ANERcorp's sentences, with other tokens, spelling and sentence
breaks), so documents are compared across all of them by the stretches of text they share:
``SHARED_CHARS`` characters in a row, normalised (letters and digits only; one alef, ي for ى, ت for
ة, لل for لال, no standalone hamza):

* a document that shares text with the dev document of a source listed before its own joins its
  own source's dev set first (its text is already dev text), before the seeded draw fills the rest
  (a source with ``dev_fraction`` 0 has no dev set: such documents are held back instead);
* a training document that shares text with any dev document loses the lines (sentences) that
  share it: what is left trains as one document per run of consecutive lines (ids ``ID:lines-A-B``),
  so that a 20-sentence ANERcorp document overlapping a NewsFANE dev document by a few sentences
  keeps the rest (the draw works on whole documents; sentence breaks differ between sources, so dev
  text is found in a line by any shared stretch that overlaps it, also across its ends).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from serving.annotation import Document
from serving.text import fold_marks_and_alef

# Text shared over this many normalised characters (about ten words) is the same text, not a phrase.
SHARED_CHARS = 60
_NOT_LETTERS = re.compile(r"[\W_\u0621]+")  # punctuation, spaces and a standalone hamza


@dataclass(frozen=True)
class SourceSplit:
    """One source's documents, split."""

    name: str
    train: list[Document]
    dev: list[Document]
    held_back: list[str]  # ids of documents with lines left out of training: they share text with a dev document
    held_back_lines: int = 0  # how many lines those are


def normalised_text(text: str) -> str:
    """The text as documents are compared: letters and digits only, spelling variants unified.

    >>> normalised_text("وقال رئيس الاتحاد إن السوق «مازال» يفتقر إلى 6.3 .") == normalised_text("و قال رئيس الاتحاد ان السوق مازال يفتقر الي 63")
    True
    """
    key = _NOT_LETTERS.sub("", fold_marks_and_alef(text))
    return key.replace("\u0649", "\u064a").replace("\u0629", "\u062a").replace("\u0644\u0627\u0644", "\u0644\u0644")


def text_stretches(text: str) -> set[int]:
    """Hashes of every ``SHARED_CHARS``-character stretch of the normalised text (compared within
    one process only, so Python's own string hash will do)."""
    key = normalised_text(text)
    return {hash(key[i : i + SHARED_CHARS]) for i in range(len(key) - SHARED_CHARS + 1)}


def lines_sharing(text: str, prints: set[int]) -> set[int]:
    r"""Indices of the lines of ``text`` overlapped by a ``SHARED_CHARS``-character stretch found in
    ``prints`` (``text_stretches`` of other documents). A stretch may run over a line's ends, so a
    line too short to hold one is still found inside shared text.

    >>> shared = "قال رئيس الاتحاد ان مستقبل السوق مازال يفتقر الى الخطوط الواضحة في العام المقبل"
    >>> sorted(lines_sharing("جملة لا تشترك\nوفي العام\n" + shared, text_stretches("وفي العام " + shared)))
    [1, 2]
    """
    keys = [normalised_text(line) for line in text.split("\n")]
    key = "".join(keys)
    covered = [False] * len(key)
    for i in range(len(key) - SHARED_CHARS + 1):
        if hash(key[i : i + SHARED_CHARS]) in prints:
            covered[i : i + SHARED_CHARS] = [True] * SHARED_CHARS
    shared, start = set(), 0
    for number, line_key in enumerate(keys):
        if any(covered[start : start + len(line_key)]):
            shared.add(number)
        start += len(line_key)
    return shared


def without_lines(document: Document, dropped: set[int]) -> list[Document]:
    r"""The runs of consecutive lines of ``document`` outside ``dropped``, one document each, with
    their spans (offsets into the run's text) and ids ``ID:lines-A-B`` (1-based, inclusive). Raises
    ValueError for a span that crosses from a kept line into a dropped one.

    >>> from serving.spans import Span
    >>> document = Document("d", "زار بوتين موسكو\nنص مشترك\nوصل ماكرون", [Span(4, 9, "PERS"), Span(29, 35, "PERS")])
    >>> [(part.id, part.text, [part.text[s.start:s.end] for s in part.spans]) for part in without_lines(document, {1})]
    [('d:lines-1-1', 'زار بوتين موسكو\n', ['بوتين']), ('d:lines-3-3', 'وصل ماكرون', ['ماكرون'])]
    """
    lines = document.text.split("\n")
    starts = [0]  # starts[n]: where line n begins; the last one is past the end of the text
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    runs: list[list[int]] = []
    for number in range(len(lines)):
        if number in dropped:
            continue
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = []
    for run in runs:
        start, end = starts[run[0]], min(starts[run[-1] + 1], len(document.text))
        if not document.text[start:end].strip():
            continue
        inside = [s for s in document.spans if start <= s.start and s.end <= end]
        crossing = [s for s in document.spans if s.start < end and s.end > start and s not in inside]
        if crossing:
            raise ValueError(
                f"document {document.id}: span {crossing[0].start}-{crossing[0].end} ({crossing[0].label}) crosses a line that shares dev text"
            )
        spans = [replace(s, start=s.start - start, end=s.end - start) for s in inside]
        parts.append(replace(document, id=f"{document.id}:lines-{run[0] + 1}-{run[-1] + 1}", text=document.text[start:end], spans=spans))
    return parts


def without_dev_text(documents: Sequence[Document], dev_prints: set[int]) -> tuple[list[Document], list[str], int]:
    """``documents`` without their lines that share dev text (see ``without_lines``), the ids of the
    documents that lost lines, and how many lines they lost."""
    kept, held_back, lines_held_back = [], [], 0
    for document in documents:
        shared = lines_sharing(document.text, dev_prints)
        if shared:
            kept.extend(without_lines(document, shared))
            held_back.append(document.id)
            lines_held_back += len(shared)
        else:
            kept.append(document)
    return kept, held_back, lines_held_back


def draw_rank(seed: int, source: str, document_id: str) -> str:
    """The sort key of the seeded draw: stable across file orders, machines and Python versions."""
    return hashlib.sha256(f"{seed}:{source}:{document_id}".encode()).hexdigest()


def dev_count(documents: int, fraction: float) -> int:
    """How many documents a source gives to dev: at least one when asked for any (and more than
    one document exists), never all.

    >>> dev_count(199, 0.1), dev_count(5, 0.1), dev_count(1, 0.5), dev_count(10, 0.0)
    (20, 1, 0, 0)
    """
    if fraction <= 0 or documents < 2:
        return 0
    return min(documents - 1, max(1, round(documents * fraction)))


def carve_dev_splits(sources: Sequence[tuple[str, Sequence[Document], float]], seed: int) -> list[SourceSplit]:
    """Split each ``(name, documents, dev_fraction)`` source (see the module docstring)."""
    prints = {(name, d.id): text_stretches(d.text) for name, documents, _ in sources for d in documents}
    dev_prints: set[int] = set()  # every stretch of every dev document so far
    dev_ids: dict[str, set[str]] = {}
    for name, documents, fraction in sources:
        wanted = dev_count(len(documents), fraction)
        already_dev = [d for d in documents if prints[name, d.id] & dev_prints]
        taken = {d.id for d in already_dev}
        drawn = sorted((d for d in documents if d.id not in taken), key=lambda d: draw_rank(seed, name, d.id))
        # A source without a dev set keeps none: its documents that share dev text are held back below.
        chosen = already_dev + drawn[: max(0, wanted - len(already_dev))] if wanted else []
        dev_ids[name] = {d.id for d in chosen}
        for document in chosen:
            dev_prints |= prints[name, document.id]
    splits = []
    for name, documents, _ in sources:
        dev = [d for d in documents if d.id in dev_ids[name]]
        train, held_back, lines = without_dev_text([d for d in documents if d.id not in dev_ids[name]], dev_prints)
        splits.append(SourceSplit(name, train, dev, held_back, lines))
    return splits


def move_to_dev(splits: Sequence[SourceSplit], ids: Sequence[str]) -> list[SourceSplit]:
    """The splits with the training documents named by ``ids`` moved to their source's dev set, and
    the lines of training documents that share text with one of them held back (as the seeded draw
    does).
    Raises ValueError naming ids that are not training documents.

    >>> a, b = Document("a", "x " * 40, []), Document("b", "y " * 40, [])
    >>> [(s.train, s.dev) for s in move_to_dev([SourceSplit("s", [a, b], [], [])], ["b"])] == [([a], [b])]
    True
    """
    wanted = set(ids)
    training = {d.id for s in splits for d in s.train}
    held = {i for s in splits for i in s.held_back} & wanted
    if held:
        raise ValueError(
            f"document id(s) {', '.join(sorted(held))} are held back from training already, wholly or in part (they share text with a dev document; lines that do not train as ID:lines-A-B)"
        )
    unknown = sorted(wanted - training)
    if unknown:
        known = sorted(training)
        raise ValueError(
            f"unknown training document id(s) {', '.join(unknown)} (known: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''})"
        )
    moved_prints = {value for s in splits for d in s.train if d.id in wanted for value in text_stretches(d.text)}
    result = []
    for split in splits:
        train, held_back, lines = without_dev_text([d for d in split.train if d.id not in wanted], moved_prints)
        dev = split.dev + [d for d in split.train if d.id in wanted]
        result.append(SourceSplit(split.name, train, dev, split.held_back + held_back, split.held_back_lines + lines))
    return result


def split_record(splits: Sequence[SourceSplit], seed: int) -> dict:
    """What ``splits.json``, metrics.json and the model card say about the splits."""
    return {
        "seed": seed,
        "sources": {
            s.name: {
                "train_documents": len(s.train),
                "dev_documents": len(s.dev),
                "dev_ids": sorted(d.id for d in s.dev),
                "held_back_ids": s.held_back,
                "held_back_lines": s.held_back_lines,
            }
            for s in splits
        },
    }

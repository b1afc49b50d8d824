"""Entity-level scores (seqeval), shared by training, cross-validation and ``training.evaluate``.

Plain scoring compares gold and predicted IOB2 tag sequences entity by entity. Sources that do not
annotate every label are scored on what they annotate (``coverage_scoring``): a corpus without OCC
cannot count an OCC prediction as a false positive, and a corpus whose LOC merges our GPE, LOC and
FAC accepts any of the three where it marked a LOC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2, Entities

from serving.annotation import Document
from serving.schema import ENTITY_LABELS, OUTSIDE, label_members
from serving.spans import spans_to_tags, tag_ranges


def _seqeval_options(strict: bool) -> dict:
    if not strict:
        return {}
    return {"mode": "strict", "scheme": IOB2}


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict: bool = False) -> dict[str, float]:
    """Micro-averaged entity precision, recall and F1.

    >>> entity_scores([["B-PERS", "I-PERS", "O", "B-GPE"]], [["B-PERS", "I-PERS", "O", "B-ORG"]])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
    """
    options = {**_seqeval_options(strict), "zero_division": 0}
    gold, predicted = [list(s) for s in gold], [list(s) for s in predicted]
    return {
        "precision": float(precision_score(gold, predicted, **options)),
        "recall": float(recall_score(gold, predicted, **options)),
        "f1": float(f1_score(gold, predicted, **options)),
    }


def entity_report(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict: bool = False) -> dict:
    """seqeval's classification report as plain JSON-ready numbers: per label and the micro,
    macro and weighted averages, each with precision, recall, f1-score and support."""
    report = classification_report(
        [list(s) for s in gold], [list(s) for s in predicted], output_dict=True, zero_division=0, **_seqeval_options(strict)
    )
    return {
        label: {key: (int(value) if key == "support" else float(value)) for key, value in scores.items()}
        for label, scores in report.items()
    }


def report_text(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict: bool = False) -> str:
    """seqeval's printed classification report."""
    return classification_report(
        [list(s) for s in gold], [list(s) for s in predicted], digits=4, zero_division=0, **_seqeval_options(strict)
    )


def entity_set(tags: Sequence[str], strict: bool = False) -> set[tuple[int, int, str]]:
    """Entities as ``(first_word, end_word, label)``, decoded the way seqeval scores them.

    >>> sorted(entity_set(["O", "I-PER", "I-PER"]))
    [(1, 3, 'PER')]
    >>> entity_set(["O", "I-PER", "I-PER"], strict=True)
    set()
    """
    if not strict:
        return set(tag_ranges(tags))
    return {(e.start, e.end, e.tag) for e in Entities([list(tags)], IOB2).entities[0]}


def gold_tags(document: Document) -> list[str]:
    """One gold IOB2 tag per word of the document."""
    return spans_to_tags(document.text, document.spans)


def tags_of_entities(length: int, entities: Iterable[tuple[int, int, str]]) -> list[str]:
    """IOB2 tags for ``length`` words from ``(first, end, label)`` entities (non-overlapping).

    >>> tags_of_entities(4, [(1, 3, "GPE")])
    ['O', 'B-GPE', 'I-GPE', 'O']
    """
    tags = [OUTSIDE] * length
    for first, end, label in entities:
        tags[first:end] = [f"B-{label}"] + [f"I-{label}"] * (end - first - 1)
    return tags


# ---------------------------------------------------------------------------------------------
# Scoring on what a source annotates


@dataclass(frozen=True)
class CoverageScoring:
    """How one source is scored: which labels count, and under which class each is scored.

    ``classes`` maps each annotated label to the class its predictions are scored as: the label
    itself, or the label set it always appears in (ANERcorp's places are all "GPE|LOC|FAC", so a
    predicted GPE is scored in that class).
    """

    annotated: tuple[str, ...]
    classes: dict[str, str]

    @property
    def scores_everything(self) -> bool:
        return set(self.annotated) == set(ENTITY_LABELS) and all(label == cls for label, cls in self.classes.items())


def coverage_scoring(annotated: Sequence[str], gold_labels: Iterable[str]) -> CoverageScoring:
    """The scoring of a source annotating ``annotated`` whose gold spans carry ``gold_labels``.

    An annotated label that never appears on its own in the gold data but inside one label set is
    scored in that set's class; otherwise as itself.

    >>> coverage_scoring(["PERS", "ORG", "GPE", "LOC", "FAC"], ["PERS", "GPE|LOC|FAC", "ORG"]).classes
    {'PERS': 'PERS', 'ORG': 'ORG', 'GPE': 'GPE|LOC|FAC', 'LOC': 'GPE|LOC|FAC', 'FAC': 'GPE|LOC|FAC'}
    >>> coverage_scoring(["PERS", "GPE", "LOC"], ["PERS", "GPE", "LOC", "GPE|LOC"]).classes
    {'PERS': 'PERS', 'GPE': 'GPE', 'LOC': 'LOC'}
    """
    labels = set(gold_labels)
    singles = {label for label in labels if label in ENTITY_LABELS}
    containing: dict[str, set[str]] = defaultdict(set)
    for label in labels - singles:
        for member in label_members(label):
            containing[member].add(label)
    classes = {}
    for label in (label for label in ENTITY_LABELS if label in annotated):
        sets = containing.get(label, set())
        classes[label] = next(iter(sets)) if label not in singles and len(sets) == 1 else label
    return CoverageScoring(tuple(annotated), classes)


def scored_tags(gold: Sequence[str], predicted: Sequence[str], scoring: CoverageScoring) -> tuple[list[str], list[str]]:
    """Gold and predicted tags rewritten so that seqeval scores only what the source annotates.

    Gold: a span of an annotated label is kept (as its class), a label-set span is kept as the
    set when one of its members is annotated, anything else is dropped. Predicted: a span with
    exactly a kept label-set span's boundaries and one of its members is scored as that set;
    otherwise a span of an annotated label is scored as its class; anything else (a label the
    source never marks) is dropped.

    >>> scoring = coverage_scoring(["PERS", "ORG", "GPE", "LOC", "FAC"], ["GPE|LOC|FAC", "PERS"])
    >>> scored_tags(["B-GPE|LOC|FAC", "O", "B-PERS"], ["B-GPE", "B-OCC", "B-PERS"], scoring)
    (['B-GPE|LOC|FAC', 'O', 'B-PERS'], ['B-GPE|LOC|FAC', 'O', 'B-PERS'])
    """
    if scoring.scores_everything:
        return list(gold), list(predicted)
    kept_gold = []
    sets_at: dict[tuple[int, int], str] = {}
    for first, end, label in tag_ranges(gold):
        if label in scoring.classes:
            kept_gold.append((first, end, scoring.classes[label]))
        elif label not in ENTITY_LABELS and any(member in scoring.classes for member in label_members(label)):
            kept_gold.append((first, end, label))
            sets_at[first, end] = label
    kept_predicted = []
    for first, end, label in tag_ranges(predicted):
        gold_set = sets_at.get((first, end))
        if gold_set is not None and label in label_members(gold_set):
            kept_predicted.append((first, end, gold_set))
        elif label in scoring.classes:
            kept_predicted.append((first, end, scoring.classes[label]))
    return tags_of_entities(len(gold), kept_gold), tags_of_entities(len(predicted), kept_predicted)


def scoring_of_documents(documents: Sequence[Document]) -> CoverageScoring:
    """The scoring of a source from its documents (their ``annotated`` labels and gold spans).

    Raises ValueError when the documents disagree on what they annotate.
    """
    annotated = {d.annotated for d in documents}
    if len(annotated) > 1:
        raise ValueError(f"documents of one source annotate different labels: {sorted(annotated)}")
    labels = {span.label for d in documents for span in d.spans}
    return coverage_scoring(next(iter(annotated)) if annotated else ENTITY_LABELS, labels)


def scorings_by_source(documents: Sequence[Document], sources: Sequence[str]) -> dict[str, CoverageScoring]:
    """Each source's scoring (``scoring_of_documents``), ``sources`` naming the source of each
    document, in first-seen order. Raises ValueError naming a source whose documents disagree."""
    scorings = {}
    for name in dict.fromkeys(sources):
        try:
            scorings[name] = scoring_of_documents([d for d, source in zip(documents, sources, strict=True) if source == name])
        except ValueError as exc:
            raise ValueError(f"source {name!r}: {exc}") from None
    return scorings


def scored_by_source(
    sources: Sequence[str], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], scorings: dict[str, CoverageScoring]
) -> dict[str, tuple[list[list[str]], list[list[str]]]]:
    """``{source: (gold, predicted)}``: the tag sequences of each source, rewritten by
    ``scored_tags`` to score only what that source annotates."""
    grouped: dict[str, tuple[list[list[str]], list[list[str]]]] = {name: ([], []) for name in scorings}
    for source, gold_tags_, predicted_tags in zip(sources, gold, predicted, strict=True):
        scored_gold, scored_predicted = scored_tags(gold_tags_, predicted_tags, scorings[source])
        grouped[source][0].append(scored_gold)
        grouped[source][1].append(scored_predicted)
    return grouped


def scored_documents(
    documents: Sequence[Document], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], sources: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Each document's gold and predicted tags rewritten by ``scored_tags`` to score only what its
    source (``sources``, one name per document) annotates; the documents keep their order.

    Raises ValueError naming a source whose documents disagree on what they annotate.
    """
    scorings = scorings_by_source(documents, sources)
    pairs = [scored_tags(g, p, scorings[source]) for g, p, source in zip(gold, predicted, sources, strict=True)]
    return [g for g, _ in pairs], [p for _, p in pairs]


def reports_by_source(
    sources: Sequence[str], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict: bool = False
) -> dict[str, dict]:
    """``{source: report}`` over tag sequences grouped by ``sources`` (one name per sequence, in
    first-seen order), and ``"all"`` pooling every sequence.

    >>> reports = reports_by_source(["a", "b"], [["B-PERS"], ["B-ORG"]], [["B-PERS"], ["O"]])
    >>> {source: report["micro avg"]["f1-score"] for source, report in reports.items()}
    {'a': 1.0, 'b': 0.0, 'all': 0.6666666666666666}
    """
    reports = {
        name: entity_report(
            [g for g, source in zip(gold, sources, strict=True) if source == name],
            [p for p, source in zip(predicted, sources, strict=True) if source == name],
            strict,
        )
        for name in dict.fromkeys(sources)
    }
    reports["all"] = entity_report(gold, predicted, strict)
    return reports


def per_source_reports(documents: Sequence[Document], predicted: Sequence[Sequence[str]], sources: Sequence[str]) -> dict[str, dict]:
    """``{source: report}`` for documents grouped by their source (``sources``, one name per
    document), each source scored on its own coverage, and ``"all"`` pooling every source's
    scored tags."""
    gold, guess = scored_documents(documents, [gold_tags(d) for d in documents], predicted, sources)
    return reports_by_source(sources, gold, guess)


def mean_source_f1(reports: dict[str, dict]) -> float:
    """The mean of the sources' micro F1 (``"all"`` excluded): each source counts the same,
    however large its dev set."""
    values = [report["micro avg"]["f1-score"] for source, report in reports.items() if source != "all"]
    return sum(values) / len(values) if values else 0.0

"""The label schema: the one place that defines entity labels, IOB2 tags and their ids.

Training writes these id maps into the model config and serving reads them back, so a
model's output index always means the same tag whatever order the data came in.
"""

from __future__ import annotations

from collections.abc import Sequence

# Wojood-compatible entity types; the order fixes the tag ids, so only ever append.
ENTITY_LABELS: tuple[str, ...] = ("PERS", "NORP", "OCC", "ORG", "GPE", "LOC", "FAC", "EVENT", "DATE")

OUTSIDE = "O"

# "O" first, then B-/I- pairs in label order: O, B-PERS, I-PERS, B-NORP, ...
BIO_TAGS: tuple[str, ...] = (OUTSIDE, *(f"{prefix}-{label}" for label in ENTITY_LABELS for prefix in "BI"))

TAG_TO_ID: dict[str, int] = {tag: i for i, tag in enumerate(BIO_TAGS)}
ID_TO_TAG: dict[int, str] = dict(enumerate(BIO_TAGS))

LABEL_DESCRIPTIONS: dict[str, str] = {
    "PERS": "person",
    "NORP": "nationality, religious or political group (noun or adjective)",
    "OCC": "title, position or occupation",
    "ORG": "organisation, institution, ministry, agency, media outlet, company, armed group, parliament",
    "GPE": "country, city, province: a place with a government",
    "LOC": "other geographic place: region, sea, countryside",
    "FAC": "facility: base, port, airport, building, road",
    "EVENT": "named event",
    "DATE": "absolute or relative calendar expression",
}


# A span label may name several of our labels, "GPE|LOC|FAC": the mention is one of them, which one
# is unknown. Converted corpora use it where a native tag merges labels we keep apart (ANERcorp's LOC).
LABEL_SET_SEPARATOR = "|"


def label_members(label: str) -> tuple[str, ...]:
    """The labels a span label stands for: itself, or each member of a label set.

    >>> label_members("GPE|LOC|FAC")
    ('GPE', 'LOC', 'FAC')
    >>> label_members("PERS")
    ('PERS',)

    Raises ValueError for an unknown label, an empty member or a repeated one.
    """
    members = tuple(label.split(LABEL_SET_SEPARATOR))
    unknown = [m for m in members if m not in ENTITY_LABELS]
    if unknown:
        raise ValueError(f"unknown label {', '.join(repr(m) for m in unknown)} in {label!r} (known: {', '.join(ENTITY_LABELS)})")
    if len(set(members)) != len(members):
        raise ValueError(f"label set {label!r} repeats a label")
    return members


def label_set(labels) -> str:
    """The span label for a set of labels, members in schema order.

    >>> label_set({"FAC", "GPE", "LOC"})
    'GPE|LOC|FAC'
    """
    members = set(labels)
    unknown = sorted(members - set(ENTITY_LABELS))
    if unknown or not members:
        raise ValueError(f"a label set needs known labels, got {sorted(members)}")
    return LABEL_SET_SEPARATOR.join(label for label in ENTITY_LABELS if label in members)


def known_labels(values: Sequence[str]) -> tuple[str, ...]:
    """A list of our labels (each once) in schema order; raises ValueError for anything but a list
    of strings (a value read from a file), and naming unknown or repeated labels.

    >>> known_labels(["GPE", "PERS"])
    ('PERS', 'GPE')
    >>> known_labels("PERS")
    Traceback (most recent call last):
    ValueError: expected a list of labels, got 'PERS'
    """
    if not isinstance(values, (list, tuple)) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"expected a list of labels, got {values!r}")
    unknown = [value for value in values if value not in ENTITY_LABELS]
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)} (known: {', '.join(ENTITY_LABELS)})")
    if len(set(values)) != len(values):
        raise ValueError(f"repeats a label: {list(values)}")
    return tuple(label for label in ENTITY_LABELS if label in values)


def split_tag(tag: str) -> tuple[str, str | None]:
    """Split an IOB tag into its prefix and label.

    >>> split_tag("B-GPE")
    ('B', 'GPE')
    >>> split_tag("O")
    ('O', None)

    Raises ValueError for anything that is not "O" or "B-/I-" followed by a label.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not label:
        raise ValueError(f"malformed IOB tag {tag!r}: expected 'O', 'B-LABEL' or 'I-LABEL'")
    return prefix, label

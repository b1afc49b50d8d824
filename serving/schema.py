"""The label schema: the one place that defines entity labels, IOB2 tags and their ids.

Training writes these id maps into the model config and serving reads them back, so a
model's output index always means the same tag whatever order the data came in.
"""

from __future__ import annotations

# Wojood-compatible entity types; the order fixes the tag ids, so only ever append.
ENTITY_LABELS: tuple[str, ...] = ("PERS", "NORP", "OCC", "ORG", "GPE", "LOC", "FAC", "EVENT", "DATE")

OUTSIDE = "O"

# "O" first, then B-/I- pairs in label order: O, B-PERS, I-PERS, B-NORP, ...
BIO_TAGS: tuple[str, ...] = (OUTSIDE,) + tuple(f"{prefix}-{label}" for label in ENTITY_LABELS for prefix in "BI")

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

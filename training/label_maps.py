"""Label maps: how a corpus's native tags become our labels, kept as data (TOML files).

One file per corpus (``annotations/label_maps/*.toml``); ``python -m training.convert --from conll
--label-map FILE`` applies it, and ``training.evaluate --label-map FILE`` scores gold data in that
scheme. The keys:

    extends = "newsfane.toml"                   # optional: start from another map (same scheme)
    source = "anercorp"                         # names the corpus in converted documents
    annotated = ["PERS", "ORG", "GPE", "LOC", "FAC"]   # our labels it marks exhaustively

    [tags]                      # every native entity type of the corpus, without B-/I-
    PERS = "PERS"               # one of our labels
    LOC = ["GPE", "LOC", "FAC"] # a set: the mention is one of these, which one is unknown
    MISC = "O"                  # none of ours: its words are read as O

    [tag_fixes]                 # raw tags read as another tag (typos in the corpus)
    "I--ORG" = "I-ORG"

    [trim_leading_words]        # words taken out of the start of spans of a label
    PERS = ["الرئيس", "الملك"]  # (titles: our guidelines tag them OCC, beside the name)

    [reader]                    # the file layout; command-line flags override it
    separator = "tab"           # "whitespace" (default), "tab" or "space"
    token_column = 0
    tag_column = -1             # -1: the last column
    level = 0                   # nested files: 0 is the outermost level
    scheme = "iob2"             # or "iob1"; in IOB2, an I- that opens an entity is reported
    segment_marker = "$#$"      # a token that ends a segment, not a word
    document_sentences = 20     # consecutive sentences per document; 0: a document per file
    proclitics = ["و"]          # clitics the corpus split off, attached again in the text
    enclitics = ["ها"]

A word outside every span of a converted document may still be an entity of a label the corpus
does not annotate (``annotated``), and the coverage-aware loss treats it so.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from serving.conll import CliticGlue, ConllLayout
from serving.schema import ENTITY_LABELS, OUTSIDE, known_labels, label_set
from serving.text import fold_marks_and_alef

SEPARATORS = {"whitespace": None, "tab": "\t", "space": " "}
SCHEMES = ("iob2", "iob1")

_PROCLITIC_LETTERS = "وفبلك"


class LabelMapError(ValueError):
    """A label map file that cannot be used; the message names the file and the key."""


def normalise_word(word: str) -> str:
    """The form title words are compared in: no diacritics or tatweel, one alef, ى as ي (FANE drops
    the hamza, so «الأمير» and «الامير» match the same entry).

    >>> normalise_word("الأَمير") == normalise_word("الامير")
    True
    """
    return fold_marks_and_alef(word).replace("\u0649", "\u064a")


@dataclass(frozen=True)
class ReaderSettings:
    """How a corpus's CoNLL files are laid out and grouped into documents."""

    layout: ConllLayout = field(default_factory=ConllLayout)
    scheme: str = "iob2"
    document_sentences: int = 0
    glue: CliticGlue | None = None


@dataclass(frozen=True)
class LabelMap:
    """A parsed label map: native tag -> our span label (a label, a label set, or None for O)."""

    path: str
    source: str
    annotated: tuple[str, ...]
    tags: dict[str, str | None]
    tag_fixes: dict[str, str] = field(default_factory=dict)
    trim_leading_words: dict[str, frozenset[str]] = field(default_factory=dict)
    reader: ReaderSettings = ReaderSettings()

    def target(self, native: str) -> str | None:
        """Our span label for a native entity type, None when it is read as O.

        Raises LabelMapError naming the map when the type has no entry.
        """
        if native not in self.tags:
            raise LabelMapError(f"native tag {native!r} has no entry in [tags] of {self.path} (known: {', '.join(sorted(self.tags))})")
        return self.tags[native]

    def is_leading_word(self, label: str, word: str) -> bool:
        """Whether ``word`` (with or without one proclitic letter) is to be trimmed from the start
        of a ``label`` span."""
        words = self.trim_leading_words.get(label)
        if not words:
            return False
        normalised = normalise_word(word)
        return normalised in words or (normalised[:1] in _PROCLITIC_LETTERS and normalised[1:] in words)


def identity_map(source: str = "conll", annotated: tuple[str, ...] = ENTITY_LABELS, path: str = "<no label map>") -> LabelMap:
    """The map for data already in our labels."""
    return LabelMap(path, source, annotated, {label: label for label in ENTITY_LABELS})


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LabelMapError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    return value


def _known_labels(values: list, where: str) -> tuple[str, ...]:
    for value in values:
        _expect(value, str, where)
    try:
        return known_labels(values)
    except ValueError as exc:
        raise LabelMapError(f"{where}: {exc}") from None


def _target(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        if value == OUTSIDE:
            return None
        return _known_labels([value], where)[0]
    if isinstance(value, list):
        members = _known_labels(value, where)
        if len(members) < 2:
            raise LabelMapError(f"{where}: a set needs at least two labels; write a single label as a string")
        return label_set(members)
    raise LabelMapError(f'{where}: expected a label, a list of labels or "O", got {value!r}')


def _reader(table: dict, where: str) -> ReaderSettings:
    known = {
        "separator",
        "token_column",
        "tag_column",
        "level",
        "scheme",
        "segment_marker",
        "document_sentences",
        "proclitics",
        "enclitics",
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise LabelMapError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    separator = _expect(table.get("separator", "whitespace"), str, f"{where}.separator")
    if separator not in SEPARATORS:
        raise LabelMapError(f"{where}.separator: expected one of {', '.join(SEPARATORS)}, got {separator!r}")
    scheme = _expect(table.get("scheme", "iob2"), str, f"{where}.scheme")
    if scheme not in SCHEMES:
        raise LabelMapError(f"{where}.scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    try:
        layout = ConllLayout(
            token_column=_expect(table.get("token_column", 0), int, f"{where}.token_column"),
            tag_column=_expect(table.get("tag_column", -1), int, f"{where}.tag_column"),
            separator=SEPARATORS[separator],
            level=_expect(table.get("level", 0), int, f"{where}.level"),
            segment_marker=_expect(table.get("segment_marker", ""), str, f"{where}.segment_marker") or None,
        )
    except ValueError as exc:
        raise LabelMapError(f"{where}: {exc}") from None
    sentences = _expect(table.get("document_sentences", 0), int, f"{where}.document_sentences")
    if sentences < 0:
        raise LabelMapError(f"{where}.document_sentences: must not be negative, got {sentences}")
    clitics = {
        key: frozenset(_expect(w, str, f"{where}.{key}") for w in _expect(table.get(key, []), list, f"{where}.{key}"))
        for key in ("proclitics", "enclitics")
    }
    glue = CliticGlue(clitics["proclitics"], clitics["enclitics"]) if any(clitics.values()) else None
    return ReaderSettings(layout, scheme, sentences, glue)


def parse_label_map(data: dict, path: str) -> LabelMap:
    """Check a parsed map file and build the LabelMap; every error names ``path`` and the key."""
    known = {"extends", "source", "annotated", "tags", "tag_fixes", "trim_leading_words", "reader"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise LabelMapError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key in ("source", "annotated", "tags"):
        if key not in data:
            raise LabelMapError(f"{path}: missing key {key!r}")
    source = _expect(data["source"], str, f"{path}: source")
    annotated = _known_labels(_expect(data["annotated"], list, f"{path}: annotated"), f"{path}: annotated")
    tags_table = _expect(data["tags"], dict, f"{path}: [tags]")
    if not tags_table:
        raise LabelMapError(f"{path}: [tags] is empty")
    tags = {native: _target(value, f"{path}: [tags] {native}") for native, value in tags_table.items()}
    fixes = {
        raw: _expect(fixed, str, f"{path}: [tag_fixes] {raw}")
        for raw, fixed in _expect(data.get("tag_fixes", {}), dict, f"{path}: [tag_fixes]").items()
    }
    trims = {}
    for label, words in _expect(data.get("trim_leading_words", {}), dict, f"{path}: [trim_leading_words]").items():
        _known_labels([label], f"{path}: [trim_leading_words] {label}")
        trims[label] = frozenset(
            normalise_word(_expect(w, str, f"{path}: [trim_leading_words] {label}"))
            for w in _expect(words, list, f"{path}: [trim_leading_words] {label}")
        )
    reader = _reader(_expect(data.get("reader", {}), dict, f"{path}: [reader]"), f"{path}: [reader]")
    return LabelMap(path, source, annotated, tags, fixes, trims, reader)


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A map file's keys, over those of the map it ``extends`` (tables merged key by key)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LabelMapError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabelMapError(f"{path}: not valid TOML: {exc}") from None
    if "extends" not in data:
        return data
    parent = path.parent / _expect(data.pop("extends"), str, f"{path}: extends")
    if parent.resolve() in seen:
        raise LabelMapError(f"{path}: extends {parent}, which extends it back")
    merged = _read_toml(parent, (*seen, path.resolve()))
    for key, value in data.items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_label_map(path: str | Path) -> LabelMap:
    """Read and check a TOML label map; raises LabelMapError naming the file."""
    return parse_label_map(_read_toml(Path(path)), str(path))


def with_reader_overrides(label_map: LabelMap, **overrides: Any) -> LabelMap:
    """The map with some reader settings replaced (command-line flags); None values are ignored.

    Keys: token_column, tag_column, level, separator ("whitespace", "tab", "space"), scheme,
    segment_marker, document_sentences.
    """
    reader, layout = label_map.reader, label_map.reader.layout
    layout_keys = {"token_column", "tag_column", "level", "segment_marker"}
    layout_changes = {key: value for key, value in overrides.items() if key in layout_keys and value is not None}
    if overrides.get("separator") is not None:
        layout_changes["separator"] = SEPARATORS[overrides["separator"]]
    reader_changes = {key: overrides[key] for key in ("scheme", "document_sentences") if overrides.get(key) is not None}
    try:
        layout = replace(layout, **layout_changes)
    except ValueError as exc:
        raise LabelMapError(f"{label_map.path} with the command-line layout flags: {exc}") from None
    return replace(label_map, reader=replace(reader, layout=layout, **reader_changes))

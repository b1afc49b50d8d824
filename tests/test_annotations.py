"""The seed annotations: the exact seed texts, valid, every label of the schema used."""

from collections import Counter
from pathlib import Path

from serving.annotation import read_documents, validate_file
from serving.schema import ENTITY_LABELS

ROOT = Path(__file__).resolve().parents[1]


def test_seed_annotations_hold_the_seed_texts_exactly():
    documents = read_documents(ROOT / "annotations" / "seeds.jsonl")
    seed_files = sorted((ROOT / "seeds").glob("*.txt"))
    assert [d.id for d in documents] == [p.stem for p in seed_files]
    for document, path in zip(documents, seed_files, strict=True):
        assert document.text == path.read_text(encoding="utf-8")


def test_seed_annotations_validate_and_use_every_label():
    assert validate_file(ROOT / "annotations" / "seeds.jsonl") == []
    counts = Counter(s.label for d in read_documents(ROOT / "annotations" / "seeds.jsonl") for s in d.spans)
    assert set(counts) == set(ENTITY_LABELS)


def test_both_annotation_passes_cover_the_same_texts():
    seeds = {d.id: d.text for d in read_documents(ROOT / "annotations" / "seeds.jsonl")}
    for name in ("pass1.jsonl", "pass2.jsonl"):
        path = ROOT / "annotations" / "passes" / name
        assert validate_file(path) == []
        assert {d.id: d.text for d in read_documents(path)} == seeds

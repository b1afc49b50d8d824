"""The shipped default model (models/default, built by `make default-model`): it loads, tags a seed
paragraph with offsets into the input, and agrees with its own model card."""

import hashlib
import json
import re
from pathlib import Path

from serving import Tagger
from serving.annotation import read_documents
from serving.schema import BIO_TAGS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
MAX_BYTES = 30 * 1024 * 1024


def seed_paragraph():
    """The first body paragraph of article 003 and its gold spans, re-based to the paragraph."""
    document = next(d for d in read_documents(ROOT / "annotations" / "seeds.jsonl") if d.id.startswith("003"))
    end = document.text.index("\n")
    gold = {(s.start, s.end, s.label) for s in document.spans if s.end <= end}
    return document.text[:end], gold


def test_default_model_tags_a_seed_paragraph_with_offsets_into_the_input():
    text, gold = seed_paragraph()
    tagger = Tagger.load(DEFAULT)
    (entities,) = tagger.tag([text])
    assert entities, "the default model found nothing in a paragraph it was trained on"
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
        assert 0.0 < entity.score <= 1.0
    found = {(e.start, e.end, e.label) for e in entities}
    # Trained on this article: it must reproduce nearly all of its annotation.
    matched = len(found & gold)
    f1 = 2 * matched / (len(found) + len(gold))
    assert f1 >= 0.9, sorted(found ^ gold)


def test_default_model_directory_matches_its_model_card():
    config = json.loads((DEFAULT / "ner_config.json").read_text(encoding="utf-8"))
    report = json.loads((DEFAULT / "export_report.json").read_text(encoding="utf-8"))
    card = (DEFAULT / "README.md").read_text(encoding="utf-8")
    sha256 = hashlib.sha256((DEFAULT / "model.onnx").read_bytes()).hexdigest()

    assert tuple(config["labels"]) == BIO_TAGS
    assert report["model_sha256"] == sha256
    assert re.search(rf"`model.onnx` sha256 \| `{sha256}`", card)
    assert f"| output tags, in id order | {', '.join(BIO_TAGS)} |" in card
    assert config["quantization"] == "int8"
    assert "cross-validation" in card.lower() and "How the recipe was chosen" in card


def test_default_model_is_small():
    size = sum(p.stat().st_size for p in DEFAULT.iterdir() if p.is_file())
    assert size <= MAX_BYTES, f"models/default is {size / 2**20:.1f} MiB"

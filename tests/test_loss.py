"""The coverage-aware loss: exactly cross-entropy on fully annotated data, free where a source does
not annotate a label, and the proof that it matters: a source that never marks dates (its dates
are O) beside one that does; trained on both, the model tags dates with the coverage-aware loss
and does not with plain cross-entropy."""

from __future__ import annotations

import doctest
import json
import random
from pathlib import Path

import pytest
import torch

from serving.annotation import Document
from serving.schema import BIO_TAGS, ENTITY_LABELS, TAG_TO_ID
from serving.spans import Span
from training import loss as loss_module
from training.loss import allowed_mask, allowed_tags, partial_label_loss
from training.predict import load_predictor
from training.scoring import gold_tags
from training.train import main as train_main

WITHOUT_DATE = tuple(label for label in ENTITY_LABELS if label != "DATE")


def test_docstring_examples():
    assert doctest.testmod(loss_module, raise_on_error=False).failed == 0


def test_with_full_coverage_it_is_exactly_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, len(BIO_TAGS))
    tags = torch.randint(len(BIO_TAGS), (3, 5))
    tags[0, 0] = tags[2, 4] = -100
    masks = torch.where(tags >= 0, torch.bitwise_left_shift(torch.ones_like(tags), tags.clamp(min=0)), tags)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, len(BIO_TAGS)), tags.reshape(-1), ignore_index=-100)
    assert torch.allclose(partial_label_loss(logits, masks), expected, atol=1e-6)
    assert torch.allclose(partial_label_loss(logits, masks, num_items_in_batch=13), expected, atol=1e-6)  # 15 - 2 ignored


def test_an_unannotated_label_is_free_and_a_label_set_sums_its_members():
    logits = torch.zeros(1, 2, len(BIO_TAGS))
    logits[0, 0, TAG_TO_ID["B-DATE"]] = 8.0  # an O word of a source without DATE, predicted DATE
    logits[0, 1, TAG_TO_ID["B-LOC"]] = 8.0  # a "GPE|LOC|FAC" word predicted LOC
    masks = torch.tensor([[allowed_mask("O", WITHOUT_DATE), allowed_mask("B-GPE|LOC|FAC")]])
    assert partial_label_loss(logits, masks).item() < 0.01
    plain = torch.tensor([[allowed_mask("O", WITHOUT_DATE, loss="cross-entropy"), allowed_mask("B-GPE|LOC|FAC", loss="cross-entropy")]])
    assert partial_label_loss(logits, plain).item() > 7.0  # cross-entropy punishes both
    # The gradient moves probability into the allowed set, never out of it.
    logits.requires_grad_(True)
    partial_label_loss(logits, torch.tensor([[allowed_mask("O", WITHOUT_DATE), -100]])).backward()
    allowed = [TAG_TO_ID[t] for t in allowed_tags("O", WITHOUT_DATE)]
    assert (logits.grad[0, 0, allowed] <= 0).all() and (logits.grad[0, 0, [i for i in range(len(BIO_TAGS)) if i not in allowed]] >= 0).all()


PEOPLE = ["بوتين", "أردوغان", "ماكرون", "شولتز", "بايدن", "لافروف", "عراقجي", "الشيباني", "غوتيريش", "ستارمر"]
PLACES = ["موسكو", "أنقرة", "باريس", "برلين", "واشنطن", "طهران", "دمشق", "القاهرة", "عمان", "الرياض"]
DATES = ["الأربعاء", "الخميس", "أمس", "الأحد", "الاثنين", "الثلاثاء", "الجمعة", "السبت"]
TEMPLATES = [
    "زار {P} {G} {D} والتقى مسؤولين هناك .",
    "قال {P} {D} إن {G} ستدعم الاتفاق .",
    "وصل {P} إلى {G} {D} في زيارة رسمية .",
    "أعلنت {G} {D} أن {P} سيشارك في القمة .",
]


def synthetic_documents(prefix: str, count: int, rng: random.Random, mark_dates: bool) -> list[Document]:
    """Sentences naming a person, a place and a weekday; dates are spans only if ``mark_dates``."""
    documents = []
    for number in range(count):
        template = rng.choice(TEMPLATES)
        fillers = {"P": rng.choice(PEOPLE), "G": rng.choice(PLACES), "D": rng.choice(DATES)}
        text, spans = "", []
        for piece in template.replace("{", "\0{").replace("}", "}\0").split("\0"):
            if piece.startswith("{"):
                key = piece[1]
                label = {"P": "PERS", "G": "GPE", "D": "DATE"}[key]
                if label != "DATE" or mark_dates:
                    spans.append(Span(len(text), len(text) + len(fillers[key]), label, fillers[key]))
                text += fillers[key]
            else:
                text += piece
        annotated = ENTITY_LABELS if mark_dates else WITHOUT_DATE
        documents.append(Document(f"{prefix}-{number:03d}", text + "\n", spans, source=prefix, annotated=annotated))
    return documents


def write_jsonl(path: Path, documents: list[Document]) -> Path:
    path.write_text("".join(json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def date_corpora(tmp_path_factory):
    """A small source that marks dates (24 sentences) and one twice its size that never does (48,
    whose dates are O: read naively, two of every three dates are "not a date"), and held-out
    sentences to tag."""
    rng = random.Random(7)
    directory = tmp_path_factory.mktemp("date-corpora")
    marks = write_jsonl(directory / "marks-dates.jsonl", synthetic_documents("marks-dates", 24, rng, mark_dates=True))
    never = write_jsonl(directory / "never-dates.jsonl", synthetic_documents("never-dates", 48, rng, mark_dates=False))
    held_out = synthetic_documents("held-out", 20, rng, mark_dates=True)
    return directory, marks, never, held_out


TINY = [
    "--from-scratch",
    "--hidden-size",
    "64",
    "--layers",
    "1",
    "--heads",
    "2",
    "--intermediate-size",
    "128",
    "--epochs",
    "20",
    "--no-progress",
    "--seed",
    "3",
]


def date_recall(date_corpora, loss: str) -> float:
    directory, marks, never, held_out = date_corpora
    output = directory / f"model-{loss}"
    assert train_main(["--data", str(marks), str(never), "--output", str(output), "--loss", loss, *TINY]) == 0
    predictor = load_predictor(str(output))
    found = total = 0
    for document, (_, predicted) in zip(held_out, predictor.predict([d.text for d in held_out]), strict=True):
        for position, tag in enumerate(gold_tags(document)):
            if tag == "B-DATE":
                total += 1
                found += predicted[position] == "B-DATE"
    return found / total


@pytest.mark.model
def test_partial_label_loss_learns_dates_from_the_source_that_marks_them(date_corpora):
    assert date_recall(date_corpora, "partial") >= 0.9


@pytest.mark.model
def test_plain_cross_entropy_learns_that_dates_are_o(date_corpora):
    """The same data and seed with plain cross-entropy: the larger source's O wins, dates are missed.
    This is the failure the coverage-aware loss exists to prevent (and proves the test above can fail):
    cross-entropy's optimum for a weekday is P(DATE) = 1/3, below O."""
    assert date_recall(date_corpora, "cross-entropy") <= 0.5

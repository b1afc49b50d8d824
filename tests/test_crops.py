"""Short crops (training/crops.py) on the real seed articles and corpus excerpts: every crop is a run of
its sentence's words, cut where no entity is cut, with every entity in it whole, and the same
document always gives the same crops; a training run with --short-crops trains on them."""

from __future__ import annotations

import doctest
import json

import pytest

from serving.annotation import read_documents
from serving.spans import split_tag, tag_ranges
from tests.fixtures_training import SEEDS
from training import crops
from training.crops import MAX_CROP_WORDS, crop, crops_for_document
from training.data import Segment, document_segments


def test_docstring_examples():
    result = doctest.testmod(crops, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crops_keep_every_entity_whole_and_their_words_in_order(seed):
    for document in read_documents(SEEDS):
        segments = document_segments(document, "seeds")
        made = crops_for_document(segments, 1.5, seed)
        assert len(made) >= len(segments)  # 1.5 per sentence: at least one for most
        assert len({c.document_id for c in made}) == len(made)
        sentence_of = {token.start: segment for segment in segments for token in segment.tokens}
        for c in made:
            assert 1 <= len(c.tokens) <= MAX_CROP_WORDS
            sentence = sentence_of[c.tokens[0].start]
            first = sentence.tokens.index(c.tokens[0])
            assert sentence.tokens[first : first + len(c.tokens)] == c.tokens  # a contiguous run
            assert c.tags == sentence.tags[first : first + len(c.tokens)]
            assert split_tag(c.tags[0])[0] != "I"
            end = first + len(c.tokens)
            assert end == len(sentence.tags) or split_tag(sentence.tags[end])[0] != "I"  # nothing cut at the end
            whole = {(a + first, b + first, label) for a, b, label in tag_ranges(c.tags)}
            assert whole <= set(tag_ranges(sentence.tags))


def test_the_same_document_gives_the_same_crops_and_lone_entities_appear():
    document = read_documents(SEEDS)[1]
    segments = document_segments(document, "seeds")
    first, second = crops_for_document(segments, 1.0, 42), crops_for_document(segments, 1.0, 42)
    assert [(c.words, c.tags) for c in first] == [(c.words, c.tags) for c in second]
    assert [c.words for c in crops_for_document(segments, 1.0, 43)] != [c.words for c in first]
    lone = [c for c in first if len(tag_ranges(c.tags)) == 1 and tag_ranges(c.tags)[0][:2] == (0, len(c.tags))]
    assert len(lone) >= 5
    assert crops_for_document(segments, 0, 42) == []


def test_a_crop_that_would_cut_an_entity_is_an_error():
    segment = Segment("d", (), ("O", "B-PERS", "I-PERS", "O"))
    with pytest.raises(ValueError, match="start inside an entity"):
        crop(segment, 2, 4, 0)
    with pytest.raises(ValueError, match="would cut an entity"):
        crop(segment, 0, 2, 0)


@pytest.mark.model
def test_training_with_short_crops_adds_their_windows(tmp_path):
    from tests.test_training import TINY
    from training import train

    plain, cropped = tmp_path / "plain", tmp_path / "cropped"
    assert train.main(["--data", str(SEEDS), "--output", str(plain), *TINY, "--epochs", "1"]) == 0
    assert train.main(["--data", str(SEEDS), "--output", str(cropped), *TINY, "--epochs", "1", "--short-crops", "1"]) == 0
    windows = [json.loads((d / "metrics.json").read_text(encoding="utf-8"))["training_windows"] for d in (plain, cropped)]
    sentences = sum(len(document_segments(d)) for d in read_documents(SEEDS))
    assert windows[1] - windows[0] >= 0.8 * sentences
    assert json.loads((cropped / "metrics.json").read_text(encoding="utf-8"))["hyperparameters"]["short_crops"] == 1.0

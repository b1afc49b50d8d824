"""Short crops and headline fragments (training/crops.py) on the real seed articles: every crop is a run
of its sentence's words, cut where no entity is cut, with every entity in it whole; a headline fragment
is two whole entities of different labels with only the short O gap between them dropped; the same
document always gives the same ones; training runs with --short-crops and --headline-fragments train on them."""

from __future__ import annotations

import doctest

import pytest

from serving.annotation import read_documents
from serving.spans import split_tag, tag_ranges
from tests.fixtures_training import SEEDS, windows_added_by
from training import crops
from training.crops import MAX_CROP_WORDS, MAX_DROPPED_WORDS, MAX_LEAD_WORDS, crop, crops_for_document, droppable_gaps, headline_fragments
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


@pytest.mark.parametrize("seed", [0, 1])
def test_headline_fragments_keep_two_whole_entities_and_drop_only_the_gap(seed):
    made_any = 0
    for document in read_documents(SEEDS):
        segments = document_segments(document, "seeds")
        fragments = headline_fragments(segments, 1.0, seed)
        assert [(f.words, f.tags) for f in fragments] == [(f.words, f.tags) for f in headline_fragments(segments, 1.0, seed)]
        assert len({f.document_id for f in fragments}) == len(fragments)
        made_any += len(fragments)
        for fragment in fragments:
            assert fragment.tokens[-1].end == len(" ".join(fragment.words))  # tokens index the fragment's own text
            entities = tag_ranges(fragment.tags)
            assert len(entities) == 2 and entities[0][1] == entities[1][0] and entities[0][2] != entities[1][2]
            assert entities[0][0] <= MAX_LEAD_WORDS and entities[1][1] == len(fragment.tags)
            # Somewhere in its document the same words stand with a short O gap between the entities.
            (first, second, _), (_, end, _) = entities
            lead, one, two = fragment.words[:first], fragment.words[first:second], fragment.words[second:end]
            found = [
                (segment, gap)
                for segment in segments
                for gap in droppable_gaps(segment)
                if segment.words[gap[0] : gap[1]] == one
                and segment.words[gap[2] : gap[3]] == two
                and segment.words[gap[0] - len(lead) : gap[0]] == lead
            ]
            assert found, fragment.words
            source, (_, dropped_start, dropped_end, _) = found[0]
            assert 1 <= dropped_end - dropped_start <= MAX_DROPPED_WORDS
            assert set(source.tags[dropped_start:dropped_end]) == {"O"}
    assert made_any >= 10
    assert headline_fragments(segments, 0, 0) == []


def test_no_fragment_joins_two_entities_of_the_same_label_or_across_punctuation():
    from serving.text import segment_words

    words = "التقى بوتين و أردوغان ثم زار أنقرة ، ثم موسكو"
    tags = ("O", "B-PERS", "O", "B-PERS", "O", "O", "B-GPE", "O", "O", "B-GPE")
    segment = Segment("d", tuple(segment_words(words)), tags)
    assert droppable_gaps(segment) == [(3, 4, 6, 7)]  # أردوغان ... أنقرة: PERS then GPE, two words between
    leads = set()
    for seed in range(6):
        (fragment,) = headline_fragments([segment], 3, seed)
        assert fragment.words[-2:] == ["أردوغان", "أنقرة"] and fragment.tags[-2:] == ("B-PERS", "B-GPE")
        leads.add(tuple(fragment.words[:-2]))
    assert leads <= {(), ("و",)}  # the lead stops at the entity before it


@pytest.mark.model
def test_training_with_short_crops_adds_their_windows(tmp_path, plain_training_windows):
    added, metrics = windows_added_by(tmp_path, plain_training_windows, "--short-crops", "1")
    sentences = sum(len(document_segments(d)) for d in read_documents(SEEDS))
    assert added >= 0.8 * sentences
    assert metrics["hyperparameters"]["short_crops"] == 1.0


@pytest.mark.model
def test_training_with_headline_fragments_adds_their_windows(tmp_path, plain_training_windows):
    added, metrics = windows_added_by(tmp_path, plain_training_windows, "--headline-fragments", "1")
    seed = metrics["hyperparameters"]["seed"]
    expected = sum(len(headline_fragments(document_segments(d, "seeds"), 1.0, seed)) for d in read_documents(SEEDS))
    assert expected >= 10 and added == expected
    assert metrics["hyperparameters"]["headline_fragments"] == 1.0

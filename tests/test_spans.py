"""Spans <-> IOB2 tags: worked examples, explicit errors, and round-trip properties."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.schema import BIO_TAGS, ENTITY_LABELS, ID_TO_TAG, TAG_TO_ID, split_tag
from serving.spans import Span, SpanAlignmentError, iob1_to_iob2, spans_to_tags, tag_ranges, tags_to_spans
from serving.text import segment_words


def test_schema_is_one_consistent_map():
    assert BIO_TAGS[0] == "O" and len(BIO_TAGS) == 1 + 2 * len(ENTITY_LABELS)
    assert all(ID_TO_TAG[TAG_TO_ID[tag]] == tag for tag in BIO_TAGS)
    assert ENTITY_LABELS == ("PERS", "NORP", "OCC", "ORG", "GPE", "LOC", "FAC", "EVENT", "DATE")


def test_title_and_name_are_two_spans_with_clitic_inside():
    text = "التقى الرئيس الروسي فلاديمير بوتين وموسكو “تلغرام”"
    spans = [Span(6, 19, "OCC"), Span(20, 34, "PERS"), Span(35, 41, "GPE"), Span(43, 49, "ORG")]
    tags = spans_to_tags(text, spans)
    assert tags == ["O", "B-OCC", "I-OCC", "B-PERS", "I-PERS", "B-GPE", "O", "B-ORG", "O"]
    decoded = tags_to_spans(text, segment_words(text), tags)
    assert [(s.start, s.end, s.label, s.text) for s in decoded] == [
        (6, 19, "OCC", "الرئيس الروسي"),
        (20, 34, "PERS", "فلاديمير بوتين"),
        (35, 41, "GPE", "وموسكو"),
        (43, 49, "ORG", "تلغرام"),
    ]


def test_span_cutting_a_word_names_the_span_and_its_context():
    text = "زار وموسكو أمس"
    with pytest.raises(
        SpanAlignmentError, match=r"span 5-10 GPE 'موسكو' in '…زار و\[موسكو\] أمس…' does not start and end on word boundaries"
    ):
        spans_to_tags(text, [Span(5, 10, "GPE")])


def test_overlapping_spans_are_an_error():
    text = "وزارة الدفاع الروسية"
    with pytest.raises(SpanAlignmentError, match="overlaps"):
        spans_to_tags(text, [Span(0, 20, "ORG"), Span(13, 20, "NORP")])


def test_malformed_sequences_decode_like_seqeval():
    assert tag_ranges(["I-PERS", "I-PERS", "B-GPE", "I-ORG", "O", "I-DATE"]) == [
        (0, 2, "PERS"),
        (2, 3, "GPE"),
        (3, 4, "ORG"),
        (5, 6, "DATE"),
    ]


def test_malformed_tag_is_an_error():
    with pytest.raises(ValueError, match="malformed IOB tag 'X-GPE'"):
        split_tag("X-GPE")


def test_iob1_is_converted():
    assert iob1_to_iob2(["I-LOC", "I-LOC", "B-LOC", "O", "I-PER"]) == ["B-LOC", "I-LOC", "B-LOC", "O", "B-PER"]


# A word starts with a base character (letter or digit); marks and tatweel only follow one.
word_strategy = st.builds(
    str.__add__,
    st.sampled_from("ابتثجحخدرزسشصطعغفقكلمنهويء0123456789abc"),
    st.text(alphabet="ابتثجحخدرزسشصطعغفقكلمنهويءًّـ0123456789abc", max_size=5),
)
words_strategy = st.lists(word_strategy, min_size=0, max_size=25)
separators = st.sampled_from([" ", "  ", "\xa0", "\n", " ، ", " “", "” ", ". ", " \u200e"])


@st.composite
def text_with_aligned_spans(draw):
    words = draw(words_strategy)
    pieces, offsets, position = [], [], 0
    for word in words:
        sep = draw(separators)
        pieces += [sep, word]
        position += len(sep)
        offsets.append((position, position + len(word)))
        position += len(word)
    text = "".join(pieces)
    spans, i = [], 0
    while i < len(words):
        if draw(st.booleans()):
            length = draw(st.integers(1, 3))
            last = min(len(words), i + length) - 1
            spans.append(Span(offsets[i][0], offsets[last][1], draw(st.sampled_from(ENTITY_LABELS))))
            i = last + 1
        else:
            i += 1
    return text, [Span(s.start, s.end, s.label, text[s.start : s.end]) for s in spans]


@given(text_with_aligned_spans())
@settings(max_examples=300)
def test_spans_to_tags_to_spans_is_identity(case):
    text, spans = case
    tokens = segment_words(text)
    assert tags_to_spans(text, tokens, spans_to_tags(text, spans, tokens)) == spans


@given(st.lists(st.sampled_from(BIO_TAGS), max_size=40))
def test_decoding_any_tag_sequence_gives_sorted_disjoint_in_range_spans(tags):
    text = " ".join(["كلمة"] * len(tags))
    tokens = segment_words(text)
    spans = tags_to_spans(text, tokens, tags)
    for span in spans:
        assert 0 <= span.start < span.end <= len(text) and text[span.start : span.end] == span.text
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert spans == sorted(spans)

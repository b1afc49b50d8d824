"""Word segmentation and sentence segments: worked Arabic examples and properties."""

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from serving.text import segment_words, sentence_ranges


def words(text):
    return [t.text for t in segment_words(text)]


def test_attached_clitics_stay_in_the_word():
    assert words("بين موسكو وطهران وموسكو") == ["بين", "موسكو", "وطهران", "وموسكو"]


def test_quotes_are_tokens_of_their_own():
    tokens = segment_words("على “تلغرام” إن")
    assert [t.text for t in tokens] == ["على", "“", "تلغرام", "”", "إن"]
    assert tokens[2].start == 5 and tokens[2].end == 11


def test_diacritics_and_tatweel_stay_inside_the_word():
    assert words("لقاءٍ مكثّف لـتنظيم ســوريا") == ["لقاءٍ", "مكثّف", "لـتنظيم", "ســوريا"]


def test_nbsp_separates_words():
    assert words("سوريا\xa0وروسيا") == ["سوريا", "وروسيا"]


def test_bidi_and_zero_width_marks_never_start_or_end_a_word():
    text = "\u200eموسكو\u200f \u202bطهران\u202c \ufeffدمشق"
    tokens = segment_words(text)
    assert [t.text for t in tokens] == ["موسكو", "طهران", "دمشق"]
    assert all(text[t.start : t.end] == t.text for t in tokens)


def test_zero_width_joiner_inside_a_word_stays_inside():
    assert words("مو\u200cسكو") == ["مو\u200cسكو"]


def test_latin_digits_and_punctuation_mixed_in():
    assert words("ديسمبر 2024 (نوفوستي) syria-future 3.5%") == [
        "ديسمبر",
        "2024",
        "(",
        "نوفوستي",
        ")",
        "syria",
        "-",
        "future",
        "3",
        ".",
        "5",
        "%",
    ]


def test_latin_glued_to_arabic_is_split():
    assert words("camera iconوزير الخارجية") == ["camera", "icon", "وزير", "الخارجية"]


def test_emoji_with_variation_selector_is_one_symbol_token():
    assert words("سوريا ❤️!") == ["سوريا", "❤\ufe0f", "!"]


def test_sentences_split_on_terminators_and_newlines_but_not_inside_numbers():
    text = "زار موسكو.. ثم عاد في 3.5 ساعة؟ نعم\nأمس"
    tokens = segment_words(text)
    got = [[tokens[i].text for i in range(a, b)] for a, b in sentence_ranges(text, tokens)]
    assert got == [["زار", "موسكو", ".", "."], ["ثم", "عاد", "في", "3", ".", "5", "ساعة", "؟"], ["نعم"], ["أمس"]]


def test_sentences_never_cut_an_entity():
    text = "وصل U. S. أمس"
    tokens = segment_words(text)
    tags = ["O", "B-GPE", "I-GPE", "I-GPE", "I-GPE", "O"]
    # Without tags "U." ends a sentence; with them it cannot, while "S." still does.
    assert sentence_ranges(text, tokens) == [(0, 3), (3, 5), (5, 6)]
    assert sentence_ranges(text, tokens, tags) == [(0, 5), (5, 6)]


arabic_like_text = st.text(
    alphabet=st.sampled_from(
        [
            *list("سوريا موسكو بوتين"),
            "ً",
            "ّ",
            "ـ",
            "\xa0",
            "\u200e",
            "\u200f",
            "\u202b",
            "\ufeff",
            "\n",
            "“",
            "”",
            "،",
            ".",
            "؟",
            "a",
            "Z",
            "7",
            "٣",
            "😀",
            "️",
            "-",
        ]
    ),
    max_size=80,
)


@given(arabic_like_text)
@settings(max_examples=400)
def test_offsets_always_index_the_text(text):
    tokens = segment_words(text)
    previous_end = 0
    for token in tokens:
        assert text[token.start : token.end] == token.text
        assert token.start >= previous_end and token.end > token.start
        assert not token.text[0].isspace() and not token.text[-1].isspace()
        assert unicodedata.category(token.text[0]) != "Cf" and unicodedata.category(token.text[-1]) != "Cf"
        previous_end = token.end
    # Nothing but whitespace and invisible marks is left between tokens.
    covered = "".join(t.text for t in tokens)
    assert len(covered) + sum(1 for ch in text if ch.isspace() or unicodedata.category(ch) == "Cf") >= len(text)


@given(arabic_like_text)
def test_sentence_ranges_partition_the_tokens(text):
    tokens = segment_words(text)
    ranges = sentence_ranges(text, tokens)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(tokens)))
    assert all(a < b for a, b in ranges)

"""Word segmentation with character offsets, and sentence segments.

The single definition of "word" for annotation checks, training and serving:

* a word is a maximal run of letters, digits and combining marks (Unicode L*, N*, M*), so Arabic
  diacritics and tatweel (U+0640, a letter modifier) stay inside the word and attached clitics
  («وموسكو») are part of it;
* whitespace separates words;
* every punctuation or symbol character is a token of its own (with any combining marks that
  follow it, e.g. an emoji's variation selector);
* a word also ends where an Arabic letter directly touches a Latin one: scraped pages glue words
  together («camera iconوزير»), and no Arabic word continues in Latin script;
* zero-width and bidi control characters (U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF)
  never start or end a word: between two word characters they stay inside the word, elsewhere
  they are skipped like whitespace.

Offsets always index the original string: ``text[token.start:token.end] == token.text``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import NamedTuple

# Zero-width and bidi controls: U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF.
INVISIBLE_CHARS = "".join(chr(c) for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF])
_INVISIBLE_RE = re.compile(f"[{INVISIBLE_CHARS}]")

# Characters that end a sentence when followed by a gap (whitespace) or the end of the text.
SENTENCE_TERMINATORS = frozenset(".؟?!·;؛۔…")

# Spelling that varies between corpora and writers without changing the word, as regular expressions
# (the from-scratch tokenizer's normaliser takes them as patterns): diacritics (tashkeel U+064B-U+065F,
# U+0670) and tatweel (U+0640); the hamza forms of alef (أ إ آ ٱ, which FANE drops and writers mix).
ARABIC_MARKS_PATTERN = "[\u064b-\u065f\u0670\u0640]"
ALEF_FORMS_PATTERN = "[\u0622\u0623\u0625\u0671]"
_ARABIC_MARKS_RE = re.compile(ARABIC_MARKS_PATTERN)
_ALEF_FORMS_RE = re.compile(ALEF_FORMS_PATTERN)


class Token(NamedTuple):
    text: str
    start: int
    end: int


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


def _letter_script(ch: str) -> str | None:
    """'arabic' or 'latin' for letters of those scripts, None for anything else (digits, marks...)."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    code = ord(ch)
    if 0x0600 <= code <= 0x08FF or 0xFB50 <= code <= 0xFDFF or 0xFE70 <= code <= 0xFEFF:
        return "arabic"
    if code < 0x0250 or 0x1E00 <= code <= 0x1EFF:
        return "latin"
    return None


def _is_invisible(ch: str) -> bool:
    return _INVISIBLE_RE.match(ch) is not None


def fold_marks_and_alef(text: str) -> str:
    """The text without diacritics or tatweel, every alef form written ا: the form in which words
    are compared across corpora (title lists, shared-text checks, near-duplicate lines). Not for
    offsets: the length changes.

    >>> fold_marks_and_alef("الأَميــر") == "الامير"
    True
    """
    return _ARABIC_MARKS_RE.sub("", _ALEF_FORMS_RE.sub("\u0627", text))


def strip_invisible(value: str) -> str:
    """Remove zero-width and bidi control characters.

    >>> strip_invisible("\\u200eموسكو")
    'موسكو'
    """
    return _INVISIBLE_RE.sub("", value)


def has_tokens(text: str) -> bool:
    """Whether ``segment_words(text)`` finds any token, without segmenting: false for an empty
    text or one of whitespace and invisible marks only, which can have no entity.

    >>> has_tokens(""), has_tokens(" \\n\\u200f\\t"), has_tokens(" .")
    (False, False, True)
    """
    return any(not (ch.isspace() or _is_invisible(ch)) for ch in text)


def segment_words(text: str) -> list[Token]:
    """Split text into word and punctuation tokens with character offsets.

    >>> [t.text for t in segment_words("وقال «وموسكو» 2024.")]
    ['وقال', '«', 'وموسكو', '»', '2024', '.']
    >>> segment_words("قناته “تلغرام”")[2]
    Token(text='تلغرام', start=7, end=13)
    >>> [t.text for t in segment_words("camera iconوزير COVID-19")]
    ['camera', 'icon', 'وزير', 'COVID', '-', '19']
    """
    tokens: list[Token] = []
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if ch.isspace() or _is_invisible(ch):
            i += 1
            continue
        start = i
        if _is_word_char(ch):
            end = i + 1
            j = end
            script = _letter_script(ch)
            # Extend over word characters; invisible controls only when a word character follows them.
            while j < n:
                if _is_word_char(text[j]):
                    next_script = _letter_script(text[j])
                    if script and next_script and next_script != script:
                        break
                    script = next_script or script
                    j += 1
                    end = j
                elif _is_invisible(text[j]):
                    j += 1
                else:
                    break
            i = end
        else:
            i += 1
            while i < n and unicodedata.category(text[i]).startswith("M"):
                i += 1
        tokens.append(Token(text[start:i], start, i))
    return tokens


def sentence_ranges(text: str, tokens: Sequence[Token], tags: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """Group tokens into sentences; returns [first_token, last_token + 1) index ranges.

    A sentence ends at a line break, or after a terminator (. ؟ ? ! · ; ؛ …) that is followed by a
    gap or the end of the text, so "3.5" and "موسكو.." stay whole. Given word ``tags``, a sentence
    never ends inside an entity (before an I- tag), so no entity is cut in two.

    >>> text = "زار موسكو. ثم عاد\\nأمس"
    >>> [[t.text for t in segment_words(text)[a:b]] for a, b in sentence_ranges(text, segment_words(text))]
    [['زار', 'موسكو', '.'], ['ثم', 'عاد'], ['أمس']]
    """
    ranges: list[tuple[int, int]] = []
    first = 0
    for i, token in enumerate(tokens):
        next_start = tokens[i + 1].start if i + 1 < len(tokens) else len(text)
        gap = text[token.end : next_start]
        ends_line = "\n" in gap or "\r" in gap or "\u2029" in gap
        ends_sentence = token.text[0] in SENTENCE_TERMINATORS and (gap != "" or i + 1 == len(tokens))
        inside_entity = tags is not None and i + 1 < len(tokens) and tags[i + 1].startswith("I-")
        if ((ends_line or ends_sentence) and not inside_entity) or i + 1 == len(tokens):
            ranges.append((first, i + 1))
            first = i + 1
    return ranges

"""Short crops of training sentences: what a user types first (a name, a headline, one clause).

Corpora and articles teach a model on sentences of twenty to forty words; given three words
(«زار بوتين موسكو») such a model has never seen text that short, and it shows (one ORG over the
whole headline). ``short_crops`` cuts extra training segments out of each sentence: a lone entity,
or a run of 2 to ``MAX_CROP_WORDS`` words, always at entity-safe points (a crop never starts or ends
inside an entity, so every entity in it is whole and keeps its tags), without the sentence's edge
punctuation, as headlines come. The crops train beside the full sentences; dev sets are not cropped.

Headlines also drop words that prose needs: prose writes «وصل بوتين إلى موسكو», a headline or a user
«وصل بوتين موسكو», two names side by side that training text almost never shows (a PERS is followed
straight by a GPE about 70 times in 14,500 PERS mentions of the corpora), so the model reads the second
name as the first one's continuation. ``headline_fragments`` cuts fragments around two entities of
different labels and drops the few O words between them.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import pairwise

from serving.spans import split_tag, tag_ranges
from serving.text import Token

from .data import Segment

MAX_CROP_WORDS = 8
LONE_ENTITY_SHARE = 0.3  # of the crops of a sentence with an entity: the entity alone
MAX_DROPPED_WORDS = 3  # the longest gap between two entities that a headline fragment drops
MAX_LEAD_WORDS = 2  # O words (a verb, a particle) a headline fragment may keep before its first entity


def safe_cut_points(tags: Sequence[str]) -> list[int]:
    """Word indices where a crop may start or end: not inside an entity (the next tag is no I-).

    >>> safe_cut_points(["O", "B-PERS", "I-PERS", "O", "B-GPE"])
    [0, 1, 3, 4, 5]
    """
    return [i for i in range(len(tags) + 1) if i == len(tags) or split_tag(tags[i])[0] != "I"]


def _is_punctuation(word: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PSZ" for ch in word)


def crop(segment: Segment, first: int, end: int, number: int) -> Segment:
    """Words ``first:end`` of ``segment`` as a segment of their own (id ``DOC#cropN``).

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("قال إن بوتين زار موسكو")), ("O", "O", "B-PERS", "O", "B-GPE"))
    >>> c = crop(s, 2, 5, 0)
    >>> c.document_id, c.words, c.tags
    ('d#crop0', ['بوتين', 'زار', 'موسكو'], ('B-PERS', 'O', 'B-GPE'))
    """
    tags = segment.tags[first:end]
    if tags and split_tag(tags[0])[0] == "I":
        raise ValueError(f"{segment.document_id}: a crop at word {first} would start inside an entity ({tags[0]})")
    if end < len(segment.tags) and split_tag(segment.tags[end])[0] == "I":
        raise ValueError(f"{segment.document_id}: a crop ending at word {end} would cut an entity ({segment.tags[end]})")
    return Segment(f"{segment.document_id}#crop{number}", segment.tokens[first:end], tags, segment.annotated, segment.source)


def crop_ranges(segment: Segment, count: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to ``count`` distinct word ranges to crop from one sentence (fewer when it is too short).

    >>> tags = ("O", "B-OCC", "B-PERS", "I-PERS", "O", "B-GPE", "B-DATE", "O")
    >>> s = Segment("d", (), tags)
    >>> ranges = crop_ranges(s, 3, random.Random(1))
    >>> all(tags[a][0] != "I" and (b == len(tags) or tags[b][0] != "I") and 1 <= b - a <= MAX_CROP_WORDS for a, b in ranges)
    True
    """
    words = [token.text for token in segment.tokens] or ["w"] * len(segment.tags)
    first_word = next((i for i, w in enumerate(words) if not _is_punctuation(w)), len(words))
    end_word = next((i + 1 for i in range(len(words) - 1, -1, -1) if not _is_punctuation(words[i])), 0)
    if end_word - first_word < 2:
        return []
    cuts = [i for i in safe_cut_points(segment.tags) if first_word <= i <= end_word]
    entities = [(a, b) for a, b, _ in tag_ranges(segment.tags) if first_word <= a and b <= end_word]
    chosen: set[tuple[int, int]] = set()
    for _ in range(count * 4):  # a few draws more than needed: some repeat or do not fit
        if len(chosen) == count:
            break
        if entities and rng.random() < LONE_ENTITY_SHARE:
            chosen.add(rng.choice(entities))
            continue
        length = rng.randint(2, MAX_CROP_WORDS)
        starts = [a for a in cuts if any(a + 2 <= b <= a + length for b in cuts)]
        if not starts:
            continue
        start = rng.choice(starts)
        ends = [b for b in cuts if start + 2 <= b <= start + length]
        end = max(ends)
        while end - start > 1 and segment.tags[end - 1] == "O" and _is_punctuation(words[end - 1]):
            end -= 1  # a crop ends on a word, not on a comma: an O word is always a safe cut
        while end - start > 1 and segment.tags[start] == "O" and _is_punctuation(words[start]):
            start += 1
        chosen.add((start, end))
    return sorted(chosen)


def droppable_gaps(segment: Segment) -> list[tuple[int, int, int, int]]:
    """Pairs of consecutive entities of different labels with 1 to ``MAX_DROPPED_WORDS`` O words
    between them, none of them punctuation: (first entity's start, gap start, gap end, second
    entity's end).

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("وصل بوتين إلى موسكو ، ثم لبنان و سوريا")), ("O", "B-PERS", "O", "B-GPE", "O", "O", "B-GPE", "O", "B-GPE"))
    >>> droppable_gaps(s)
    [(1, 2, 3, 4)]
    """
    words = segment.words
    entities = tag_ranges(segment.tags)
    return [
        (start, gap_start, gap_end, end)
        for (start, gap_start, label), (gap_end, end, next_label) in pairwise(entities)
        if label != next_label
        and 1 <= gap_end - gap_start <= MAX_DROPPED_WORDS
        and not any(_is_punctuation(word) for word in words[gap_start:gap_end])
    ]


def headline_fragment(segment: Segment, gap: tuple[int, int, int, int], lead: int, number: int) -> Segment:
    """The two entities around ``gap`` (from ``droppable_gaps``) side by side, after up to ``lead`` O
    words that precede the first (id ``DOC#headlineN``). Its tokens index its own text (the words
    joined by spaces), not the document's.

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("ثم وصل بوتين إلى موسكو")), ("O", "O", "B-PERS", "O", "B-GPE"))
    >>> fragment = headline_fragment(s, (2, 3, 4, 5), lead=1, number=0)
    >>> fragment.document_id, fragment.words, fragment.tags
    ('d#headline0', ['وصل', 'بوتين', 'موسكو'], ('O', 'B-PERS', 'B-GPE'))
    """
    start, gap_start, gap_end, end = gap
    first = start
    while first > 0 and start - first < lead and segment.tags[first - 1] == "O" and not _is_punctuation(segment.words[first - 1]):
        first -= 1
    kept = [*range(first, gap_start), *range(gap_end, end)]
    return Segment(
        f"{segment.document_id}#headline{number}",
        tokens_of([segment.words[i] for i in kept]),
        tuple(segment.tags[i] for i in kept),
        segment.annotated,
        segment.source,
    )


def headline_fragments(segments: Sequence[Segment], per_sentence: float, seed: int) -> list[Segment]:
    """``per_sentence`` headline fragments, on average, for each sentence with a droppable gap, each
    around a gap drawn from a generator seeded by ``seed`` and the document's id.

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("وصل بوتين إلى موسكو")), ("O", "B-PERS", "O", "B-GPE"))
    >>> [f.words for f in headline_fragments([s], 1, seed=3)]
    [['وصل', 'بوتين', 'موسكو']]
    """
    fragments: list[Segment] = []
    for segment, count, rng in sentence_draws(segments, per_sentence, f"{seed}:headline"):
        gaps = droppable_gaps(segment)
        for gap in rng.sample(gaps, min(count, len(gaps))):
            fragments.append(headline_fragment(segment, gap, rng.randint(0, MAX_LEAD_WORDS), len(fragments)))
    return fragments


def sentence_draws(segments: Sequence[Segment], per_sentence: float, key: str) -> Iterator[tuple[Segment, int, random.Random]]:
    """Each sentence of a document, how many extra segments it gets (``per_sentence`` on average: 0.5,
    one for every other sentence; 2, two for each) and the generator to draw them with, seeded by
    ``key`` and the document's id, so that the same document always gets the same ones.

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("زار بوتين موسكو")), ("O", "B-PERS", "B-GPE"))
    >>> [count for _, count, _ in sentence_draws([s] * 4, 2, "42")], list(sentence_draws([s], 0, "42"))
    ([2, 2, 2, 2], [])
    """
    if per_sentence <= 0 or not segments:
        return
    rng = random.Random(f"{key}:{segments[0].document_id}")
    for segment in segments:
        yield segment, draw_count(per_sentence, rng), rng


def draw_count(per_sentence: float, rng: random.Random) -> int:
    """How many extra segments one sentence gets when it should get ``per_sentence`` on average.

    >>> rng = random.Random(0)
    >>> 450 < sum(draw_count(0.5, rng) for _ in range(1000)) < 550, {draw_count(2, rng) for _ in range(10)}
    (True, {2})
    """
    return int(per_sentence) + (1 if rng.random() < per_sentence - int(per_sentence) else 0)


def tokens_of(words: Sequence[str]) -> tuple[Token, ...]:
    """Tokens for words joined by single spaces: a segment made of words from different places.

    >>> tokens_of(["زار", "موسكو"])
    (Token(text='زار', start=0, end=3), Token(text='موسكو', start=4, end=9))
    """
    tokens, offset = [], 0
    for word in words:
        tokens.append(Token(word, offset, offset + len(word)))
        offset += len(word) + 1
    return tuple(tokens)


def crops_for_document(segments: Sequence[Segment], per_sentence: float, seed: int) -> list[Segment]:
    """``per_sentence`` crops for each sentence of a document on average (0.5: one crop for every other
    sentence, 2: two for each), drawn from a generator seeded by ``seed`` and the document's id, so
    the same document always gives the same crops.

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("زار بوتين موسكو أمس")), ("O", "B-PERS", "B-GPE", "B-DATE"))
    >>> [c.words for c in crops_for_document([s], 1, seed=3)] == [c.words for c in crops_for_document([s], 1, seed=3)]
    True
    """
    crops: list[Segment] = []
    for segment, count, rng in sentence_draws(segments, per_sentence, str(seed)):
        numbered = len(crops)
        crops.extend(crop(segment, first, end, numbered + n) for n, (first, end) in enumerate(crop_ranges(segment, count, rng)))
    return crops

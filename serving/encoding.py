"""Words -> model inputs: the one path from segmented words to windows of sub-word ids.

Training (through ``PreTrainedTokenizerFast.backend_tokenizer``) and serving (through
``tokenizers.Tokenizer.from_file``) call the same functions with the same ``tokenizer.json``,
so labels sit on exactly the sub-words the served model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .text import Token, sentence_ranges
from .windows import EncodedWindow, central_window_of_words, encode_window, plan_windows


class WordSource(NamedTuple):
    """Where a word's prediction is read: a window, and the word's first sub-word there."""

    window: int
    position: int  # -1 for a word the tokenizer turns into no sub-words (tagged O)


class WordTokenizer(Protocol):
    """The part of ``tokenizers.Tokenizer`` used here."""

    def encode_batch(self, inputs, add_special_tokens: bool = ...): ...


def subword_ids_per_word(tokenizer: WordTokenizer, words: Sequence[str]) -> list[list[int]]:
    """Sub-word ids of each word, encoded on its own without special tokens.

    A word the tokenizer's normaliser empties (a lone tatweel, say) gets no ids; its word then
    has no prediction of its own and is tagged O.
    """
    if not words:
        return []
    return [encoding.ids for encoding in tokenizer.encode_batch(list(words), add_special_tokens=False)]


def encode_segment(
    word_ids: Sequence[Sequence[int]], max_length: int, overlap: int, cls_id: int, sep_id: int
) -> tuple[list[EncodedWindow], list[WordSource]]:
    """Windows covering one segment's words, and for each word where it is read from: the window
    where it sits most centrally, and its first sub-word's position there.

    ``max_length`` counts [CLS] and [SEP], like the model's position limit.

    >>> windows, sources = encode_segment([[5, 6], [7], [8], [9, 10]], max_length=5, overlap=1, cls_id=1, sep_id=2)
    >>> [w.input_ids for w in windows], sources
    ([[1, 5, 6, 7, 2], [1, 7, 8, 2], [1, 8, 9, 10, 2]], [WordSource(window=0, position=1), WordSource(window=0, position=3), WordSource(window=1, position=2), WordSource(window=2, position=2)])
    """
    max_subwords = max_length - 2
    counts = [max(1, len(ids)) for ids in word_ids]  # an empty word still takes a slot in planning
    windows = plan_windows(counts, max_subwords, min(overlap, max_subwords - 1))
    encoded = [encode_window(word_ids, window, max_subwords, cls_id, sep_id) for window in windows]
    sources = [
        WordSource(w, encoded[w].first_subword_positions[word - encoded[w].window.first])
        for word, w in enumerate(central_window_of_words(counts, windows))
    ]
    return encoded, sources


@dataclass(frozen=True)
class EncodedText:
    """One text ready for the model: its words, its windows' input ids, each word's source and the
    first word of each sentence (where decoding starts again)."""

    tokens: list[Token]
    windows: list[list[int]]
    word_sources: list[WordSource]  # window indices count from the text's first window
    sentence_starts: list[int]


def encode_text(
    text: str, tokens: Sequence[Token], word_ids: Sequence[Sequence[int]], max_length: int, overlap: int, cls_id: int, sep_id: int
) -> EncodedText:
    """A text's words (``tokens``, with their ``word_ids``) as windows, sentence by sentence: no
    window spans two sentences (``serving.text.sentence_ranges``), as in training, where each
    sentence is a segment.

    >>> from serving.text import segment_words
    >>> text = "زار موسكو. ثم عاد"
    >>> encoded = encode_text(text, segment_words(text), [[5], [6], [7], [8], [9]], max_length=8, overlap=1, cls_id=1, sep_id=2)
    >>> encoded.windows, encoded.sentence_starts
    ([[1, 5, 6, 7, 2], [1, 8, 9, 2]], [0, 3])
    """
    windows: list[list[int]] = []
    sources: list[WordSource] = []
    sentence_starts: list[int] = []
    for first, end in sentence_ranges(text, tokens):
        sentence_starts.append(first)
        encoded, segment_sources = encode_segment(word_ids[first:end], max_length, overlap, cls_id, sep_id)
        sources.extend(WordSource(len(windows) + source.window, source.position) for source in segment_sources)
        windows.extend(window.input_ids for window in encoded)
    return EncodedText(list(tokens), windows, sources, sentence_starts)

"""Fitting word sequences into a model's maximum length: windows with overlap, and merging.

Training and serving both call these, so a word is split into the same windows, and its label
sits on the same sub-word, at fine-tuning time and at inference time. Pure functions over sub-word
counts: no tokenizer or framework needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Window(NamedTuple):
    """Words ``[first, end)`` of a segment that fit in one model input."""

    first: int
    end: int


def plan_windows(subword_counts: Sequence[int], max_subwords: int, overlap: int) -> list[Window]:
    """Cover all words with windows of at most ``max_subwords`` sub-words, consecutive windows
    sharing about ``overlap`` sub-words, so nothing is truncated away.

    A word longer than ``max_subwords`` alone gets a window of its own (its sub-words are clipped
    there; its label only needs the first one).

    >>> plan_windows([1, 1, 1], max_subwords=8, overlap=2)
    [Window(first=0, end=3)]
    >>> plan_windows([2, 2, 2, 2, 2], max_subwords=6, overlap=2)
    [Window(first=0, end=3), Window(first=2, end=5)]
    """
    if max_subwords < 1:
        raise ValueError(f"max_subwords must be at least 1, got {max_subwords}")
    if not 0 <= overlap < max_subwords:
        raise ValueError(f"overlap must be in [0, max_subwords), got {overlap} with max_subwords={max_subwords}")
    n = len(subword_counts)
    windows: list[Window] = []
    first = 0
    while first < n:
        end, used = first, 0
        while end < n and (end == first or used + subword_counts[end] <= max_subwords):
            used += subword_counts[end]
            end += 1
        windows.append(Window(first, end))
        if end == n:
            break
        # Step back from the end while the shared tail stays within the overlap budget.
        next_first, shared = end, 0
        while next_first - 1 > first and shared + subword_counts[next_first - 1] <= overlap:
            next_first -= 1
            shared += subword_counts[next_first]
        first = next_first
    return windows


def central_window_of_words(subword_counts: Sequence[int], windows: Sequence[Window]) -> list[int]:
    """For each word, the index of the window in which it sits most centrally (in sub-words),
    so merged predictions come from the window with the most context on both sides (ties go to
    the earlier window).

    >>> windows = plan_windows([2, 2, 2, 2, 2], max_subwords=6, overlap=2)
    >>> central_window_of_words([2, 2, 2, 2, 2], windows)
    [0, 0, 0, 1, 1]
    """
    best = [-1] * len(subword_counts)
    best_margin = [-1] * len(subword_counts)
    for w, (first, end) in enumerate(windows):
        total = sum(subword_counts[first:end])
        position = 0
        for i in range(first, end):
            margin = min(position, total - position - subword_counts[i])
            if margin > best_margin[i]:
                best[i], best_margin[i] = w, margin
            position += subword_counts[i]
    return best


class EncodedWindow(NamedTuple):
    """One model input: ids with [CLS]/[SEP], and where each word's first sub-word sits."""

    input_ids: list[int]
    window: Window
    first_subword_positions: list[int]  # one per word of the window, -1 for a word with no sub-words


def encode_window(word_subword_ids: Sequence[Sequence[int]], window: Window, max_subwords: int, cls_id: int, sep_id: int) -> EncodedWindow:
    """Lay one window's words out as ``[CLS] sub-words... [SEP]``, clipped to ``max_subwords``.

    >>> encode_window([[5, 6], [], [7]], Window(0, 3), max_subwords=8, cls_id=1, sep_id=2)
    EncodedWindow(input_ids=[1, 5, 6, 7, 2], window=Window(first=0, end=3), first_subword_positions=[1, -1, 3])
    """
    ids = [cls_id]
    positions = []
    for i in range(window.first, window.end):
        pieces = list(word_subword_ids[i])[: max(0, max_subwords - (len(ids) - 1))]
        positions.append(len(ids) if pieces else -1)
        ids.extend(pieces)
    ids.append(sep_id)
    return EncodedWindow(ids, window, positions)

"""Word tags from tag probabilities: the most probable IOB2 sequence (Viterbi) under a tag-transition
prior learnt from the training data.

A word-by-word arg-max splits names the model is unsure of: «ماريا تيريزا فرنانديس» comes out as
three B-PERS, because each word looks like a name on its own, and it can open an entity with I-.
The decoder picks the sequence maximising

    sum_i log p(tag_i | text) + log P(kind(tag_{i-1}, tag_i))

where p is the model's softmax for word i and P the frequency of that kind of transition in the
tags the model was trained on (the text, and each of its sentences, starts after an O: an entity
never runs on into the next sentence, as in training, where each sentence is a segment). The kinds are label-agnostic, so a
label seen rarely still gets well-estimated transitions:

    O>O, O>B       after O: stay outside, or open an entity
    E>O, E>I       after an entity word: close it, or continue it (I- of the same label)
    E>B-same       open a new entity of the same label right after one («لبنان وإسرائيل»)
    E>B-other      open an entity of another label right after one

An I- tag that does not continue an entity of its label is impossible. Without a prior (a model
exported before priors were recorded) every allowed transition scores the same: decoding then only
rules out impossible sequences.

Training (``training.train``) counts the transitions with ``count_transitions`` and records
``transition_probabilities`` in the model; serving reads them from ``ner_config.json``. Both decode
with ``TagDecoder``, so the scores training reports are those of the served decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from .schema import OUTSIDE, split_tag

TRANSITION_KINDS: tuple[str, ...] = ("O>O", "O>B", "E>O", "E>I", "E>B-same", "E>B-other")
# Log score of an impossible step: finite, so sums never produce NaN, and below any real path.
IMPOSSIBLE = -1e9


def transition_kind(previous: str, tag: str) -> str | None:
    """The kind of the step from tag ``previous`` to ``tag``; None for an impossible one.

    >>> [transition_kind(a, b) for a, b in [("O", "B-PERS"), ("B-PERS", "I-PERS"), ("I-PERS", "B-PERS"), ("B-PERS", "B-GPE")]]
    ['O>B', 'E>I', 'E>B-same', 'E>B-other']
    >>> transition_kind("O", "I-PERS") is None, transition_kind("B-PERS", "I-GPE") is None
    (True, True)
    """
    _, previous_label = split_tag(previous)
    prefix, label = split_tag(tag)
    if previous_label is None:
        return {"O": "O>O", "B": "O>B"}.get(prefix)
    if label is None:
        return "E>O"
    if prefix == "I":
        return "E>I" if label == previous_label else None
    return "E>B-same" if label == previous_label else "E>B-other"


def count_transitions(tag_sequences: Iterable[Sequence[str]]) -> Counter:
    """How often each transition kind occurs in IOB2 tag sequences (each starts after an O).

    >>> dict(count_transitions([["B-PERS", "I-PERS", "O", "B-GPE", "B-GPE"]]))
    {'O>B': 2, 'E>I': 1, 'E>O': 1, 'E>B-same': 1}

    Raises ValueError naming the sequence and position of an I- tag that continues nothing:
    training data must be valid IOB2.
    """
    counts: Counter = Counter()
    for number, tags in enumerate(tag_sequences):
        previous = OUTSIDE
        for position, tag in enumerate(tags):
            kind = transition_kind(previous, tag)
            if kind is None:
                raise ValueError(f"tag sequence {number}, position {position}: {tag!r} after {previous!r} is not valid IOB2")
            counts[kind] += 1
            previous = tag
    return counts


def transition_probabilities(counts: Mapping[str, int]) -> dict[str, float]:
    """P(kind | previous tag is O) and P(kind | previous tag is an entity word), add-one smoothed
    so that no kind seen in decoding is impossible for want of an example.

    >>> transition_probabilities({"O>O": 8, "O>B": 0, "E>O": 4, "E>I": 2})
    {'O>O': 0.9, 'O>B': 0.1, 'E>O': 0.5, 'E>I': 0.3, 'E>B-same': 0.1, 'E>B-other': 0.1}
    """
    probabilities = {}
    for state in ("O", "E"):
        kinds = [kind for kind in TRANSITION_KINDS if kind.startswith(state + ">")]
        total = sum(counts.get(kind, 0) + 1 for kind in kinds)
        probabilities.update({kind: (counts.get(kind, 0) + 1) / total for kind in kinds})
    return probabilities


def check_transition_probabilities(value: object) -> str | None:
    """What is wrong with a recorded prior (None if nothing): it must give every kind a
    probability in (0, 1], summing to 1 after O and after an entity word."""
    if not isinstance(value, dict) or set(value) != set(TRANSITION_KINDS):
        return f"expected an object with exactly the keys {', '.join(TRANSITION_KINDS)}"
    for kind, probability in value.items():
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability <= 1:
            return f"{kind!r} must be a probability in (0, 1], got {probability!r}"
    for state in ("O", "E"):
        total = sum(p for kind, p in value.items() if kind.startswith(state + ">"))
        if abs(total - 1) > 1e-6:
            return f"the probabilities after {'O' if state == 'O' else 'an entity word'} sum to {total:.6f}, not 1"
    return None


class TagDecoder:
    """Viterbi decoding over a model's tags (``labels``, in output-id order) with a transition
    prior (``transition_probabilities``) or, with ``None``, only the IOB2 constraints.

    >>> decoder = TagDecoder(("O", "B-PERS", "I-PERS"), {"O>O": 0.9, "O>B": 0.1, "E>O": 0.5, "E>I": 0.4, "E>B-same": 0.05, "E>B-other": 0.05})
    >>> probabilities = np.array([[0.1, 0.8, 0.1], [0.1, 0.5, 0.4]])  # «أنتوني بلينكن»
    >>> [decoder.labels[i] for i in probabilities.argmax(axis=1)], [decoder.labels[i] for i in decoder.best_path(np.log(probabilities))]
    (['B-PERS', 'B-PERS'], ['B-PERS', 'I-PERS'])
    """

    def __init__(self, labels: Sequence[str], probabilities: Mapping[str, float] | None):
        self.labels = tuple(labels)
        log_prior = {kind: float(np.log(probabilities[kind])) if probabilities else 0.0 for kind in TRANSITION_KINDS}

        def score(previous: str, tag: str) -> float:
            kind = transition_kind(previous, tag)
            return IMPOSSIBLE if kind is None else log_prior[kind]

        self.start = np.array([score(OUTSIDE, tag) for tag in self.labels])
        self.transitions = np.array([[score(previous, tag) for tag in self.labels] for previous in self.labels])
        # At a sentence's first word, whatever came before, the sequence starts again after an O.
        self.restart = np.tile(self.start, (len(self.labels), 1))
        self.outside_id = self.labels.index(OUTSIDE)

    def best_path(self, log_probabilities: np.ndarray, sentence_starts: Collection[int] = ()) -> list[int]:
        """The label ids of the best sequence for one text: ``log_probabilities`` has a row per
        word (log softmax of the model's output), a column per label; ``sentence_starts`` are the
        indices of the words that begin a sentence (no I- there).

        >>> decoder = TagDecoder(("O", "B-OCC", "I-OCC"), None)
        >>> probabilities = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.2, 0.7]]))  # «الوزير» | «السفير»
        >>> decoder.best_path(probabilities), decoder.best_path(probabilities, sentence_starts={1})
        ([1, 2], [1, 1])
        """
        if len(log_probabilities) == 0:
            return []
        restarts = set(sentence_starts)
        score = self.start + log_probabilities[0]
        backpointers = np.empty((len(log_probabilities), len(self.labels)), dtype=np.intp)
        for i in range(1, len(log_probabilities)):
            candidates = score[:, None] + (self.restart if i in restarts else self.transitions)
            backpointers[i] = candidates.argmax(axis=0)
            score = candidates[backpointers[i], np.arange(len(self.labels))] + log_probabilities[i]
        path = [int(score.argmax())]
        for i in range(len(log_probabilities) - 1, 0, -1):
            path.append(int(backpointers[i, path[-1]]))
        return path[::-1]

    def decode_words(
        self, log_probabilities: np.ndarray, read_words: Sequence[int], word_count: int, sentence_starts: Collection[int] = ()
    ) -> list[int]:
        """The best label ids for ``word_count`` words of which only ``read_words`` (ascending) have
        a row in ``log_probabilities``: the others (no sub-words) are O. ``sentence_starts``: the
        first word of each sentence (see ``best_path``).

        >>> decoder = TagDecoder(("O", "B-PERS", "I-PERS"), None)
        >>> decoder.decode_words(np.log(np.array([[0.2, 0.7, 0.1], [0.3, 0.1, 0.6]])), [0, 2], 3)
        [1, 0, 0]
        """
        rows = np.full((word_count, len(self.labels)), IMPOSSIBLE)
        rows[:, self.outside_id] = 0.0
        if len(read_words):
            rows[np.asarray(read_words)] = log_probabilities
        return self.best_path(rows, sentence_starts)

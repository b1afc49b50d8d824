"""serving.decoding: the Viterbi decoder is exact, never emits broken IOB2, and the prior it uses
is the one counted from the training tags (recorded by training, exported, read by serving)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from serving.annotation import read_documents
from serving.decoding import IMPOSSIBLE, TRANSITION_KINDS, TagDecoder, count_transitions, transition_kind, transition_probabilities
from serving.schema import BIO_TAGS
from serving.spans import tag_ranges
from tests.fixtures_training import SEEDS
from training.data import document_segments

LABELS = ("O", "B-PERS", "I-PERS", "B-GPE", "I-GPE")
PRIOR = {"O>O": 0.85, "O>B": 0.15, "E>O": 0.5, "E>I": 0.4, "E>B-same": 0.06, "E>B-other": 0.04}


def path_score(decoder: TagDecoder, log_probabilities: np.ndarray, path: tuple[int, ...]) -> float:
    score = decoder.start[path[0]] + log_probabilities[0, path[0]]
    for i in range(1, len(path)):
        score += decoder.transitions[path[i - 1], path[i]] + log_probabilities[i, path[i]]
    return score


def is_valid_iob2(tags: list[str]) -> bool:
    return all(transition_kind(previous, tag) is not None for previous, tag in zip(["O", *tags], tags, strict=False))


@pytest.mark.parametrize("prior", [PRIOR, None], ids=["prior", "constraints-only"])
def test_viterbi_finds_the_best_path_of_all(prior):
    """Exhaustive search over every sequence of 4 tags agrees with the decoder, 50 random cases."""
    decoder = TagDecoder(LABELS, prior)
    rng = np.random.default_rng(7)
    for _ in range(50):
        log_probabilities = np.log(rng.dirichlet(np.full(len(LABELS), 0.5), size=4))
        best = max(itertools.product(range(len(LABELS)), repeat=4), key=lambda path: path_score(decoder, log_probabilities, path))
        assert decoder.best_path(log_probabilities) == list(best)
        assert path_score(decoder, log_probabilities, best) > IMPOSSIBLE / 2


def test_decoded_tags_are_always_valid_iob2_even_where_the_argmax_is_not():
    decoder = TagDecoder(BIO_TAGS, None)
    rng = np.random.default_rng(11)
    broken_argmax = 0
    for _ in range(200):
        probabilities = rng.dirichlet(np.full(len(BIO_TAGS), 0.3), size=12)
        broken_argmax += not is_valid_iob2([BIO_TAGS[i] for i in probabilities.argmax(axis=1)])
        assert is_valid_iob2([BIO_TAGS[i] for i in decoder.best_path(np.log(probabilities))])
    assert broken_argmax > 100  # the case the decoder exists for did occur


def test_constraints_only_keeps_a_valid_argmax_sequence():
    decoder = TagDecoder(LABELS, None)
    probabilities = np.array(
        [[0.1, 0.7, 0.1, 0.05, 0.05], [0.2, 0.1, 0.6, 0.05, 0.05], [0.7, 0.1, 0.1, 0.05, 0.05], [0.1, 0.05, 0.05, 0.6, 0.2]]
    )
    assert decoder.best_path(np.log(probabilities)) == list(probabilities.argmax(axis=1))


def test_the_prior_joins_a_name_the_argmax_splits():
    """«ماريا تيريزا فرنانديس»: each word looks like the start of a name on its own."""
    probabilities = np.array([[0.1, 0.6, 0.3, 0.0, 0.0], [0.05, 0.5, 0.45, 0.0, 0.0], [0.05, 0.5, 0.45, 0.0, 0.0]]) + 1e-6
    argmax_tags = [LABELS[i] for i in probabilities.argmax(axis=1)]
    decoded = [LABELS[i] for i in TagDecoder(LABELS, PRIOR).best_path(np.log(probabilities))]
    assert tag_ranges(argmax_tags) == [(0, 1, "PERS"), (1, 2, "PERS"), (2, 3, "PERS")]
    assert tag_ranges(decoded) == [(0, 3, "PERS")]


def test_each_sentence_is_decoded_as_a_text_of_its_own():
    """With sentence starts, the best path of a text is its sentences' best paths end to end: no I-
    at a sentence's first word, and no transition prior across the boundary."""
    decoder = TagDecoder(LABELS, PRIOR)
    rng = np.random.default_rng(5)
    starts = [0, 4, 5, 9]
    ends = [*starts[1:], 12]
    crossed = 0
    for _ in range(100):
        log_probabilities = np.log(rng.dirichlet(np.full(len(LABELS), 0.5), size=12))
        by_sentence = [tag for start, end in zip(starts, ends, strict=True) for tag in decoder.best_path(log_probabilities[start:end])]
        assert decoder.best_path(log_probabilities, sentence_starts=starts) == by_sentence
        assert decoder.decode_words(log_probabilities, list(range(12)), 12, starts) == by_sentence
        crossed += decoder.best_path(log_probabilities) != by_sentence
    assert crossed > 0  # decoding the whole text as one sequence does differ


def test_words_without_sub_words_are_outside_and_end_an_entity():
    decoder = TagDecoder(LABELS, PRIOR)
    read = np.log(np.array([[0.01, 0.98, 0.01, 0.0, 0.0], [0.01, 0.01, 0.98, 0.0, 0.0]]) + 1e-9)
    # word 1 has no sub-words: word 2 cannot continue word 0's entity through it
    assert [LABELS[i] for i in decoder.decode_words(read, [0, 2], 3)] == ["B-PERS", "O", "O"]
    assert decoder.decode_words(np.zeros((0, len(LABELS))), [], 2) == [0, 0]
    assert decoder.best_path(np.zeros((0, len(LABELS)))) == []


def test_the_prior_is_the_smoothed_frequency_of_each_transition_kind():
    counts = count_transitions(segment.tags for document in read_documents(SEEDS) for segment in document_segments(document))
    prior = transition_probabilities(counts)
    assert set(prior) == set(TRANSITION_KINDS)
    assert prior["E>I"] == pytest.approx(
        (counts["E>I"] + 1) / (counts["E>O"] + counts["E>I"] + counts["E>B-same"] + counts["E>B-other"] + 4)
    )
    assert sum(prior[kind] for kind in ("O>O", "O>B")) == pytest.approx(1.0)
    assert counts["O>B"] == sum(len(document.spans) for document in read_documents(SEEDS)) - counts["E>B-same"] - counts["E>B-other"]


def test_broken_training_tags_are_named_not_counted():
    with pytest.raises(ValueError, match=r"tag sequence 1, position 2: 'I-GPE' after 'B-PERS' is not valid IOB2"):
        count_transitions([["O"], ["O", "B-PERS", "I-GPE"]])


def test_training_records_the_prior_of_its_data_and_export_carries_it(tiny_model_dir, tiny_onnx_dir):
    """The tiny model trained on the seeds alone: its prior is the seeds' transition frequencies."""
    counts = count_transitions(segment.tags for document in read_documents(SEEDS) for segment in document_segments(document))
    trained = json.loads((tiny_model_dir / "config.json").read_text(encoding="utf-8"))
    exported = json.loads((tiny_onnx_dir / "ner_config.json").read_text(encoding="utf-8"))
    assert trained["tag_transitions"] == pytest.approx(transition_probabilities(counts))
    assert exported["tag_transitions"] == trained["tag_transitions"]

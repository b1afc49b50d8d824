"""serving.Tagger over real ONNX Runtime sessions of the tiny model trained on the seeds."""

from __future__ import annotations

import dataclasses
import doctest
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import serving
from serving import tagger as tagger_module
from serving.schema import ENTITY_LABELS
from serving.tagger import Entity, ModelDirError, Tagger
from serving.text import segment_words, sentence_ranges

ROOT = Path(__file__).resolve().parents[1]
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "seeds").glob("*.txt"))]
# A seed sentence full of entities the tiny model has learnt.
ENTITY_SENTENCE = (
    "وقال وزير الخارجية الإيراني عبر قناته على “تلغرام” إن النقاشات مع لافرينتييف ركزت على التنسيق بين موسكو وطهران في المرحلة المقبلة."
)


@pytest.fixture(scope="module")
def tagger(tiny_onnx_dir) -> Tagger:
    return Tagger.load(tiny_onnx_dir, intra_op_num_threads=2)


@pytest.fixture(scope="module")
def fp32_tagger(tiny_onnx_fp32_dir) -> Tagger:
    return Tagger.load(tiny_onnx_fp32_dir, intra_op_num_threads=2)


def assert_well_formed(text: str, entities: list[Entity]) -> None:
    """Offsets into the original text, on word boundaries, sorted, not overlapping."""
    tokens = segment_words(text)
    starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
    previous_end = 0
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text, entity
        assert entity.start in starts and entity.end in ends, entity
        assert entity.start >= previous_end, entities
        assert entity.label in ENTITY_LABELS
        assert 0.0 < entity.score <= 1.0
        previous_end = entity.end


def key(entities: list[Entity]) -> list[tuple[int, int, str, str]]:
    return [(e.start, e.end, e.label, e.text) for e in entities]


def test_docstring_examples():
    result = doctest.testmod(tagger_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_package_exports_tagger_lazily():
    assert serving.Tagger is Tagger and serving.Entity is Entity


def test_entity_is_frozen():
    entity = Entity(0, 5, "GPE", "موسكو", 0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entity.label = "LOC"  # type: ignore[misc]


def test_tags_seed_entities_with_offsets_into_the_text(tagger):
    results = tagger.tag(SEED_TEXTS)
    assert len(results) == len(SEED_TEXTS)
    for text, entities in zip(SEED_TEXTS, results, strict=True):
        assert_well_formed(text, entities)
    found = {(e.text, e.label) for e in results[0]}
    assert ("موسكو", "GPE") in found and ("الشرع", "PERS") in found


def test_metadata_for_the_service(tagger, tiny_onnx_dir):
    assert tagger.name == tiny_onnx_dir.name
    assert tagger.labels[0] == "O" and len(tagger.labels) == 1 + 2 * len(ENTITY_LABELS)
    assert tagger.entity_labels == ENTITY_LABELS
    assert tagger.max_length == json.loads((tiny_onnx_dir / "ner_config.json").read_text(encoding="utf-8"))["max_length"] >= 128
    metadata = tagger.metadata
    assert metadata["quantization"] == "int8" and metadata["intra_op_num_threads"] == 2
    assert metadata["decoding"] == "viterbi, tag-transition prior"
    json.dumps(metadata)  # served as JSON as is


def test_empty_and_blank_texts_have_no_entities(tagger):
    results = tagger.tag(["", "  \n\t ", "\u200f\u200e\u00a0", ENTITY_SENTENCE, "\ufeff"])
    assert results[0] == results[1] == results[2] == results[4] == []
    assert results[3]
    assert tagger.tag([]) == []


def test_rejects_a_single_string(tagger):
    with pytest.raises(TypeError, match="list of texts"):
        tagger.tag(ENTITY_SENTENCE)  # type: ignore[arg-type]


def test_marks_controls_and_other_scripts_keep_offsets_exact(tagger):
    text = (
        "😀 قال وزيرُ الخارجيـــة الإيراني\u200f إن «موسكو» و\u200cطهران‎ تنسقان 👍🏽 مع Reuters في 17\u00a0تشرين الأول ٢٠٢٥ "
        "#سوريا https://example.com/a?b=1 \u202bبوتين\u202c 🇸🇾 لافرينتييف."
    )
    (entities,) = tagger.tag([text])
    assert_well_formed(text, entities)
    assert any(e.text == "موسكو" and e.label == "GPE" for e in entities), entities


ARABIC_WORDS = ["موسكو", "بوتين", "طهران", "الرئيس", "الروسي", "سوريا", "وزير", "الخارجية", "لافرينتييف", "في", "إلى", "الشرع"]
PIECES = st.one_of(
    st.sampled_from(ARABIC_WORDS),
    st.text(st.characters(min_codepoint=0x0621, max_codepoint=0x064A), min_size=1, max_size=8),
    st.sampled_from(["\u064e", "\u0650", "\u0651", "\u0652", "\u0640", "\u0640\u0640\u0640"]),  # diacritics, tatweel
    st.sampled_from(["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202c", "\u2066", "\u2069", "\ufeff"]),
    st.sampled_from([" ", "  ", "\u00a0", "\n", "\n\n", "\t", "\u2029"]),
    st.sampled_from([".", "،", "؟", "!", "«", "»", "“", "”", ":", "-", "(", ")", "...", "؛"]),
    st.sampled_from(["COVID", "Reuters", "iPhone", "2024", "١٧", "3.5", "😀", "👍🏽", "❤️", "🇸🇾", "\U0001d400"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=60).map("".join))
def test_offsets_hold_for_any_arabic_like_text(tagger, text):
    (entities,) = tagger.tag([text])
    assert_well_formed(text, entities)


def test_a_5000_word_text_is_tagged_to_its_last_paragraph(tagger):
    body = "\n\n".join(SEED_TEXTS * 3)
    text = body + "\n\n" + ENTITY_SENTENCE
    assert len(segment_words(text)) > 5000
    (entities,) = tagger.tag([text])
    assert_well_formed(text, entities)
    last_paragraph = [e for e in entities if e.start >= len(body)]
    assert {"موسكو", "وطهران"} <= {e.text for e in last_paragraph}, last_paragraph
    # Sentences are tagged independently, so every copy of the seeds gets the same entities.
    (once,) = tagger.tag(["\n\n".join(SEED_TEXTS)])
    copy_length = len("\n\n".join(SEED_TEXTS)) + 2
    for copy in range(3):
        shifted = [
            (e.start - copy * copy_length, e.end - copy * copy_length, e.label)
            for e in entities
            if copy * copy_length <= e.start < (copy + 1) * copy_length
        ]
        assert shifted == [(e.start, e.end, e.label) for e in once]


def test_one_sentence_longer_than_the_model_is_windowed_not_truncated(tagger):
    # No line breaks and no sentence terminators: one segment of thousands of sub-words.
    words = " ".join(token.text for text in SEED_TEXTS for token in segment_words(text) if token.text.isalnum())
    text = words + " " + words + " " + ENTITY_SENTENCE.rstrip(".")
    encoded = tagger.encode([text])[0]
    assert len(encoded.windows) > 8 and all(len(ids) <= tagger.max_length for ids in encoded.windows)
    (entities,) = tagger.tag([text])
    assert_well_formed(text, entities)
    tail = [e.text for e in entities if e.start >= len(text) - len(ENTITY_SENTENCE)]
    assert "موسكو" in tail, tail


def test_each_sentence_is_tagged_as_if_it_were_a_text_of_its_own(fp32_tagger):
    """Sentences have their own windows, and the decoder starts again at each one: an entity never
    runs on from one sentence into the next, so the whole text's entities are its sentences'."""
    text = SEED_TEXTS[0]
    tokens = segment_words(text)
    encoded = fp32_tagger.encode([text])[0]
    assert encoded.sentence_starts == [first for first, _ in sentence_ranges(text, tokens)]
    assert len(encoded.sentence_starts) > 5
    bounds = [(tokens[first].start, tokens[end - 1].end) for first, end in sentence_ranges(text, tokens)]
    one_by_one = fp32_tagger.tag([text[start:end] for start, end in bounds])
    shifted = [(start + e.start, start + e.end, e.label) for (start, _), entities in zip(bounds, one_by_one, strict=True) for e in entities]
    (whole,) = fp32_tagger.tag([text])
    assert [(e.start, e.end, e.label) for e in whole] == shifted


def test_fp32_batch_results_equal_one_by_one_results_exactly(fp32_tagger):
    texts = [*SEED_TEXTS, ENTITY_SENTENCE, "", "زار بوتين موسكو"]
    together = fp32_tagger.tag(texts)
    assert together == [fp32_tagger.tag([text])[0] for text in texts]
    assert together == fp32_tagger.tag(texts)  # deterministic


def test_fp32_results_do_not_depend_on_batch_size(tiny_onnx_fp32_dir, fp32_tagger):
    one_window_per_run = Tagger.load(tiny_onnx_fp32_dir, intra_op_num_threads=1, max_batch_size=1)
    assert one_window_per_run.tag(SEED_TEXTS) == fp32_tagger.tag(SEED_TEXTS)


def test_int8_batch_results_equal_one_by_one_results_exactly(tiny_onnx_dir, tagger):
    # int8 activation scales are fixed at export (training.quantize): a window is computed alone
    # whatever it is batched with, so a service that merges requests gives each the answer it
    # would get alone, scores included. Dynamic int8 moved scores with the batch.
    texts = [*SEED_TEXTS, ENTITY_SENTENCE, "", "زار بوتين موسكو"]
    together = tagger.tag(texts)
    assert together == [tagger.tag([text])[0] for text in texts]
    assert tagger.tag([SEED_TEXTS[0]] * 4) == [together[0]] * 4
    one_window_per_run = Tagger.load(tiny_onnx_dir, intra_op_num_threads=1, max_batch_size=1)
    assert one_window_per_run.tag(texts) == together


def test_int8_agrees_with_fp32(tagger, fp32_tagger):
    assert [key(e) for e in tagger.tag(SEED_TEXTS)] == [key(e) for e in fp32_tagger.tag(SEED_TEXTS)]


# Load-time checks: each broken copy of the runtime directory gets an error naming it and the problem.


@pytest.fixture
def broken_dir(tiny_onnx_dir, tmp_path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(tiny_onnx_dir, target)
    return target


def edit_config(model_dir: Path, **changes) -> None:
    path = model_dir / "ner_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(changes)
    path.write_text(json.dumps(config), encoding="utf-8")


def test_load_rejects_a_missing_directory(tmp_path):
    with pytest.raises(ModelDirError, match=r"nowhere: not a directory"):
        Tagger.load(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["model.onnx", "tokenizer.json", "ner_config.json"])
def test_load_names_a_missing_file(broken_dir, missing):
    (broken_dir / missing).unlink()
    with pytest.raises(ModelDirError, match=rf"{broken_dir}: missing {missing}"):
        Tagger.load(broken_dir)


def test_load_rejects_labels_that_do_not_match_the_output(broken_dir):
    labels = json.loads((broken_dir / "ner_config.json").read_text(encoding="utf-8"))["labels"]
    edit_config(broken_dir, labels=labels[:-2])
    with pytest.raises(ModelDirError, match=r"outputs 19 scores per sub-word but ner_config.json lists 17 labels"):
        Tagger.load(broken_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"labels": ["O", "B-GPE", "GPE"]}, r"labels\[2\] = 'GPE' is not an IOB2 tag"),
        ({"labels": ["B-GPE", "I-GPE"]}, r"no 'O' tag"),
        ({"labels": ["O", "O"]}, r"repeats O"),
        ({"max_length": "512"}, r"field 'max_length' must be int, got str '512'"),
        ({"cls_id": 10**6}, r"'cls_id' = 1000000 is not below vocab_size"),
        ({"tag_transitions": {"O>O": 1.0}}, r"field 'tag_transitions': expected an object with exactly the keys O>O, O>B, E>O"),
        (
            {"tag_transitions": dict.fromkeys(("O>O", "O>B", "E>O", "E>I", "E>B-same", "E>B-other"), 0.5)},
            r"after an entity word sum to 2.000000, not 1",
        ),
    ],
)
def test_load_rejects_a_malformed_config(broken_dir, changes, message):
    edit_config(broken_dir, **changes)
    with pytest.raises(ModelDirError, match=message):
        Tagger.load(broken_dir)


def test_an_export_without_a_prior_decodes_with_the_iob2_constraints_only(broken_dir):
    """Runtime dirs exported before priors were recorded still load; their entities are valid spans."""
    edit_config(broken_dir, tag_transitions=None)
    older = Tagger.load(broken_dir)
    assert older.metadata["decoding"] == "viterbi, IOB2 constraints only"
    for text, entities in zip(SEED_TEXTS, older.tag(SEED_TEXTS), strict=True):
        assert_well_formed(text, entities)


def test_load_rejects_a_config_that_is_not_json(broken_dir):
    (broken_dir / "ner_config.json").write_text("{labels: O}", encoding="utf-8")
    with pytest.raises(ModelDirError, match=r"ner_config.json: cannot read"):
        Tagger.load(broken_dir)


def test_load_rejects_a_tokenizer_of_another_size(broken_dir):
    config = json.loads((broken_dir / "ner_config.json").read_text(encoding="utf-8"))
    edit_config(broken_dir, vocab_size=config["vocab_size"] + 7)
    with pytest.raises(
        ModelDirError,
        match=rf"tokenizer.json has {config['vocab_size']} tokens but ner_config.json says vocab_size = {config['vocab_size'] + 7}",
    ):
        Tagger.load(broken_dir)


def test_load_rejects_a_tokenizer_larger_than_the_embedding_matrix(broken_dir):
    from tokenizers import Tokenizer

    config = json.loads((broken_dir / "ner_config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(broken_dir / "tokenizer.json"))
    tokenizer.add_tokens([f"[extra{i}]" for i in range(10)])
    tokenizer.save(str(broken_dir / "tokenizer.json"))
    size = config["vocab_size"] + 10
    edit_config(broken_dir, vocab_size=size)
    with pytest.raises(ModelDirError, match=rf"tokenizer.json has {size} tokens but the model's embedding matrix has only"):
        Tagger.load(broken_dir)
    # A config that hides the mismatch is caught by running the largest id through the graph.
    edit_config(broken_dir, embedding_rows=size)
    with pytest.raises(ModelDirError, match=rf"model.onnx fails on token id {size - 1}"):
        Tagger.load(broken_dir)


def test_load_rejects_a_file_that_is_not_onnx(broken_dir):
    (broken_dir / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelDirError, match=r"model.onnx: cannot load ONNX model"):
        Tagger.load(broken_dir)

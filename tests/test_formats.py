"""CoNLL reading/writing, Label Studio and doccano round trips, and the converter CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.annotation import AnnotationFormatError, Document, InvalidDataError, read_documents
from serving.conll import ConllFormatError, conll_sentences_to_document, document_to_conll, parse_conll
from serving.interchange import from_doccano, from_label_studio, to_doccano, to_label_studio
from serving.spans import Span, spans_to_tags
from serving.text import segment_words
from training.convert import ConvertJob, ReaderOverrides, convert

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "annotations" / "seeds.jsonl"


def test_conll_reads_iob1_iob2_and_invisible_marks():
    lines = [
        "-DOCSTART- O",
        "",
        "\u200eوزير I-OCC",
        "الخارجية I-OCC",
        "سيرغي\u200e B-PERS",
        "لافروف I-PERS\u200f",
        "\u200e",
        "في O",
        "موسكو I-LOC",
    ]
    sentences = parse_conll(lines)
    assert [s.tokens for s in sentences] == [["\u200eوزير", "الخارجية", "سيرغي\u200e", "لافروف"], ["في", "موسكو"]]
    assert [s.tags for s in sentences] == [["B-OCC", "I-OCC", "B-PERS", "I-PERS"], ["O", "B-LOC"]]
    document = conll_sentences_to_document(sentences, "x")
    # Invisible marks stay in the text but out of the spans, which fall on word boundaries.
    assert [(s.label, s.text) for s in document.spans] == [("OCC", "وزير الخارجية"), ("PERS", "سيرغي\u200e لافروف"), ("LOC", "موسكو")]
    assert spans_to_tags(document.text, document.spans)


def test_conll_errors_name_the_line():
    with pytest.raises(ConllFormatError, match=r"f.conll:2: expected 'token TAG'"):
        parse_conll(["موسكو B-GPE", "وحيدة"], "f.conll")
    with pytest.raises(ConllFormatError, match=r"f.conll:1: malformed IOB tag 'GPE'"):
        parse_conll(["موسكو GPE"], "f.conll")


def test_seeds_round_trip_through_conll():
    for document in read_documents(SEEDS):
        sentences = parse_conll(document_to_conll(document).splitlines())
        tokens = segment_words(document.text)
        assert [t for s in sentences for t in s.tokens] == [t.text for t in tokens]
        # Sentences never cut an entity, so the tags come back exactly, not just as spans.
        assert [t for s in sentences for t in s.tags] == spans_to_tags(document.text, document.spans, tokens)


def test_seeds_round_trip_through_label_studio_unchanged():
    documents = read_documents(SEEDS)
    tasks = json.loads(json.dumps(to_label_studio(documents), ensure_ascii=False))
    assert [d.to_json() for d in from_label_studio(tasks, "export.json")] == [d.to_json() for d in documents]


def test_seeds_round_trip_through_doccano_unchanged():
    documents = read_documents(SEEDS)
    lines = [json.loads(json.dumps(to_doccano(d), ensure_ascii=False)) for d in documents]
    assert [from_doccano(line, f"x:{i}").to_json() for i, line in enumerate(lines)] == [d.to_json() for d in documents]


def test_label_studio_offsets_are_utf16_after_emoji():
    document = Document("e", "😀 زار موسكو", [Span(6, 11, "GPE", "موسكو")])
    task = to_label_studio([document])[0]
    assert task["annotations"][0]["result"][0]["value"]["start"] == 7  # the emoji is two UTF-16 units
    assert from_label_studio([task], "x")[0].spans == document.spans


def test_label_studio_import_takes_the_latest_uncancelled_annotation():
    text = "زار موسكو"

    def result(label):
        return {"type": "labels", "value": {"start": 4, "end": 9, "text": "موسكو", "labels": [label]}}

    task = {
        "id": 7,
        "data": {"text": text},
        "annotations": [{"result": [result("LOC")]}, {"result": [result("GPE")]}, {"was_cancelled": True, "result": []}],
    }
    (document,) = from_label_studio([task], "x")
    assert document.id == "7" and document.spans == [Span(4, 9, "GPE", "موسكو")]


def test_label_studio_import_errors_name_the_task():
    with pytest.raises(AnnotationFormatError, match="task 0: task '1' has no annotations"):
        from_label_studio([{"id": 1, "data": {"text": "x"}}], "export.json")


def test_convert_cli_round_trip_and_refuses_invalid_imports(tmp_path):
    def convert(*args):
        return subprocess.run([sys.executable, "-m", "training.convert", *args], capture_output=True, text=True, cwd=ROOT)

    studio, back = tmp_path / "tasks.json", tmp_path / "back.jsonl"
    assert convert("--from", "jsonl", "--to", "labelstudio", str(SEEDS), str(studio)).returncode == 0
    assert convert("--from", "labelstudio", "--to", "jsonl", str(studio), str(back)).returncode == 0
    assert back.read_text(encoding="utf-8") == SEEDS.read_text(encoding="utf-8")

    bad = tmp_path / "bad.doccano.jsonl"
    bad.write_text(json.dumps({"id": 1, "text": "زار وموسكو", "label": [[5, 10, "GPE"]]}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = convert("--from", "doccano", "--to", "jsonl", str(bad), str(tmp_path / "out.jsonl"))
    assert result.returncode == 1
    assert "span 5-10 GPE: not on word boundaries" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_convert_job_writes_only_clean_documents(tmp_path):
    """``convert(job)``, the function the command runs: the documents it wrote, or every problem and nothing written."""
    studio = tmp_path / "tasks.json"
    written = convert(ConvertJob((str(SEEDS),), str(studio), "jsonl", "labelstudio"))
    assert written == read_documents(SEEDS) and len(json.loads(studio.read_text(encoding="utf-8"))) == len(written)

    bad, refused = tmp_path / "bad.doccano.jsonl", tmp_path / "refused.jsonl"
    bad.write_text(json.dumps({"id": 1, "text": "زار وموسكو", "label": [[5, 10, "GPE"]]}, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(InvalidDataError) as caught:
        convert(ConvertJob((str(bad),), str(refused), "doccano"))
    assert [str(problem).split(" (")[0] for problem in caught.value.problems] == [f"{bad}:1: span 5-10 GPE: not on word boundaries"]
    assert not refused.exists()


def test_convert_job_reader_overrides_replace_the_default_layout(tmp_path):
    """Tab-separated CoNLL with the tag in the middle column, read through ``ReaderOverrides``."""
    source = tmp_path / "tabs.conll"
    source.write_text("زار\tB-PERS\tx\nبوتين\tB-PERS\tx\nموسكو\tB-GPE\tx\n", encoding="utf-8")
    job = ConvertJob(
        (str(source),), str(tmp_path / "out.jsonl"), "conll", source="mine", reader=ReaderOverrides(tag_column=1, separator="tab")
    )
    (document,) = convert(job)
    assert (document.source, [(s.label, s.text) for s in document.spans]) == (
        "mine",
        [("PERS", "زار"), ("PERS", "بوتين"), ("GPE", "موسكو")],
    )
    assert [d.to_json() for d in read_documents(tmp_path / "out.jsonl")] == [document.to_json()]

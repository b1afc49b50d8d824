"""python -m training.validate: every kind of bad span is reported as FILE:LINE: span START-END LABEL: reason."""

import json
import subprocess
import sys

import pytest

TEXT = "زار الرئيس الروسي وموسكو، “تلغرام” أمس"
# words: زار 0-3, الرئيس 4-10, الروسي 11-17, وموسكو 18-24, ، 24-25, “ 26-27, تلغرام 27-33, ” 33-34, أمس 35-38


def span(start, end, label, text=None):
    return {"start": start, "end": end, "label": label, "text": TEXT[start:end] if text is None else text}


def run_validate(tmp_path, *lines):
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines), encoding="utf-8"
    )
    result = subprocess.run([sys.executable, "-m", "training.validate", str(path)], capture_output=True, text=True)
    return result.returncode, result.stdout, str(path)


@pytest.mark.parametrize(
    ("bad_span", "reason"),
    [
        (span(35, 60, "DATE", "أمس"), "span 35-60 DATE: out of range"),
        (span(18, 24, "GPE", "موسكو"), "span 18-24 GPE: text 'موسكو' differs from text[18:24] = 'وموسكو'"),
        (span(18, 24, "CITY"), "span 18-24 CITY: unknown label"),
        (span(19, 24, "GPE"), "span 19-24 GPE: not on word boundaries"),
        (span(18, 25, "GPE"), "span 18-25 GPE: whitespace or punctuation at an edge"),
        (span(26, 34, "ORG"), "span 26-34 ORG: whitespace or punctuation at an edge"),
        (span(17, 24, "GPE"), "span 17-24 GPE: whitespace or punctuation at an edge"),
    ],
    ids=["out-of-range", "text-differs", "unknown-label", "word-boundary", "punct-edge", "quotes-inside", "space-edge"],
)
def test_each_kind_of_bad_span_is_reported(tmp_path, bad_span, reason):
    good = span(4, 17, "OCC")
    code, out, path = run_validate(tmp_path, {"id": "a", "text": TEXT, "spans": [good, bad_span]})
    assert code == 1
    assert f"{path}:1: {reason}" in out


def test_overlap_is_reported(tmp_path):
    code, out, path = run_validate(tmp_path, {"id": "a", "text": TEXT, "spans": [span(4, 17, "OCC"), span(11, 17, "NORP")]})
    assert code == 1
    assert f"{path}:1: span 11-17 NORP: overlaps span 4-17 OCC" in out


def test_duplicate_ids_and_malformed_lines_are_reported_with_their_line(tmp_path):
    doc = {"id": "a", "text": TEXT, "spans": []}
    code, out, path = run_validate(
        tmp_path, doc, "{not json", {"id": "a", "text": TEXT, "spans": []}, {"id": "b", "text": TEXT, "spans": [{"start": "4"}]}
    )
    assert code == 1
    assert f"{path}:2: not valid JSON" in out
    assert f"{path}:3: duplicate id 'a' (first on line 1)" in out
    assert f"{path}:4: spans[0]: field 'start' must be int, got str '4'" in out


def test_clean_file_passes(tmp_path):
    code, out, _ = run_validate(
        tmp_path, {"id": "a", "text": TEXT, "spans": [span(4, 17, "OCC"), span(18, 24, "GPE"), span(27, 33, "ORG"), span(35, 38, "DATE")]}
    )
    assert code == 0 and out == ""


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    code, out, _ = run_validate(tmp_path, {"id": "a", "text": TEXT, "spans": [span(19, 24, "GPE"), span(35, 38, "TIME")]})
    assert code == 1 and len(out.strip().splitlines()) == 2


def test_coverage_fields_and_label_sets_are_checked(tmp_path):
    """Converted corpora: `annotated` names known labels, a label set names known members."""
    code, out, path = run_validate(
        tmp_path,
        {
            "id": "a",
            "text": TEXT,
            "spans": [span(18, 24, "GPE|LOC|FAC")],
            "source": "anercorp",
            "annotated": ["PERS", "ORG", "GPE", "LOC", "FAC"],
        },
        {"id": "b", "text": TEXT, "spans": [span(18, 24, "GPE|CITY")]},
        {"id": "c", "text": TEXT, "spans": [], "annotated": ["PERS", "TIME"]},
        {"id": "d", "text": TEXT, "spans": [], "annotated": "PERS"},
    )
    assert code == 1
    assert f"{path}:1" not in out
    assert f"{path}:2: span 18-24 GPE|CITY: unknown label" in out
    assert f"{path}:3: field 'annotated': unknown label(s) TIME" in out
    assert f"{path}:4: field 'annotated': expected a list of labels, got 'PERS'" in out


def test_coverage_fields_survive_a_round_trip(tmp_path):
    from serving.annotation import Document, read_documents, write_documents

    record = {
        "id": "a",
        "text": TEXT,
        "spans": [span(18, 24, "GPE|LOC|FAC")],
        "source": "anercorp",
        "annotated": ["PERS", "ORG", "GPE", "LOC", "FAC"],
    }
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    (document,) = read_documents(path)
    assert document.annotated == ("PERS", "ORG", "GPE", "LOC", "FAC") and document.source == "anercorp"
    write_documents(tmp_path / "out.jsonl", [document])
    assert json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8")) == record
    # Fully annotated documents keep the short form: no coverage fields.
    write_documents(tmp_path / "ours.jsonl", [Document("b", TEXT)])
    assert json.loads((tmp_path / "ours.jsonl").read_text(encoding="utf-8")) == {"id": "b", "text": TEXT, "spans": []}

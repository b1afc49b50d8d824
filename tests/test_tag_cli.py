"""python -m serving.tag: every output format, every input kind, through the real tiny model."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving import tag as tag_module
from serving.annotation import validate_file
from serving.conll import parse_conll
from serving.interchange import from_label_studio
from serving.tag import main
from serving.text import segment_words

ROOT = Path(__file__).resolve().parents[1]
SEED_PATHS = sorted((ROOT / "seeds").glob("*.txt"))
EMOJI_TEXT = "😀 زار الرئيس الروسي فلاديمير بوتين موسكو 👍🏽 والتقى وزير الخارجية الإيراني."


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serving.tag", *args], input=stdin, capture_output=True, text=True, encoding="utf-8", cwd=ROOT, timeout=120
    )


def test_docstring_examples():
    result = doctest.testmod(tag_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_txt_files_to_jsonl_valid_for_training_validate(tiny_onnx_dir, tmp_path, capsys):
    output = tmp_path / "tagged.jsonl"
    assert main(["--model", str(tiny_onnx_dir), *map(str, SEED_PATHS), "--output", str(output), "--no-progress"]) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == [path.stem for path in SEED_PATHS]
    for line, path in zip(lines, SEED_PATHS, strict=True):
        assert line["text"] == path.read_text(encoding="utf-8")
        assert line["spans"] and all(line["text"][s["start"] : s["end"]] == s["text"] and 0 < s["score"] <= 1 for s in line["spans"])
    assert validate_file(output) == []
    assert "tagged 5 document(s)" in capsys.readouterr().err


def test_jsonl_input_is_retagged_keeping_ids(tiny_onnx_dir, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    stale = {"start": 0, "end": 3, "label": "ORG", "text": "زار"}
    source.write_text(json.dumps({"id": "doc-7", "text": EMOJI_TEXT, "spans": [stale]}, ensure_ascii=False) + "\n\n", encoding="utf-8")
    assert main(["--model", str(tiny_onnx_dir), str(source), "--no-progress"]) == 0
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["id"] == "doc-7" and stale not in line["spans"]
    assert ("موسكو", "GPE") in {(s["text"], s["label"]) for s in line["spans"]}


def test_labelstudio_predictions_round_trip_with_utf16_offsets(tiny_onnx_dir, tmp_path, capsys):
    source = tmp_path / "emoji.txt"
    source.write_text(EMOJI_TEXT, encoding="utf-8")
    assert main(["--model", str(tiny_onnx_dir), str(source), "--format", "labelstudio", "--no-progress"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    (task,) = tasks
    assert task["data"] == {"id": "emoji", "text": EMOJI_TEXT}
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == tiny_onnx_dir.name
    results = prediction["result"]
    assert results and all(
        r["from_name"] == "label" and r["to_name"] == "text" and r["type"] == "labels" and 0 < r["score"] <= 1 for r in results
    )
    # After the emoji Label Studio's (UTF-16) offsets run ahead of Python's; importing converts back.
    moscow = next(r for r in results if r["value"]["text"] == "موسكو")
    assert moscow["value"]["start"] == EMOJI_TEXT.index("موسكو") + 1
    (document,) = from_label_studio(tasks, "cli output", use_predictions=True)
    assert any(span.text == "موسكو" and EMOJI_TEXT[span.start : span.end] == "موسكو" for span in document.spans)


def test_conll_output_has_one_tagged_line_per_word(tiny_onnx_dir, capsys):
    assert main(["--model", str(tiny_onnx_dir), str(SEED_PATHS[0]), "--format", "conll", "--no-progress"]) == 0
    sentences = parse_conll(capsys.readouterr().out.splitlines())
    text = SEED_PATHS[0].read_text(encoding="utf-8")
    assert [token for sentence in sentences for token in sentence.tokens] == [t.text for t in segment_words(text)]
    pairs = [pair for sentence in sentences for pair in zip(sentence.tokens, sentence.tags, strict=True)]
    assert ("موسكو", "B-GPE") in pairs


def test_stdin_plain_text_and_jsonl(tiny_onnx_dir):
    plain = run_cli("--model", str(tiny_onnx_dir), stdin=EMOJI_TEXT)
    assert plain.returncode == 0, plain.stderr
    (line,) = [json.loads(row) for row in plain.stdout.splitlines()]
    assert line["id"] == "stdin" and line["text"] == EMOJI_TEXT and line["spans"]
    jsonl = json.dumps({"id": "a", "text": EMOJI_TEXT}, ensure_ascii=False) + "\n" + json.dumps({"id": "b", "text": ""}) + "\n"
    batch = run_cli("--model", str(tiny_onnx_dir), "--format", "labelstudio", stdin=jsonl)
    assert batch.returncode == 0, batch.stderr
    tasks = json.loads(batch.stdout)
    assert [t["data"]["id"] for t in tasks] == ["a", "b"]
    assert tasks[1]["predictions"][0]["result"] == []


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp, model: ["--model", str(tmp / "absent")], "absent: not a directory"),
        (lambda tmp, model: ["--model", str(model), str(tmp / "missing.txt")], "missing.txt"),
    ],
)
def test_errors_name_the_culprit(tiny_onnx_dir, tmp_path, capsys, make_args, message):
    assert main([*make_args(tmp_path, tiny_onnx_dir), "--no-progress"]) == 1
    assert message in capsys.readouterr().err


def test_malformed_jsonl_input_names_file_and_line(tiny_onnx_dir, tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a", "text": "x"}\n{"id": 3, "text": "y"}\n', encoding="utf-8")
    assert main(["--model", str(tiny_onnx_dir), str(source), "--no-progress"]) == 1
    assert f"{source}:2: field 'id' must be str" in capsys.readouterr().err

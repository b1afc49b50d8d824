"""training.evaluate: seqeval numbers checked by hand, the errors file, CoNLL gold with a label
map, and the ONNX runtime path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from serving.annotation import Document, read_documents, write_documents
from serving.spans import Span, tags_to_spans
from tests.fixtures_training import SEEDS
from training.evaluate import ERROR_CONTEXT_CHARS, LABEL_MAPS, EvaluationError, EvaluationJob, evaluate, main, map_label, map_tags
from training.predict import load_predictor
from training.scoring import entity_report, entity_scores

DATA = Path(__file__).parent / "data"


def read_errors(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_report_matches_hand_computed_seqeval_numbers():
    gold = [["B-PERS", "I-PERS", "O", "B-GPE", "O", "B-ORG", "I-ORG"], ["B-GPE", "O"]]
    predicted = [["B-PERS", "I-PERS", "O", "B-ORG", "O", "B-ORG", "O"], ["B-GPE", "O"]]
    # Gold: PERS(0-2), GPE(3), ORG(5-7), GPE(s2:0). Predicted: PERS(0-2), ORG(3), ORG(5), GPE(s2:0).
    # Correct: PERS, GPE(s2) -> tp 2 of 4 predicted, 2 of 4 gold.
    report = entity_report(gold, predicted)
    assert report["PERS"] == {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 1}
    assert report["GPE"] == {"precision": 1.0, "recall": 0.5, "f1-score": pytest.approx(2 / 3), "support": 2}
    assert report["ORG"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    assert report["micro avg"] == {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 4}
    assert report["macro avg"]["precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert report["macro avg"]["recall"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert report["macro avg"]["f1-score"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert report["weighted avg"]["recall"] == pytest.approx((1 * 1 + 0.5 * 2 + 0 * 1) / 4)


def test_strict_mode_rejects_entities_without_b_tag():
    gold = [["B-PERS", "I-PERS", "O"]]
    predicted = [["I-PERS", "I-PERS", "O"]]
    assert entity_scores(gold, predicted) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert entity_scores(gold, predicted, strict=True) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_cli_scores_and_lists_every_error_with_context(tiny_model_dir, tmp_path):
    document = read_documents(SEEDS)[0]
    ((tokens, tags),) = load_predictor(str(tiny_model_dir)).predict([document.text])
    predicted = tags_to_spans(document.text, tokens, tags)
    n = len(predicted)
    assert n >= 3
    dropped, relabelled = predicted[0], predicted[1]
    other_label = "EVENT" if relabelled.label != "EVENT" else "FAC"
    # A word outside every predicted entity becomes a gold entity the model misses.
    missed = next(token for token, tag in zip(tokens, tags, strict=True) if tag == "O" and token.text.isalpha())
    gold = Document(
        document.id,
        document.text,
        [
            *predicted[2:],
            Span(relabelled.start, relabelled.end, other_label, relabelled.text),
            Span(missed.start, missed.end, "DATE", missed.text),
        ],
    )
    gold_path = tmp_path / "gold.jsonl"
    write_documents(gold_path, [gold])
    out = tmp_path / "eval"
    assert main(["--model", str(tiny_model_dir), "--data", str(gold_path), "--output-dir", str(out)]) == 0

    # n predicted, n gold, n - 2 in common (one dropped from gold, one relabelled; one gold added).
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected = (n - 2) / n
    assert summary["report"]["micro avg"] == {
        "precision": pytest.approx(expected),
        "recall": pytest.approx(expected),
        "f1-score": pytest.approx(expected),
        "support": n,
    }
    assert summary["report"]["DATE"]["support"] == sum(span.label == "DATE" for span in gold.spans)
    assert (summary["false_positives"], summary["false_negatives"]) == (2, 2)
    assert "micro avg" in (out / "report.txt").read_text(encoding="utf-8")

    def context(start: int, end: int) -> tuple[str, str]:
        text = document.text.replace("\n", "⏎")
        return text[max(0, start - ERROR_CONTEXT_CHARS) : start], text[end : end + ERROR_CONTEXT_CHARS]

    rows = {(r["kind"], int(r["start"])): r for r in read_errors(out / "errors.tsv")}
    assert len(rows) == 4
    expectations = [
        ("FP", dropped, "O", dropped.label),
        ("FP", relabelled, other_label, relabelled.label),
        ("FN", relabelled, other_label, relabelled.label),
        ("FN", missed, "DATE", "O"),
    ]
    for kind, span, gold_label, predicted_label in expectations:
        row = rows[(kind, span.start)]
        assert (row["text"], row["gold"], row["predicted"]) == (span.text, gold_label, predicted_label)
        assert (row["left_context"], row["right_context"]) == context(span.start, span.end)


def test_cli_on_conll_gold_with_conll4_label_map(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    conll = DATA / "conll4_sample.conll"
    args = ["--model", str(tiny_model_dir), "--data", str(conll), "--format", "conll", "--label-map", "conll4", "--output-dir", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))["report"]
    assert set(report) == {"PER", "LOC", "MISC", "micro avg", "macro avg", "weighted avg"}
    # 4 PER: three B-PER, and one IOB1 I-PER (after a left-to-right mark) that opens an entity.
    assert (report["PER"]["support"], report["LOC"]["support"], report["MISC"]["support"]) == (4, 6, 3)
    # These sentences come from the seeds the tiny model was trained on.
    assert report["micro avg"]["f1-score"] >= 0.9
    assert main([*args, "--strict"]) == 0


def test_cli_scores_converted_corpora_in_conll4_classes_each_on_its_coverage(tiny_model_dir, tmp_path):
    """``--label-map conll4`` on dev sets converted from corpora: a corpus with one place class
    ("GPE|LOC|FAC") and no NORP scores the model's places as LOC and its NORP as nothing (not as
    MISC false positives); a fully annotated source is renamed span by span."""
    first, second = read_documents(SEEDS)[:2]
    (tokens1, tags1), (tokens2, tags2) = load_predictor(str(tiny_model_dir)).predict([first.text, second.text])
    predicted1, predicted2 = tags_to_spans(first.text, tokens1, tags1), tags_to_spans(second.text, tokens2, tags2)
    assert {"NORP", "GPE"} <= {span.label for span in predicted1}  # what the corpus's coverage must drop and merge
    coarse = ("PERS", "ORG", "GPE", "LOC", "FAC")
    corpus_gold = [
        Span(s.start, s.end, "GPE|LOC|FAC" if s.label in {"GPE", "LOC", "FAC"} else s.label, s.text)
        for s in predicted1
        if s.label in coarse
    ]
    # Our fully annotated document's gold lacks one of the model's persons: one false positive.
    missed = next(span for span in predicted2 if span.label == "PERS")
    ours_gold = [span for span in predicted2 if span != missed]
    gold_path = tmp_path / "dev.jsonl"
    write_documents(
        gold_path,
        [
            Document("corpus-0", first.text, corpus_gold, source="corpus", annotated=coarse),
            Document("ours-0", second.text, ours_gold, source="ours"),
        ],
    )
    out = tmp_path / "eval"
    assert main(["--model", str(tiny_model_dir), "--data", str(gold_path), "--label-map", "conll4", "--output-dir", str(out)]) == 0
    per_source = json.loads((out / "report.json").read_text(encoding="utf-8"))["per_source"]

    corpus = per_source["corpus"]
    assert {label for label in corpus if not label.endswith(" avg")} <= {"PER", "ORG", "LOC"}
    assert corpus["LOC"]["support"] == sum(span.label == "GPE|LOC|FAC" for span in corpus_gold)
    assert corpus["micro avg"] == {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": len(corpus_gold)}

    ours = per_source["ours"]
    scored = sum(span.label not in {"OCC", "DATE"} for span in ours_gold)  # conll4 drops OCC and DATE
    assert ours["MISC"]["support"] == sum(span.label in {"NORP", "EVENT"} for span in ours_gold) > 0
    assert ours["micro avg"] == {
        "precision": pytest.approx(scored / (scored + 1)),
        "recall": 1.0,
        "f1-score": pytest.approx(2 * scored / (2 * scored + 1)),
        "support": scored,
    }


def test_conll4_renames_a_label_set_member_by_member_or_says_why_it_cannot():
    assert map_label("GPE|LOC", LABEL_MAPS["conll4"], "gold") == "LOC"
    assert map_label("PERS|NORP", LABEL_MAPS["conll4"], "gold") == "PER|MISC"
    assert map_tags(["B-OCC", "I-OCC", "B-GPE|LOC|FAC"], LABEL_MAPS["conll4"], "gold") == ["O", "O", "B-LOC"]
    with pytest.raises(EvaluationError, match=r"gold label set 'PERS\|OCC' mixes labels the map drops \(OCC\) with labels it keeps"):
        map_label("PERS|OCC", LABEL_MAPS["conll4"], "gold")
    with pytest.raises(EvaluationError, match=r"predicted label 'GPE\|CITY' \(member 'CITY'\) has no entry in the label map"):
        map_label("GPE|CITY", LABEL_MAPS["conll4"], "predicted")


def test_cli_on_conll_gold_in_a_corpus_scheme_with_its_label_map_file(tiny_model_dir, tmp_path):
    """ANERcorp CoNLL gold through annotations/label_maps/anercorp.toml: its LOC is one class
    (GPE|LOC|FAC), and labels ANERcorp never marks (OCC, NORP, DATE...) are neither false
    positives nor false negatives, whatever the model predicts."""
    out = tmp_path / "eval"
    label_map = Path(__file__).resolve().parents[1] / "annotations" / "label_maps" / "anercorp.toml"
    args = [
        "--model",
        str(tiny_model_dir),
        "--data",
        str(DATA / "corpora" / "anercorp-excerpt.txt"),
        "--format",
        "conll",
        "--label-map",
        str(label_map),
        "--output-dir",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert summary["annotated"] == ["PERS", "ORG", "GPE", "LOC", "FAC"]
    classes = {label for label in summary["report"] if not label.endswith(" avg")}
    assert {"PERS", "ORG", "GPE|LOC|FAC"} <= classes <= {"PERS", "ORG", "GPE|LOC|FAC"}
    assert summary["report"]["micro avg"]["support"] == 8  # the spans the conversion keeps (MISC is read as O)
    errors = read_errors(out / "errors.tsv")
    assert {row["gold"] for row in errors if row["kind"] == "FN"} <= {"PERS", "ORG", "GPE|LOC|FAC"}
    assert {row["predicted"] for row in errors if row["kind"] == "FP"} <= {"PERS", "ORG", "GPE|LOC|FAC"}


def test_cli_rejects_a_label_map_that_is_neither_a_file_nor_built_in(tiny_model_dir, tmp_path, capsys):
    assert main(["--model", str(tiny_model_dir), "--data", str(SEEDS), "--label-map", "conll5", "--output-dir", str(tmp_path / "out")]) == 1
    assert "--label-map 'conll5' is neither a file nor a built-in map (conll4)" in capsys.readouterr().err


def test_cli_rejects_invalid_gold_data(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "زار موسكو", "spans": [{"start": 4, "end": 9, "label": "CITY", "text": "موسكو"}]}\n', encoding="utf-8"
    )
    assert main(["--model", str(tiny_model_dir), "--data", str(bad), "--output-dir", str(tmp_path / "out")]) == 1
    assert f"{bad}:1: span 4-9 CITY: unknown label" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_evaluation_job_writes_and_returns_what_the_command_does(tiny_onnx_fp32_dir, tmp_path):
    """``evaluate(job)``, the function the command runs: the same files, and report.json's record as its value."""
    summary = evaluate(EvaluationJob(str(tiny_onnx_fp32_dir), (str(SEEDS),), label_map="conll4", output_dir=tmp_path / "job"))
    assert (
        main(["--model", str(tiny_onnx_fp32_dir), "--data", str(SEEDS), "--label-map", "conll4", "--output-dir", str(tmp_path / "cli")])
        == 0
    )
    for name in ("report.txt", "report.json", "errors.tsv"):
        assert (tmp_path / "job" / name).read_text(encoding="utf-8") == (tmp_path / "cli" / name).read_text(encoding="utf-8"), name
    assert summary == json.loads((tmp_path / "job" / "report.json").read_text(encoding="utf-8"))
    assert (summary["label_map"], summary["data"], summary["documents"]) == ("conll4", [str(SEEDS)], 5)
    with pytest.raises(EvaluationError, match="'conll5' is neither a file nor a built-in map"):
        evaluate(EvaluationJob(str(tiny_onnx_fp32_dir), (str(SEEDS),), label_map="conll5", output_dir=tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()


def test_onnx_export_scores_like_the_pytorch_model(tiny_model_dir, tiny_onnx_fp32_dir, tmp_path):
    """An ONNX directory is evaluated through serving.Tagger; unquantised, it must agree with the
    PyTorch predictor word for word."""
    reports = {}
    for name, model in (("pytorch", tiny_model_dir), ("onnx", tiny_onnx_fp32_dir)):
        assert main(["--model", str(model), "--data", str(SEEDS), "--output-dir", str(tmp_path / name)]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8"))
    assert reports["onnx"]["runtime"] == "onnx"
    assert reports["onnx"]["report"] == reports["pytorch"]["report"]
    assert (tmp_path / "onnx" / "errors.tsv").read_text(encoding="utf-8") == (tmp_path / "pytorch" / "errors.tsv").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("decoding", ["constraints", "argmax"])
def test_decoding_ablation_runs_the_same_way_on_both_runtimes(tiny_model_dir, tiny_onnx_fp32_dir, tmp_path, decoding):
    """``--decoding`` swaps the decision, not the model: PyTorch and ONNX still agree, and say how they decoded."""
    reports = {}
    for name, model in (("pytorch", tiny_model_dir), ("onnx", tiny_onnx_fp32_dir)):
        assert main(["--model", str(model), "--data", str(SEEDS), "--decoding", decoding, "--output-dir", str(tmp_path / name)]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8"))
        assert reports[name]["decoding"] == decoding
    assert reports["onnx"]["report"] == reports["pytorch"]["report"]


def test_several_data_files_are_scored_together(tiny_onnx_fp32_dir, tmp_path):
    documents = read_documents(SEEDS)
    write_documents(tmp_path / "first.jsonl", documents[:2])
    write_documents(tmp_path / "rest.jsonl", documents[2:])
    assert (
        main(
            [
                "--model",
                str(tiny_onnx_fp32_dir),
                "--data",
                str(tmp_path / "first.jsonl"),
                str(tmp_path / "rest.jsonl"),
                "--output-dir",
                str(tmp_path / "parts"),
            ]
        )
        == 0
    )
    assert main(["--model", str(tiny_onnx_fp32_dir), "--data", str(SEEDS), "--output-dir", str(tmp_path / "whole")]) == 0
    parts, whole = (json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8")) for name in ("parts", "whole"))
    assert parts["data"] == [str(tmp_path / "first.jsonl"), str(tmp_path / "rest.jsonl")] and parts["documents"] == len(documents)
    assert parts["report"] == whole["report"]


def test_scores_on_the_models_own_training_documents_are_called_in_sample(tiny_model_dir, tiny_onnx_fp32_dir, tmp_path, capsys):
    """The tiny model trained on the seeds: scoring it on them warns, with either runtime (the
    export carries the record of training texts); a text it never saw does not."""
    for name, model in (("pytorch", tiny_model_dir), ("onnx", tiny_onnx_fp32_dir)):
        assert main(["--model", str(model), "--data", str(SEEDS), "--output-dir", str(tmp_path / name)]) == 0
        assert json.loads((tmp_path / name / "report.json").read_text(encoding="utf-8"))["documents_trained_on"] == 5
        assert (
            f"warning: 5 of 5 document(s) of {SEEDS} are documents {model} trained on: the figures below are in-sample"
            in capsys.readouterr().err
        )
    seed = read_documents(SEEDS)[0]
    unseen = Document("unseen", seed.text + " وزار بوتين موسكو.", seed.spans)
    write_documents(tmp_path / "unseen.jsonl", [unseen])
    assert (
        main(["--model", str(tiny_onnx_fp32_dir), "--data", str(tmp_path / "unseen.jsonl"), "--output-dir", str(tmp_path / "unseen")]) == 0
    )
    assert "in-sample" not in capsys.readouterr().err
    assert json.loads((tmp_path / "unseen" / "report.json").read_text(encoding="utf-8"))["documents_trained_on"] == 0

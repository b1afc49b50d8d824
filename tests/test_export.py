"""training.export: a runtime directory that matches PyTorch, or nothing at all."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import pytest

from serving.spans import tags_to_spans
from serving.tagger import Tagger
from training import export as export_module
from training.export import ExportError, ExportJob, check_trained_dir, export, labels_in_id_order, main

ROOT = Path(__file__).resolve().parents[1]
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "seeds").glob("*.txt"))]
# training_curve.png comes along because the model card shows it, trained_texts.json because
# training.evaluate reads it (scores on the training documents are in-sample).
RUNTIME_FILES = {
    "model.onnx",
    "tokenizer.json",
    "ner_config.json",
    "README.md",
    "export_report.json",
    "training_curve.png",
    "trained_texts.json",
}


def report_of(model_dir: Path) -> dict:
    return json.loads((model_dir / "export_report.json").read_text(encoding="utf-8"))


def test_docstring_examples():
    result = doctest.testmod(export_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_fp32_export_matches_pytorch_to_1e_4_with_identical_labels(tiny_onnx_fp32_dir):
    parity = report_of(tiny_onnx_fp32_dir)["parity"]
    assert parity["passed"] and parity["max_abs_logit_diff"] < 1e-4 and parity["argmax_mismatches"] == 0
    assert parity["positions"] > 1000


def test_fp32_tagger_predicts_exactly_the_pytorch_predictor_labels(tiny_model_dir, tiny_onnx_fp32_dir):
    """End to end: training's PyTorch word predictor and the ONNX tagger find the same entities."""
    from training.predict import load_predictor

    predicted = load_predictor(str(tiny_model_dir)).predict(SEED_TEXTS)
    expected = [
        [(s.start, s.end, s.label) for s in tags_to_spans(text, tokens, tags)]
        for text, (tokens, tags) in zip(SEED_TEXTS, predicted, strict=True)
    ]
    tagged = Tagger.load(tiny_onnx_fp32_dir).tag(SEED_TEXTS)
    assert [[(e.start, e.end, e.label) for e in entities] for entities in tagged] == expected
    assert sum(map(len, expected)) > 100


def test_runtime_dirs_are_self_contained_and_small(tiny_onnx_dir, tiny_onnx_fp32_dir, tiny_model_dir):
    for model_dir, quantization in ((tiny_onnx_dir, "int8"), (tiny_onnx_fp32_dir, "none")):
        assert {path.name for path in model_dir.iterdir()} == RUNTIME_FILES
        config = json.loads((model_dir / "ner_config.json").read_text(encoding="utf-8"))
        trained = json.loads((tiny_model_dir / "config.json").read_text(encoding="utf-8"))
        assert config["quantization"] == quantization
        assert config["labels"] == [trained["id2label"][str(i)] for i in range(len(trained["id2label"]))]
        # The model's position limit, or the shorter length training ran with (saved in the tokenizer config).
        saved = json.loads((tiny_model_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("model_max_length")
        limit = trained["max_position_embeddings"]
        assert config["max_length"] == (min(limit, saved) if saved and saved < 1_000_000 else limit)
        assert config["window_overlap"] == (config["max_length"] - 2) // 4
        assert config["vocab_size"] == config["embedding_rows"] == trained["vocab_size"]
        card = (model_dir / "README.md").read_text(encoding="utf-8")
        assert card.startswith((tiny_model_dir / "README.md").read_text(encoding="utf-8").rstrip("\n"))
        assert "## Runtime export (ONNX)" in card
        # Nothing left beside the output by the temporary build directory.
        assert [path.name for path in model_dir.parent.iterdir()] == [model_dir.name]
    assert (tiny_onnx_dir / "model.onnx").stat().st_size < 0.8 * (tiny_onnx_fp32_dir / "model.onnx").stat().st_size


def test_int8_export_is_quantised_fused_and_agrees_with_fp32(tiny_onnx_dir):
    import onnx

    report = report_of(tiny_onnx_dir)
    assert report["int8_vs_fp32"]["f1"] >= 0.99
    assert report["parity"]["passed"]
    assert {"Attention", "SkipLayerNormalization"} <= set(report["fusions"])
    operators = [node.op_type for node in onnx.load(str(tiny_onnx_dir / "model.onnx")).graph.node]
    assert {"QAttention", "MatMulIntegerToFloat", "QuantizeLinear"} <= set(operators)
    # No activation scale is computed at run time: none can depend on the batch.
    assert "DynamicQuantizeLinear" not in operators
    calibrated = report["int8_calibration"]
    assert calibrated["source"] == "the seed articles" and calibrated["windows"] == report["parity"]["windows"]
    assert calibrated["activation_tensors"] == operators.count("QuantizeLinear") > 0


def test_int8_calibrates_on_the_given_texts(tiny_model_dir, tmp_path):
    text_file = tmp_path / "news.txt"
    text_file.write_text(SEED_TEXTS[1], encoding="utf-8")
    output = tmp_path / "calibrated"
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--calibration", str(text_file)]) == 0
    report = report_of(output)
    assert report["int8_calibration"]["source"] == str(text_file) and report["int8_calibration"]["texts"] == 1
    # Fewer windows than the five seeds: the ranges, and so the graph, are this text's.
    assert 0 < report["int8_calibration"]["windows"] < report["parity"]["windows"]
    assert report["int8_vs_fp32"]["f1"] >= 0.95


def test_keep_fp32_leaves_the_matching_nodes_unquantised(tiny_model_dir, tmp_path, capsys):
    import onnx

    output = tmp_path / "mixed"
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--keep-fp32", r"layer\.0/output/dense"]) == 0
    graph = onnx.load(str(output / "model.onnx")).graph
    float_matmuls = [node.name for node in graph.node if node.op_type == "MatMul"]
    # The feed-forward output of layer 0 stays a float MatMul beside the classifier; the other layers' are quantised.
    assert any("layer.0/output/dense" in name for name in float_matmuls)
    assert not any("layer.1/output/dense" in name for name in float_matmuls)
    report = report_of(output)
    assert report["int8_calibration"]["kept_fp32"] == [r"layer\.0/output/dense"] and report["int8_vs_fp32"]["f1"] >= 0.99
    assert "| left in fp32 | the classifier and the nodes matching `layer\\.0/output/dense`" in (output / "README.md").read_text(
        encoding="utf-8"
    )

    assert main(["--model", str(tiny_model_dir), "--output", str(tmp_path / "none"), "--keep-fp32", "no-such-node"]) == 1
    assert "--keep-fp32 'no-such-node' matches no node of the graph" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.txt", None, "absent.txt: cannot read calibration text"),
        ("blank.txt", " \n", "blank.txt: no calibration text in it"),
        ("table.csv", "a,b", "table.csv: calibration files must be annotation .jsonl or plain .txt"),
        ("broken.jsonl", '{"id": "x"}\n', "broken.jsonl: cannot read calibration text: .*broken.jsonl:1"),
        # Text, but no words (only bidi marks): nothing to measure activations on.
        ("marks.txt", "\u200f\u200e", r"int8 quantisation of .* \(calibrated on .*marks.txt\) failed: no calibration windows"),
    ],
)
def test_unusable_calibration_file_is_named_and_nothing_written(tiny_model_dir, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    output = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--calibration", str(path)]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not output.exists()


def test_failed_parity_writes_nothing(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", 0.0)  # no graph can pass: exercises the failure path
    output = tmp_path / "models" / "never"
    assert main(["--model", str(tiny_model_dir), "--output", str(output)]) == 1
    assert "fp32 parity failed" in capsys.readouterr().err
    assert list((tmp_path / "models").iterdir()) == []


def test_int8_gate_fails_below_the_requested_f1(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "gated"
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--min-int8-f1", "1.01"]) == 1
    assert "below --min-int8-f1 1.01" in capsys.readouterr().err
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_forced(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "model"
    output.mkdir()
    (output / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--quantize", "none"]) == 1
    assert "already exists (pass --force" in capsys.readouterr().err
    assert (output / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert main(["--model", str(tiny_model_dir), "--output", str(output), "--quantize", "none", "--force", "--name", "renamed"]) == 0
    assert {path.name for path in output.iterdir()} == RUNTIME_FILES
    assert Tagger.load(output).name == "renamed"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_export_job_called_directly_writes_what_it_reports(tiny_model_dir, tmp_path):
    lines = []
    report = export(ExportJob(tiny_model_dir, tmp_path / "direct", quantization="none", name="direct-fp32"), log=lines.append)
    assert report == json.loads((tmp_path / "direct" / "export_report.json").read_text(encoding="utf-8"))
    assert report["runtime_config"]["name"] == "direct-fp32" and report["int8_vs_fp32"] is None
    assert Tagger.load(tmp_path / "direct").name == "direct-fp32"
    assert any(line.startswith("fp32 parity on") for line in lines)
    with pytest.raises(ExportError, match="already exists"):
        export(ExportJob(tiny_model_dir, tmp_path / "direct"), log=lines.append)


def test_incomplete_trained_dir_is_named(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"id2label": {"0": "O"}}', encoding="utf-8")
    assert main(["--model", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert f"{tmp_path}: missing tokenizer.json, model.safetensors or pytorch_model.bin" in capsys.readouterr().err
    with pytest.raises(ExportError, match="not a directory"):
        check_trained_dir(tmp_path / "absent")


@pytest.mark.parametrize(
    ("id2label", "message"),
    [
        (None, "missing or empty"),
        ({"0": "O", "2": "B-GPE"}, r"ids must be 0..1, got \[0, 2\]"),
        ({"zero": "O"}, "non-integer id"),
    ],
)
def test_labels_must_be_numbered_from_zero(id2label, message):
    with pytest.raises(ExportError, match=message):
        labels_in_id_order({"id2label": id2label}, Path("config.json"))


def test_freezing_scales_names_an_activation_without_a_calibrated_range(tiny_onnx_fp32_dir, tmp_path):
    import onnx

    from training.quantize import dynamically_quantised_tensors, freeze_activation_scales, quantize_dynamic_int8

    quantize_dynamic_int8(tiny_onnx_fp32_dir / "model.onnx", tmp_path / "dynamic.onnx")
    model = onnx.load(str(tmp_path / "dynamic.onnx"))
    first, *_ = dynamically_quantised_tensors(model)
    with pytest.raises(ValueError, match=f"no calibrated range for '{re.escape(first)}'"):
        freeze_activation_scales(model, {})

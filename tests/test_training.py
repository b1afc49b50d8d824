"""Fine-tuning end to end, with real training steps on CPU: the tiny model fits the seeds, a local
base-model directory goes through the hub-id code path, DDP under torchrun, cross-validation, and
the failures that must stop a run early with one clear message."""

from __future__ import annotations

import doctest
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.annotation import read_documents
from serving.schema import ENTITY_LABELS, ID_TO_TAG
from serving.text import segment_words
from tests.fixtures_training import ROOT, SEEDS
from training import build_default, cv, data, evaluate, model_dir, modelcard, scoring, scratch, train
from training.scratch import ScratchSizes, build_scratch_model

pytestmark = pytest.mark.model  # every test here trains, or loads the training stack (seconds each)

TINY = ["--from-scratch", "--hidden-size", "64", "--layers", "1", "--heads", "2", "--intermediate-size", "128", "--no-progress"]


def run_cli(module: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def train_on_seeds(output: Path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m training.train --data SEEDS --output OUTPUT OPTIONS...`` in a subprocess."""
    return run_cli("training.train", "--data", str(SEEDS), "--output", str(output), *options, env=env)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "module", [data, cv, evaluate, modelcard, scoring, train, build_default, model_dir, scratch], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_tiny_model_fits_its_training_data(tiny_model_dir):
    from training.predict import load_predictor
    from training.scoring import entity_scores, gold_tags

    documents = read_documents(SEEDS)
    predictor = load_predictor(str(tiny_model_dir))
    predicted = [tags for _, tags in predictor.predict([d.text for d in documents])]
    assert entity_scores([gold_tags(d) for d in documents], predicted)["f1"] >= 0.9


def test_output_is_a_documented_hf_model_dir(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md", "training_curve.png"} <= names
    assert not any(name.startswith("checkpoint") or name.endswith(".bin") for name in names)
    config = read_json(tiny_model_dir / "config.json")
    assert {int(i): tag for i, tag in config["id2label"].items()} == ID_TO_TAG
    metrics = read_json(tiny_model_dir / "metrics.json")
    sha256 = modelcard.file_sha256(SEEDS)
    assert [source["sha256"] for source in metrics["data"]["sources"]] == [sha256]
    assert metrics["label_counts"] == modelcard.label_counts(read_documents(SEEDS))
    card = (tiny_model_dir / "README.md").read_text(encoding="utf-8")
    for expected in (sha256, "git commit", "learning_rate", f"{metrics['training_set']['f1']:.3f}", "| GPE |"):
        assert expected in card
    assert (tiny_model_dir / "training_curve.png").read_bytes().startswith(b"\x89PNG")
    # Nothing of the staging directory is left next to the model.
    assert [p.name for p in tiny_model_dir.parent.iterdir()] == [tiny_model_dir.name]


def test_windows_label_shared_words_in_each_window_for_training_and_once_for_evaluation(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    segments = [s for d in read_documents(SEEDS) for s in data.document_segments(d)]
    longest = max(segments, key=lambda s: len(s.tokens))
    for label_every_window, expect_repeats in ((True, True), (False, False)):
        examples = data.encode_examples([longest], tokenizer, max_length=16, overlap=4, label_every_window=label_every_window)
        assert len(examples) > 1 and all(len(e["input_ids"]) <= 16 for e in examples)
        labelled = sum(label != data.IGNORED_LABEL for e in examples for label in e["labels"])
        has_subwords = sum(1 for ids in tokenizer.backend_tokenizer.encode_batch(longest.words, add_special_tokens=False) if ids.ids)
        assert (labelled > has_subwords) == expect_repeats
        assert labelled >= has_subwords  # no word is truncated away


def test_finetunes_a_local_base_model_directory_with_dev_early_stopping(tmp_path):
    """A saved model directory goes through the same loading path as a hub id (from_pretrained)."""
    documents = read_documents(SEEDS)
    model, tokenizer = build_scratch_model(
        [d.text for d in documents], ScratchSizes(hidden_size=64, num_hidden_layers=1, intermediate_size=128)
    )
    base = tmp_path / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    output = tmp_path / "finetuned"
    dev_id = documents[-1].id
    # Short windows so that long sentences are windowed in training and in prediction.
    result = train_on_seeds(
        output,
        "--base-model",
        str(base),
        "--epochs",
        "4",
        "--learning-rate",
        "1e-3",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        "--dev-ids",
        dev_id,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_json(output / "metrics.json")
    assert metrics["base_model"] == str(base) and not metrics["from_scratch"]
    assert metrics["data"]["dev_ids"] == [dev_id]
    assert metrics["hyperparameters"]["max_length"] == 24
    assert read_json(output / "tokenizer_config.json")["model_max_length"] == 24
    assert 0 <= metrics["dev"]["f1"] <= 1 and metrics["dev"]["best_epoch"] is not None
    assert "micro avg" in metrics["dev"]["report"]
    assert f"base_model: {base}" in (output / "README.md").read_text(encoding="utf-8")
    assert {int(i): t for i, t in read_json(output / "config.json")["id2label"].items()} == ID_TO_TAG


def test_unreachable_hub_fails_fast_with_one_message(tmp_path):
    output = tmp_path / "model"
    started = time.monotonic()
    result = train_on_seeds(
        output,
        "--base-model",
        train.DEFAULT_BASE_MODEL,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache")},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"cannot load base model {train.DEFAULT_BASE_MODEL!r}" in result.stderr
    assert "--base-model DIR" in result.stderr
    assert not output.exists()
    assert time.monotonic() - started < 60


def test_invalid_data_stops_training_before_any_model_is_loaded(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "زار موسكو", "spans": [{"start": 5, "end": 9, "label": "GPE", "text": "وسكو"}]}\n'
        '{"id": "a", "text": "زار", "spans": []}\n',
        encoding="utf-8",
    )
    # A base model that cannot load: reaching it would fail with exit code 2 instead.
    result = run_cli(
        "training.train", "--data", str(bad), "--output", str(tmp_path / "model"), "--base-model", str(tmp_path / "no-such-model")
    )
    assert result.returncode == 1
    assert f"{bad}:1: span 5-9 GPE: not on word boundaries" in result.stderr
    assert f"{bad}:2: duplicate id 'a'" in result.stderr
    assert "base model" not in result.stderr and "Traceback" not in result.stderr


def test_refuses_to_overwrite_and_rejects_unknown_dev_ids(tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data", str(SEEDS), "--output", str(occupied), *TINY])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (occupied / "keep.txt").exists()
    assert train.main(["--data", str(SEEDS), "--output", str(tmp_path / "m"), "--dev-ids", "nope", *TINY]) == 2
    assert "unknown training document id(s) nope" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / ".m.partial").exists()


def test_torchrun_two_processes_on_cpu(tmp_path):
    output = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "training.train",
            "--data",
            str(SEEDS),
            "--output",
            str(output),
            "--epochs",
            "1",
            *TINY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed data parallel over 2 processes (gloo)" in result.stderr
    assert result.stderr.count(f"wrote {output}") == 1  # only rank 0 writes
    metrics = read_json(output / "metrics.json")
    assert metrics["epochs_run"] == 1.0 and metrics["processes"] == 2
    # Each process takes half of the windows, 8 per step: the data really is split, not duplicated.
    assert metrics["optimizer_steps"] == math.ceil(math.ceil(metrics["training_windows"] / 2) / 8)
    assert (output / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]


def test_cross_validation_on_two_folds(tmp_path):
    output = tmp_path / "cv"
    result = train_on_seeds(output, "--cv", "--cv-folds", "2", "--epochs", "4", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_json(output / "cv.json")
    first_two = [d.id for d in read_documents(SEEDS)[:2]]
    assert [fold["document_id"] for fold in report["folds"]] == first_two
    f1s = [fold["f1"] for fold in report["folds"]]
    assert report["mean_f1"] == pytest.approx(sum(f1s) / 2)
    assert report["std_f1"] == pytest.approx(abs(f1s[0] - f1s[1]) / 2**0.5)
    assert report["pooled"]["micro avg"]["support"] == sum(fold["support"] for fold in report["folds"])
    assert read_json(output / "metrics.json")["cv"] == report
    assert "Leave-one-article-out cross-validation (2 folds" in (output / "README.md").read_text(encoding="utf-8")
    assert "CV F1" in result.stderr and "for an honest figure" not in result.stderr  # cross-validated: no hint


def test_same_seed_rebuilds_the_same_model(tmp_path, capsys):
    """Rebuilding (the default model included) with the same seed gives the same vocabulary and
    weights, hence the same predictions. Without a dev set, the only figure is labelled in-sample."""
    from safetensors.torch import load_file

    from training.model_dir import text_fingerprint, trained_texts

    outputs = [tmp_path / "first", tmp_path / "second"]
    for output in outputs:
        assert train.main(["--data", str(SEEDS), "--output", str(output), *TINY, "--epochs", "2", "--seed", "7"]) == 0
    summary = capsys.readouterr().err
    assert re.search(r"training-set F1 \d\.\d{3} \(in-sample: scored on documents it trained on", summary), summary[-2000:]
    assert (
        "no dev set and no cross-validation: for an honest figure hold documents out (--dev-fraction, --dev-ids) or cross-validate (--cv)"
        in summary
    )
    assert trained_texts(outputs[0]) == {text_fingerprint(d.text) for d in read_documents(SEEDS)}
    assert (outputs[0] / "tokenizer.json").read_bytes() == (outputs[1] / "tokenizer.json").read_bytes()
    first, second = (load_file(output / "model.safetensors") for output in outputs)
    assert first.keys() == second.keys()
    assert all(first[name].equal(second[name]) for name in first)


def test_staging_of_another_command_is_cleared_and_of_the_same_one_kept(tmp_path, capsys):
    staging = tmp_path / ".m.partial"
    settings = train.TrainSettings()
    train.prepare_staging(staging, ["--data", "a.jsonl", "--output", "m", "--no-progress"], settings)
    (staging / "final").mkdir()
    train.prepare_staging(staging, ["--data", "a.jsonl", "--output", "m", "--overwrite"], settings)
    assert (staging / "final").is_dir() and "continuing the interrupted run" in capsys.readouterr().err
    train.prepare_staging(staging, ["--data", "a.jsonl", "--output", "m"], train.TrainSettings(epochs=2))  # a recipe edited
    assert not (staging / "final").exists()
    (staging / "final").mkdir()
    train.prepare_staging(staging, ["--data", "b.jsonl", "--output", "m"], train.TrainSettings(epochs=2))
    assert not (staging / "final").exists() and (staging / train.RUN_COMMAND_FILE).is_file()


def test_an_interrupted_run_continues_from_its_last_epoch_with_the_same_command(tmp_path):
    """Killed without warning after its first epoch's checkpoint, the same command continues from
    there (optimiser, scheduler and data order restored) and ends with the weights of a run that was
    never interrupted."""
    from safetensors.torch import load_file

    command = ["--data", str(SEEDS), "--output", "OUT", *TINY, "--epochs", "3", "--seed", "5"]
    uninterrupted = tmp_path / "uninterrupted"
    assert train.main([uninterrupted.as_posix() if arg == "OUT" else arg for arg in command]) == 0

    output = tmp_path / "interrupted"
    argv = [output.as_posix() if arg == "OUT" else arg for arg in command]
    staging = tmp_path / ".interrupted.partial"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.train", *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not list((staging / "final" / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not output.exists()

    resumed = run_cli("training.train", *argv)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing the interrupted run" in resumed.stderr and "resuming from" in resumed.stderr
    assert not staging.exists() and not (output / "command.json").exists()
    first, second = load_file(uninterrupted / "model.safetensors"), load_file(output / "model.safetensors")
    assert all(first[name].equal(second[name]) for name in first)


@pytest.fixture(scope="module")
def excerpt_recipe(tmp_path_factory) -> Path:
    """The real corpus excerpts (tests/data/corpora) converted with their shipped label maps, two
    sentences a document so that each source has documents to draw a dev set from, and a recipe
    listing them beside the seeds."""
    from serving.annotation import write_documents
    from training.corpus_import import import_conll
    from training.label_maps import load_label_map, with_reader_overrides

    directory = tmp_path_factory.mktemp("excerpt-corpora")
    excerpts = ROOT / "tests" / "data" / "corpora"
    files = {
        "anercorp": [excerpts / "anercorp-excerpt.txt"],
        "wojood": [excerpts / "wojood-excerpt.txt"],
        "aqmar": sorted((excerpts / "aqmar").glob("*.txt")),
    }
    entries = [f'[[sources]]\nname = "seeds"\npath = "{SEEDS}"\nweight = 2.0\n']
    for corpus, paths in files.items():
        label_map = with_reader_overrides(load_label_map(ROOT / "annotations" / "label_maps" / f"{corpus}.toml"), document_sentences=2)
        documents, _ = import_conll([str(p) for p in paths], label_map)
        write_documents(directory / f"{corpus}.jsonl", documents)
        entries.append(f'[[sources]]\nname = "{corpus}"\npath = "{directory / corpus}.jsonl"\ndev_fraction = 0.4\n')
    recipe = directory / "recipe.toml"
    # Split seed 4 puts ANERcorp and AQMAR documents with places into their dev sets.
    recipe.write_text("seed = 4\n\n" + "\n".join(entries), encoding="utf-8")
    return recipe


def test_multi_corpus_training_from_scratch_reports_per_source_dev_scores(tmp_path, excerpt_recipe):
    from transformers import AutoTokenizer

    output = tmp_path / "multi"
    assert train.main(["--recipe", str(excerpt_recipe), "--output", str(output), "--epochs", "2", *TINY]) == 0
    metrics = read_json(output / "metrics.json")
    sources = {source["name"]: source for source in metrics["data"]["sources"]}
    assert list(sources) == ["seeds", "anercorp", "wojood", "aqmar"]
    assert sources["anercorp"]["annotated"] == ["PERS", "ORG", "GPE", "LOC", "FAC"] and sources["wojood"]["annotated"] == list(
        ENTITY_LABELS
    )
    assert sources["seeds"]["dev_documents"] == 0 and all(sources[name]["dev_documents"] > 0 for name in ("anercorp", "wojood", "aqmar"))
    # Weight 2: every seed window twice per epoch.
    seed_windows = len(
        data.encode_examples(
            [s for d in read_documents(SEEDS) for s in data.document_segments(d)], AutoTokenizer.from_pretrained(output), 512, 127
        )
    )
    assert sources["seeds"]["windows_per_epoch"] == 2 * seed_windows
    assert metrics["training_windows"] == sum(source["windows_per_epoch"] for source in sources.values())
    per_source = metrics["dev"]["per_source"]
    assert set(per_source) == {"anercorp", "wojood", "aqmar"}
    assert metrics["dev"]["f1"] == pytest.approx(sum(r["micro avg"]["f1-score"] for r in per_source.values()) / 3)
    # Scored on what each source annotates: ANERcorp's places as one class, and no class ANERcorp never marks
    # (the tiny model predicts OCC, DATE... there too, and they are no false positives).
    dev_ids = set(metrics["splits"]["sources"]["anercorp"]["dev_ids"])
    gold_classes = {span.label for d in read_documents(excerpt_recipe.parent / "anercorp.jsonl") if d.id in dev_ids for span in d.spans}
    anercorp_classes = {label for label in per_source["anercorp"] if not label.endswith(" avg")}
    assert "GPE|LOC|FAC" in gold_classes and gold_classes <= anercorp_classes <= {"PERS", "ORG", "GPE|LOC|FAC"}
    card = (output / "README.md").read_text(encoding="utf-8")
    assert "| wojood | `" in card and "| source | precision | recall | F1 | gold entities | scored as |" in card


def test_o_may_be_frees_a_sources_o_words_in_training_only(tmp_path, excerpt_recipe):
    """ANERcorp's O words may be ORGs when its recipe entry says so: the loss allows B-/I-ORG there,
    its own ORG spans stay single-tag targets, and its dev documents are still scored on ORG."""
    from serving.schema import TAG_TO_ID
    from training.loss import allowed_mask
    from training.sources import load_recipe

    text = excerpt_recipe.read_text(encoding="utf-8")
    entry = 'name = "anercorp"\n'
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(text.replace(entry, entry + 'o_may_be = ["ORG"]\n'), encoding="utf-8")
    recipe = load_recipe(recipe_path)
    splits = recipe.split()
    trained = train.training_data(recipe, splits)
    anercorp_train = [d for name, d in trained.train if name == "anercorp"]
    assert anercorp_train and all(d.annotated == ("PERS", "GPE", "LOC", "FAC") for d in anercorp_train)
    assert all("ORG" in d.annotated for name, d in trained.dev if name == "anercorp") and any(name == "anercorp" for name, _ in trained.dev)
    assert all(d.annotated == ENTITY_LABELS for name, d in trained.train if name == "wojood")  # other sources untouched

    segments = [s for d in anercorp_train for s in data.document_segments(d, "anercorp")]
    outside = {allowed_mask(tag, s.annotated) for s in segments for tag in s.tags if tag == "O"}
    org_begin = {allowed_mask(tag, s.annotated) for s in segments for tag in s.tags if tag == "B-ORG"}
    assert outside == {allowed_mask("O", ("PERS", "GPE", "LOC", "FAC"))} and all(mask >> TAG_TO_ID["B-ORG"] & 1 for mask in outside)
    assert org_begin == {1 << TAG_TO_ID["B-ORG"]}  # the excerpt's ORG spans still teach ORG


def test_cross_validation_over_one_source_trains_on_the_others(tmp_path, excerpt_recipe):
    output = tmp_path / "cv-multi"
    argv = [
        "--recipe",
        str(excerpt_recipe),
        "--output",
        str(output),
        "--cv",
        "--cv-source",
        "seeds",
        "--cv-folds",
        "1",
        "--epochs",
        "1",
        *TINY,
    ]
    assert train.main(argv) == 0
    report = read_json(output / "cv.json")
    assert report["source"] == "seeds" and report["other_sources"] == ["anercorp", "aqmar", "wojood"]
    assert [fold["document_id"] for fold in report["folds"]] == [read_documents(SEEDS)[0].id]
    assert len(report["folds"][0]["predicted_tags"]) == len(segment_words(read_documents(SEEDS)[0].text))
    assert "while training on anercorp, aqmar, wojood too" in (output / "README.md").read_text(encoding="utf-8")

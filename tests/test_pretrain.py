"""Masked-language-model pre-training on tiny sizes: text inputs and their errors, near-duplicate
removal, whole-word dynamic masking, an interrupted run resumed from its checkpoint, continued
pre-training of a base, and the result fine-tuned by training.train like any other base."""

from __future__ import annotations

import doctest
import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training import pretrain
from training.pretrain import NearDuplicateFilter, TextInputError, WholeWordMaskCollator, dedup_words, encode_lines, read_lines

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "annotations" / "seeds.jsonl"
LEGISLATION = ROOT / "annotations" / "corpora" / "raw" / "bahrain_legislation.txt.xz"
TINY = [
    "--hidden-size",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--intermediate-size",
    "64",
    "--vocab-size",
    "600",
    "--max-length",
    "32",
    "--batch-size",
    "8",
    "--no-progress",
]


def run_pretrain(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.pretrain", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def text_files(tmp_path_factory) -> list[Path]:
    """A slice of real legislation (xz), the same lines again with small changes (txt), and the seeds (JSONL)."""
    directory = tmp_path_factory.mktemp("pretrain-text")
    with lzma.open(LEGISLATION, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(300)]
    compressed = directory / "legislation.txt.xz"
    with lzma.open(compressed, "wt", encoding="utf-8") as handle:
        handle.writelines(lines)
    repeated = directory / "repeated.txt"
    repeated.write_text("".join(line.replace(".", "،") for line in lines[:50]), encoding="utf-8")
    return [compressed, repeated, SEEDS]


def test_docstring_examples():
    result = doctest.testmod(pretrain, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_reads_txt_xz_and_jsonl_and_names_bad_input(tmp_path, text_files):
    with lzma.open(text_files[0], "rt", encoding="utf-8") as lines:
        blank = sum(1 for line in lines if not line.strip())
    assert len(list(read_lines(text_files[0]))) == 300 - blank
    seed_lines = list(read_lines(SEEDS))
    assert seed_lines and all(line == line.strip() and line for line in seed_lines)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"id": "a", "text": "نص", "spans": []}\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(TextInputError, match=rf"{bad_json}:2: not valid JSON"):
        list(read_lines(bad_json))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(TextInputError, match=rf"{latin1}: not UTF-8"):
        list(read_lines(latin1))
    with pytest.raises(TextInputError, match="unknown kind of text file"):
        list(read_lines(tmp_path / "notes.docx"))
    broken = tmp_path / "broken.txt.xz"
    broken.write_bytes(b"not xz at all")
    with pytest.raises(TextInputError, match=rf"{broken}: cannot read"):
        list(read_lines(broken))


def test_near_duplicates_go_and_the_first_of_each_stays(text_files):
    keep = NearDuplicateFilter()
    original = list(read_lines(text_files[0]))
    kept_original = [line for line in original if keep.is_new(line)]
    # The second file repeats 50 lines with other punctuation: every one is a repeat.
    assert not [line for line in read_lines(text_files[1]) if keep.is_new(line)]
    # No two kept lines are the same once normalised (exact repeats always go).
    assert kept_original and len({tuple(dedup_words(line)) for line in kept_original}) == len(kept_original)
    again = NearDuplicateFilter()
    assert [line for line in original if again.is_new(line)] == kept_original  # deterministic


def test_whole_word_masking_masks_every_sub_word_of_a_chosen_word():
    from training.scratch import train_wordpiece

    lines = ["وقالت وزارة الخارجية الروسية إن موسكو ستواصل دعمها لدمشق في المرحلة المقبلة"] * 3
    tokenizer = train_wordpiece(lines, 80)  # small vocabulary: words split into several pieces
    packed = encode_lines(
        [(0, line) for line in lines], tokenizer.backend_tokenizer, 64, tokenizer.cls_token_id, tokenizer.sep_token_id, progress=False
    )
    special = set(tokenizer.all_special_ids)
    collator = WholeWordMaskCollator(
        tokenizer.mask_token_id, tokenizer.pad_token_id, [i for i in range(len(tokenizer)) if i not in special], 0.3, seed=5
    )
    examples = [packed[i] for i in range(len(packed))]
    first = collator(examples)
    assert torch.equal(collator(examples)["labels"], first["labels"])  # a function of (seed, epoch, index): resumable
    collator.epoch = 1
    second = collator(examples)
    assert not torch.equal(first["labels"], second["labels"])  # dynamic: drawn anew every epoch
    for batch in (first, second):
        for row, example in enumerate(examples):
            words = torch.as_tensor(example["word_index"].astype("int64"))
            ids = torch.as_tensor(example["input_ids"].astype("int64"))
            labelled = batch["labels"][row, : len(ids)] != -100
            assert not labelled[words < 0].any()  # [CLS] and [SEP] are never targets
            chosen = set(words[labelled].tolist())
            assert len(chosen) == round(0.3 * (int(words.max()) + 1))
            for word in range(int(words.max()) + 1):  # a word is masked whole or not at all
                assert labelled[words == word].all() or not labelled[words == word].any()
            assert torch.equal(batch["labels"][row, : len(ids)][labelled], ids[labelled])


@pytest.mark.model
def test_pretrains_resumes_after_an_interruption_and_fine_tunes(tmp_path, text_files):
    texts = [str(path) for path in text_files]
    steps = ["--max-steps", "120", "--save-steps", "10", "--snapshot-steps", "30"]
    uninterrupted = tmp_path / "uninterrupted"
    assert run_pretrain("--text", *texts, "--output", str(uninterrupted), *steps, *TINY).returncode == 0

    output = tmp_path / "interrupted"
    partial = tmp_path / ".interrupted.partial"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.pretrain", "--text", *texts, "--output", str(output), *steps, *TINY],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not list((partial / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # killed without warning, as a lost machine would be
    process.wait()
    assert not output.exists()  # nothing half-written where the model goes

    refused = run_pretrain("--text", *texts, "--output", str(output), *steps, *TINY)
    assert refused.returncode == 2 and "pass --resume to continue it" in refused.stderr
    resumed = run_pretrain("--text", *texts, "--output", str(output), *steps, "--resume", *TINY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "reusing the prepared data" in resumed.stderr and "resuming from" in resumed.stderr
    assert not partial.exists()

    metrics = json.loads((output / "pretrain_metrics.json").read_text(encoding="utf-8"))
    assert metrics["optimizer_steps"] == 120 and metrics["corpus"]["exact_or_near_duplicates"] >= 50
    assert metrics["sizes"]["hidden_size"] == 32 and metrics["eval_loss"] > 0
    # Resuming restored data order, masking and optimiser: the same weights as the uninterrupted run.
    from safetensors.torch import load_file

    first, second = load_file(uninterrupted / "model.safetensors"), load_file(output / "model.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)
    # The smaller budget: the same run after 30 steps, written beside it, equal in both runs too.
    snapshots = [tmp_path / "uninterrupted-step30", tmp_path / "interrupted-step30"]
    first, second = (load_file(path / "model.safetensors") for path in snapshots)
    assert all(torch.equal(first[name], second[name]) for name in first)
    snapshot = json.loads((snapshots[1] / "pretrain_metrics.json").read_text(encoding="utf-8"))
    assert snapshot["optimizer_steps"] == 30 and snapshot["snapshot_of"] == str(output) and snapshot["eval_loss"] > 0
    assert (snapshots[1] / "tokenizer.json").read_bytes() == (output / "tokenizer.json").read_bytes()
    card = (output / "README.md").read_text(encoding="utf-8")
    assert "near-duplicates removed" in card and "legislation.txt.xz" in card and (output / "training_curve.png").exists()

    # The result is a base model like any other.
    from training.train import main as train_main

    ner = tmp_path / "ner"
    one_epoch_on_the_seeds = [
        "--data",
        str(SEEDS),
        "--base-model",
        str(output),
        "--epochs",
        "1",
        "--learning-rate",
        "1e-3",
        "--no-progress",
    ]
    assert train_main([*one_epoch_on_the_seeds, "--output", str(ner)]) == 0
    assert json.loads((ner / "metrics.json").read_text(encoding="utf-8"))["hyperparameters"]["max_length"] == 32
    # Its new classification head follows --seed, not the state of torch's global generator.
    torch.manual_seed(12345)
    again = tmp_path / "ner-again"
    assert train_main([*one_epoch_on_the_seeds, "--output", str(again)]) == 0
    first, second = load_file(ner / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)

    # Continued pre-training keeps the base's vocabulary and sizes.
    continued = tmp_path / "continued"
    result = run_pretrain(
        "--text",
        str(text_files[0]),
        "--output",
        str(continued),
        "--base-model",
        str(output),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (continued / "tokenizer.json").read_bytes() == (output / "tokenizer.json").read_bytes()
    assert json.loads((continued / "pretrain_metrics.json").read_text(encoding="utf-8"))["base_model"] == str(output)


def pretrain_in_process(capsys, *args: str) -> tuple[int, str]:
    """``python -m training.pretrain ARGS`` run in this process (the checks before any work need no
    fresh interpreter): its exit status and standard error."""
    from training.pretrain import main

    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def test_bad_arguments_stop_before_any_work(tmp_path, text_files, capsys):
    status, stderr = pretrain_in_process(capsys, "--text", str(text_files[0]), "--output", str(tmp_path / "m"), "--resume", *TINY)
    assert status == 2 and "no unfinished run" in stderr
    status, stderr = pretrain_in_process(capsys, "--text", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "m"), *TINY)
    assert status == 2 and f"--text {tmp_path / 'missing.txt'}: no such file" in stderr
    assert not (tmp_path / "m").exists()


def test_lines_sharing_text_with_dev_documents_are_held_out(tmp_path):
    from training.pretrain import HeldOutText, collect_lines, read_lines

    dev = tmp_path / "dev.jsonl"
    dev_text = "افتتح وزير التعليم المعرض الدولي للكتاب في الرياض بمشاركة أكثر من خمسمائة دار نشر."
    dev.write_text(json.dumps({"id": "d1", "text": dev_text, "spans": []}, ensure_ascii=False) + "\n", encoding="utf-8")
    raw = tmp_path / "wiki.txt"
    lines = [
        "تاريخ المعرض: " + dev_text + " واستمر عشرة أيام.",  # the dev sentence inside a longer paragraph
        "افتتح وزير الصحة مستشفى جديداً في جدة بحضور عدد من المسؤولين وأهالي المنطقة.",
        "المعرض الدولي للكتاب حدث سنوي.",
    ]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept, stats = collect_lines([str(raw)], progress=False, held_out=HeldOutText(read_lines(dev)))
    assert [line for _, line in kept] == lines[1:]
    assert stats.held_out_overlap == 1 and stats.files[str(raw)]["held_out_overlap"] == 1 and stats.exact_or_near_duplicates == 0


def test_the_encoder_recipe_holds_the_shipped_encoders_settings_and_options_override_it():
    """A job's settings resolve as defaults, then the recipe's [pretraining] table, then the options
    given, an option at its default value included; without a command line, ``resolve_settings``."""
    import shlex

    from training.pretrain import PretrainJob, PretrainSettings, build_parser, job_from_args, resolve_settings

    def job(argv: list[str]) -> PretrainJob:
        return job_from_args(build_parser().parse_args(argv), argv)

    recipe = "training/recipes/encoder-pretrain.toml"
    from_recipe = job(["--recipe", recipe, "--text", "t.txt", "--output", "o"])
    assert (from_recipe.text, from_recipe.output, from_recipe.command) == (
        ("t.txt",),
        Path("o"),
        f"python -m training.pretrain --recipe {recipe} --text t.txt --output o",
    )
    assert from_recipe.settings == resolve_settings(recipe)
    shipped = job(
        shlex.split(json.loads((ROOT / "models/arabic-bert-small/pretrain_metrics.json").read_text(encoding="utf-8"))["command"])[3:]
    )
    settings = (
        "hidden_size",
        "layers",
        "heads",
        "intermediate_size",
        "vocab_size",
        "max_length",
        "batch_size",
        "learning_rate",
        "max_steps",
        "save_steps",
        "save_dtype",
        "seed",
    )
    assert {key: getattr(from_recipe.settings, key) for key in settings} == {key: getattr(shipped.settings, key) for key in settings}
    assert shipped.resume and not shipped.progress and shipped.settings.logging_steps == 100
    overridden = job(
        [
            "--recipe",
            recipe,
            "--text",
            "t.txt",
            "--output",
            "o",
            "--max-steps",
            "20",
            "--hidden-size",
            "256",
            "--snapshot-steps",
            "10",
            "20",
        ]
    ).settings
    assert (overridden.max_steps, overridden.hidden_size, overridden.layers, overridden.snapshot_steps) == (
        20,
        PretrainSettings().hidden_size,
        6,
        (10, 20),
    )
    assert job(["--text", "t.txt", "--output", "o"]).settings == resolve_settings(None) == PretrainSettings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("hiden_size = 384", r"\[pretraining\] hiden_size: unknown setting \(known: "),
        ('batch_size = "256"', r"\[pretraining\] batch_size: expected an integer, got '256'"),
        ('save_dtype = "int4"', r"\[pretraining\] save_dtype: expected one of float32, float16, got 'int4'"),
        ('snapshot_steps = [500, "x"]', r"\[pretraining\] snapshot_steps: expected an integer, got 'x'"),
        ('output = "elsewhere"', r"\[pretraining\] output: unknown setting"),
    ],
)
def test_a_bad_pretraining_table_is_named_before_any_work(tmp_path, text_files, table, message, capsys):
    import re

    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[pretraining]\n{table}\n", encoding="utf-8")
    status, stderr = pretrain_in_process(capsys, "--recipe", str(recipe), "--text", str(text_files[0]), "--output", str(tmp_path / "m"))
    assert status == 1 and re.search(f"{re.escape(str(recipe))}: {message}", stderr), stderr
    assert not (tmp_path / "m").exists()

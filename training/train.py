"""Fine-tune a BERT-family encoder for Arabic NER: ``python -m training.train --data FILE... --output DIR``.

    python -m training.train --data annotations/seeds.jsonl --output models/camelbert-ner
    python -m training.train --data annotations/seeds.jsonl --output models/default --from-scratch
    python -m training.train --data annotations/seeds.jsonl --output models/cv --from-scratch --cv
    python -m training.train --recipe training/recipes/default-stage1.toml --base-model models/arabic-bert-small --output runs/ner
    python -m training.train --data ours.jsonl runs/corpora/anercorp.jsonl --dev-fraction 0.1 --output runs/ner
    torchrun --nproc_per_node 2 -m training.train --data annotations/seeds.jsonl --output models/ddp

Data comes as one or more annotation files (``--data``), or as a recipe listing sources with a
sampling weight and a dev fraction each (``--recipe``, see ``training/sources.py``). Everything is
validated before any model is loaded; dev sets are carved per source, by document, from a seed
(``training/dev_splits.py``). Each document is split into sentences that never cut an entity, and
sentences longer than the model's position limit are windowed with overlap, so no word is
truncated away. Labels come from ``serving.schema``, never from the data.

Sources that do not mark all our labels (converted corpora) train with the coverage-aware loss
(``training/loss.py``): a word outside every span may still be an entity of a label its source does
not annotate, and a label-set span may be any of its members. With ``--loss cross-entropy`` every
O is read as O instead. Dev sets are scored per source on what each source annotates
(``training/scoring.py``); model selection uses the mean of the sources' entity F1.

The output directory is a normal Hugging Face model directory (config.json with id2label,
model.safetensors, tokenizer.json) plus metrics.json, a model card (README.md) and
training_curve.png. It is assembled in a hidden sibling directory and renamed into place at the
end, so a failed run never leaves a half-written model behind.

Exit codes: 0 trained; 1 invalid data; 2 bad arguments or base model not loadable.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import DataCollatorForTokenClassification, EarlyStoppingCallback, TrainingArguments
from transformers.training_args import ParallelMode

from serving.annotation import Document, InvalidDataError, atomic_write_text
from serving.decoding import count_transitions, transition_probabilities
from serving.schema import BIO_TAGS, ENTITY_LABELS
from serving.text import segment_words
from serving.word_reader import WordDecoder, make_decoder, read_words

from .base_model import DEFAULT_BASE_MODEL, BaseModelError, load_pretrained, randomly_initialised
from .crops import crops_for_document, headline_fragments
from .cv import cross_validate
from .data import Segment, default_overlap, document_segments, encode_examples, usable_max_length
from .dev_splits import SourceSplit, move_to_dev, split_record
from .gazetteer import GAZETTEER, GazetteerError, gpe_replacement_copies, load_gazetteer
from .hardware import PRECISIONS, device_name, trainer_device_arguments
from .loss import LOSSES, PartialLabelTrainer
from .model_dir import last_complete_checkpoint, publish, staging_dir_for, write_trained_texts
from .modelcard import file_sha256, git_commit, json_text, label_counts, training_card, write_training_curve
from .predict import WordPredictor
from .scoring import entity_scores, mean_source_f1, per_source_reports, scored_by_source, scorings_by_source
from .scratch import ScratchSizes, add_size_arguments, build_scratch_model, check_size_arguments, sizes_from_arguments
from .sources import Recipe, RecipeError, checked_settings, load_recipe, recipe_from_files, weighted_copies

PROG = "python -m training.train"  # the name in its usage line (arabic-ner passes its own)


class ArgumentError(ValueError):
    """Command-line values that contradict the data (unknown dev ids, say)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the initial weights come from: a hub id or local directory, or a fresh small BERT."""

    base_model: str = DEFAULT_BASE_MODEL
    from_scratch: bool = False
    scratch_sizes: ScratchSizes = field(default_factory=ScratchSizes)
    random_init: bool = False  # the base model's tokenizer and architecture, fresh weights


@dataclass(frozen=True)
class TrainSettings:
    """Trainer hyper-parameters. The defaults suit fine-tuning a pretrained BERT-base;
    ``SCRATCH_DEFAULTS`` replaces some for a model that starts from random weights."""

    epochs: float = 5.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    gradient_accumulation_steps: int = 1
    max_length: int | None = None  # lowers the model's own limit (position embeddings)
    early_stopping_patience: int = 3
    loss: str = "partial"
    precision: str = "auto"
    short_crops: float = 0.0  # extra short segments per training sentence (training/crops.py)
    headline_fragments: float = 0.0  # two entities side by side, the words between dropped (training/crops.py)
    gpe_replacements: float = 0.0  # copies per sentence with GPE mentions swapped for gazetteer names (training/gazetteer.py)


# A small random-weight model needs many more passes, and a larger step, to learn from a few articles;
# its dev F1 stays at 0 for the first epochs, so early stopping must wait longer.
SCRATCH_DEFAULTS = {"epochs": 20.0, "learning_rate": 1e-3, "batch_size": 8, "early_stopping_patience": 10}


@dataclass(frozen=True)
class CrossValidation:
    """Leave-one-article-out over one source's training documents before the final model is
    trained (``cross_validate_source``); the other sources train in every fold."""

    source: str
    folds: int | None = None  # only the first K folds


@dataclass(frozen=True)
class TrainJob:
    """One fine-tuning run: what ``python -m training.train`` parses its command line into, and what
    ``training.build_default`` builds for each stage. ``train(job)`` runs it."""

    recipe: Recipe
    output: Path
    source: ModelSource = field(default_factory=ModelSource)
    settings: TrainSettings = field(default_factory=TrainSettings)  # resolved: defaults, recipe, options
    dev_ids: tuple[str, ...] = ()  # documents moved to their source's dev set
    cv: CrossValidation | None = None  # cross-validate first (None: no cross-validation)
    progress: bool = True
    # The equivalent command line: recorded in the card, and an interrupted run continues only
    # under the same one (and the same settings).
    argv: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        """The run as a command, as the card records it and a build logs it."""
        return f"{PROG} " + shlex.join(self.argv)


@dataclass
class TrainingData:
    """Documents to train on and to evaluate on, each with the name of its source."""

    train: list[tuple[str, Document]]
    dev: list[tuple[str, Document]] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # passes per epoch; 1 when absent

    def documents(self, part: str) -> list[Document]:
        return [document for _, document in getattr(self, part)]

    def trained_on(self) -> list[tuple[str, Document]]:
        """The training documents of the sources with a weight above 0 (weight 0 keeps a
        source for its dev set, or for cross-validation, without training on it)."""
        return [(name, document) for name, document in self.train if self.weights.get(name, 1.0) > 0]


@dataclass
class TrainedModel:
    """What ``train_model`` returns; ``model`` is the best one when a dev set drove early stopping."""

    model: object
    tokenizer: object
    max_length: int
    log_history: list[dict]
    train_runtime_s: float
    train_loss: float
    best_epoch: float | None
    is_main_process: bool
    processes: int
    optimizer_steps: int
    training_windows: int
    windows_per_source: dict[str, int]  # windows trained on per epoch (weights applied)


# ---------------------------------------------------------------------------------------------
# Base model


def _build_scratch(source: ModelSource, texts: Sequence[str], seed: int):
    model, tokenizer = build_scratch_model(texts, source.scratch_sizes, seed=seed)
    return tokenizer, model


def prepare_base(source: ModelSource, texts: Sequence[str], args, shared_dir: Path):
    """Tokenizer and model on every process, identical everywhere.

    The main process goes first: it downloads into the cache (the others then read it), or builds
    the scratch model and, under DDP, saves it for the others (WordPiece training may break ties
    differently from one process to another, so only one vocabulary may exist).
    """
    with args.main_process_first(local=False, desc="base model"):
        if source.random_init:
            return randomly_initialised(source.base_model, args.seed)
        if not source.from_scratch:
            # A pre-trained base has no head for our labels; from_pretrained draws one from torch's
            # global generator, which torch seeds at random in each process: seed it, or the same
            # --seed would train a different model each run.
            torch.manual_seed(args.seed)
            return load_pretrained(source.base_model)
        if args.process_index == 0:
            tokenizer, model = _build_scratch(source, texts, args.seed)
            if args.world_size > 1:
                tokenizer.save_pretrained(shared_dir)
                model.save_pretrained(shared_dir)
            return tokenizer, model
        return load_pretrained(str(shared_dir))


# ---------------------------------------------------------------------------------------------
# Training


def training_arguments(settings: TrainSettings, work_dir: Path, with_dev: bool, progress: bool):
    """Hugging Face TrainingArguments for one run (DDP, mixed precision picked from the hardware)."""
    per_epoch = "epoch" if with_dev else "no"
    return TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size * 2,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        warmup_steps=float(settings.warmup_ratio),  # a float in [0, 1) is a ratio of all steps
        weight_decay=settings.weight_decay,
        seed=settings.seed,
        logging_strategy="epoch",
        eval_strategy=per_epoch,
        save_strategy="epoch",  # with or without a dev set: an interrupted run continues from its last epoch
        save_total_limit=1,  # the Trainer keeps the best epoch's checkpoint too
        save_only_model=False,  # optimiser, scheduler and RNG state: the same command continues a killed run
        load_best_model_at_end=with_dev,
        metric_for_best_model="f1" if with_dev else None,
        greater_is_better=True if with_dev else None,
        train_sampling_strategy="group_by_length",  # sentences vary a lot in length; less padding
        report_to="none",
        disable_tqdm=not progress,
        **trainer_device_arguments(settings.precision),
    )


def predicted_by_segment(logits, examples: Sequence[dict], segments: Sequence[Segment], decoder: WordDecoder) -> list[list[str]]:
    """Regroup windowed eval outputs (logits per position and label) into each segment's words and
    read them into one tag per word (``serving.word_reader``, as served).

    Each word is labelled in one window only (``encode_examples(label_every_window=False)``), at
    the position ``word_index`` records; a word without a position (its sub-words normalised away,
    or clipped from an overlong window) is O, as the serving runtime reads it.

    >>> segment = Segment("d", (), ("O", "B-PERS", "O"))
    >>> examples = [{"word_index": [-1, 0, 1, -1], "segment": 0}]
    >>> rows = np.log([[[0.9, 0.05, 0.05]] * 2 + [[0.1, 0.8, 0.1]] + [[0.9, 0.05, 0.05]]])
    >>> predicted_by_segment(rows, examples, [segment], make_decoder(("O", "B-PERS", "I-PERS"), None))
    [['O', 'B-PERS', 'O']]
    """
    read: list[dict[int, np.ndarray]] = [{} for _ in segments]
    for example, rows in zip(examples, logits, strict=True):
        for position, word in enumerate(example["word_index"]):
            if word >= 0:
                read[example["segment"]][word] = rows[position]
    predicted = []
    for segment, rows_by_word in zip(segments, read, strict=True):
        words = sorted(rows_by_word)
        rows = np.stack([rows_by_word[word] for word in words]) if words else np.zeros((0, len(decoder.labels)))
        predicted.append(read_words(decoder, words, rows, len(segment.tags)).tags)
    return predicted


def dev_scorer(dev_segments: Sequence[Segment], dev: Sequence[tuple[str, Document]], dev_examples: Sequence[dict], decoder: WordDecoder):
    """``compute_metrics`` for the Trainer: each source's entity F1 on its coverage, and their mean
    as ``f1`` (the model-selection metric)."""
    scorings = scorings_by_source([document for _, document in dev], [name for name, _ in dev])
    sources = [segment.source for segment in dev_segments]
    gold = [segment.tags for segment in dev_segments]

    def compute_metrics(prediction) -> dict:
        predicted = predicted_by_segment(prediction.predictions, dev_examples, dev_segments, decoder)
        grouped = scored_by_source(sources, gold, predicted, scorings)
        metrics = {f"f1_{name}": entity_scores(gold_tags_, guess)["f1"] for name, (gold_tags_, guess) in grouped.items()}
        metrics["f1"] = sum(metrics.values()) / len(metrics)
        return metrics

    return compute_metrics


def weighted_documents(train: Sequence[tuple[str, Document]], weights: dict[str, float], seed: int) -> dict[str, list[Document]]:
    """Each source's training documents for every epoch: whole passes repeat them, a fractional
    weight draws that share once per run (seeded; the same documents each epoch), so a replayed
    corpus costs only the share it is given."""
    rng = random.Random(seed)
    by_source: dict[str, list[Document]] = {}
    for name, document in train:
        by_source.setdefault(name, []).append(document)
    return {name: weighted_copies(documents, weights.get(name, 1.0), rng) for name, documents in by_source.items()}


def train_model(data: TrainingData, source: ModelSource, settings: TrainSettings, work_dir: Path, progress: bool = True) -> TrainedModel:
    """Fine-tune on ``data.train`` (sources weighted by ``data.weights``); with ``data.dev``,
    evaluate every epoch, stop early when the mean per-source F1 stalls and end with the best
    epoch's weights. Checkpoints go under ``work_dir``."""
    with_dev = bool(data.dev)
    args = training_arguments(settings, work_dir, with_dev, progress)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if args.parallel_mode != ParallelMode.DISTRIBUTED:
            raise RuntimeError(
                f"launched as {os.environ['WORLD_SIZE']} processes, but the Trainer is not in distributed mode ({args.parallel_mode})"
            )
        _log(f"distributed data parallel over {args.world_size} processes ({args.ddp_backend or 'nccl'})")
    tokenizer, model = prepare_base(source, [d.text for _, d in data.trained_on()], args, work_dir / "base")
    max_length = usable_max_length(model.config, settings.max_length)
    tokenizer.model_max_length = max_length  # saved with the tokenizer: serving reads windows of this length
    overlap = default_overlap(max_length)

    examples_per_source: dict[str, list[dict]] = {}
    encoded: dict[int, tuple[list[Segment], list[dict]]] = {}  # a document repeated by its weight is encoded once
    transitions: Counter = Counter()
    for name, documents in weighted_documents(data.train, data.weights, settings.seed).items():
        for document in documents:
            if id(document) not in encoded:
                segments = document_segments(document, name)
                segments += crops_for_document(segments, settings.short_crops, settings.seed) + headline_fragments(
                    segments, settings.headline_fragments, settings.seed
                )
                if settings.gpe_replacements:
                    segments += gpe_replacement_copies(segments, settings.gpe_replacements, settings.seed, load_gazetteer())
                encoded[id(document)] = segments, encode_examples(segments, tokenizer, max_length, overlap, loss=settings.loss)
            segments, examples = encoded[id(document)]
            examples_per_source.setdefault(name, []).extend(examples)
            transitions.update(count_transitions(segment.tags for segment in segments))
    # The decoding prior (serving.decoding): how tags follow each other in what the model trains on.
    # Saved in config.json, exported into ner_config.json.
    model.config.tag_transitions = transition_probabilities(transitions)
    decoder = make_decoder(BIO_TAGS, model.config.tag_transitions)
    train_examples = [example for examples in examples_per_source.values() for example in examples]
    dev_segments = [s for name, d in data.dev for s in document_segments(d, name)]
    dev_examples = encode_examples(dev_segments, tokenizer, max_length, overlap, label_every_window=False, loss=settings.loss)

    trainer = PartialLabelTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_examples),
        eval_dataset=Dataset.from_list(dev_examples) if with_dev else None,
        data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None),
        processing_class=tokenizer,
        compute_metrics=dev_scorer(dev_segments, data.dev, dev_examples, decoder) if with_dev else None,
        # Decoding needs every label's logit, in float32 (bf16 logits cannot become numpy).
        preprocess_logits_for_metrics=(lambda logits, labels: logits.float()) if with_dev else None,
        callbacks=[EarlyStoppingCallback(settings.early_stopping_patience)] if with_dev else [],
    )
    resume_from = last_complete_checkpoint(work_dir / "checkpoints")
    if resume_from:
        _log(f"resuming from {resume_from} (the same command was interrupted there)")
    output = trainer.train(resume_from_checkpoint=resume_from)
    best_epoch = None
    if with_dev and trainer.state.best_model_checkpoint:
        best_step = int(Path(trainer.state.best_model_checkpoint).name.rsplit("-", 1)[1])
        best_epoch = next((e["epoch"] for e in trainer.state.log_history if e.get("step") == best_step and "eval_f1" in e), None)
    model = trainer.model
    model.eval()
    return TrainedModel(
        model=model,
        tokenizer=tokenizer,
        max_length=max_length,
        log_history=list(trainer.state.log_history),
        train_runtime_s=float(output.metrics.get("train_runtime", float("nan"))),
        train_loss=float(output.training_loss),
        best_epoch=best_epoch,
        is_main_process=trainer.is_world_process_zero(),
        processes=args.world_size,
        optimizer_steps=trainer.state.global_step,
        training_windows=len(train_examples),
        windows_per_source={name: len(examples) for name, examples in examples_per_source.items()},
    )


# ---------------------------------------------------------------------------------------------
# Scores and the output directory


def predicted_tags(trained: TrainedModel, documents: Sequence[Document]) -> list[list[str]]:
    """One predicted tag per word of each document, decided as the serving runtime decides."""
    predictor = WordPredictor(trained.model, trained.tokenizer, batch_size=32)
    return [tags for _, tags in predictor.predict([d.text for d in documents])]


def fit_scores(trained: TrainedModel, documents: Sequence[tuple[str, Document]]) -> dict:
    """Entity scores of the trained model on (a sample of) its own training documents, each
    scored on what its source annotates."""
    reports = per_source_reports(
        [d for _, d in documents], predicted_tags(trained, [d for _, d in documents]), [name for name, _ in documents]
    )
    micro = reports["all"]["micro avg"]
    return {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"], "documents": len(documents)}


def dev_summary(trained: TrainedModel, dev: Sequence[tuple[str, Document]]) -> dict:
    """Dev scores of the final (best) model, predicted as served, per source (each scored on its
    coverage) and pooled; ``f1`` is the mean of the sources' F1, the model-selection metric."""
    documents = [document for _, document in dev]
    reports = per_source_reports(documents, predicted_tags(trained, documents), [name for name, _ in dev])
    return {
        "best_epoch": trained.best_epoch,
        "f1": mean_source_f1(reports),
        "per_source": {name: report for name, report in reports.items() if name != "all"},
        "report": reports["all"],
    }


def write_model_dir(staging: Path, trained: TrainedModel, info: dict) -> None:
    """Model, tokenizer, metrics.json, model card and training curve into ``staging``."""
    trained.model.save_pretrained(staging, safe_serialization=True)
    trained.tokenizer.save_pretrained(staging)
    atomic_write_text(staging / "metrics.json", json_text(info))
    atomic_write_text(staging / "README.md", training_card(info))
    write_training_curve(trained.log_history, staging / "training_curve.png")


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fine-tune a BERT-family encoder for Arabic NER on annotation JSONL files.",
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", nargs="+", metavar="FILE", help="annotation JSONL file(s), one source each (validated first)")
    data.add_argument("--recipe", help="TOML recipe listing sources with weights and dev fractions (training/recipes/)")
    parser.add_argument("--output", required=True, help="model directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    model = parser.add_argument_group("base model")
    model.add_argument(
        "--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local directory of a BERT-family encoder (default %(default)s)"
    )
    model.add_argument(
        "--from-scratch", action="store_true", help="build a small BERT (and WordPiece vocabulary) instead of loading --base-model"
    )
    model.add_argument(
        "--random-init",
        action="store_true",
        help="--base-model's tokenizer and architecture with random weights (measures what pre-training brings)",
    )
    sizes = ScratchSizes()
    add_size_arguments(model, sizes, note="--from-scratch: ")
    model.add_argument(
        "--scratch-max-length", type=int, default=sizes.max_position_embeddings, help="--from-scratch: position limit (default %(default)s)"
    )
    hyper = parser.add_argument_group(
        "training (unset: the recipe's [training] table, else fine-tuning defaults, or larger steps with --from-scratch)"
    )
    defaults = TrainSettings()
    hyper.add_argument(
        "--epochs", type=float, help=f"passes over the data (default {defaults.epochs:g}, {SCRATCH_DEFAULTS['epochs']:g} from scratch)"
    )
    hyper.add_argument(
        "--learning-rate",
        type=float,
        help=f"peak learning rate (default {defaults.learning_rate:g}, {SCRATCH_DEFAULTS['learning_rate']:g} from scratch)",
    )
    hyper.add_argument(
        "--batch-size",
        type=int,
        help=f"windows per device per step (default {defaults.batch_size}, {SCRATCH_DEFAULTS['batch_size']} from scratch)",
    )
    hyper.add_argument("--warmup-ratio", type=float, help=f"share of steps with linear warm-up (default {defaults.warmup_ratio})")
    hyper.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {defaults.weight_decay})")
    hyper.add_argument("--seed", type=int, help=f"seed for weights, data order and dropout (default {defaults.seed})")
    hyper.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        help=f"steps whose gradients add up before an update (default {defaults.gradient_accumulation_steps})",
    )
    hyper.add_argument(
        "--max-length",
        type=int,
        help="window length in sub-words incl. [CLS]/[SEP]; default and upper bound: the model's max_position_embeddings",
    )
    hyper.add_argument("--loss", choices=LOSSES, help="partial: coverage-aware (default); cross-entropy: every O is O")
    hyper.add_argument("--precision", choices=PRECISIONS, help=f"auto: bf16 on GPUs and AMX CPUs, else fp32 (default {defaults.precision})")
    hyper.add_argument(
        "--short-crops",
        type=float,
        metavar="N",
        help=f"also train on N short crops per sentence on average: lone entities, 2-8-word fragments cut at entity-safe points (default {defaults.short_crops:g})",
    )
    hyper.add_argument(
        "--headline-fragments",
        type=float,
        metavar="N",
        help=f"also train on N headline fragments per sentence on average: two entities of different labels with the 1-3 words between them dropped, «وصل بوتين إلى موسكو» -> «وصل بوتين موسكو» (default {defaults.headline_fragments:g})",
    )
    hyper.add_argument(
        "--gpe-replacements",
        type=float,
        metavar="N",
        help=f"also train on N copies per sentence (crops included) with its GPE mentions swapped for Arabic city names from {GAZETTEER.relative_to(GAZETTEER.parents[2])} (default {defaults.gpe_replacements:g})",
    )
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--dev-ids", help="comma-separated document ids held out as dev set: F1 every epoch, early stopping, best epoch kept"
    )
    evaluation.add_argument(
        "--dev-fraction", type=float, help="with --data: share of each file's documents held out as its dev set (seeded draw)"
    )
    evaluation.add_argument("--split-seed", type=int, help="with --data: seed of the dev draw (default 13; a recipe names its own)")
    evaluation.add_argument(
        "--early-stopping-patience",
        type=int,
        help=f"epochs without dev F1 gain before stopping (default {defaults.early_stopping_patience}, {SCRATCH_DEFAULTS['early_stopping_patience']} from scratch)",
    )
    evaluation.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-article-out cross-validation over one source's documents before training the final model",
    )
    evaluation.add_argument(
        "--cv-source", help="with --cv: the source whose documents are held out in turn (default: the first); the others always train"
    )
    evaluation.add_argument("--cv-folds", type=int, help="with --cv: only the first K folds (quick checks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


# Choices and lower bounds of the settings a recipe may fix (the command line checks its own).
SETTING_CHOICES = {"loss": LOSSES, "precision": PRECISIONS}
SETTING_MINIMUM = {
    "epochs": 0,
    "learning_rate": 0,
    "batch_size": 1,
    "warmup_ratio": 0,
    "weight_decay": 0,
    "gradient_accumulation_steps": 1,
    "max_length": 8,
    "early_stopping_patience": 1,
    "short_crops": 0,
    "headline_fragments": 0,
    "gpe_replacements": 0,
}


def recipe_settings(recipe: Recipe) -> dict:
    """The recipe's ``[training]`` table checked against ``TrainSettings``; a bad key or value
    raises RecipeError naming the file and the key.

    >>> recipe_settings(Recipe((), path="r.toml", training={"epochs": 8, "learning_rate": 5e-4}))
    {'epochs': 8.0, 'learning_rate': 0.0005}
    >>> recipe_settings(Recipe((), path="r.toml", training={"epoch": 8}))
    Traceback (most recent call last):
    training.sources.RecipeError: r.toml: [training] epoch: unknown setting (known: epochs, learning_rate, batch_size, warmup_ratio, weight_decay, seed, gradient_accumulation_steps, max_length, early_stopping_patience, loss, precision, short_crops, headline_fragments, gpe_replacements)
    """
    kinds = {name: type(value) for name, value in asdict(TrainSettings()).items()}
    kinds["max_length"] = int  # None in the defaults: the model's own limit
    return checked_settings(recipe.training, f"{recipe.path}: [training]", kinds, SETTING_CHOICES, SETTING_MINIMUM)


def resolve_settings(recipe: Recipe, from_scratch: bool) -> TrainSettings:
    """The defaults (``SCRATCH_DEFAULTS`` from scratch), then the recipe's ``[training]`` table."""
    return TrainSettings(**{**asdict(TrainSettings()), **(SCRATCH_DEFAULTS if from_scratch else {}), **recipe_settings(recipe)})


def settings_from_args(args: argparse.Namespace, recipe: Recipe) -> tuple[ModelSource, TrainSettings]:
    """Resolve the model source and hyper-parameters: ``resolve_settings``, then what the command
    line sets."""
    sizes = sizes_from_arguments(args, args.scratch_max_length)
    source = ModelSource(args.base_model, args.from_scratch, sizes, args.random_init)
    settings = resolve_settings(recipe, args.from_scratch)
    given = {name: getattr(args, name) for name in asdict(settings) if getattr(args, name) is not None}
    return source, replace(settings, **given)


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_size_arguments(parser, args)
    if args.random_init and args.from_scratch:
        parser.error("--random-init takes --base-model's architecture and tokenizer; --from-scratch builds its own: choose one")
    if args.cv and (args.dev_ids or args.dev_fraction):
        parser.error("--cv excludes --dev-ids and --dev-fraction: cross-validation holds out every document of its source in turn")
    if args.cv_folds is not None and (not args.cv or args.cv_folds < 1):
        parser.error("--cv-folds needs --cv and a positive number")
    if args.cv_source and not args.cv:
        parser.error("--cv-source needs --cv")
    if args.recipe and (args.dev_fraction is not None or args.split_seed is not None):
        parser.error("a recipe names each source's dev fraction and its split seed; --dev-fraction and --split-seed go with --data")
    for option in ("short_crops", "headline_fragments", "gpe_replacements"):
        if getattr(args, option) is not None and getattr(args, option) < 0:
            parser.error(f"--{option.replace('_', '-')} must be 0 or more, got {getattr(args, option)}")
    if args.dev_fraction is not None and not 0 <= args.dev_fraction <= 0.9:
        parser.error(f"--dev-fraction must be between 0 and 0.9, got {args.dev_fraction}")
    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not args.overwrite:
        parser.error(f"output {output} exists and is not empty; pass --overwrite to replace it")


def load_recipe_from_args(args: argparse.Namespace) -> Recipe:
    if args.recipe:
        return load_recipe(args.recipe)
    return recipe_from_files(args.data, args.dev_fraction or 0.0, **({"seed": args.split_seed} if args.split_seed is not None else {}))


def move_dev_ids(splits: Sequence[SourceSplit], dev_ids: Sequence[str]) -> list[SourceSplit]:
    """The splits with the documents named by ``--dev-ids`` moved to their source's dev set (and
    the lines of training documents sharing their text held back); raises ArgumentError on bad ids."""
    if not dev_ids:
        return list(splits)
    try:
        moved = move_to_dev(splits, list(dev_ids))
    except ValueError as exc:
        raise ArgumentError(f"--dev-ids: {exc}") from None
    if not any(s.train for s in moved):
        raise ArgumentError("--dev-ids holds out every document; nothing is left to train on")
    return moved


def hyperparameters(settings: TrainSettings, max_length: int, with_dev: bool) -> dict:
    """The settings that shaped the model, as recorded in metrics.json and the card."""
    values = {**asdict(settings), "max_length": max_length, "window_overlap": default_overlap(max_length)}
    if not with_dev:
        del values["early_stopping_patience"]  # no dev set, no early stopping
    return values


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _log(message: str) -> None:
    if _is_main_process():
        print(message, file=sys.stderr, flush=True)


def _word_count(documents: Sequence[Document]) -> int:
    return sum(len(segment_words(d.text)) for d in documents)


def data_record(recipe: Recipe, splits: Sequence[SourceSplit], trained: TrainedModel) -> dict:
    """What metrics.json and the card say about the data: every source, its file, split and size."""
    sources = []
    for source, split in zip(recipe.sources, splits, strict=True):
        documents = split.train + split.dev
        annotated = [label for label in ENTITY_LABELS if any(label in d.annotated for d in documents)]
        sources.append(
            {
                "name": source.name,
                "path": source.path,
                "sha256": file_sha256(source.path),
                "weight": source.weight,
                "dev_fraction": source.dev_fraction,
                "annotated": annotated,
                "o_may_be": list(source.o_may_be),
                "training_documents": len(split.train),
                "dev_documents": len(split.dev),
                "held_back_documents": len(split.held_back),
                "held_back_lines": split.held_back_lines,
                "training_words": _word_count(split.train),
                "windows_per_epoch": trained.windows_per_source.get(source.name, 0),
                "label_counts": dict(Counter(span.label for d in split.train for span in d.spans).most_common()),
            }
        )
    return {
        "recipe": recipe.path,
        "split_seed": recipe.seed,
        "sources": sources,
        "documents": sum(len(s.train) + len(s.dev) + len(s.held_back) for s in splits),
        "training_documents": sum(source["training_documents"] for source in sources if source["weight"] > 0),
        "dev_ids": [d.id for s in splits for d in s.dev],
        "words": sum(source["training_words"] for source in sources if source["weight"] > 0),
    }


def run_record(job: TrainJob, splits: Sequence[SourceSplit], trained: TrainedModel) -> dict:
    """Everything metrics.json and the model card say about a run (cross-validation added by the caller)."""
    recipe, source, settings = job.recipe, job.source, job.settings
    weights = {entry.name: entry.weight for entry in recipe.sources}
    training = [(s.name, d) for s in splits for d in s.train if weights[s.name] > 0]  # weight 0: never trained on
    dev = [(s.name, d) for s in splits for d in s.dev]
    # The fit check reads at most 200 training documents (a seeded sample): it shows the model
    # learnt its data, and predicting all of a large corpus would cost more than it tells.
    sample = random.Random(settings.seed).sample(training, min(200, len(training)))
    return {
        "base_model": "from scratch" if source.from_scratch else source.base_model,
        "from_scratch": source.from_scratch,
        "random_init": source.random_init,
        "scratch_sizes": asdict(source.scratch_sizes) if source.from_scratch else None,
        "data": data_record(recipe, splits, trained),
        "label_counts": label_counts(d for _, d in training),
        "hyperparameters": hyperparameters(settings, trained.max_length, with_dev=bool(dev)),
        "train_runtime_s": trained.train_runtime_s,
        "train_loss": trained.train_loss,
        "epochs_run": max((e["epoch"] for e in trained.log_history if "loss" in e), default=0.0),
        "processes": trained.processes,
        "device": device_name(),
        "optimizer_steps": trained.optimizer_steps,
        "training_windows": trained.training_windows,
        "training_set": fit_scores(trained, sample),
        "dev": dev_summary(trained, dev) if dev else None,
        "git_commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": job.command,
    }


def training_data(recipe: Recipe, splits: Sequence[SourceSplit]) -> TrainingData:
    """The splits' documents under their source names. Training documents are read as their
    recipe entry says (``Source.as_trained``: labels whose O is no evidence); dev documents stay as
    they are, scored on everything their source marks."""
    train = [(split.name, recipe.source(split.name).as_trained(document)) for split in splits for document in split.train]
    return TrainingData(train, [(split.name, document) for split in splits for document in split.dev], recipe.weights)


RUN_COMMAND_FILE = "command.json"


def resumable_argv(argv: Sequence[str]) -> list[str]:
    """The options that decide what a run trains (progress bars and --overwrite do not).

    >>> resumable_argv(["--data", "a.jsonl", "--output", "m", "--overwrite", "--no-progress"])
    ['--data', 'a.jsonl', '--output', 'm']
    """
    return [arg for arg in argv if arg not in ("--no-progress", "--overwrite")]


def prepare_staging(staging: Path, argv: Sequence[str], settings: TrainSettings) -> None:
    """Keep the staging directory of an interrupted run of the same command and settings (its
    checkpoints let training continue where it stopped); clear one left by any other run. The
    settings count apart from the command line: an edited recipe changes them under the same one."""
    record = staging / RUN_COMMAND_FILE
    command = json_text({"argv": resumable_argv(argv), "settings": asdict(settings)})
    if staging.exists():
        if record.is_file() and record.read_text(encoding="utf-8") == command:
            _log(f"continuing the interrupted run kept in {staging}")
            return
        shutil.rmtree(staging)  # another command's leftovers: nothing of it applies here
    staging.mkdir(parents=True)
    atomic_write_text(record, command)


def held_out_in_turn(splits: Sequence[SourceSplit], cv: CrossValidation) -> SourceSplit:
    """The split whose training documents cross-validation holds out in turn; raises ArgumentError
    for an unknown source, or one with fewer than 2 documents."""
    names = [s.name for s in splits]
    if cv.source not in names:
        raise ArgumentError(f"--cv-source {cv.source!r} is not a source (sources: {', '.join(names)})")
    split = splits[names.index(cv.source)]
    if len(split.train) < 2:
        raise ArgumentError(f"--cv needs at least 2 documents in source {cv.source!r}; it has {len(split.train)}")
    return split


def cross_validate_source(job: TrainJob, data: TrainingData, split: SourceSplit, work_dir: Path) -> dict | None:
    """The cross-validation ``job.cv`` asks for: leave-one-article-out over ``split``'s training
    documents (``training.cv``, ``held_out_in_turn``) with the job's model source and settings, every other source's training documents in each fold (fold k works
    in ``work_dir/fold-k``). Returns the summary, naming the source and the sources always trained
    on; None on the other processes of a multi-process run."""
    others = [(name, d) for name, d in data.train if name != split.name]
    as_trained = job.recipe.source(split.name).as_trained

    def fit(fold_train: Sequence[Document], fold: int) -> TrainedModel:
        fold_data = TrainingData(others + [(split.name, as_trained(d)) for d in fold_train], [], data.weights)
        return train_model(fold_data, job.source, job.settings, work_dir / f"fold-{fold}", job.progress)

    summary = cross_validate(split.train, fit, folds=job.cv.folds, log=_log)
    if summary:
        summary["source"] = split.name
        summary["other_sources"] = sorted({name for name, _ in others if data.weights.get(name, 1.0) > 0})
    return summary


def train(job: TrainJob) -> dict | None:
    """Fine-tune ``job.source`` on ``job.recipe`` into the model directory ``job.output`` (written
    whole or not at all); returns what metrics.json records (None on the other processes of a
    multi-process run). An interrupted run continues from its last epoch when run again."""
    recipe, source, settings = job.recipe, job.source, job.settings
    splits = move_dev_ids(recipe.split(), job.dev_ids)  # validates every file before any model is loaded
    cv_split = held_out_in_turn(splits, job.cv) if job.cv else None
    data = training_data(recipe, splits)
    staging = staging_dir_for(job.output)
    if _is_main_process():
        prepare_staging(staging, job.argv, settings)
    base = (
        "from scratch"
        if source.from_scratch
        else f"{source.base_model} (architecture and tokenizer only, random weights)"
        if source.random_init
        else source.base_model
    )
    for split in splits:
        _log(
            f"source {split.name}: {len(split.train)} training document(s), {len(split.dev)} dev, {split.held_back_lines} line(s) of {len(split.held_back)} held back (text shared with dev)"
        )
    _log(f"base model: {base}; settings: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items()))
    try:
        cv_summary = cross_validate_source(job, data, cv_split, staging) if cv_split else None
        trained = train_model(data, source, settings, staging / "final", job.progress)
        if not trained.is_main_process:
            return None
        info = run_record(job, splits, trained)
        info["cv"] = cv_summary
        info["splits"] = split_record(splits, recipe.seed)
        shutil.rmtree(staging / "final", ignore_errors=True)
        for fold_dir in staging.glob("fold-*"):
            shutil.rmtree(fold_dir)
        (staging / RUN_COMMAND_FILE).unlink()
        write_model_dir(staging, trained, info)
        write_trained_texts(staging, [d.text for _, d in data.trained_on()])
        if cv_summary:
            atomic_write_text(staging / "cv.json", json_text(cv_summary))
        publish(staging, job.output)
    except BaseException:
        if _is_main_process():
            _log(f"stopped; {staging} keeps the last epoch's checkpoints: the same command continues from there")
        raise
    return info


def summary_line(output: Path, info: dict) -> str:
    """What the command prints when a run is written."""
    summary = f"wrote {output}: training-set F1 {info['training_set']['f1']:.3f} (in-sample: scored on documents it trained on, not an estimate of quality)"
    if info["dev"]:
        per_source = ", ".join(f"{name} {report['micro avg']['f1-score']:.3f}" for name, report in info["dev"]["per_source"].items())
        summary += f", dev F1 {info['dev']['f1']:.3f} (mean over sources: {per_source}; best epoch {info['dev']['best_epoch']})"
    cv_summary = info["cv"]
    if cv_summary:
        summary += (
            f", CV F1 {cv_summary['mean_f1']:.3f} ± {cv_summary['std_f1']:.3f} (pooled {cv_summary['pooled']['micro avg']['f1-score']:.3f})"
        )
    summary += f", {info['train_runtime_s']:.0f} s"
    if not info["dev"] and not cv_summary:
        summary += "\nno dev set and no cross-validation: for an honest figure hold documents out (--dev-fraction, --dev-ids) or cross-validate (--cv)"
    return summary


def job_from_args(args: argparse.Namespace, argv: Sequence[str]) -> TrainJob:
    """The run a parsed command line describes (reads and checks the recipe: RecipeError)."""
    recipe = load_recipe_from_args(args)
    source, settings = settings_from_args(args, recipe)
    cv = CrossValidation(args.cv_source or recipe.sources[0].name, args.cv_folds) if args.cv else None
    dev_ids = tuple(i.strip() for i in (args.dev_ids or "").split(",") if i.strip())
    return TrainJob(recipe, Path(args.output), source, settings, dev_ids, cv, not args.no_progress, tuple(argv))


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    try:
        job = job_from_args(args, argv)
        info = train(job)
        if info is not None:
            _log(summary_line(job.output, info))
        return 0
    except InvalidDataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        where = exc.args[0].split(":", 1)[0]
        print(f"{where}: {len(exc.problems)} problem(s); fix them (python -m training.validate {where}) before training", file=sys.stderr)
        return 1
    except (RecipeError, GazetteerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BaseModelError, ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

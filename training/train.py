"""Fine-tune a BERT-family encoder for Arabic NER: ``python -m training.train --data FILE --output DIR``.

    python -m training.train --data annotations/seeds.jsonl --output models/camelbert-ner
    python -m training.train --data annotations/seeds.jsonl --output models/default --from-scratch
    python -m training.train --data annotations/seeds.jsonl --output models/cv --from-scratch --cv
    torchrun --nproc_per_node 2 -m training.train --data annotations/seeds.jsonl --output models/ddp

The data is validated before anything else; each document is split into sentences that never cut
an entity, and sentences longer than the model's position limit are windowed with overlap, so no
word is truncated away. Labels come from ``serving.schema``, never from the data.

The output directory is a normal Hugging Face model directory (config.json with id2label,
model.safetensors, tokenizer.json) plus metrics.json, a model card (README.md) and
training_curve.png. It is assembled in a hidden sibling directory and renamed into place at the
end, so a failed run never leaves a half-written model behind.

Exit codes: 0 trained; 1 invalid data; 2 bad arguments or base model not loadable.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import torch
from datasets import Dataset
from huggingface_hub import constants as hub_constants
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
)
from transformers.training_args import ParallelMode

from serving.annotation import Document, atomic_write_text
from serving.schema import BIO_TAGS, ID_TO_TAG, TAG_TO_ID
from serving.text import segment_words

from .cv import cross_validate
from .data import IGNORED_LABEL, InvalidDataError, default_overlap, document_segments, encode_examples, load_training_documents, usable_max_length
from .evaluate import entity_report, entity_scores, gold_tags
from .modelcard import file_sha256, git_commit, json_text, label_counts, render_model_card, write_training_curve
from .predict import WordPredictor
from .scratch import ScratchSizes, build_scratch_model

DEFAULT_BASE_MODEL = "CAMeL-Lab/bert-base-arabic-camelbert-msa"
HUB_PROBE_TIMEOUT_S = 5.0


class BaseModelError(RuntimeError):
    """The base model cannot be loaded; the message says what to do instead."""


class ArgumentError(ValueError):
    """Command-line values that contradict the data (unknown dev ids, say)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the initial weights come from: a hub id or local directory, or a fresh small BERT."""

    base_model: str = DEFAULT_BASE_MODEL
    from_scratch: bool = False
    scratch_sizes: ScratchSizes = field(default_factory=ScratchSizes)


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


# A small random-weight model needs many more passes, and a larger step, to learn from a few articles;
# its dev F1 stays at 0 for the first epochs, so early stopping must wait longer.
SCRATCH_DEFAULTS = {"epochs": 20.0, "learning_rate": 1e-3, "batch_size": 8, "early_stopping_patience": 10}


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


# ---------------------------------------------------------------------------------------------
# Base model


def hub_reachable(endpoint: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s`` (name lookup included, which
    ``socket`` timeouts do not bound, hence the thread)."""
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def _unreachable_message(name: str, reason: str) -> str:
    return (
        f"cannot load base model {name!r}: {reason}, and it is not in the local Hugging Face cache.\n"
        f"Pass a local directory instead: on a connected machine run\n"
        f"    hf download {name} --local-dir DIR\n"
        f"copy DIR here and train with --base-model DIR (or use --from-scratch)."
    )


def _load_tokenizer_and_model(name: str, local_files_only: bool):
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only, trust_remote_code=False)
    model = AutoModelForTokenClassification.from_pretrained(
        name,
        local_files_only=local_files_only,
        use_safetensors=True,
        trust_remote_code=False,
        num_labels=len(BIO_TAGS),
        id2label=dict(ID_TO_TAG),
        label2id=dict(TAG_TO_ID),
        # A base model that already has a classification head of another size gets a fresh one.
        ignore_mismatched_sizes=True,
    )
    return tokenizer, model


def load_pretrained(name: str):
    """Tokenizer and token-classification model from a local directory or a hub id.

    A hub id is looked up in the local cache first; the hub is only contacted when it is reachable
    (a quick probe), so an offline machine fails in seconds with one message, never a deep
    traceback or a silent fallback. Raises BaseModelError.
    """
    is_local = Path(name).is_dir()
    if not is_local and Path(name).exists():
        raise BaseModelError(f"--base-model {name!r} is a file; pass a model directory or a hub id")
    try:
        if is_local:
            tokenizer, model = _load_tokenizer_and_model(name, local_files_only=True)
        else:
            try:
                tokenizer, model = _load_tokenizer_and_model(name, local_files_only=True)
            except OSError:
                if hub_constants.HF_HUB_OFFLINE:
                    raise BaseModelError(_unreachable_message(name, "the Hugging Face Hub is disabled (HF_HUB_OFFLINE is set)")) from None
                if not hub_reachable(hub_constants.ENDPOINT):
                    raise BaseModelError(_unreachable_message(name, f"the Hugging Face Hub ({hub_constants.ENDPOINT}) is unreachable")) from None
                tokenizer, model = _load_tokenizer_and_model(name, local_files_only=False)
    except BaseModelError:
        raise
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "local directory" if is_local else "hub id"
        raise BaseModelError(f"cannot load base model {name!r} ({where}): {first_line}") from None
    if not tokenizer.is_fast:
        raise BaseModelError(f"base model {name!r} has no fast tokenizer (tokenizer.json); serving needs one")
    return tokenizer, model


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
        if not source.from_scratch:
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
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
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
        bf16=bf16,
        fp16=cuda and not bf16,
        logging_strategy="epoch",
        eval_strategy=per_epoch,
        save_strategy=per_epoch,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=with_dev,
        metric_for_best_model="f1" if with_dev else None,
        greater_is_better=True if with_dev else None,
        train_sampling_strategy="group_by_length",  # sentences vary a lot in length; less padding
        report_to="none",
        disable_tqdm=not progress,
        # torchrun on CPU: gloo (the default, nccl, needs GPUs); naming a backend outside torchrun fails.
        ddp_backend="gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        # Without it, accelerate leaves a CPU torchrun process undistributed: each rank would train alone.
        use_cpu=not cuda,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
    )


def sequences_by_segment(label_ids, predicted_ids, segment_of_example: Sequence[int]) -> tuple[list[list[str]], list[list[str]]]:
    """Regroup windowed eval outputs into one gold and one predicted tag sequence per segment.

    Windows of a segment are consecutive and each word is labelled in one window only, so
    concatenating the labelled positions restores the segment's words in order.

    >>> sequences_by_segment([[-100, 1, -100], [-100, 0, -100]], [[0, 1, 2], [0, 1, 2]], [0, 0])
    ([['B-PERS', 'O']], [['B-PERS', 'B-PERS']])
    """
    gold: dict[int, list[str]] = {}
    predicted: dict[int, list[str]] = {}
    for labels, predictions, segment in zip(label_ids, predicted_ids, segment_of_example):
        for label, prediction in zip(labels, predictions):
            if label != IGNORED_LABEL:
                gold.setdefault(segment, []).append(ID_TO_TAG[int(label)])
                predicted.setdefault(segment, []).append(ID_TO_TAG[int(prediction)])
    order = sorted(gold)
    return [gold[s] for s in order], [predicted[s] for s in order]


def _dataset(examples: list[dict]):
    return Dataset.from_list(examples)


def train_model(
    train_documents: Sequence[Document],
    dev_documents: Sequence[Document],
    source: ModelSource,
    settings: TrainSettings,
    work_dir: Path,
    progress: bool = True,
) -> TrainedModel:
    """Fine-tune on ``train_documents``; with ``dev_documents``, evaluate entity F1 every epoch,
    stop early when it stalls and end with the best epoch's weights. Checkpoints go under
    ``work_dir``."""
    with_dev = bool(dev_documents)
    args = training_arguments(settings, work_dir, with_dev, progress)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if args.parallel_mode != ParallelMode.DISTRIBUTED:
            raise RuntimeError(f"launched as {os.environ['WORLD_SIZE']} processes, but the Trainer is not in distributed mode ({args.parallel_mode})")
        _log(f"distributed data parallel over {args.world_size} processes ({args.ddp_backend or 'nccl'})")
    tokenizer, model = prepare_base(source, [d.text for d in train_documents], args, work_dir / "base")
    max_length = usable_max_length(model.config, settings.max_length)
    tokenizer.model_max_length = max_length  # saved with the tokenizer: serving reads windows of this length
    overlap = default_overlap(max_length)

    train_segments = [s for d in train_documents for s in document_segments(d)]
    train_examples = encode_examples(train_segments, tokenizer, max_length, overlap)
    dev_segments = [s for d in dev_documents for s in document_segments(d)]
    dev_examples = encode_examples(dev_segments, tokenizer, max_length, overlap, label_every_window=False)
    segment_of_dev_example = [example["segment"] for example in dev_examples]

    def compute_metrics(prediction) -> dict:
        gold, predicted = sequences_by_segment(prediction.label_ids, prediction.predictions, segment_of_dev_example)
        return entity_scores(gold, predicted)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(train_examples),
        eval_dataset=_dataset(dev_examples) if with_dev else None,
        data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8 if (args.fp16 or args.bf16) else None),
        processing_class=tokenizer,
        compute_metrics=compute_metrics if with_dev else None,
        # Only the arg-max is needed; keeping full logits for every eval batch wastes memory.
        preprocess_logits_for_metrics=(lambda logits, labels: logits.argmax(dim=-1)) if with_dev else None,
        callbacks=[EarlyStoppingCallback(settings.early_stopping_patience)] if with_dev else [],
    )
    output = trainer.train()
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
    )


# ---------------------------------------------------------------------------------------------
# Output directory


def staging_dir_for(output: Path) -> Path:
    """Where the output is assembled: a hidden sibling (same file system, so the final rename is
    atomic), the same path on every DDP process."""
    return output.parent / f".{output.name}.partial"


def publish(staging: Path, output: Path) -> None:
    """Move the finished staging directory to ``output``, replacing a previous model there."""
    if output.exists():
        retired = output.parent / f".{output.name}.old-{os.getpid()}"
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)


def predicted_tags(trained: TrainedModel, documents: Sequence[Document]) -> list[list[str]]:
    """One predicted tag per word of each document, decided as the serving runtime decides."""
    predictor = WordPredictor(trained.model, trained.tokenizer, batch_size=32)
    return [tags for _, tags in predictor.predict([d.text for d in documents])]


def fit_scores(trained: TrainedModel, documents: Sequence[Document]) -> dict:
    """Entity scores of the trained model on its own training documents."""
    return entity_scores([gold_tags(d) for d in documents], predicted_tags(trained, documents))


def dev_summary(trained: TrainedModel, documents: Sequence[Document]) -> dict:
    """Dev scores of the final (best) model, predicted as served (the per-epoch scores that chose
    it come from the Trainer's evaluation over the same words)."""
    report = entity_report([gold_tags(d) for d in documents], predicted_tags(trained, documents))
    return {"best_epoch": trained.best_epoch, "f1": report["micro avg"]["f1-score"], "report": report}


def write_model_dir(staging: Path, trained: TrainedModel, info: dict) -> None:
    """Model, tokenizer, metrics.json, model card and training curve into ``staging``."""
    trained.model.save_pretrained(staging, safe_serialization=True)
    trained.tokenizer.save_pretrained(staging)
    atomic_write_text(staging / "metrics.json", json_text(info))
    atomic_write_text(staging / "README.md", render_model_card(info))
    write_training_curve(trained.log_history, staging / "training_curve.png")


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Fine-tune a BERT-family encoder for Arabic NER on an annotation JSONL file.",
    )
    parser.add_argument("--data", required=True, help="annotation JSONL file (validated first)")
    parser.add_argument("--output", required=True, help="model directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    model = parser.add_argument_group("base model")
    model.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="hub id or local directory of a BERT-family encoder (default %(default)s)")
    model.add_argument("--from-scratch", action="store_true", help="build a small BERT (and WordPiece vocabulary) instead of loading --base-model")
    sizes = ScratchSizes()
    model.add_argument("--hidden-size", type=int, default=sizes.hidden_size, help="--from-scratch: hidden size (default %(default)s)")
    model.add_argument("--layers", type=int, default=sizes.num_hidden_layers, help="--from-scratch: transformer layers (default %(default)s)")
    model.add_argument("--heads", type=int, default=sizes.num_attention_heads, help="--from-scratch: attention heads (default %(default)s)")
    model.add_argument("--intermediate-size", type=int, default=sizes.intermediate_size, help="--from-scratch: feed-forward size (default %(default)s)")
    model.add_argument("--vocab-size", type=int, default=sizes.vocab_size, help="--from-scratch: WordPiece vocabulary size (at most) (default %(default)s)")
    hyper = parser.add_argument_group("training (unset: fine-tuning defaults, or larger steps with --from-scratch)")
    defaults = TrainSettings()
    hyper.add_argument("--epochs", type=float, help=f"passes over the data (default {defaults.epochs:g}, {SCRATCH_DEFAULTS['epochs']:g} from scratch)")
    hyper.add_argument("--learning-rate", type=float, help=f"peak learning rate (default {defaults.learning_rate:g}, {SCRATCH_DEFAULTS['learning_rate']:g} from scratch)")
    hyper.add_argument("--batch-size", type=int, help=f"windows per device per step (default {defaults.batch_size}, {SCRATCH_DEFAULTS['batch_size']} from scratch)")
    hyper.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio, help="share of steps with linear warm-up (default %(default)s)")
    hyper.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay (default %(default)s)")
    hyper.add_argument("--seed", type=int, default=defaults.seed, help="seed for weights, data order and dropout (default %(default)s)")
    hyper.add_argument("--gradient-accumulation-steps", type=int, default=defaults.gradient_accumulation_steps, help="steps whose gradients add up before an update (default %(default)s)")
    hyper.add_argument("--max-length", type=int, help="window length in sub-words incl. [CLS]/[SEP]; default and upper bound: the model's max_position_embeddings")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--dev-ids", help="comma-separated document ids held out as dev set: F1 every epoch, early stopping, best epoch kept")
    evaluation.add_argument(
        "--early-stopping-patience",
        type=int,
        help=f"epochs without dev F1 gain before stopping (default {defaults.early_stopping_patience}, {SCRATCH_DEFAULTS['early_stopping_patience']} from scratch)",
    )
    evaluation.add_argument("--cv", action="store_true", help="leave-one-article-out cross-validation before training the final model on all documents")
    evaluation.add_argument("--cv-folds", type=int, help="with --cv: only the first K folds (quick checks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def settings_from_args(args: argparse.Namespace) -> tuple[ModelSource, TrainSettings]:
    """Resolve the command line into a model source and hyper-parameters."""
    sizes = replace(
        ScratchSizes(),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate_size,
        vocab_size=args.vocab_size,
    )
    source = ModelSource(args.base_model, args.from_scratch, sizes)
    defaults = {**asdict(TrainSettings()), **(SCRATCH_DEFAULTS if args.from_scratch else {})}
    chosen = {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "warmup_ratio": args.warmup_ratio,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_length": args.max_length,
        "early_stopping_patience": args.early_stopping_patience,
    }
    return source, TrainSettings(**{key: defaults[key] if value is None else value for key, value in chosen.items()})


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.hidden_size % args.heads:
        parser.error(f"--hidden-size {args.hidden_size} must be a multiple of --heads {args.heads}")
    if args.cv and args.dev_ids:
        parser.error("--cv and --dev-ids exclude each other: cross-validation holds out every article in turn")
    if args.cv_folds is not None and (not args.cv or args.cv_folds < 1):
        parser.error("--cv-folds needs --cv and a positive number")
    output = Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not args.overwrite:
        parser.error(f"output {output} exists and is not empty; pass --overwrite to replace it")


def split_dev(documents: Sequence[Document], dev_ids: str | None) -> tuple[list[Document], list[Document]]:
    """Training and dev documents; raises ArgumentError naming unknown ids."""
    if not dev_ids:
        return list(documents), []
    wanted = [i.strip() for i in dev_ids.split(",") if i.strip()]
    known = {d.id for d in documents}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise ArgumentError(f"--dev-ids: unknown document id(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    dev = [d for d in documents if d.id in wanted]
    train = [d for d in documents if d.id not in wanted]
    if not train:
        raise ArgumentError("--dev-ids holds out every document; nothing is left to train on")
    return train, dev


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


def run_record(
    args: argparse.Namespace,
    documents: Sequence[Document],
    dev_documents: Sequence[Document],
    source: ModelSource,
    settings: TrainSettings,
    trained: TrainedModel,
) -> dict:
    """Everything metrics.json and the model card say about a run (cross-validation added by the caller)."""
    dev_ids = {d.id for d in dev_documents}
    train_documents = [d for d in documents if d.id not in dev_ids]
    return {
        "base_model": "from scratch" if source.from_scratch else source.base_model,
        "from_scratch": source.from_scratch,
        "scratch_sizes": asdict(source.scratch_sizes) if source.from_scratch else None,
        "data": {
            "path": str(args.data),
            "sha256": file_sha256(args.data),
            "documents": len(documents),
            "training_documents": len(train_documents),
            "dev_ids": [d.id for d in dev_documents],
            "words": _word_count(documents),
        },
        "label_counts": label_counts(documents),
        "hyperparameters": hyperparameters(settings, trained.max_length, with_dev=bool(dev_documents)),
        "train_runtime_s": trained.train_runtime_s,
        "train_loss": trained.train_loss,
        "epochs_run": max((e["epoch"] for e in trained.log_history if "loss" in e), default=0.0),
        "processes": trained.processes,
        "optimizer_steps": trained.optimizer_steps,
        "training_windows": trained.training_windows,
        "training_set": fit_scores(trained, train_documents),
        "dev": dev_summary(trained, dev_documents) if dev_documents else None,
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m training.train " + shlex.join(args.argv),
    }


def run(args: argparse.Namespace) -> int:

    documents = load_training_documents(args.data)  # before any model is loaded
    train_documents, dev_documents = split_dev(documents, args.dev_ids)
    if args.cv and len(documents) < 2:
        raise ArgumentError(f"--cv needs at least 2 documents; {args.data} has {len(documents)}")
    source, settings = settings_from_args(args)
    output = Path(args.output)
    staging = staging_dir_for(output)
    if _is_main_process() and staging.exists():
        shutil.rmtree(staging)  # left by a crashed run; no other process touches it before training starts
    base = "from scratch" if source.from_scratch else source.base_model
    _log(f"training on {len(train_documents)} document(s) from {args.data}, {len(dev_documents)} dev; base model: {base}")
    _log("settings: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items()))
    progress = not args.no_progress
    try:
        cv_summary = None
        if args.cv:
            def fit(fold_train: Sequence[Document], fold: int):
                return train_model(fold_train, [], source, settings, staging / f"fold-{fold}", progress)

            cv_summary = cross_validate(documents, fit, folds=args.cv_folds, log=_log)
        trained = train_model(train_documents, dev_documents, source, settings, staging / "final", progress)
        if not trained.is_main_process:
            return 0
        info = run_record(args, documents, dev_documents, source, settings, trained)
        info["cv"] = cv_summary
        shutil.rmtree(staging / "final", ignore_errors=True)
        for fold_dir in staging.glob("fold-*"):
            shutil.rmtree(fold_dir)
        write_model_dir(staging, trained, info)
        if cv_summary:
            atomic_write_text(staging / "cv.json", json_text(cv_summary))
        publish(staging, output)
    except BaseException:
        if _is_main_process():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    summary = f"wrote {output}: training-set F1 {info['training_set']['f1']:.3f}"
    if info["dev"]:
        summary += f", dev F1 {info['dev']['f1']:.3f} (best epoch {info['dev']['best_epoch']})"
    if cv_summary:
        summary += f", CV F1 {cv_summary['mean_f1']:.3f} ± {cv_summary['std_f1']:.3f} (pooled {cv_summary['pooled']['micro avg']['f1-score']:.3f})"
    _log(summary + f", {info['train_runtime_s']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in the model card
    _check_arguments(parser, args)
    try:
        return run(args)
    except InvalidDataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.data}: {len(exc.problems)} problem(s); fix them (python -m training.validate {args.data}) before training", file=sys.stderr)
        return 1
    except (BaseModelError, ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Pre-train a BERT with masked language modelling: ``python -m training.pretrain --text FILE... --output DIR``.

    # from scratch: WordPiece vocabulary learnt from the same text, sizes as options
    python -m training.pretrain --text annotations/corpora/raw/*.txt.xz runs/splits/anercorp.train.jsonl \\
        --output models/arabic-news-bert --hidden-size 384 --layers 6 --heads 6 --epochs 3
    # continued pre-training of a base model on your own archive (its vocabulary is kept)
    python -m training.pretrain --text archive/*.txt.xz --base-model CAMeL-Lab/bert-base-arabic-camelbert-msa \\
        --output runs/camelbert-archive --epochs 1
    # several GPUs
    torchrun --nproc_per_node 4 -m training.pretrain --text ... --output ...

The straight line of transformers' ``run_mlm`` example, with what Arabic and long runs need:

1. **Text**: ``.txt`` (a paragraph a line), ``.txt.xz`` and JSONL (the ``text`` of each record, such as
   our annotation files) are read line by line.
2. **Near-duplicate removal**: lines are compared in a normalised form (no diacritics, punctuation or
   hamza forms, digits as 0); exact repeats go, and so do lines whose word-trigram MinHash says they
   share at least 80% of their trigrams with a line kept earlier (legislation repeats itself with
   small changes). A fixed share of the kept lines (``--eval-fraction``) is held out for the loss curve.
3. **Vocabulary**: from scratch, a WordPiece vocabulary learnt from the kept lines, deterministically
   (``training/scratch.py``); a base model keeps its own.
4. **Sequences**: lines are split into words by our segmentation (``serving/text.py``), words into
   sub-words, and consecutive lines of a file are packed into sequences of at most ``--max-length``
   sub-words without cutting a word.
5. **Whole-word masking**, drawn anew for every epoch (dynamic masking): 15% of a sequence's words,
   all their sub-words together (80% [MASK], 10% a random token, 10% unchanged). Arabic attaches
   clitics to words («وموسكو»): masking one sub-word of a word would leave the rest to give it away.
6. **Training** with the Trainer: a progress bar, a checkpoint every ``--save-steps`` (kept in
   ``OUTPUT.partial/``, so ``--resume`` continues an interrupted run exactly: data order, masking
   and optimiser state), bf16 where the hardware has it, torchrun for several processes.

The output is a Hugging Face directory (``model.safetensors``, ``config.json``, ``tokenizer.json``)
that ``training.train --base-model DIR`` fine-tunes like any other base, with a model card
(corpus, sizes, steps, losses), ``pretrain_metrics.json`` and ``training_curve.png``.

Exit codes: 0 done; 1 bad input text; 2 bad arguments or base model not loadable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import math
import os
import random
import re
import shlex
import shutil
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from serving.annotation import AnnotationFormatError, atomic_write_text, parse_document
from serving.encoding import subword_ids_per_word
from serving.text import fold_marks_and_alef, segment_words

from .base_model import BaseModelError, load_pretrained
from .hardware import PRECISIONS, device_name, trainer_device_arguments
from .model_dir import last_complete_checkpoint, publish, staging_dir_for
from .modelcard import file_sha256, git_commit, json_text, pretraining_card, snapshot_card
from .scratch import ScratchSizes, add_size_arguments, check_size_arguments, sizes_from_arguments
from .sources import RecipeError, checked_settings, read_recipe_file

TEXT_SUFFIXES = (".txt", ".txt.xz", ".jsonl")
NEAR_DUPLICATE_JACCARD = 0.8
MIN_WORDS_FOR_MINHASH = 8  # shorter lines are only checked for exact repeats
MINHASH_PERMUTATIONS = 64
MINHASH_BANDS = 8  # 8 bands of 8 rows: a line sharing 80% of its trigrams is caught ~77% of the time, 90%: 99%
_MERSENNE_PRIME = (1 << 31) - 1
DATA_FORMAT_VERSION = 1

PROG = "python -m training.pretrain"  # the name in its usage line (arabic-ner passes its own)


class TextInputError(ValueError):
    """A text file that cannot be read; the message names the file (and line)."""


# From-scratch defaults: they pre-train on 2 CPU cores in hours, not days.
PRETRAIN_SIZES = ScratchSizes(
    vocab_size=24000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, max_position_embeddings=128
)
SAVE_DTYPES = ("float32", "float16")


@dataclass(frozen=True)
class PretrainSettings:
    """The model and the schedule of a run: what a recipe's ``[pretraining]`` table may set (its keys
    are these names, the options' with _ for -) and the command line overrides."""

    base_model: str | None = None  # continue pre-training this hub id or directory (None: from scratch)
    vocab_size: int = PRETRAIN_SIZES.vocab_size  # the sizes: from scratch only
    hidden_size: int = PRETRAIN_SIZES.hidden_size
    layers: int = PRETRAIN_SIZES.num_hidden_layers
    heads: int = PRETRAIN_SIZES.num_attention_heads
    intermediate_size: int = PRETRAIN_SIZES.intermediate_size
    max_length: int | None = None  # None: PRETRAIN_SIZES' position limit from scratch, the base's own
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    mlm_probability: float = 0.15
    eval_fraction: float = 0.005
    save_steps: int = 500
    snapshot_steps: tuple[int, ...] = ()
    logging_steps: int = 50
    precision: str = "auto"
    save_dtype: str = "float32"
    seed: int = 42


@dataclass(frozen=True)
class PretrainJob:
    """One pre-training run: what ``python -m training.pretrain`` parses its command line into.
    ``pretrain(job)`` runs it."""

    text: tuple[str, ...]
    output: Path
    settings: PretrainSettings = field(default_factory=PretrainSettings)  # resolved: defaults, recipe, options
    exclude_overlap: tuple[str, ...] = ()  # documents whose text is held out (dev sets)
    resume: bool = False  # continue the unfinished run left in OUTPUT.partial/
    overwrite: bool = False  # replace the output, and discard an unfinished run
    progress: bool = True
    argv: tuple[str, ...] = ()  # the equivalent command line, as the card records it

    @property
    def command(self) -> str:
        """The run as a command, as the card records it."""
        return f"{PROG} " + shlex.join(self.argv)


# ---------------------------------------------------------------------------------------------
# 1. Text


def read_lines(path: str | Path) -> Iterator[str]:
    """Non-empty lines of one text file (.txt, .txt.xz, or the ``text`` of each JSONL record)."""
    path = Path(path)
    name = path.name
    if not name.endswith(TEXT_SUFFIXES):
        raise TextInputError(f"{path}: unknown kind of text file (expected {', '.join(TEXT_SUFFIXES)})")
    try:
        if name.endswith(".jsonl"):
            with open(path, encoding="utf-8") as handle:
                for number, record in enumerate(handle, start=1):
                    if record.strip():
                        yield from _non_empty(parse_document(record, f"{path}:{number}").text.splitlines())
        else:
            opener = lzma.open if name.endswith(".xz") else open
            with opener(path, "rt", encoding="utf-8") as handle:
                yield from _non_empty(handle)
    except AnnotationFormatError as exc:
        raise TextInputError(str(exc)) from None
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise TextInputError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TextInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _non_empty(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        line = line.strip()
        if line:
            yield line


# ---------------------------------------------------------------------------------------------
# 2. Near-duplicate removal

_PUNCTUATION = re.compile(r"[^\w\s]|_")
_DIGITS = re.compile(r"\d+")


def dedup_words(line: str) -> list[str]:
    """The words a line is compared by: no diacritics, tatweel or punctuation, one alef, numbers as 0.

    >>> dedup_words("المادة (12): يُعمل بأحكام هذا القانون.")
    ['المادة', '0', 'يعمل', 'باحكام', 'هذا', 'القانون']
    >>> dedup_words("المادة (12): يُعمل بأحكام هذا القانون.") == dedup_words("المادة 13 - يعمل باحكام هذا القانون")
    True
    """
    return _DIGITS.sub("0", _PUNCTUATION.sub(" ", fold_marks_and_alef(line))).lower().split()


class NearDuplicateFilter:
    """Keeps the first of every group of near-identical lines, in reading order (deterministic).

    A repeat up to punctuation, diacritics, hamza forms and numbers goes, and so does a line sharing
    at least 80% of its word trigrams with a kept one (the last word of a 16-word line changed: 13
    of 15 trigrams shared, 87%); a word changed or inserted in the middle touches three trigrams
    (65-71%), and the line stays.

    >>> keep = NearDuplicateFilter()
    >>> [keep.is_new(line) for line in ["يعمل بهذا القانون من تاريخ نشره في الجريدة الرسمية وعلى الجهات المختصة تنفيذه كل فيما يخصه",
    ...                                 "يُعمل بهذا القانون من تاريخ نشره في الجريدة الرسمية، وعلى الجهات المختصة تنفيذه كلٌّ فيما يخصه.",
    ...                                 "يعمل بهذا القانون من تاريخ نشره في الجريدة الرسمية وعلى الجهات المختصة تنفيذه كل فيما يخصها",
    ...                                 "يعمل بهذا القانون من تاريخ نشره في الجريدة الرسمية وعلى جميع الجهات المختصة تنفيذه كل فيما يخصه"]]
    [True, False, False, True]
    """

    def __init__(self, threshold: float = NEAR_DUPLICATE_JACCARD):
        generator = np.random.RandomState(20240521)  # fixed: the same lines are kept on every machine
        self.a = generator.randint(1, _MERSENNE_PRIME, size=(MINHASH_PERMUTATIONS, 1), dtype=np.int64)
        self.b = generator.randint(0, _MERSENNE_PRIME, size=(MINHASH_PERMUTATIONS, 1), dtype=np.int64)
        self.threshold = threshold
        self.exact: set[str] = set()
        self.buckets: dict[tuple[int, bytes], list[np.ndarray]] = {}
        self.rows = MINHASH_PERMUTATIONS // MINHASH_BANDS

    def signature(self, words: Sequence[str]) -> np.ndarray:
        shingles = np.array(
            [zlib.crc32(" ".join(words[i : i + 3]).encode("utf-8")) & 0x7FFFFFFF for i in range(len(words) - 2)], dtype=np.int64
        )
        return ((self.a * shingles + self.b) % _MERSENNE_PRIME).min(axis=1)

    def is_new(self, line: str) -> bool:
        """Whether the line is neither a repeat nor a near-duplicate of a line seen before (and
        remember it if so)."""
        words = dedup_words(line)
        key = " ".join(words)
        if key in self.exact:
            return False
        self.exact.add(key)
        if len(words) < MIN_WORDS_FOR_MINHASH:
            return True
        signature = self.signature(words)
        bands = [(band, signature[band * self.rows : (band + 1) * self.rows].tobytes()) for band in range(MINHASH_BANDS)]
        for band in bands:
            for seen in self.buckets.get(band, ()):
                if float(np.mean(seen == signature)) >= self.threshold:
                    return False
        for band in bands:
            self.buckets.setdefault(band, []).append(signature)
        return True


OVERLAP_NGRAM = 8  # words: long enough that a shared run is copied text, not a common phrase


class HeldOutText:
    """The text pre-training must not read (dev documents): a line is held out when it shares a run
    of ``OVERLAP_NGRAM`` words with it, compared as near-duplicates are (``dedup_words``). Wikipedia
    dumps hold older revisions of the WikiFANE and AQMAR articles, so a dev paragraph can come back
    inside a longer one.

    >>> held_out = HeldOutText(["وقال الرئيس في كلمته أمام البرلمان إن الحكومة ستواصل العمل على الإصلاح"])
    >>> held_out.overlaps("في الجلسة، قال الرئيس في كلمته أمام البرلمان إنّ الحكومة ستواصل العمل.")
    True
    >>> held_out.overlaps("قال الرئيس في كلمته إن العمل مستمر")
    False
    """

    def __init__(self, texts: Iterable[str]):
        self.ngrams: set[int] = set()
        for text in texts:
            for line in text.splitlines():
                self.ngrams.update(self._hashes(dedup_words(line)))

    @staticmethod
    def _hashes(words: Sequence[str]) -> Iterator[int]:
        for i in range(len(words) - OVERLAP_NGRAM + 1):
            yield zlib.crc32(" ".join(words[i : i + OVERLAP_NGRAM]).encode("utf-8"))

    def overlaps(self, line: str) -> bool:
        return any(h in self.ngrams for h in self._hashes(dedup_words(line)))


@dataclass
class CorpusStats:
    files: dict[str, dict]  # path -> lines read, lines kept, sha256
    lines_read: int = 0
    exact_or_near_duplicates: int = 0
    lines_kept: int = 0
    words_kept: int = 0
    eval_lines: int = 0
    held_out_overlap: int = 0  # lines sharing a run of words with --exclude-overlap documents
    near_duplicate_jaccard: float = NEAR_DUPLICATE_JACCARD  # the rules the counts above follow, for the card
    overlap_ngram: int = OVERLAP_NGRAM


def collect_lines(paths: Sequence[str], progress: bool, held_out: HeldOutText | None = None) -> tuple[list[tuple[int, str]], CorpusStats]:
    """Kept lines as ``(file index, line)`` in reading order, and what was read and dropped."""
    from tqdm.auto import tqdm

    keep = NearDuplicateFilter()
    kept: list[tuple[int, str]] = []
    stats = CorpusStats(files={})
    for index, path in enumerate(paths):
        read, overlapping, before = 0, 0, len(kept)
        for line in tqdm(read_lines(path), desc=f"reading {Path(path).name}", unit=" lines", disable=not progress, file=sys.stderr):
            read += 1
            if held_out is not None and held_out.overlaps(line):
                overlapping += 1
            elif keep.is_new(line):
                kept.append((index, line))
        stats.files[path] = {
            "lines_read": read,
            "lines_kept": len(kept) - before,
            "held_out_overlap": overlapping,
            "sha256": file_sha256(path),
        }
        stats.lines_read += read
        stats.held_out_overlap += overlapping
    stats.lines_kept = len(kept)
    stats.exact_or_near_duplicates = stats.lines_read - stats.lines_kept - stats.held_out_overlap
    return kept, stats


# ---------------------------------------------------------------------------------------------
# 4. Sequences


@dataclass
class PackedSequences:
    """Sequences of sub-word ids ([CLS] ... [SEP]) and, per position, its word's number in the
    sequence (-1 for [CLS]/[SEP]); stored flat with offsets so millions of tokens fit in memory."""

    input_ids: np.ndarray  # int32, all sequences concatenated
    word_index: np.ndarray  # int32, same length
    offsets: np.ndarray  # int64, len(sequences) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict:
        start, end = self.offsets[i], self.offsets[i + 1]
        return {"input_ids": self.input_ids[start:end], "word_index": self.word_index[start:end], "index": i}

    def tokens(self) -> int:
        return len(self.input_ids)

    def save(self, path: Path) -> None:
        np.savez(path, input_ids=self.input_ids, word_index=self.word_index, offsets=self.offsets)

    @classmethod
    def load(cls, path: Path) -> PackedSequences:
        with np.load(path) as data:
            return cls(data["input_ids"], data["word_index"], data["offsets"])


def pack_lines(word_ids_per_line: Iterable[tuple[int, list[list[int]]]], max_length: int, cls_id: int, sep_id: int) -> PackedSequences:
    """Pack consecutive lines of the same file into sequences of at most ``max_length`` positions
    ([CLS] and [SEP] included) without cutting a word; a word longer than a whole sequence is
    clipped; a new file starts a new sequence.

    >>> packed = pack_lines([(0, [[5, 6], [7]]), (0, [[8]]), (1, [[9]])], max_length=6, cls_id=1, sep_id=2)
    >>> [packed[i]["input_ids"].tolist() for i in range(len(packed))], packed[0]["word_index"].tolist()
    ([[1, 5, 6, 7, 8, 2], [1, 9, 2]], [-1, 0, 0, 1, 2, -1])
    """
    budget = max_length - 2
    ids: list[int] = []
    words: list[int] = []
    offsets = [0]
    current_ids: list[int] = []
    current_words: list[int] = []
    current_file = None

    def flush() -> None:
        if current_ids:
            ids.extend([cls_id, *current_ids, sep_id])
            words.extend([-1, *current_words, -1])
            offsets.append(len(ids))
            current_ids.clear()
            current_words.clear()

    for file_index, line_word_ids in word_ids_per_line:
        if file_index != current_file:
            flush()
            current_file = file_index
        for pieces in line_word_ids:
            pieces = pieces[:budget]
            if not pieces:
                continue
            if len(current_ids) + len(pieces) > budget:
                flush()
            word_number = (current_words[-1] + 1) if current_words else 0
            current_ids.extend(pieces)
            current_words.extend([word_number] * len(pieces))
    flush()
    return PackedSequences(np.array(ids, dtype=np.int32), np.array(words, dtype=np.int32), np.array(offsets, dtype=np.int64))


def encode_lines(
    lines: Sequence[tuple[int, str]], backend_tokenizer, max_length: int, cls_id: int, sep_id: int, progress: bool
) -> PackedSequences:
    """Segment, sub-word and pack lines (each distinct word is tokenised once)."""
    from tqdm.auto import tqdm

    cache: dict[str, list[int]] = {}

    def line_word_ids() -> Iterator[tuple[int, list[list[int]]]]:
        for file_index, line in tqdm(lines, desc="tokenising", unit=" lines", disable=not progress, file=sys.stderr):
            words = [token.text for token in segment_words(line)]
            new = [word for word in dict.fromkeys(words) if word not in cache]
            cache.update(zip(new, subword_ids_per_word(backend_tokenizer, new), strict=True))
            yield file_index, [cache[word] for word in words]

    return pack_lines(line_word_ids(), max_length, cls_id, sep_id)


# ---------------------------------------------------------------------------------------------
# 5. Whole-word masking


class WholeWordMaskCollator:
    """Pads a batch and masks whole words, drawn anew for every epoch (dynamic masking).

    Per sequence, ``round(mlm_probability x words)`` words (at least one) are chosen; every
    sub-word of a chosen word gets its id as label (-100 elsewhere) and becomes [MASK] with
    probability 0.8, a random non-special token with 0.1, and stays with 0.1. The draws are a
    function of (seed, epoch, sequence index) alone, not of a global random state: an
    interrupted run resumes with exactly the masks it would have drawn (the Trainer restores its
    random state only after fetching the first batch of a resumed epoch). ``MaskingEpoch`` keeps
    ``epoch`` up to date.
    """

    def __init__(self, mask_id: int, pad_id: int, ordinary_ids: Sequence[int], mlm_probability: float = 0.15, seed: int = 0):
        import torch

        self.mask_id, self.pad_id = mask_id, pad_id
        self.ordinary_ids = torch.as_tensor(list(ordinary_ids), dtype=torch.long)
        self.mlm_probability = mlm_probability
        self.seed = seed
        self.epoch = 0

    def _generator(self, index: int):
        import torch

        key = hashlib.blake2b(f"{self.seed}:{self.epoch}:{index}".encode("ascii"), digest_size=8).digest()
        return torch.Generator().manual_seed(int.from_bytes(key, "little") >> 1)

    def __call__(self, examples: Sequence[dict]) -> dict:
        import torch

        from .loss import IGNORED_LABEL

        width = max(len(example["input_ids"]) for example in examples)
        input_ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORED_LABEL, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            ids = torch.as_tensor(np.asarray(example["input_ids"], dtype=np.int64))
            word_index = torch.as_tensor(np.asarray(example["word_index"], dtype=np.int64))
            length = len(ids)
            input_ids[row, :length] = ids
            attention_mask[row, :length] = 1
            words = int(word_index.max()) + 1
            if words <= 0:
                continue
            generator = self._generator(int(example["index"]))
            chosen = torch.zeros(words, dtype=torch.bool)
            chosen[torch.randperm(words, generator=generator)[: max(1, round(self.mlm_probability * words))]] = True
            masked = (word_index >= 0) & chosen[word_index.clamp(min=0)]
            draw = torch.rand(length, generator=generator)
            replacements = self.ordinary_ids[torch.randint(len(self.ordinary_ids), (length,), generator=generator)]
            labels[row, :length][masked] = ids[masked]
            row_ids = input_ids[row, :length]
            row_ids[masked & (draw < 0.8)] = self.mask_id
            random_token = masked & (draw >= 0.8) & (draw < 0.9)
            row_ids[random_token] = replacements[random_token]
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def save_encoder(model, tokenizer, directory: Path, dtype: str) -> None:
    """The encoder as a plain BertForMaskedLM directory (a copy in ``dtype``; training goes on in fp32)."""
    import copy

    import torch

    saved = copy.deepcopy(model).to(torch.float16 if dtype == "float16" else torch.float32)
    if saved.config.model_type == "bert":
        saved.config.architectures = ["BertForMaskedLM"]
    saved.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def snapshot_callback(steps: Sequence[int], directory: Path, tokenizer, dtype: str):
    """A TrainerCallback writing the model at each of ``steps`` into ``directory/step-N`` (when the
    checkpoint of that step is saved, so a resumed run has them too)."""
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_save(self, args, state, control, model=None, **kwargs):
            if state.global_step in steps and state.is_world_process_zero:
                target = directory / f"step-{state.global_step}"
                save_encoder(model, tokenizer, target, dtype)
                evals = [
                    entry["eval_loss"] for entry in state.log_history if "eval_loss" in entry and entry.get("step") == state.global_step
                ]
                record = {"optimizer_steps": state.global_step, "epochs": state.epoch, "eval_loss": evals[-1] if evals else None}
                atomic_write_text(target / "snapshot.json", json_text(record))

    return Snapshots()


def masking_epoch_callback(collator: WholeWordMaskCollator):
    """A TrainerCallback telling the collator which epoch begins (resumed runs included)."""
    from transformers import TrainerCallback

    class MaskingEpoch(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            collator.epoch = math.floor(state.epoch or 0.0)

    return MaskingEpoch()


# ---------------------------------------------------------------------------------------------
# 6. Model and training


def masked_positions_bert(config_or_model):
    """A BertForMaskedLM whose forward applies the prediction head to masked positions only.

    The loss is the usual masked-language-model cross-entropy over the masked positions M:

        L = -1/|M| * sum_{i in M} log softmax(W h_i + b)[x_i]

    with h_i the encoder's output at position i and W the (tied) word-embedding matrix. The
    vocabulary-sized product W h is computed for the ~15% of positions in M only, not for every
    position as ``BertForMaskedLM`` does: the same loss and gradients, about twice the training
    speed on a CPU. The weights are a plain BertForMaskedLM's (saved and loaded as one).
    """
    import torch
    from transformers import BertForMaskedLM
    from transformers.modeling_outputs import MaskedLMOutput

    from .loss import IGNORED_LABEL

    class BertForMaskedPositions(BertForMaskedLM):
        def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if labels is None:
                return MaskedLMOutput(logits=self.cls(hidden))
            selected = labels != IGNORED_LABEL
            logits = self.cls(hidden[selected])
            loss = torch.nn.functional.cross_entropy(logits.float(), labels[selected])
            return MaskedLMOutput(loss=loss)

    if isinstance(config_or_model, BertForMaskedLM):
        model = BertForMaskedPositions(config_or_model.config)
        model.load_state_dict(config_or_model.state_dict())
        return model
    return BertForMaskedPositions(config_or_model)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Masked-language-model pre-training of a BERT encoder.")
    parser.add_argument(
        "--recipe",
        metavar="TOML",
        help="a recipe whose [pretraining] table sets any of the options below (option names with _ for -); options given here override it",
    )
    parser.add_argument("--text", nargs="+", required=True, metavar="FILE", help="text files: .txt, .txt.xz or annotation .jsonl")
    parser.add_argument(
        "--exclude-overlap",
        nargs="+",
        default=[],
        metavar="FILE",
        help=f"documents never to pre-train on (dev sets): text lines sharing a run of {OVERLAP_NGRAM} words with them are held out",
    )
    parser.add_argument("--output", required=True, help="model directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and discard an unfinished run's checkpoints)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the unfinished run left in OUTPUT.partial/ from its last checkpoint"
    )
    model = parser.add_argument_group("model (from scratch unless --base-model)")
    model.add_argument("--base-model", help="continue pre-training this hub id or local directory (its vocabulary and sizes are kept)")
    add_size_arguments(model, PRETRAIN_SIZES, note="from scratch: ", given_only=True)
    model.add_argument(
        "--max-length",
        type=int,
        help=f"sub-words per sequence incl. [CLS]/[SEP]; from scratch also the position limit (default {PRETRAIN_SIZES.max_position_embeddings}; with --base-model, its position limit)",
    )
    # The settings' options default to None, "not given": the recipe's value, else PretrainSettings', applies.
    defaults = PretrainSettings()
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=float, help=f"passes over the sequences (default {defaults.epochs})")
    train.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (overrides --epochs)")
    train.add_argument("--batch-size", type=int, help=f"sequences per device per step (default {defaults.batch_size})")
    train.add_argument("--gradient-accumulation-steps", type=int)
    train.add_argument(
        "--learning-rate", type=float, help=f"peak learning rate (default {defaults.learning_rate}; 1e-4 suits continuing a base model)"
    )
    train.add_argument("--warmup-ratio", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--mlm-probability", type=float, help=f"share of words masked (default {defaults.mlm_probability})")
    train.add_argument(
        "--eval-fraction", type=float, help=f"share of kept lines held out for the eval loss (default {defaults.eval_fraction})"
    )
    train.add_argument("--save-steps", type=int, help=f"checkpoint (and eval) every N steps (default {defaults.save_steps})")
    train.add_argument(
        "--snapshot-steps",
        type=int,
        nargs="+",
        metavar="N",
        help="also write the encoder as it is after N steps, to OUTPUT-stepN (smaller budgets, for comparisons); multiples of --save-steps",
    )
    train.add_argument("--logging-steps", type=int)
    train.add_argument("--precision", choices=PRECISIONS, help=f"auto: bf16 on GPUs and AMX CPUs, else fp32 (default {defaults.precision})")
    train.add_argument(
        "--save-dtype", choices=SAVE_DTYPES, help="weights as saved: float16 halves the directory (training reloads them as float32)"
    )
    train.add_argument("--seed", type=int)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(message, file=sys.stderr, flush=True)


def _check(parser: argparse.ArgumentParser, job: PretrainJob) -> None:
    """Exit through ``parser.error`` on a job that cannot run (settings from a recipe included)."""
    settings = job.settings
    check_size_arguments(parser, settings)
    if settings.max_length is not None and settings.max_length < 8:
        parser.error(f"--max-length must be at least 8, got {settings.max_length}")
    if not 0 < settings.mlm_probability < 1 or not 0 <= settings.eval_fraction < 0.5:
        parser.error("--mlm-probability must be in (0, 1) and --eval-fraction in [0, 0.5)")
    if job.resume and job.overwrite:
        parser.error("--resume continues a run, --overwrite discards it: choose one")
    for option, paths in (("--text", job.text), ("--exclude-overlap", job.exclude_overlap)):
        for path in paths:
            if not Path(path).is_file():
                parser.error(f"{option} {path}: no such file")
    if any(step <= 0 or step % settings.save_steps for step in settings.snapshot_steps):
        parser.error(
            f"--snapshot-steps must be positive multiples of --save-steps {settings.save_steps}, got {list(settings.snapshot_steps)}"
        )
    if job.output.exists() and any(job.output.iterdir()) and not (job.overwrite or job.resume):  # a resumed run replaces it at the end
        parser.error(f"output {job.output} exists and is not empty; pass --overwrite to replace it")
    staging = staging_dir_for(job.output)
    if staging.exists() and not (job.resume or job.overwrite):
        parser.error(f"an unfinished run left {staging}/: pass --resume to continue it, or --overwrite to start again")
    if job.resume and not staging.exists():
        parser.error(f"--resume: no unfinished run in {staging}/")


def prepare_data(job: PretrainJob, staging: Path, base_tokenizer=None):
    """Tokenizer and the packed train/eval sequences (cached in the staging directory, so a
    resumed run does not read and tokenise the text again). A base model brings its tokenizer;
    from scratch, a WordPiece vocabulary is learnt from the training lines. ``job.settings.max_length``
    is resolved (``resolved_max_length``)."""
    from .scratch import train_wordpiece

    settings, progress = job.settings, job.progress
    data_dir = staging / "data"
    fingerprint = {
        "version": DATA_FORMAT_VERSION,
        "files": {path: file_sha256(path) for path in job.text},
        "exclude_overlap": {path: file_sha256(path) for path in job.exclude_overlap},
        "base_model": settings.base_model,
        "vocab_size": settings.vocab_size,
        "max_length": settings.max_length,
        "eval_fraction": settings.eval_fraction,
        "seed": settings.seed,
    }
    cached = data_dir / "fingerprint.json"
    if cached.is_file() and json.loads(cached.read_text(encoding="utf-8")) == fingerprint:
        _log(f"reusing the prepared data in {data_dir}/")
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(data_dir / "tokenizer")
        stats = CorpusStats(**json.loads((data_dir / "corpus.json").read_text(encoding="utf-8")))
        return tokenizer, PackedSequences.load(data_dir / "train.npz"), PackedSequences.load(data_dir / "eval.npz"), stats

    started = time.perf_counter()
    held_out = HeldOutText(line for path in job.exclude_overlap for line in read_lines(path)) if job.exclude_overlap else None
    lines, stats = collect_lines(job.text, progress, held_out)
    if not lines:
        raise TextInputError(f"no text in {', '.join(job.text)}")
    _log(
        f"{stats.lines_read:,} lines read, {stats.exact_or_near_duplicates:,} repeats and near-duplicates removed, "
        f"{stats.held_out_overlap:,} sharing text with --exclude-overlap held out, {stats.lines_kept:,} kept"
    )
    shuffled = list(range(len(lines)))
    random.Random(settings.seed).shuffle(shuffled)
    eval_set = set(shuffled[: int(len(lines) * settings.eval_fraction)])
    train_lines = [line for i, line in enumerate(lines) if i not in eval_set]
    eval_lines = [line for i, line in enumerate(lines) if i in eval_set]
    stats.eval_lines = len(eval_lines)
    stats.words_kept = sum(len(line.split()) for _, line in lines)
    if base_tokenizer is not None:
        tokenizer = base_tokenizer
    else:
        _log(f"learning a WordPiece vocabulary of up to {settings.vocab_size:,} pieces")
        tokenizer = train_wordpiece((line for _, line in train_lines), settings.vocab_size)
    tokenizer.model_max_length = settings.max_length
    backend = tokenizer.backend_tokenizer
    train = encode_lines(train_lines, backend, settings.max_length, tokenizer.cls_token_id, tokenizer.sep_token_id, progress)
    evaluation = encode_lines(eval_lines, backend, settings.max_length, tokenizer.cls_token_id, tokenizer.sep_token_id, progress=False)
    data_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(data_dir / "tokenizer")
    train.save(data_dir / "train.npz")
    evaluation.save(data_dir / "eval.npz")
    atomic_write_text(data_dir / "corpus.json", json_text(asdict(stats)))
    atomic_write_text(cached, json_text(fingerprint))  # last: marks the cache complete
    _log(
        f"prepared {len(train):,} training sequences ({train.tokens():,} sub-words) and {len(evaluation):,} eval sequences in {time.perf_counter() - started:.0f} s"
    )
    return tokenizer, train, evaluation, stats


def build_model(settings: PretrainSettings, tokenizer, base=None):
    """The model to pre-train: the base model, or a fresh BERT of the settings' sizes (``settings.max_length``
    resolved: the position limit)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    if base is not None:
        return masked_positions_bert(base) if isinstance(base, BertForMaskedLM) else base
    sizes = sizes_from_arguments(settings, settings.max_length)
    config = BertConfig(**{**asdict(sizes), "vocab_size": len(tokenizer)}, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(settings.seed)
    return masked_positions_bert(config)


def resolved_max_length(settings: PretrainSettings, base_config=None) -> int:
    """Sub-words per sequence: the setting, within a base model's position limit (its limit when
    unset); from scratch, the setting or ``PRETRAIN_SIZES``' limit."""
    from .data import usable_max_length

    if base_config is not None:
        return usable_max_length(base_config, settings.max_length)
    return settings.max_length or PRETRAIN_SIZES.max_position_embeddings


def pretrain(job: PretrainJob) -> dict | None:
    """Pre-train as ``job`` says into the model directory ``job.output`` (written whole or not at
    all, with its snapshots beside it); returns what pretrain_metrics.json records (None on the other
    processes of a multi-process run). Raises TextInputError on unreadable text, BaseModelError on a
    base model that cannot be loaded."""
    from transformers import Trainer, TrainingArguments

    # A base model is loaded once, first: an unreachable hub fails here, in seconds, before any text is read.
    base = load_pretrained(job.settings.base_model, task="masked-lm") if job.settings.base_model else None
    settings = replace(job.settings, max_length=resolved_max_length(job.settings, base[1].config if base else None))
    job = replace(job, settings=settings)

    staging = staging_dir_for(job.output)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if job.overwrite and staging.exists() and is_main:
        shutil.rmtree(staging)
    device_arguments = trainer_device_arguments(settings.precision)
    training_args = TrainingArguments(
        output_dir=str(staging / "checkpoints"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps if settings.max_steps else -1,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        warmup_steps=float(settings.warmup_ratio),  # a float in [0, 1) is a ratio of all steps
        weight_decay=settings.weight_decay,
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        eval_strategy="steps" if settings.eval_fraction > 0 else "no",
        eval_steps=settings.save_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        prediction_loss_only=True,
        remove_unused_columns=False,  # the collator needs each sequence's word_index and index
        report_to="none",
        disable_tqdm=not job.progress,
        **device_arguments,
    )
    with training_args.main_process_first(local=False, desc="pre-training data"):
        tokenizer, train_sequences, eval_sequences, stats = prepare_data(job, staging, base[0] if base else None)
    model = build_model(settings, tokenizer, base[1] if base else None)
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(len(tokenizer)) if i not in special]
    collator = WholeWordMaskCollator(tokenizer.mask_token_id, tokenizer.pad_token_id, ordinary, settings.mlm_probability, settings.seed)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_sequences,
        eval_dataset=eval_sequences if settings.eval_fraction > 0 and len(eval_sequences) else None,
        data_collator=collator,
        callbacks=[
            masking_epoch_callback(collator),
            snapshot_callback(set(settings.snapshot_steps), staging / "snapshots", tokenizer, settings.save_dtype),
        ],
    )
    resume_from = last_complete_checkpoint(staging / "checkpoints") if job.resume else None
    _log(
        f"pre-training {'from ' + settings.base_model if settings.base_model else 'from scratch'}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{len(train_sequences):,} sequences, precision {'bf16' if device_arguments['bf16'] else 'fp16' if device_arguments['fp16'] else 'fp32'}"
        + (f"; resuming from {resume_from}" if resume_from else "")
    )
    result = trainer.train(resume_from_checkpoint=resume_from)
    final_eval = trainer.evaluate() if trainer.eval_dataset is not None else {}
    if not trainer.is_world_process_zero():
        return None
    work = staging / "model"
    if work.exists():
        shutil.rmtree(work)
    save_encoder(model, tokenizer, work, settings.save_dtype)
    info = run_record(job, model, stats, train_sequences, trainer, result, final_eval)
    atomic_write_text(work / "pretrain_metrics.json", json_text(info))
    atomic_write_text(work / "README.md", pretraining_card(info))
    write_loss_curve(trainer.state.log_history, work / "training_curve.png")
    for step in sorted(settings.snapshot_steps):
        if (staging / "snapshots" / f"step-{step}").is_dir():
            publish_snapshot(staging / "snapshots" / f"step-{step}", job.output, info)
        else:
            _log(f"no snapshot at step {step}: the run ended after {info['optimizer_steps']} steps")
    publish(work, job.output)
    shutil.rmtree(staging, ignore_errors=True)
    return info


def summary_line(output: Path, info: dict) -> str:
    """What the command prints when a run is written."""
    return (
        f"wrote {output}: {info['optimizer_steps']} steps, {info['epochs']:.2f} epochs, final train loss {info['train_loss']:.3f}"
        + (f", eval loss {info['eval_loss']:.3f}" if info.get("eval_loss") else "")
        + f", {info['train_runtime_s'] / 60:.0f} min"
    )


def publish_snapshot(snapshot: Path, output: Path, info: dict) -> None:
    """Move a snapshot beside the output as ``OUTPUT-stepN``, with a card and metrics saying it is
    the same run stopped early."""
    record = json.loads((snapshot / "snapshot.json").read_text(encoding="utf-8"))
    step = record["optimizer_steps"]
    metrics = {
        **info,
        **record,
        "snapshot_of": str(output),
        "train_runtime_s": info["train_runtime_s"] * step / max(1, info["optimizer_steps"]),
        "note": f"the run of {output} after {step} of its {info['optimizer_steps']} steps (its learning rate not yet decayed)",
    }
    (snapshot / "snapshot.json").unlink()
    atomic_write_text(snapshot / "pretrain_metrics.json", json_text(metrics))
    atomic_write_text(snapshot / "README.md", snapshot_card(metrics, info))
    publish(snapshot, output.parent / f"{output.name}-step{step}")


def run_record(job: PretrainJob, model, stats: CorpusStats, train_sequences: PackedSequences, trainer, result, final_eval: dict) -> dict:
    """Everything pretrain_metrics.json and the card say about the run."""
    config, settings = model.config, job.settings
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    return {
        "base_model": settings.base_model or "from scratch",
        "corpus": asdict(stats),
        "sequences": len(train_sequences),
        "subword_tokens": train_sequences.tokens(),
        "sizes": {
            "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads,
            "intermediate_size": config.intermediate_size,
            "max_position_embeddings": config.max_position_embeddings,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "hyperparameters": {
            "max_length": settings.max_length,
            "batch_size": settings.batch_size,
            "gradient_accumulation_steps": settings.gradient_accumulation_steps,
            "processes": trainer.args.world_size,
            "learning_rate": settings.learning_rate,
            "warmup_ratio": settings.warmup_ratio,
            "weight_decay": settings.weight_decay,
            "mlm_probability": settings.mlm_probability,
            "masking": "whole words (serving/text.py segmentation), dynamic",
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
            "device": device_name(),
            "dataloader_workers": trainer.args.dataloader_num_workers,
            "saved_dtype": settings.save_dtype,
            "seed": settings.seed,
        },
        "optimizer_steps": trainer.state.global_step,
        "epochs": float(trainer.state.epoch or 0.0),
        "train_loss": train_losses[-1] if train_losses else float(result.training_loss),
        # From the logged losses, not result.training_loss: a resumed run's covers only its own steps.
        "mean_train_loss": sum(train_losses) / len(train_losses) if train_losses else float(result.training_loss),
        "eval_loss": final_eval.get("eval_loss"),
        "eval_perplexity": math.exp(final_eval["eval_loss"]) if final_eval.get("eval_loss") is not None else None,
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
        "git_commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": job.command,
    }


def write_loss_curve(log_history: Sequence[dict], path: Path) -> None:
    """Training and held-out loss against optimiser steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for key, name in (("loss", "training loss"), ("eval_loss", "held-out loss")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if points:
            axis.plot(*zip(*points, strict=True), marker="." if key == "eval_loss" else None, label=name)
    axis.set(xlabel="optimiser step", ylabel="masked-word cross-entropy", title="pre-training loss")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# What each setting of a [pretraining] table takes: the type of its default, or of its items.
SETTING_KINDS = {name: type(value) for name, value in asdict(PretrainSettings()).items()} | {
    "base_model": str,
    "max_length": int,
    "max_steps": int,
    "snapshot_steps": int,
}
SETTING_CHOICES = {"precision": PRECISIONS, "save_dtype": SAVE_DTYPES}
LIST_SETTINGS = {"snapshot_steps"}


def recipe_settings(path: str | Path) -> dict:
    """The ``[pretraining]`` table of the recipe at ``path``, each value checked against its setting
    (type, choices) and converted to it; errors name the file and the key.

    >>> recipe_settings("training/recipes/e5-continued-pretrain.toml")
    {'max_length': 128, 'batch_size': 256, 'learning_rate': 0.0001, 'max_steps': 3000, 'save_steps': 500, 'seed': 42}
    """
    table = read_recipe_file(path).get("pretraining")
    if not isinstance(table, dict):
        raise RecipeError(f"{path}: expected a [pretraining] table")
    return checked_settings(table, f"{path}: [pretraining]", dict(sorted(SETTING_KINDS.items())), SETTING_CHOICES, lists=LIST_SETTINGS)


def resolve_settings(recipe: str | Path | None = None) -> PretrainSettings:
    """The defaults, then the ``[pretraining]`` table of ``recipe`` (when given)."""
    return replace(PretrainSettings(), **(recipe_settings(recipe) if recipe else {}))


def job_from_args(args: argparse.Namespace, argv: Sequence[str]) -> PretrainJob:
    """The run a parsed command line describes: the defaults, the recipe's ``[pretraining]`` table,
    then the options given (reads and checks the recipe: RecipeError)."""
    given = {setting.name: getattr(args, setting.name) for setting in fields(PretrainSettings) if getattr(args, setting.name) is not None}
    settings = replace(
        resolve_settings(args.recipe), **{name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}
    )
    return PretrainJob(
        tuple(args.text),
        Path(args.output),
        settings,
        tuple(args.exclude_overlap),
        args.resume,
        args.overwrite,
        not args.no_progress,
        tuple(argv),
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        job = job_from_args(args, argv)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _check(parser, job)
    try:
        info = pretrain(job)
    except TextInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if info is not None:
        _log(summary_line(job.output, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())

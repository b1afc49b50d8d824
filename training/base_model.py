"""Loading a base model for fine-tuning or continued pre-training: a hub id or a local directory.

A hub id is looked up in the local Hugging Face cache first; the hub is only contacted when it is
reachable (a quick probe), so an offline machine fails in seconds with one message saying what to
do, never with a deep traceback or a silent fallback to something else. Weights load from
safetensors only, in float32 (a base saved in half precision to stay small trains in full), and
remote code is never run.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_BASE_MODEL = "CAMeL-Lab/bert-base-arabic-camelbert-msa"
HUB_PROBE_TIMEOUT_S = 5.0


class BaseModelError(RuntimeError):
    """The base model cannot be loaded; the message says what to do instead."""


def hub_reachable(endpoint: str, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s`` (name lookup included, which
    ``socket`` timeouts do not bound, hence the thread)."""
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def _unreachable_message(name: str, reason: str) -> str:
    return (
        f"cannot load base model {name!r}: {reason}, and it is not in the local Hugging Face cache.\n"
        f"Pass a local directory instead: on a connected machine run\n"
        f"    hf download {name} --local-dir DIR\n"
        f"copy DIR here and train with --base-model DIR (or use --from-scratch)."
    )


def _load(name: str, task: str, local_files_only: bool):
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, AutoTokenizer

    from serving.schema import BIO_TAGS, ID_TO_TAG, TAG_TO_ID

    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only, trust_remote_code=False)
    common = {"local_files_only": local_files_only, "use_safetensors": True, "trust_remote_code": False, "dtype": torch.float32}
    if task == "masked-lm":
        model = AutoModelForMaskedLM.from_pretrained(name, **common)
    else:
        model = AutoModelForTokenClassification.from_pretrained(
            name,
            **common,
            num_labels=len(BIO_TAGS),
            id2label=dict(ID_TO_TAG),
            label2id=dict(TAG_TO_ID),
            # A base model that already has a classification head of another size gets a fresh one.
            ignore_mismatched_sizes=True,
        )
    return tokenizer, model


def randomly_initialised(name: str, seed: int):
    """The base model's tokenizer and architecture (config) with fresh random weights, as a
    token classifier with our labels: the "no pre-training" arm of a comparison, differing from
    the pre-trained base in its weights alone. Raises BaseModelError."""
    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    from serving.schema import BIO_TAGS, ID_TO_TAG, TAG_TO_ID

    tokenizer, _ = load_pretrained(name)
    config = AutoConfig.from_pretrained(
        name, local_files_only=True, num_labels=len(BIO_TAGS), id2label=dict(ID_TO_TAG), label2id=dict(TAG_TO_ID)
    )
    torch.manual_seed(seed)
    return tokenizer, AutoModelForTokenClassification.from_config(config, dtype=torch.float32)


def load_pretrained(name: str, task: str = "token-classification"):
    """Tokenizer and model (``task``: "token-classification" with our labels, or "masked-lm") from
    a local directory or a hub id. Raises BaseModelError."""
    from huggingface_hub import constants as hub_constants

    if task not in ("token-classification", "masked-lm"):
        raise ValueError(f"unknown task {task!r}")
    is_local = Path(name).is_dir()
    if not is_local and Path(name).exists():
        raise BaseModelError(f"--base-model {name!r} is a file; pass a model directory or a hub id")
    try:
        if is_local:
            tokenizer, model = _load(name, task, local_files_only=True)
        else:
            try:
                tokenizer, model = _load(name, task, local_files_only=True)
            except OSError:
                if hub_constants.HF_HUB_OFFLINE:
                    raise BaseModelError(_unreachable_message(name, "the Hugging Face Hub is disabled (HF_HUB_OFFLINE is set)")) from None
                if not hub_reachable(hub_constants.ENDPOINT):
                    raise BaseModelError(
                        _unreachable_message(name, f"the Hugging Face Hub ({hub_constants.ENDPOINT}) is unreachable")
                    ) from None
                tokenizer, model = _load(name, task, local_files_only=False)
    except BaseModelError:
        raise
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "local directory" if is_local else "hub id"
        raise BaseModelError(f"cannot load base model {name!r} ({where}): {first_line}") from None
    if not tokenizer.is_fast:
        raise BaseModelError(f"base model {name!r} has no fast tokenizer (tokenizer.json); serving needs one")
    return tokenizer, model

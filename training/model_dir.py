"""Writing a model directory so that it is either complete or absent: assembled in a hidden
sibling (same file system, so the final rename is atomic) and renamed into place at the end.

Training, pre-training and export all write this way; training and pre-training also keep their
checkpoints in the staging directory, so an interrupted run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from serving.annotation import atomic_write_text, mode_under_umask

# The sha256 of the text of every document a model trained on: ``training.evaluate`` warns when it
# scores a model on them (in-sample figures). Written by training, carried along by the export.
TRAINED_TEXTS_FILE = "trained_texts.json"


def staging_dir_for(output: Path) -> Path:
    """Where the output is assembled: a hidden sibling, the same path on every DDP process.

    >>> staging_dir_for(Path("models/encoder"))
    PosixPath('models/.encoder.partial')
    """
    return output.parent / f".{output.name}.partial"


def publish(staging: Path, output: Path) -> None:
    """Move the finished staging directory to ``output``, replacing a previous model there.

    Every file and directory in it first gets the mode ``open()``/``mkdir()`` would give under the
    umask: some writers (safetensors, temporary files) leave 0600, which other users could not read.
    """
    file_mode, dir_mode = mode_under_umask(), mode_under_umask(directory=True)
    for path in [staging, *staging.rglob("*")]:
        if not path.is_symlink():
            path.chmod(dir_mode if path.is_dir() else file_mode)
    if output.exists():
        retired = output.parent / f".{output.name}.old-{os.getpid()}"
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)


def last_complete_checkpoint(directory: Path) -> str | None:
    """The latest ``checkpoint-N`` that was written to the end: the Trainer writes its
    ``trainer_state.json`` last, so a run killed while saving leaves a checkpoint without it.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("checkpoint-4", "checkpoint-6"): (root / name).mkdir()
    >>> _ = (root / "checkpoint-4" / "trainer_state.json").write_text("{}")
    >>> Path(last_complete_checkpoint(root)).name
    'checkpoint-4'
    """
    if not directory.is_dir():
        return None
    complete = [
        path for path in directory.glob("checkpoint-*") if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file()
    ]
    return str(max(complete, key=lambda path: int(path.name.split("-")[-1]))) if complete else None


def text_fingerprint(text: str) -> str:
    """The sha256 of a document's text, exactly as it is (offsets index it).

    >>> text_fingerprint("موسكو")[:12]
    'ce32762543c8'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_trained_texts(directory: Path, texts: Iterable[str]) -> None:
    atomic_write_text(directory / TRAINED_TEXTS_FILE, json.dumps({"sha256": sorted({text_fingerprint(t) for t in texts})}, indent=0) + "\n")


def trained_texts(directory: Path) -> frozenset[str] | None:
    """The fingerprints of the texts the model in ``directory`` trained on; None where it does not
    record them (a model trained before they were recorded, or not by ``training.train``)."""
    path = directory / TRAINED_TEXTS_FILE
    if not path.is_file():
        return None
    try:
        return frozenset(json.loads(path.read_text(encoding="utf-8"))["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a list of text fingerprints ({exc})") from None

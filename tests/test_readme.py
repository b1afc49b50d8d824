"""README.md as a newcomer runs it, after the set-up it describes (`make test` or `make install-dev`, then
`source .venv/bin/activate`): every command in a fenced block or an inline code span is checked.

* `arabic-ner SUB ...` and `python -m MODULE ...` (also as what `ray job submit ... --` runs): `--help`
  runs, and lists every option the command uses;
* `python -c CODE`: the code compiles and every module it imports is installed;
* `make TARGET`: the Makefile has the target;
* every repository path a command or a link names exists;
* the quick commands run, in a scratch directory holding the repository's data, and print every line
  the README shows under them ("..." stands for lines left out): validate, stats, convert, and tag and
  evaluate with the shipped model; the Python example; the curl examples against a real
  `arabic-ner serve` of `models/default`.

A command of a kind this file does not know how to check fails the test: the README may only show
what is checked here (`make check-readme`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import httpx
import pytest

from tests.service_fixtures import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent
# Programs that are not ours: present on a set-up machine, not run here (they need Docker, a GPU, the
# hub or a server with another configuration).
EXTERNAL = {"bentoml", "docker", "torchrun", "hf", "source"}
SHELL_BUILTINS = {"printf", "echo"}
QUICK_SUBCOMMANDS = {"validate", "stats", "tag", "evaluate", "convert"}
REPO_PATH = re.compile(r"^(annotations|seeds|tests|training|serving|benchmarks|docs|models/default|models/arabic-bert-small)(/|$)")


class Command:
    def __init__(self, line: str, output: list[str], where: str) -> None:
        self.line, self.output, self.where = line, output, where
        self.segments = [shlex.split(part, comments=True) for part in re.split(r"\s\|\s", line)]

    def __repr__(self) -> str:
        return f"{self.where}: {self.line}"


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of each fenced block."""
    return [(m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def readme_commands() -> list[Command]:
    commands: list[Command] = []
    for language, body, line_number in fenced_blocks(README):
        if language not in ("", "bash"):
            continue
        lines = body.replace("\\\n", " ").splitlines()
        for index, line in enumerate(lines):
            where = f"README.md:{line_number + index + 1}"
            if language == "":  # a console transcript: "$ command", then its output
                if line.startswith("$ "):
                    output = []
                    for following in lines[index + 1 :]:
                        if following.startswith("$ "):
                            break
                        output.append(following)
                    commands.append(Command(line[2:], output, where))
            elif line.strip() and not line.lstrip().startswith("#"):
                commands.append(Command(line, [], where))
    for match in re.finditer(r"`((?:arabic-ner|make|python -m) [^`]+)`", README):
        commands.append(Command(match.group(1), [], f"README.md:{README[: match.start()].count(chr(10)) + 1} (inline)"))
    return commands


COMMANDS = readme_commands()


def program_and_args(tokens: list[str]) -> tuple[str, list[str]]:
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    return tokens[0], tokens[1:]


@cache
def help_text(program: str, target: str | None = None) -> str:
    """What ``arabic-ner [TARGET] --help`` or ``python -m TARGET --help`` prints, run in this process:
    the training stack is imported once, not once per command (tests/test_cli.py runs the installed
    ``arabic-ner`` itself)."""
    from serving import cli

    argv = [target, "--help"] if target else ["--help"]
    run = (lambda: cli.main(argv)) if program == "arabic-ner" else (lambda: importlib.import_module(target).main(["--help"]))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            status = run()
        except SystemExit as exit_:  # argparse's --help exits; serving.bulk's main returns its status
            status = exit_.code
    assert status in (0, None), f"{program} {target or ''} --help exited with {status}"
    return printed.getvalue()


def shell_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "BENTOML_DO_NOT_TRACK": "true"}


def makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", makefile, re.M))


def check_options(command: Command, args: list[str], help_output: str) -> None:
    for arg in args:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert re.search(rf"{re.escape(option)}\b", help_output), f"{command}: {option} is not an option of it"


def check_python_code(command: Command, code: str) -> None:
    tree = ast.parse(code, command.where)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    missing = sorted(name for name in imported if importlib.util.find_spec(name) is None)
    assert not missing, f"{command}: imports {', '.join(missing)}, which the set-up does not install"


def test_the_readme_has_commands_to_check():
    kinds = {program_and_args(list(segment))[0] for command in COMMANDS for segment in command.segments}
    assert {"arabic-ner", "make", "curl"} <= kinds and len(COMMANDS) > 20


@pytest.mark.parametrize("command", COMMANDS, ids=repr)
def test_each_command_parses_and_names_what_exists(command):
    for segment in command.segments:
        program, args = program_and_args(list(segment))
        if program == "arabic-ner":
            if args[0].startswith("-"):
                help_text("arabic-ner")
            else:
                check_options(command, args[1:], help_text("arabic-ner", args[0]))
        elif program == "python" and args[:1] == ["-m"]:
            check_options(command, args[2:], help_text("python -m", args[1]))
        elif program == "python" and args[:1] == ["-c"]:
            check_python_code(command, args[1])
        elif program == "ray" and args[:2] == ["job", "submit"] and "--" in args:  # needs a cluster: its entry point is checked
            inner = args[args.index("--") + 1 :]
            assert inner[:2] == ["python", "-m"], f"{command}: ray job submit runs {inner[:2]}, not one of our modules"
            check_options(command, inner[3:], help_text("python -m", inner[2]))
        elif program == "make":
            targets = [arg for arg in args if "=" not in arg]
            assert set(targets) <= makefile_targets(), f"{command}: no make target {set(targets) - makefile_targets()}"
        elif program == "curl":  # one form throughout; run against a real server below
            assert args[1].startswith("localhost:3000/") and "-H 'Content-Type: application/json'" in command.line, (
                f"{command}: not the README's curl form"
            )
        elif program not in EXTERNAL | SHELL_BUILTINS:
            pytest.fail(f"{command}: {program!r} is a kind of command this checker does not know")
        for arg in args:
            if REPO_PATH.match(arg) and "{" not in arg:
                # an input that exists, or an output written into a directory that does
                assert list(ROOT.glob(arg)) or (ROOT / arg).parent.is_dir(), f"{command}: {arg} does not exist"


def test_links_point_at_files_that_exist():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A directory where the README's relative paths resolve, without writing into the checkout."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("annotations", "seeds", "models", "tests"):
        (root / name).symlink_to(ROOT / name)
    return root


def quick(command: Command) -> bool:
    """Our data-only subcommands in a block (export.json stands for the user's Label Studio export)."""
    programs = [program_and_args(list(segment)) for segment in command.segments]
    ours = all(program in SHELL_BUILTINS or (program == "arabic-ner" and args[0] in QUICK_SUBCOMMANDS) for program, args in programs)
    return ours and not command.where.endswith("(inline)") and "export.json" not in command.line


QUICK = [command for command in COMMANDS if quick(command)]


def test_the_quick_commands_run_and_print_what_the_readme_shows(scratch):
    assert len(QUICK) >= 8, QUICK
    for command in QUICK:
        result = subprocess.run(command.line, shell=True, cwd=scratch, capture_output=True, text=True, timeout=600, env=shell_env())
        assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr[-3000:]}"
        printed = set((result.stdout + result.stderr).splitlines())
        for line in command.output:
            assert not line.strip() or line == "..." or line in printed, (
                f"{command}: the README shows {line!r}; it printed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )


def test_the_python_example_gives_the_entities_it_shows(scratch):
    [body] = [body for language, body, _ in fenced_blocks(README) if language == "python"]
    shown = " ".join(line.lstrip("# ").strip() for line in body.splitlines() if line.startswith("# "))
    code = body + "\nprint(repr(entities))\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=scratch, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert " ".join(result.stdout.split()) == " ".join(shown.split())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_examples_answer_as_shown(tmp_path):
    """Against `arabic-ner serve` of the shipped model (the key example needs a key: its form is checked above)."""
    examples = [c for c in COMMANDS if c.segments[0][0] == "curl" and c.output and "Authorization" not in c.line]
    assert len(examples) >= 3
    serve = [str(BIN / "arabic-ner"), "serve"]
    with ServiceProcess(ROOT / "models" / "default", tmp_path / "service.log", {"NER_API_KEY": ""}, command=serve) as server:
        for command in examples:
            line = command.line.replace("localhost:3000", server.url)
            result = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, f"{command}: {result.stderr}"
            assert json.loads(result.stdout) == json.loads(command.output[0]), f"{command}: got {result.stdout}\n{server.log_tail()}"
        assert httpx.get(f"{server.url}/readyz").status_code == 200

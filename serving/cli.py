"""``arabic-ner``: one command for the whole loop, each subcommand the options of its module.

    arabic-ner tag --model models/default article.txt        # = python -m serving.tag ...
    arabic-ner train --data annotations/seeds.jsonl ...      # = python -m training.train ...
    arabic-ner serve --model models/default --port 3000      # bentoml serve serving.service:NERService

The arguments after the subcommand go to the module's own ``main`` unchanged, with the program
name ``arabic-ner SUB`` for its usage line, so ``arabic-ner SUB --help`` prints that module's options. Modules are imported only when their
subcommand runs: a serving-only install (the ``serve`` extra) runs ``tag`` and ``serve``, and says
which extra to install for the others; nothing here imports torch, transformers or training at
import time (serving/ never does).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple, NoReturn


class Subcommand(NamedTuple):
    module: str
    extra: str  # the pyproject extra that installs what the module imports
    summary: str
    function: str = "main"  # the module's ``function(argv, prog) -> int`` runs the subcommand, named ``prog``


SUBCOMMANDS: dict[str, Subcommand] = {
    "tag": Subcommand("serving.tag", "serve", "tag .txt/.jsonl files or standard input with an exported model (no server)"),
    "serve": Subcommand("serving.cli", "serve", "serve a model over HTTP: bentoml serve serving.service:NERService", "serve"),
    "bulk": Subcommand("serving.bulk", "bulk", "tag an archive of files in parallel with Ray Data"),
    "validate": Subcommand("training.validate", "train", "check annotation files: offsets, labels, word boundaries"),
    "stats": Subcommand("training.stats", "train", "count mentions per label and document; compare two annotation passes"),
    "convert": Subcommand("training.convert", "train", "convert between JSONL, CoNLL, Label Studio and doccano (label maps for corpora)"),
    "train": Subcommand("training.train", "train", "fine-tune a BERT token classifier (dev sets, cross-validation, recipes)"),
    "evaluate": Subcommand("training.evaluate", "train", "score a model on annotated data: seqeval report and errors"),
    "export": Subcommand("training.export", "train", "export a trained model to an ONNX runtime directory (int8 by default)"),
    "pretrain": Subcommand("training.pretrain", "train", "pre-train a BERT encoder on your text (masked language modelling)"),
}
PACKAGE_DIRS = ("serving", "training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arabic-ner",
        description="Arabic named-entity recognition: annotate, train, evaluate, export, tag and serve.",
        epilog="Each subcommand takes its module's options: arabic-ner SUBCOMMAND --help.",
    )
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for name, command in SUBCOMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    return parser


def serve_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=SUBCOMMANDS["serve"].summary)
    parser.add_argument(
        "--model",
        default=os.environ.get("NER_MODEL_DIR", "models/default"),
        help="exported model directory (sets NER_MODEL_DIR; default %(default)s)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=3000, help="port (default %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """As the entry point runs it; ``serve`` ends by replacing this process with BentoML's server."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # --help, or an error naming the subcommands
    name, rest = argv[0], argv[1:]
    command = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in PACKAGE_DIRS and exc.name != command.module:
            raise  # a module of ours is missing: a broken checkout, not a missing extra
        print(
            f"arabic-ner {name}: {command.module} cannot be imported ({exc}). "
            f"install the [{command.extra}] extra: pip install -e '.[{command.extra}]'",
            file=sys.stderr,
        )
        return 2
    return getattr(module, command.function)(rest, prog=f"arabic-ner {name}")


def serve(argv: Sequence[str], prog: str) -> NoReturn:
    """``arabic-ner serve``: this process becomes ``bentoml serve`` (it does not return)."""
    args = serve_parser(prog).parse_args(argv)
    os.environ["NER_MODEL_DIR"] = args.model
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:NERService", "--host", args.host, "--port", str(args.port)]
    os.execv(sys.executable, command)  # the service reads NER_MODEL_DIR and stops at once, naming it, if it holds no model


if __name__ == "__main__":
    sys.exit(main())

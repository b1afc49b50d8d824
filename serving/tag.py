"""Tag documents with an exported model: ``python -m serving.tag --model DIR [FILE...]``.

Inputs: ``.txt`` files (one document each, id = file stem), ``.jsonl`` files in the annotation
format (their texts are re-tagged, their spans ignored), or standard input when no file is given
(JSONL when every line is an object with a "text" field, else one plain-text document "stdin").

Outputs (stdout, or ``--output FILE``):

* ``jsonl`` (default): ``{"id", "text", "spans": [{"start", "end", "label", "text", "score"}]}``
  per line, valid for ``python -m training.validate``;
* ``labelstudio``: a JSON list of Label Studio tasks with the entities as ``predictions``
  (pre-annotations; offsets in UTF-16 code units as Label Studio counts them);
* ``conll``: ``word TAG`` lines, one block per sentence.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .annotation import AnnotationFormatError, Document, atomic_write_text, parse_document, read_documents
from .conll import document_to_conll
from .interchange import to_label_studio_task
from .spans import Span
from .tagger import DEFAULT_MAX_BATCH_SIZE, Entity, ModelDirError, Tagger

FORMATS = ("jsonl", "labelstudio", "conll")
# Documents per Tagger call: enough windows to fill batches, few enough for a smooth progress bar.
DOCUMENTS_PER_CALL = 16
SCORE_DECIMALS = 4

PROG = "python -m serving.tag"  # the name in its usage line (arabic-ner passes its own)


def read_input_file(path: Path) -> list[Document]:
    """Documents of one input file: a .jsonl annotation file, or any other file as one text."""
    if path.suffix == ".jsonl":
        return read_documents(path)
    return [Document(path.stem, path.read_text(encoding="utf-8"))]


def read_stdin_documents(content: str) -> list[Document]:
    """JSONL documents when every non-blank line is a JSON object with a "text" field, else the
    whole input as one document with id "stdin".

    >>> [d.id for d in read_stdin_documents('{"id": "a", "text": "زار موسكو"}\\n')]
    ['a']
    >>> read_stdin_documents("زار موسكو {مساء}").pop().id
    'stdin'
    """
    lines = [(number, line) for number, line in enumerate(content.splitlines(), start=1) if line.strip()]
    if lines and all(_is_document_line(line) for _, line in lines):
        documents = []
        for number, line in lines:
            document = parse_document(line, f"<stdin>:{number}")
            document.line = number
            documents.append(document)
        return documents
    return [Document("stdin", content)]


def _is_document_line(line: str) -> bool:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "text" in value


def tag_documents(tagger: Tagger, documents: Sequence[Document], progress: bool | None = None) -> Iterator[tuple[Document, list[Entity]]]:
    """Each document with its entities, in input order, tagging a few documents per call.

    ``progress``: True shows a bar on stderr, False hides it, None shows it when stderr is a terminal.
    """
    from tqdm.auto import tqdm

    with tqdm(total=len(documents), desc="tagging", unit="doc", disable=None if progress is None else not progress, file=sys.stderr) as bar:
        for first in range(0, len(documents), DOCUMENTS_PER_CALL):
            chunk = documents[first : first + DOCUMENTS_PER_CALL]
            yield from zip(chunk, tagger.tag([document.text for document in chunk]), strict=True)
            bar.update(len(chunk))


def as_jsonl_line(document: Document, entities: Sequence[Entity]) -> str:
    spans = [{"start": e.start, "end": e.end, "label": e.label, "text": e.text, "score": round(e.score, SCORE_DECIMALS)} for e in entities]
    return json.dumps({"id": document.id, "text": document.text, "spans": spans}, ensure_ascii=False) + "\n"


def as_document(document: Document, entities: Sequence[Entity]) -> Document:
    return Document(document.id, document.text, [Span(e.start, e.end, e.label, e.text) for e in entities])


def render(results: Iterable[tuple[Document, list[Entity]]], output_format: str, model_version: str) -> str:
    """All results in one output format."""
    if output_format == "jsonl":
        return "".join(as_jsonl_line(document, entities) for document, entities in results)
    if output_format == "labelstudio":
        tasks = [
            # Entities come in text order, which is the sorted span order the task builder pairs scores with.
            to_label_studio_task(as_document(document, entities), [round(e.score, SCORE_DECIMALS) for e in entities], model_version)
            for document, entities in results
        ]
        return json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"
    return "\n".join(document_to_conll(as_document(document, entities)) for document, entities in results)


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help=".txt or .jsonl files (default: standard input)")
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="runtime directory from python -m training.export")
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="output format (default: jsonl)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write here (atomically) instead of standard output")
    parser.add_argument("--threads", type=positive_int, help="ONNX Runtime intra-op threads (default: the cores available)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_MAX_BATCH_SIZE, help=f"windows per model run (default: {DEFAULT_MAX_BATCH_SIZE})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    # Arabic text in and out whatever the terminal's locale says.
    for stream in (sys.stdin, sys.stdout):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(encoding="utf-8")
    try:
        tagger = Tagger.load(args.model, intra_op_num_threads=args.threads, max_batch_size=args.batch_size)
        documents = [d for path in args.files for d in read_input_file(path)] if args.files else read_stdin_documents(sys.stdin.read())
    except (ModelDirError, AnnotationFormatError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results = list(tag_documents(tagger, documents, progress=False if args.no_progress else None))
    content = render(results, args.format, tagger.name)
    if args.output:
        atomic_write_text(args.output, content)
    else:
        sys.stdout.write(content)
    print(f"tagged {len(results)} document(s), {sum(len(e) for _, e in results)} entities", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

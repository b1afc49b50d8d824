"""Convert annotations between our JSONL and the tools users annotate with.

    python -m training.convert --from labelstudio --to jsonl export.json annotations/new.jsonl
    python -m training.convert --from jsonl --to labelstudio annotations/seeds.jsonl tasks.json
    python -m training.convert --from jsonl --to doccano annotations/seeds.jsonl seeds.doccano.jsonl
    python -m training.convert --from doccano --to jsonl doccano-export.jsonl annotations/new.jsonl
    python -m training.convert --from jsonl --to conll annotations/seeds.jsonl seeds.conll

Imports are validated like any annotation file (word boundaries, labels, overlaps), and the
output is written only when the input is clean, so a bad export never half-lands in annotations/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.annotation import AnnotationFormatError, Document, atomic_write_text, read_documents, validate_documents, write_documents
from serving.conll import write_conll
from serving.interchange import from_doccano, from_label_studio, to_doccano, to_label_studio

FORMATS = ("jsonl", "labelstudio", "doccano", "conll")


def read_any(path: str, fmt: str, use_predictions: bool = False) -> list[Document]:
    """Read documents from ``path`` in ``fmt`` (jsonl, labelstudio or doccano)."""
    if fmt == "jsonl":
        return read_documents(path)
    if fmt == "labelstudio":
        try:
            tasks = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AnnotationFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        documents = from_label_studio(tasks, path, use_predictions)
    elif fmt == "doccano":
        documents = []
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnnotationFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            documents.append(from_doccano(record, f"{path}:{number}"))
    else:
        raise ValueError(f"cannot read format {fmt!r}; readable: jsonl, labelstudio, doccano")
    for number, document in enumerate(documents, start=1):
        document.line = number  # task or record number, for the validator's messages
    return documents


def write_any(path: str, fmt: str, documents: list[Document]) -> None:
    if fmt == "jsonl":
        write_documents(path, documents)
    elif fmt == "labelstudio":
        atomic_write_text(path, json.dumps(to_label_studio(documents), ensure_ascii=False, indent=1) + "\n")
    elif fmt == "doccano":
        atomic_write_text(path, "".join(json.dumps(to_doccano(d), ensure_ascii=False) + "\n" for d in documents))
    elif fmt == "conll":
        write_conll(path, documents)
    else:
        raise ValueError(f"cannot write format {fmt!r}; writable: {', '.join(FORMATS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source_format", choices=FORMATS[:3], required=True)
    parser.add_argument("--to", dest="target_format", choices=FORMATS, required=True)
    parser.add_argument("--use-predictions", action="store_true", help="Label Studio: take predictions, not annotations")
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args(argv)
    try:
        documents = read_any(args.input, args.source_format, args.use_predictions)
    except (AnnotationFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problems = validate_documents(args.input, documents)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} problem(s); nothing written to {args.output}", file=sys.stderr)
        return 1
    write_any(args.output, args.target_format, documents)
    spans = sum(len(d.spans) for d in documents)
    print(f"wrote {len(documents)} document(s), {spans} span(s) to {args.output} ({args.target_format})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

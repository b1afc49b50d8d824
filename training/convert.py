"""Convert annotations between our JSONL, the tools users annotate with, and CoNLL-style corpora.

    python -m training.convert --from conll --label-map annotations/label_maps/anercorp.toml \
        annotations/corpora/anercorp/ANERCorp_CamelLab_train.txt runs/corpora/anercorp.jsonl
    python -m training.convert --from labelstudio --to jsonl export.json annotations/new.jsonl
    python -m training.convert --from jsonl --to labelstudio annotations/seeds.jsonl tasks.json
    python -m training.convert --from jsonl --to doccano annotations/seeds.jsonl seeds.doccano.jsonl
    python -m training.convert --from doccano --to jsonl doccano-export.jsonl annotations/new.jsonl
    python -m training.convert --from jsonl --to conll annotations/seeds.jsonl seeds.conll

Imports are validated like any annotation file (word boundaries, labels, overlaps), and the
output is written only when the input is clean, so a bad export never half-lands in annotations/.

``--from conll`` reads one or more CoNLL-style files (any token and tag columns, nested levels,
BOM, CRLF, invisible marks, segment markers) through a label map (``training/label_maps.py``:
native tags -> our labels, label sets or nothing, plus the corpus's layout and quirks), rebuilds
each document's text with exact offsets and ends with a summary of what was kept, trimmed and
dropped, and why (``training/corpus_import.py``). Without ``--label-map`` the tags must already be
our labels. Command-line layout flags override the map's ``[reader]`` table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from serving.annotation import (
    AnnotationFormatError,
    Document,
    InvalidDataError,
    Problem,
    atomic_write_text,
    read_documents,
    validate_documents,
    write_documents,
)
from serving.conll import write_conll
from serving.interchange import from_doccano, from_label_studio, to_doccano, to_label_studio

from .corpus_import import ConversionError, import_conll
from .label_maps import SCHEMES, SEPARATORS, LabelMapError, identity_map, load_label_map, with_reader_overrides

FORMATS = ("jsonl", "labelstudio", "doccano", "conll")

PROG = "python -m training.convert"  # the name in its usage line (arabic-ner passes its own)


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


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source_format", choices=FORMATS, required=True)
    parser.add_argument("--to", dest="target_format", choices=FORMATS, default="jsonl", help="(default %(default)s)")
    parser.add_argument("--use-predictions", action="store_true", help="Label Studio: take predictions, not annotations")
    parser.add_argument(
        "paths", nargs="+", metavar="INPUT... OUTPUT", help="input file(s) (several only with --from conll), then the output file"
    )
    conll = parser.add_argument_group("--from conll (flags override the label map's [reader] table)")
    conll.add_argument("--label-map", help="TOML label map: native tags -> our labels, coverage, layout (see annotations/label_maps/)")
    conll.add_argument("--source", help="without --label-map: the corpus name recorded in each document (default: conll)")
    conll.add_argument("--token-column", type=int, help="0-based column of the token (default 0)")
    conll.add_argument("--tag-column", type=int, help="0-based column of the tag, -1 for the last (default -1)")
    conll.add_argument("--level", type=int, help="nested files: which level, 0 = outermost (column tag-column + level)")
    conll.add_argument("--separator", choices=sorted(SEPARATORS), help="column separator (default whitespace)")
    conll.add_argument("--scheme", choices=SCHEMES, help="tagging scheme; in iob2, I- tags that open an entity are reported")
    conll.add_argument("--segment-marker", help="a token that ends a segment, such as Wojood's $#$")
    conll.add_argument("--document-sentences", type=int, help="consecutive sentences per document (0: one document per file)")
    return parser


@dataclass(frozen=True)
class ReaderOverrides:
    """``--from conll`` layout settings that replace the label map's ``[reader]`` table (None: the map's)."""

    token_column: int | None = None
    tag_column: int | None = None
    level: int | None = None
    separator: str | None = None  # a key of label_maps.SEPARATORS
    scheme: str | None = None
    segment_marker: str | None = None
    document_sentences: int | None = None


@dataclass(frozen=True)
class ConvertJob:
    """One conversion: what ``python -m training.convert`` parses its command line into.
    ``convert(job)`` runs it."""

    inputs: tuple[str, ...]  # several only from conll
    output: str
    source_format: str
    target_format: str = "jsonl"
    use_predictions: bool = False  # Label Studio: predictions, not annotations
    label_map: str | None = None  # from conll: the corpus's label map (None: the tags are our labels)
    source: str | None = None  # from conll without a label map: the corpus name recorded (None: conll)
    reader: ReaderOverrides = field(default_factory=ReaderOverrides)


def read_conll_corpus(job: ConvertJob) -> list[Document]:
    """Documents of CoNLL input files through the label map, with the summary printed."""
    label_map = load_label_map(job.label_map) if job.label_map else identity_map(job.source or "conll")
    documents, summary = import_conll(list(job.inputs), with_reader_overrides(label_map, **asdict(job.reader)))
    print(summary.render(), file=sys.stderr)
    return documents


def conversion_problems(job: ConvertJob, documents: list[Document]) -> list[Problem]:
    """What validation finds in the converted documents; a converted corpus's are named by document
    (its id says which input file it came from)."""
    if job.source_format != "conll":
        return validate_documents(job.inputs[0], documents)
    where = job.inputs[0] if len(job.inputs) == 1 else "converted input"
    return [problem for d in documents for problem in validate_documents(f"{where}: document {d.id}", [d])]


def convert(job: ConvertJob) -> list[Document]:
    """Read ``job.inputs``, validate the documents and write them to ``job.output``, only when clean;
    returns them. Raises AnnotationFormatError, ConversionError or LabelMapError on input that
    cannot be read as its format says, InvalidDataError listing what validation found, OSError."""
    documents = read_conll_corpus(job) if job.source_format == "conll" else read_any(job.inputs[0], job.source_format, job.use_predictions)
    problems = conversion_problems(job, documents)
    if problems:
        raise InvalidDataError(job.inputs[0], problems)
    write_any(job.output, job.target_format, documents)
    return documents


def job_from_args(args: argparse.Namespace) -> ConvertJob:
    """The conversion a parsed command line describes."""
    *inputs, output = args.paths
    reader = ReaderOverrides(**{setting.name: getattr(args, setting.name) for setting in fields(ReaderOverrides)})
    return ConvertJob(
        tuple(inputs), output, args.source_format, args.target_format, args.use_predictions, args.label_map, args.source, reader
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give the input file(s), then the output file")
    job = job_from_args(args)
    if len(job.inputs) > 1 and job.source_format != "conll":
        parser.error(f"--from {job.source_format} reads one input file, got {len(job.inputs)}")
    if job.reader.document_sentences is not None and job.reader.document_sentences < 0:
        parser.error("--document-sentences must not be negative")
    try:
        documents = convert(job)
    except (AnnotationFormatError, ConversionError, LabelMapError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"nothing written to {job.output}", file=sys.stderr)
        return 1
    except InvalidDataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing written to {job.output}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    spans = sum(len(d.spans) for d in documents)
    print(f"wrote {len(documents)} document(s), {spans} span(s) to {job.output} ({job.target_format})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

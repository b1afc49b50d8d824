"""Score a trained model on annotated text, entity by entity (seqeval).

    python -m training.evaluate --model models/default --data annotations/seeds.jsonl
    python -m training.evaluate --model models/default-onnx --data test.conll --format conll --label-map conll4
    python -m training.evaluate --model models/default --data ANERCorp_test.txt --format conll \
        --label-map annotations/label_maps/anercorp.toml

``--model`` is a PyTorch Hugging Face model directory, or an exported ONNX directory (one holding
``model.onnx``), which is then run through the serving runtime (``serving.Tagger``). A PyTorch
model predicts through ``training.predict.WordPredictor``: the serving runtime's segmentation,
windows and first-sub-word decision.

Scores are computed over one tag sequence per document, on words as ``serving/text.py`` segments
them. The default matching is seqeval's (an I- tag after O opens an entity, as conlleval does);
``--strict`` uses seqeval's strict mode with the IOB2 scheme (only well-formed B-I... runs count).

Gold data that does not annotate every label (converted corpora: the ``annotated`` field and label
sets such as "GPE|LOC|FAC", see ``serving/annotation.py``) is scored on what it annotates
(``training/scoring.py``): a prediction of a label the source never marks is no false positive,
and a predicted GPE where the gold says "GPE|LOC|FAC" is right. Documents of several sources are
scored each on its own coverage; the report pools them and ``report.json`` has one per source.

``--label-map`` is either a label map file (TOML, ``annotations/label_maps/``) for CoNLL gold in
another scheme, converted as ``training.convert --from conll`` converts it, or the built-in
``conll4``, which renames labels on both sides before scoring: PERS -> PER; ORG -> ORG;
GPE, LOC, FAC -> LOC; NORP, EVENT -> MISC; OCC, DATE -> O (dropped). The gold side may already use
PER/ORG/LOC/MISC (kept as they are). A label set is renamed member by member (ANERcorp's
"GPE|LOC|FAC" -> LOC, AQMAR's "PERS|NORP" -> "PER|MISC"), after each source's tags are reduced to
what it annotates, so that the converted corpora's dev sets score in the benchmark's classes:
``--data runs/splits/anercorp.dev.jsonl --label-map conll4``.

Outputs, in ``--output-dir`` (default ``runs/eval/MODEL-DATA``): ``report.txt`` (the printed
classification report), ``report.json`` (the same numbers: per-label precision/recall/F1/support
and micro, macro and weighted averages) and ``errors.tsv``: every false-positive (FP) and
false-negative (FN) entity, with 40 characters of context on each side and the gold and predicted
labels of what overlaps it (``O`` when nothing does).

``--decoding`` measures what the decoder contributes: ``model`` (the default) decides as served,
Viterbi with the model's tag-transition prior (``serving/decoding.py``); ``constraints`` drops the
prior and keeps only the IOB2 constraints; ``argmax`` takes each word's most probable tag alone
(the decision before ``serving.decoding`` existed). The model's outputs are the same in all three.
Several ``--data`` files (say every source's dev split) are scored together, each source on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from serving.annotation import Document, atomic_write_text, read_documents, validate_file
from serving.conll import ConllFormatError, conll_sentences_to_document, read_conll
from serving.schema import ENTITY_LABELS, LABEL_SET_SEPARATOR, OUTSIDE
from serving.spans import Span, SpanAlignmentError, spans_to_tags, tag_ranges
from serving.text import Token, segment_words
from serving.word_reader import DECODINGS

from .corpus_import import ConversionError, import_conll
from .label_maps import LabelMapError, load_label_map
from .model_dir import text_fingerprint, trained_texts
from .scoring import entity_report, entity_set, gold_tags, report_text, reports_by_source, scored_documents

ERROR_CONTEXT_CHARS = 40

LABEL_MAPS: dict[str, dict[str, str | None]] = {
    "conll4": {
        "PERS": "PER",
        "PER": "PER",
        "ORG": "ORG",
        "GPE": "LOC",
        "LOC": "LOC",
        "FAC": "LOC",
        "NORP": "MISC",
        "EVENT": "MISC",
        "MISC": "MISC",
        "OCC": None,
        "DATE": None,
    },
}

PROG = "python -m training.evaluate"  # the name in its usage line (arabic-ner passes its own)


class EvaluationError(ValueError):
    """Input that cannot be evaluated (unreadable gold data, unmapped labels, misaligned spans)."""


@dataclass(frozen=True)
class EvaluationJob:
    """One scoring run: what ``python -m training.evaluate`` parses its command line into.
    ``evaluate(job)`` runs it."""

    model: str  # a PyTorch model directory, or an ONNX export (model.onnx)
    data: tuple[str, ...]  # gold data files
    format: str = "jsonl"  # or conll
    label_map: str | None = None  # a label map file (CoNLL gold), or a built-in renaming (LABEL_MAPS)
    strict: bool = False  # seqeval strict mode, IOB2 scheme
    decoding: str = "model"  # serving.word_reader.DECODINGS
    output_dir: Path | None = None  # None: runs/eval/MODEL-DATA


# ---------------------------------------------------------------------------------------------
# Gold data and label maps


def map_label(label: str, mapping: dict[str, str | None], side: str) -> str | None:
    """A label renamed by ``mapping`` (None: dropped). A label set (a source's merged class) is
    renamed member by member: the set of its members' new names, or None when the map drops them all.

    >>> map_label("GPE|LOC|FAC", LABEL_MAPS["conll4"], "gold"), map_label("PERS|NORP", LABEL_MAPS["conll4"], "gold")
    ('LOC', 'PER|MISC')

    Raises EvaluationError for a label (or member) the map does not know, and for a set whose
    members the map partly drops ("PERS|OCC": neither PER nor O would say what the gold says).
    """
    members = label.split(LABEL_SET_SEPARATOR)
    unknown = [member for member in members if member not in mapping]
    if unknown:
        named = repr(label) if unknown == [label] else f"{label!r} (member {', '.join(map(repr, unknown))})"
        raise EvaluationError(f"{side} label {named} has no entry in the label map (known: {', '.join(mapping)})")
    targets = [mapping[member] for member in members]
    if None in targets and any(targets):
        dropped = ", ".join(m for m, t in zip(members, targets, strict=True) if t is None)
        raise EvaluationError(f"{side} label set {label!r} mixes labels the map drops ({dropped}) with labels it keeps")
    return LABEL_SET_SEPARATOR.join(dict.fromkeys(target for target in targets if target)) or None


def map_tags(tags: Sequence[str], mapping: dict[str, str | None], side: str) -> list[str]:
    """Rename entity labels (``map_label``); a label mapped to None becomes O. Entity boundaries
    are kept (two adjacent entities mapped to one label stay two).

    >>> map_tags(["B-GPE", "I-GPE", "B-FAC", "B-OCC", "I-OCC", "B-GPE|LOC|FAC"], LABEL_MAPS["conll4"], "predicted")
    ['B-LOC', 'I-LOC', 'B-LOC', 'O', 'O', 'B-LOC']
    """
    mapped = [OUTSIDE] * len(tags)
    for first, end, label in tag_ranges(tags):
        target = map_label(label, mapping, side)
        if target is not None:
            mapped[first:end] = [f"B-{target}"] + [f"I-{target}"] * (end - first - 1)
    return mapped


def load_gold(path: str, data_format: str, label_map_path: str | None = None) -> list[Document]:
    """Gold documents: a validated annotation JSONL file, or a CoNLL file (converted through a
    label map file when given, else as one document in the labels it uses)."""
    if data_format == "conll" and label_map_path:
        try:
            documents, summary = import_conll([path], load_label_map(label_map_path))
        except (LabelMapError, ConversionError) as exc:
            raise EvaluationError(str(exc)) from None
        print(summary.render(), file=sys.stderr)
        if not documents:
            raise EvaluationError(f"{path}: no sentences")
        return documents
    if data_format == "conll":
        try:
            sentences = read_conll(path)
        except (OSError, UnicodeDecodeError, ConllFormatError) as exc:
            raise EvaluationError(str(exc)) from None
        if not sentences:
            raise EvaluationError(f"{path}: no sentences")
        return [conll_sentences_to_document(sentences, Path(path).stem, path)]
    problems = validate_file(path)
    if problems:
        raise EvaluationError(f"{path}: {len(problems)} problem(s)\n" + "\n".join(str(p) for p in problems))
    return read_documents(path)


def coverage_scored(
    documents: Sequence[Document], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], sources: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags of each document rewritten to score only what its source
    annotates (``training.scoring.scored_tags``; unchanged for fully annotated documents)."""
    try:
        return scored_documents(documents, gold, predicted, sources)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def in_schema(label: str) -> bool:
    """Whether a gold label is one of ours, or a set of ours (CoNLL gold read as it is may use
    another scheme's labels, which coverage scoring cannot read)."""
    return all(member in ENTITY_LABELS for member in label.split(LABEL_SET_SEPARATOR))


# ---------------------------------------------------------------------------------------------
# Prediction


def is_onnx_dir(model_dir: str | Path) -> bool:
    return (Path(model_dir) / "model.onnx").is_file()


def predict_with_onnx(model_dir: str, documents: Sequence[Document], decoding: str = "model", batch_size: int = 8) -> list[list[str]]:
    """Word tags from the serving runtime: entities from ``serving.Tagger`` turned back into tags."""
    from serving import Tagger  # onnxruntime: loaded only for ONNX directories

    tagger = Tagger.load(model_dir, decoding=decoding)
    predicted = []
    for start in tqdm(range(0, len(documents), batch_size), desc="tagging (ONNX)", unit="batch", file=sys.stderr):
        batch = documents[start : start + batch_size]
        for document, entities in zip(batch, tagger.tag([d.text for d in batch]), strict=True):
            spans = [Span(e.start, e.end, e.label, e.text) for e in entities]
            try:
                predicted.append(spans_to_tags(document.text, spans))
            except SpanAlignmentError as exc:
                raise EvaluationError(f"document {document.id!r}: the ONNX tagger returned an entity off word boundaries: {exc}") from None
    return predicted


def predict_with_pytorch(model_dir: str, documents: Sequence[Document], decoding: str = "model") -> list[list[str]]:
    from .predict import load_predictor  # torch: not needed to evaluate an ONNX export

    predictor = load_predictor(model_dir, decoding=decoding)
    return [tags for _, tags in predictor.predict([d.text for d in documents], progress=True)]


# ---------------------------------------------------------------------------------------------
# Errors file


@dataclass(frozen=True)
class EntityError:
    kind: str  # "FP" (predicted, not in gold) or "FN" (in gold, not predicted)
    document_id: str
    start: int
    end: int
    text: str
    gold: str
    predicted: str
    left: str
    right: str


def _overlapping_labels(first: int, end: int, entities: set[tuple[int, int, str]]) -> str:
    labels = [label for (f, e, label) in sorted(entities) if f < end and first < e]
    return "/".join(labels) or OUTSIDE


def _one_line(value: str) -> str:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", "⏎")


def entity_errors(
    document: Document, tokens: Sequence[Token], gold: Sequence[str], predicted: Sequence[str], strict: bool = False
) -> list[EntityError]:
    """Every false-positive and false-negative entity of one document, in text order.

    >>> text = "زار بوتين موسكو"
    >>> errors = entity_errors(Document("d", text), segment_words(text), ["O", "B-PERS", "B-GPE"], ["O", "B-PERS", "B-ORG"])
    >>> [(e.kind, e.text, e.gold, e.predicted, e.left) for e in errors]
    [('FN', 'موسكو', 'GPE', 'ORG', 'زار بوتين '), ('FP', 'موسكو', 'GPE', 'ORG', 'زار بوتين ')]
    """
    gold_entities, predicted_entities = entity_set(gold, strict), entity_set(predicted, strict)
    text = document.text
    errors = []
    misses = [("FN", e) for e in gold_entities - predicted_entities] + [("FP", e) for e in predicted_entities - gold_entities]
    for kind, (first, end, label) in sorted(misses, key=lambda item: (item[1][0], item[1][1], item[0])):
        start, stop = tokens[first].start, tokens[end - 1].end
        gold_label = label if kind == "FN" else _overlapping_labels(first, end, gold_entities)
        predicted_label = label if kind == "FP" else _overlapping_labels(first, end, predicted_entities)
        errors.append(
            EntityError(
                kind,
                document.id,
                start,
                stop,
                text[start:stop],
                gold_label,
                predicted_label,
                text[max(0, start - ERROR_CONTEXT_CHARS) : start],
                text[stop : stop + ERROR_CONTEXT_CHARS],
            )
        )
    return errors


ERRORS_HEADER = ("kind", "document", "start", "end", "text", "gold", "predicted", "left_context", "right_context")


def errors_tsv(errors: Sequence[EntityError]) -> str:
    """Errors as TSV with a header; tabs and line breaks inside fields become spaces and ⏎."""
    rows = ["\t".join(ERRORS_HEADER)]
    for e in errors:
        fields = (e.kind, e.document_id, str(e.start), str(e.end), e.text, e.gold, e.predicted, e.left, e.right)
        rows.append("\t".join(_one_line(f) for f in fields))
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Entity-level precision/recall/F1 (seqeval) of a model on annotated data, with an errors file.",
    )
    parser.add_argument("--model", required=True, help="PyTorch model directory, or ONNX directory (with model.onnx)")
    parser.add_argument(
        "--data", required=True, nargs="+", help="gold data file(s); documents of several sources are scored each on its own coverage"
    )
    parser.add_argument("--format", choices=("jsonl", "conll"), default="jsonl", help="gold data format (default %(default)s)")
    parser.add_argument(
        "--label-map",
        metavar="FILE|" + "|".join(sorted(LABEL_MAPS)),
        help="a label map file (TOML) for CoNLL gold in another scheme, or a built-in renaming of both sides",
    )
    parser.add_argument("--strict", action="store_true", help="seqeval strict mode, IOB2 scheme")
    parser.add_argument(
        "--decoding",
        choices=DECODINGS,
        default="model",
        help="model: as served (Viterbi, the model's tag-transition prior); constraints: no prior; argmax: each word alone (default %(default)s)",
    )
    parser.add_argument("--output-dir", help="where report.txt, report.json and errors.tsv go (default runs/eval/MODEL-DATA)")
    return parser


def _default_output_dir(model: str, data: Sequence[str], decoding: str) -> Path:
    name = f"{Path(model).resolve().name}-{Path(data[0]).stem}" + (f"+{len(data) - 1}" if len(data) > 1 else "")
    return Path("runs") / "eval" / (name if decoding == "model" else f"{name}-{decoding}")


def trained_on(model: Path, documents: Sequence[Document], data: Sequence[str]) -> int | None:
    """How many of the documents the model trained on (a warning when any), None where the model
    does not record its training texts (``training.model_dir.TRAINED_TEXTS_FILE``)."""
    try:
        seen = trained_texts(model)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    if seen is None:
        return None
    count = sum(text_fingerprint(d.text) in seen for d in documents)
    if count:
        print(
            f"warning: {count} of {len(documents)} document(s) of {', '.join(data)} are documents {model} trained on: "
            "the figures below are in-sample (it has seen their answers), not an estimate of quality on new text",
            file=sys.stderr,
        )
    return count


def evaluate(job: EvaluationJob) -> dict:
    """Predict, score and write the outputs (``job.output_dir``); returns what report.json records.
    Raises EvaluationError on input that cannot be evaluated."""
    builtin_map = LABEL_MAPS.get(job.label_map) if job.label_map else None
    if job.label_map and builtin_map is None and not Path(job.label_map).is_file():
        raise EvaluationError(f"--label-map {job.label_map!r} is neither a file nor a built-in map ({', '.join(LABEL_MAPS)})")
    if job.label_map and builtin_map is None and job.format != "conll":
        raise EvaluationError("a label map file converts CoNLL gold data: use it with --format conll")
    documents = [document for path in job.data for document in load_gold(path, job.format, None if builtin_map else job.label_map)]
    onnx = is_onnx_dir(job.model)
    if not onnx and not (Path(job.model) / "config.json").is_file():
        raise EvaluationError(f"{job.model} is neither a model directory (config.json) nor an ONNX export (model.onnx)")
    decoding = "" if job.decoding == "model" else f", decoding: {job.decoding}"
    print(
        f"evaluating {job.model} ({'ONNX, serving runtime' if onnx else 'PyTorch'}{decoding}) on {len(documents)} document(s) of {', '.join(job.data)}",
        file=sys.stderr,
    )
    in_sample = trained_on(Path(job.model), documents, job.data)
    predicted = predict_with_onnx(job.model, documents, job.decoding) if onnx else predict_with_pytorch(job.model, documents, job.decoding)
    gold = [gold_tags(d) for d in documents]
    sources = [d.source or "unnamed" for d in documents]
    foreign = sorted({label for tags in gold for _, _, label in tag_ranges(tags) if not in_schema(label)})
    if not foreign:
        # Each source on what it annotates, before any renaming: a corpus without NORP must not
        # count a predicted NORP, renamed MISC, as a false positive.
        gold, predicted = coverage_scored(documents, gold, predicted, sources)
    elif not builtin_map:
        print(
            f"note: gold labels {', '.join(foreign)} are not in the model's schema; pass the corpus's label map (--label-map FILE) or --label-map conll4",
            file=sys.stderr,
        )
    if builtin_map:
        gold = [map_tags(tags, builtin_map, "gold") for tags in gold]
        predicted = [map_tags(tags, builtin_map, "predicted") for tags in predicted]
    per_source = reports_by_source(sources, gold, predicted, job.strict) if len(set(sources)) > 1 else None
    text = report_text(gold, predicted, job.strict)
    report = entity_report(gold, predicted, job.strict)
    errors = [
        e for d, g, p in zip(documents, gold, predicted, strict=True) for e in entity_errors(d, segment_words(d.text), g, p, job.strict)
    ]
    output_dir = job.output_dir or _default_output_dir(job.model, job.data, job.decoding)
    summary = {
        "model": job.model,
        "runtime": "onnx" if onnx else "pytorch",
        "data": list(job.data),
        "decoding": job.decoding,
        "format": job.format,
        "label_map": job.label_map,
        "mode": "strict IOB2" if job.strict else "default",
        "documents": len(documents),
        "documents_trained_on": in_sample,
        "annotated": sorted({label for d in documents for label in d.annotated}, key=ENTITY_LABELS.index),
        "false_positives": sum(e.kind == "FP" for e in errors),
        "false_negatives": sum(e.kind == "FN" for e in errors),
        "report": report,
    }
    if per_source:
        summary["per_source"] = {source: r for source, r in per_source.items() if source != "all"}
    atomic_write_text(output_dir / "report.txt", text)
    atomic_write_text(output_dir / "report.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    atomic_write_text(output_dir / "errors.tsv", errors_tsv(errors))
    print(text)
    if per_source:
        for source, source_report in summary["per_source"].items():
            print(
                f"{source}: entity F1 {source_report['micro avg']['f1-score']:.4f} over {source_report['micro avg']['support']} gold entities"
            )
    print(
        f"{summary['false_positives']} false positive(s), {summary['false_negatives']} false negative(s); wrote {output_dir}/report.txt, report.json, errors.tsv",
        file=sys.stderr,
    )
    return summary


def job_from_args(args: argparse.Namespace) -> EvaluationJob:
    """The evaluation a parsed command line describes."""
    output_dir = Path(args.output_dir) if args.output_dir else None
    return EvaluationJob(args.model, tuple(args.data), args.format, args.label_map, args.strict, args.decoding, output_dir)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        evaluate(job_from_args(args))
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

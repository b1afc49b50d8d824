"""Tag a whole archive on Ray Data: ``python -m serving.bulk INPUT... --output DIR``.

Inputs (files, folders or globs; a folder is searched recursively for the three kinds):

* ``.jsonl``: one ``{"id": ..., "text": ...}`` object per line (``--id-field``/``--text-field``);
* ``.parquet``: the same two columns;
* ``.txt``: one document per file, its path as id.

The run, all of it resumable:

1. plan (this process): every record is read once and checked; duplicate ids are found here, so a
   record's fate does not depend on which machine tags it; the records are cut into numbered blocks
   of ``--block-size`` (byte ranges of a JSONL file, row ranges of a Parquet file, lists of .txt
   files), written with the inputs' sizes and times to ``DIR/_manifest.json``;
2. tag (Ray Data): a dataset of the blocks not yet done goes through ``map_batches`` over a pool of
   actors, each loading the ``serving.Tagger`` once with ``--threads`` ONNX threads (and asking Ray
   for as many CPUs). An actor reads its block, tags the good records and publishes, each atomically
   (temporary name, then rename): ``DIR/part-NNNNNN.parquet`` (or ``.jsonl``), the block's bad
   records in ``DIR/_errors/part-NNNNNN.jsonl``, and last ``DIR/_done/part-NNNNNN.json`` (counts,
   node, peak memory). A block with a done marker is complete; any other block is tagged again from
   scratch by the next run, so a killed actor (Ray retries its block) or a killed run never
   duplicates or half-writes a block;
3. summary: read, tagged and error counts over all done markers; exit 3 when errors exist unless
   ``--allow-errors``.

Output rows: ``id``, ``entities`` (list of ``{text, label, start, end, score}``, offsets into the
original text), ``model``, ``model_version`` (the first 12 hex digits of model.onnx's SHA-256).
Error rows: ``file``, ``line`` (JSONL, 1-based), ``row`` (Parquet, 1-based), ``id``, ``reason``.

Without ``--address`` (and without ``RAY_ADDRESS``, which ``ray job submit`` sets) Ray starts on this
machine; ``--address auto`` or ``ray://HOST:10001`` runs on an existing cluster, whose nodes must all
see the inputs and DIR at the same paths.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import itertools
import json
import os
import resource
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
except ImportError as exc:  # the serving install leaves Ray out
    raise ImportError(f"serving.bulk needs the bulk extra: pip install -e '.[bulk]' ({exc})") from exc

from .annotation import Document
from .tag import SCORE_DECIMALS, positive_int, tag_documents
from .tagger import DEFAULT_MAX_BATCH_SIZE, MODEL_FILE, ModelDirError, Tagger

KINDS = {".jsonl": "jsonl", ".parquet": "parquet", ".txt": "txt"}
FORMATS = ("parquet", "jsonl")
DEFAULT_BLOCK_SIZE = 1000
DEFAULT_MAX_CHARS = 200_000
MANIFEST = "_manifest.json"
ERRORS_DIR = "_errors"
DONE_DIR = "_done"
EXIT_OK, EXIT_FAILED, EXIT_RECORD_ERRORS = 0, 1, 3

ENTITY_TYPE = pa.struct(
    [("text", pa.string()), ("label", pa.string()), ("start", pa.int32()), ("end", pa.int32()), ("score", pa.float64())]
)
OUTPUT_SCHEMA = pa.schema(
    [("id", pa.string()), ("entities", pa.list_(ENTITY_TYPE)), ("model", pa.string()), ("model_version", pa.string())]
)

PROG = "python -m serving.bulk"  # the name in its usage line (arabic-ner passes its own)


class BulkError(Exception):
    """A run that cannot start or go on: bad inputs, options or output directory."""


@dataclass(frozen=True)
class Fields:
    id: str = "id"
    text: str = "text"
    max_chars: int = DEFAULT_MAX_CHARS


@dataclass
class Record:
    """One input record: ready to tag when ``reason`` is None, else an error row."""

    file: str
    line: int | None = None  # JSONL: 1-based line
    row: int | None = None  # Parquet: 1-based row
    id: str | None = None
    text: str | None = None
    reason: str | None = None

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return f"{self.file} row {self.row}" if self.row is not None else self.file

    def error_row(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "row": self.row, "id": self.id, "reason": self.reason}


def check_record(record: Record, values: dict, fields: Fields) -> Record:
    """Fill ``record`` from a JSON object or a Parquet row, or give it the reason it cannot be tagged.

    >>> check_record(Record("a.jsonl", line=3), {"id": 7, "text": "زار موسكو"}, Fields()).id
    '7'
    >>> check_record(Record("a.jsonl", line=3), {"id": "x", "text": None}, Fields()).reason
    "non-string text field 'text' (NoneType)"
    >>> check_record(Record("a.jsonl", line=3), {"id": "x", "text": "abc"}, Fields(max_chars=2)).reason
    'text over the length limit (3 > 2 characters)'
    """
    identifier = values.get(fields.id)
    if isinstance(identifier, (str, int)) and not isinstance(identifier, bool):
        record.id = str(identifier)
    if fields.id not in values or identifier is None:
        record.reason = f"missing id field {fields.id!r}"
    elif record.id is None:
        record.reason = f"id field {fields.id!r} must be a string or an integer, got {type(identifier).__name__}"
    elif fields.text not in values:
        record.reason = f"missing text field {fields.text!r}"
    elif not isinstance(text := values[fields.text], str):
        record.reason = f"non-string text field {fields.text!r} ({type(text).__name__})"
    elif len(text) > fields.max_chars:
        record.reason = f"text over the length limit ({len(text):,} > {fields.max_chars:,} characters)"
    else:
        record.reason = _unicode_problem(text)
        record.text = text if record.reason is None else None
    return record


def _unicode_problem(text: str) -> str | None:
    """JSON may escape lone surrogates, which no UTF-8 file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"invalid UTF-8 at character {exc.start}"
    return None


def jsonl_records(path: str, fields: Fields, start: int = 0, stop: int | None = None, first_line: int = 1) -> Iterator[tuple[int, Record]]:
    """(byte offset, record) for each non-blank line of ``path`` in bytes [start, stop)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset, number = start, first_line
        while stop is None or offset < stop:
            raw = handle.readline()
            if not raw:
                break
            if raw.strip():
                yield offset, _jsonl_record(raw, Record(path, line=number), fields)
            offset += len(raw)
            number += 1


def _jsonl_record(raw: bytes, record: Record, fields: Fields) -> Record:
    raw = raw.rstrip(b"\r\n")
    try:
        line = raw.decode("utf-8")
        problem = None
    except UnicodeDecodeError as exc:
        line = raw.decode("utf-8", errors="replace")  # still worth reading for the id
        problem = f"invalid UTF-8 at byte {exc.start} of the line"
    try:
        values = json.loads(line)
    except json.JSONDecodeError as exc:
        record.reason = problem or f"not valid JSON ({exc.msg} at column {exc.colno})"
        return record
    if not isinstance(values, dict):
        record.reason = problem or f"expected a JSON object, got {type(values).__name__}"
        return record
    check_record(record, values, fields)
    if problem:
        record.text, record.reason = None, problem
    return record


def parquet_records(path: str, fields: Fields, start: int = 0, stop: int | None = None) -> Iterator[Record]:
    """Records of rows [start, stop) of a Parquet file, reading only the row groups they lie in."""
    try:
        parquet = pq.ParquetFile(path)
    except pa.ArrowException as exc:
        raise BulkError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = [name for name in (fields.id, fields.text) if name in parquet.schema_arrow.names]
    first = 0
    for group in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if first + rows > start and (stop is None or first < stop):
            table = parquet.read_row_group(group, columns=columns)
            values = {name: table.column(name).to_pylist() for name in columns}
            for index in range(max(start - first, 0), rows if stop is None else min(rows, stop - first)):
                row = {name: _decoded(column[index]) for name, column in values.items()}
                yield check_record(Record(path, row=first + index + 1), row, fields)
        first += rows


def _decoded(value: Any) -> Any:
    """A binary column's bytes as text; invalid UTF-8 shows as a lone surrogate, reported as such."""
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value


def txt_record(path: str, fields: Fields) -> Record:
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(path, id=path, reason=f"invalid UTF-8 at byte {exc.start}")
    return check_record(Record(path), {fields.id: path, fields.text: text}, fields)


@dataclass
class Block:
    """A unit of work: records [start, stop) of one file (bytes of a JSONL file, rows of a Parquet
    file) or a list of .txt files; ``duplicates`` maps a record's index in the block to where its id
    was first seen."""

    number: int
    kind: str
    paths: list[str]
    start: int = 0
    stop: int = 0
    first_line: int = 1
    duplicates: dict[int, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"part-{self.number:06d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Block:
        values = json.loads(text)
        values["duplicates"] = {int(k): v for k, v in values["duplicates"].items()}
        return cls(**values)

    def records(self, fields: Fields) -> list[Record]:
        if self.kind == "jsonl":
            records = [record for _, record in jsonl_records(self.paths[0], fields, self.start, self.stop, self.first_line)]
        elif self.kind == "parquet":
            records = list(parquet_records(self.paths[0], fields, self.start, self.stop))
        else:
            records = [txt_record(path, fields) for path in self.paths]
        for index, first in self.duplicates.items():
            records[index].text, records[index].reason = None, f"duplicate id (first at {first})"
        return records


def expand_inputs(patterns: Sequence[str], output: Path) -> list[tuple[str, str]]:
    """(path, kind) of every input file, in the order given (each folder and glob sorted), each once;
    nothing under ``output`` (a folder given as input may hold the output folder)."""
    found: dict[str, str] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise BulkError(f"{pattern}: no file matches")
        for match in matches:
            path = Path(match)
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in KINDS)
                if not files:
                    raise BulkError(f"{match}: no .jsonl, .parquet or .txt file in this folder")
            elif path.is_file():
                if path.suffix not in KINDS:
                    raise BulkError(f"{match}: unknown input kind (expected .jsonl, .parquet or .txt)")
                files = [path]
            else:
                raise BulkError(f"{match}: no such file or folder")
            for file in files:
                if not file.resolve().is_relative_to(output.resolve()):
                    found.setdefault(str(file), KINDS[file.suffix])
    if not found:
        raise BulkError(f"no input file outside the output folder {output}")
    return list(found.items())


def plan_blocks(sources: Sequence[tuple[str, str]], fields: Fields, block_size: int, progress: bool) -> list[Block]:
    """Read every record once: cut blocks of ``block_size`` records (runs of consecutive .txt files
    share blocks) and mark duplicate ids: an id counts once its record is otherwise fit to tag, and
    later records with it are errors."""
    from tqdm.auto import tqdm

    first_seen: dict[str, str] = {}
    blocks: list[Block] = []
    with tqdm(desc="planning", unit=" records", disable=not progress, file=sys.stderr) as bar:
        for kind, group in itertools.groupby(sources, key=lambda source: source[1]):
            paths = [path for path, _ in group]
            if kind == "txt":
                units = [(paths, enumerate(txt_record(path, fields) for path in paths))]
            else:
                units = [
                    ([path], jsonl_records(path, fields) if kind == "jsonl" else enumerate(parquet_records(path, fields))) for path in paths
                ]
            for unit_paths, records in units:
                for chunk in _chunks(records, block_size):
                    first, last = chunk[0][0], chunk[-1][0]
                    # A block is [first, last + 1): the last record's line (or row) starts before its stop.
                    block = Block(
                        len(blocks),
                        kind,
                        unit_paths[first : last + 1] if kind == "txt" else unit_paths,
                        first,
                        last + 1,
                        chunk[0][1].line or 1,
                    )
                    for index, (_, record) in enumerate(chunk):
                        if record.reason is None and record.id in first_seen:
                            block.duplicates[index] = first_seen[record.id]
                        elif record.reason is None:
                            first_seen[record.id] = record.where
                    blocks.append(block)
                    bar.update(len(chunk))
    return blocks


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def model_version(model_dir: Path) -> str:
    """The first 12 hex digits of model.onnx's SHA-256: two exports never share it."""
    digest = hashlib.sha256()
    with open(model_dir / MODEL_FILE, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def publish(path: Path, write) -> None:
    """Call ``write(temporary_path)``, then rename onto ``path``: readers (and a resumed run) see the
    whole file or none. The temporary name starts with a dot, which Parquet readers skip."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    publish(path, lambda tmp: tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"))


@dataclass(frozen=True)
class Settings:
    """What every actor needs to tag and write a block."""

    model_dir: str
    root: str  # the folder relative input paths are read from (the driver's working folder)
    threads: int
    batch_size: int
    output_dir: str
    output_format: str
    fields: Fields
    model_version: str


def tag_block(tagger: Tagger, block: Block, settings: Settings) -> dict[str, Any]:
    """Read, tag and publish one block; returns its done marker."""
    records = block.records(settings.fields)
    good = [record for record in records if record.reason is None]
    errors = [record.error_row() for record in records if record.reason is not None]
    rows = [
        {
            "id": document.id,
            "entities": [
                {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "score": round(e.score, SCORE_DECIMALS)}
                for e in entities
            ],
            "model": tagger.name,
            "model_version": settings.model_version,
        }
        for document, entities in tag_documents(tagger, [Document(r.id, r.text) for r in good], progress=False)
    ]
    output = Path(settings.output_dir)
    path = output / f"{block.name}.{settings.output_format}"
    if settings.output_format == "parquet":
        publish(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), tmp))
    else:
        write_jsonl(path, rows)
    if errors:
        write_jsonl(output / ERRORS_DIR / f"{block.name}.jsonl", errors)
    context = ray.get_runtime_context()
    marker = {
        "block": block.number,
        "read": len(records),
        "tagged": len(rows),
        "errors": len(errors),
        "words": sum(len(record.text.split()) for record in good),
        "node_id": context.get_node_id(),
        "actor_id": context.get_actor_id(),
        "pid": os.getpid(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    publish(output / DONE_DIR / f"{block.name}.json", lambda tmp: tmp.write_text(json.dumps(marker) + "\n", encoding="utf-8"))
    return marker


class BlockTagger:
    """A Ray Data actor: loads the Tagger once, then tags the blocks it is given. Returns one row per
    record read, so Ray's progress bar counts documents."""

    def __init__(self, settings: Settings):
        self.settings = settings
        os.chdir(settings.root)  # a worker of its own: input paths and ids stay as the user gave them
        self.tagger = Tagger.load(settings.model_dir, intra_op_num_threads=settings.threads, max_batch_size=settings.batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        blocks: list[int] = []
        for spec in batch["block"]:
            marker = tag_block(self.tagger, Block.from_json(spec), self.settings)
            blocks.extend([marker["block"]] * marker["read"])
        return {"block": blocks}


def fingerprint(sources: Sequence[tuple[str, str]], options: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the first: the inputs as they were, and the options."""
    inputs = [{"path": path, "size": os.path.getsize(path), "mtime_ns": os.stat(path).st_mtime_ns} for path, _ in sources]
    return {"inputs": inputs, "options": options}


def prepare_output(output: Path, sources, options, fields: Fields, block_size: int, resume: bool, progress: bool) -> list[Block]:
    """The block plan: the manifest's when DIR holds a run of the same inputs and options, else a new
    one (DIR must then be empty or absent)."""
    expected = fingerprint(sources, options)
    manifest_path = output / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        differing = [key for key in expected if manifest.get(key) != expected[key]]
        if differing:
            raise BulkError(
                f"{output}: holds a run of other {' and '.join(differing)} ({manifest_path}); "
                f"give a new --output, or remove it to start again"
            )
        for stale in output.glob("**/.*.tmp"):  # left by a killed run: never renamed, never read
            stale.unlink()
        return [Block.from_json(json.dumps(block)) for block in manifest["blocks"]]
    if resume:
        raise BulkError(f"{output}: nothing to resume (no {MANIFEST})")
    if output.exists() and any(output.iterdir()):
        raise BulkError(f"{output}: not empty and not a bulk run (no {MANIFEST}); give an empty or new folder")
    blocks = plan_blocks(sources, fields, block_size, progress)
    for folder in (output, output / ERRORS_DIR, output / DONE_DIR):
        folder.mkdir(parents=True, exist_ok=True)
    content = {**expected, "blocks": [asdict(block) for block in blocks]}
    publish(manifest_path, lambda tmp: tmp.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"))
    return blocks


def done_markers(output: Path) -> dict[int, dict[str, Any]]:
    markers = (json.loads(path.read_text(encoding="utf-8")) for path in sorted((output / DONE_DIR).glob("part-*.json")))
    return {marker["block"]: marker for marker in markers}


def connect(address: str | None, num_cpus: int | None) -> None:
    """Join the cluster at ``address`` (or at RAY_ADDRESS, as under ``ray job submit``), else start
    Ray on this machine; a Ray already started in this process (tests, notebooks) is used as it is."""
    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def run_blocks(blocks: Sequence[Block], settings: Settings, actors: int | None, progress: bool) -> None:
    """Tag ``blocks`` over a pool of actors; ``actors`` x threads must fit the CPUs Ray has."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    actors = actors or max(1, cpus // settings.threads)
    if actors * settings.threads > cpus:
        raise BulkError(f"{actors} actor(s) x {settings.threads} thread(s) need {actors * settings.threads} CPUs; Ray has {cpus}")
    actors = min(actors, len(blocks))  # an actor without a block would only load the model
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    print(f"tagging {len(blocks)} block(s) on {actors} actor(s) x {settings.threads} ONNX thread(s), {cpus} CPUs", file=sys.stderr)
    dataset = ray.data.from_items([{"block": block.to_json()} for block in blocks], override_num_blocks=len(blocks))
    tagged = dataset.map_batches(
        BlockTagger,
        fn_constructor_args=(settings,),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=settings.threads,
    )
    for _ in tagged.iter_batches(batch_size=None):
        pass


def summarize(output: Path, blocks: Sequence[Block]) -> tuple[int, int, int]:
    markers = done_markers(output)
    missing = [block.name for block in blocks if block.number not in markers]
    if missing:
        raise BulkError(f"{output}: {len(missing)} block(s) not done ({', '.join(missing[:5])}...); run the same command again to resume")
    return tuple(sum(marker[key] for marker in markers.values()) for key in ("read", "tagged", "errors"))


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=".jsonl, .parquet or .txt files, folders of them, or globs")
    parser.add_argument(
        "--output", required=True, type=Path, metavar="DIR", help="output folder (created; a folder of this command's resumes)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        default=Path(os.environ.get("NER_MODEL_DIR", "models/default")),
        help="exported model (default: $NER_MODEL_DIR or models/default)",
    )
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="output format (default: parquet)")
    parser.add_argument("--id-field", default="id", help="id field of JSONL and Parquet inputs (default: id)")
    parser.add_argument("--text-field", default="text", help="text field of JSONL and Parquet inputs (default: text)")
    parser.add_argument(
        "--max-chars", type=positive_int, default=DEFAULT_MAX_CHARS, help=f"longer texts are errors (default: {DEFAULT_MAX_CHARS:,})"
    )
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=DEFAULT_BLOCK_SIZE,
        help=f"records per block, the unit of work and of resume (default: {DEFAULT_BLOCK_SIZE})",
    )
    parser.add_argument("--actors", type=positive_int, help="tagging actors (default: Ray's CPUs / --threads)")
    parser.add_argument("--threads", type=positive_int, default=1, help="ONNX Runtime threads (and Ray CPUs) per actor (default: 1)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_MAX_BATCH_SIZE, help=f"windows per model run (default: {DEFAULT_MAX_BATCH_SIZE})"
    )
    parser.add_argument(
        "--address", help="Ray cluster to run on: auto, HOST:PORT or ray://HOST:10001 (default: $RAY_ADDRESS, else Ray on this machine)"
    )
    parser.add_argument("--num-cpus", type=positive_int, help="CPUs of the Ray started on this machine (default: all)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in DIR (the same command does so too); fail if there is none"
    )
    parser.add_argument("--allow-errors", action="store_true", help="exit 0 even when some records are in DIR/_errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Exit status: 0 all tagged; 3 some records are errors (0 with --allow-errors); 1 the run failed."""
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:
        return EXIT_FAILED if exc.code else EXIT_OK
    progress = not args.no_progress
    fields = Fields(args.id_field, args.text_field, args.max_chars)
    try:
        Tagger.load(args.model, intra_op_num_threads=1)  # a bad model fails here, not in every actor
        version = model_version(args.model)
        sources = expand_inputs(args.inputs, args.output)
        options = {
            "fields": asdict(fields),
            "block_size": args.block_size,
            "format": args.format,
            "model": str(args.model.resolve()),
            "model_version": version,
        }
        blocks = prepare_output(args.output, sources, options, fields, args.block_size, args.resume, progress)
        done = done_markers(args.output)
        pending = [block for block in blocks if block.number not in done]
        if done:
            print(f"resuming: {len(blocks) - len(pending)} of {len(blocks)} block(s) already done", file=sys.stderr)
        if pending:
            settings = Settings(
                str(args.model.resolve()),
                os.getcwd(),
                args.threads,
                args.batch_size,
                str(args.output.resolve()),
                args.format,
                fields,
                version,
            )
            connect(args.address, args.num_cpus)
            run_blocks(pending, settings, args.actors, progress)
        read, tagged, errors = summarize(args.output, blocks)
    except (BulkError, ModelDirError, OSError, ray.exceptions.RayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: the blocks done are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_FAILED
    print(f"read {read}, tagged {tagged}, errors {errors}" + (f" (see {args.output / ERRORS_DIR})" if errors else ""), file=sys.stderr)
    return EXIT_RECORD_ERRORS if errors and not args.allow_errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

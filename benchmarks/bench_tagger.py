"""Throughput, latency and memory of the tagger against the transformers pipeline, as a Markdown table.

    .venv/bin/python -m benchmarks.bench_tagger            # BERT-base sized model (CAMeLBERT's shape)
    .venv/bin/python -m benchmarks.bench_tagger --quick    # small model, few documents: a smoke run

Variants, each in its own subprocess so its peak RSS is its own:

* (a) ``transformers`` ``pipeline("token-classification", aggregation_strategy="first")``, PyTorch
  fp32 on CPU, ``stride`` so long documents are read whole;
* (b) ``serving.Tagger`` over the fp32 ONNX export;
* (c) ``serving.Tagger`` over the int8 ONNX export (what ships);
* (d) the int8 ONNX session alone on pre-tokenised windows in full length-sorted batches: the
  ceiling for (c), whose gap to it is tokenisation, windowing, padding and decoding;
* (e) ``serving.Tagger`` over the shipped ``models/default`` (its own size, vocabulary and window
  length), which must tag at least 3x the words/s of (c).

(a)-(c) are timed twice: one document per call, as a service request (p50/p95 latency per
document), and all documents ``--docs-per-call`` at a time, as the tag CLI or a batching service
(words/s, docs/s). The documents are the seed articles repeated, plus long ones (a few thousand
words) made by concatenating seeds.
The model is a randomly initialised BERT-base (12 layers, hidden 768, 12 heads) whose WordPiece
vocabulary, trained on the seeds, is padded to 30,000 entries with unused tokens so the
embedding matrix has CAMeLBERT's size: speed and memory are those of the real architecture,
predictions are meaningless. Built models are cached in ``--work-dir`` (``--rebuild`` after
changing the exporter).

The machine may be shared: use ``--rounds`` > 1 (best round counts) and rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED_PATHS = sorted((ROOT / "seeds").glob("*.txt"))
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "arabic-ner-bench"

VARIANTS = {
    "a": "(a) transformers pipeline, PyTorch fp32",
    "b": "(b) Tagger, ONNX fp32",
    "c": "(c) Tagger, ONNX int8",
    "d": "(d) int8 session only, full batches",
    "e": "(e) Tagger, models/default (int8)",
}


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int  # the tokenizer is padded to this many entries


BERT_BASE = ModelShape("bert-base", layers=12, hidden=768, heads=12, intermediate=3072, vocab=30000)
SMOKE = ModelShape("smoke", layers=2, hidden=256, heads=4, intermediate=1024, vocab=8000)


def word_count(text: str) -> int:
    from serving.text import segment_words

    return len(segment_words(text))


def make_documents(seed_repeats: int, long_documents: int, long_words: int) -> list[str]:
    """The seeds ``seed_repeats`` times, then ``long_documents`` documents of at least
    ``long_words`` words, each concatenating seeds from a different starting one."""
    seeds = [path.read_text(encoding="utf-8") for path in SEED_PATHS]
    documents = seeds * seed_repeats
    for k in range(long_documents):
        parts: list[str] = []
        while sum(map(word_count, parts)) < long_words:
            parts.append(seeds[(k + len(parts)) % len(seeds)])
        documents.append("\n\n".join(parts))
    return documents


def padded_tokenizer(tokenizer, size: int):
    """The same WordPiece tokenizer with ``[unusedN]`` entries appended up to ``size`` ids, like
    BERT vocabularies' reserved slots (never produced: the pre-tokenizer splits on brackets)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    for i in range(size - len(vocab)):
        vocab[f"[unused{i}]"] = len(vocab)
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_model(shape: ModelShape, target: Path) -> dict[str, Any]:
    """A random-weight BertForTokenClassification of ``shape`` saved as a trained-model directory."""
    from training.scratch import ScratchSizes, build_scratch_model

    texts = [path.read_text(encoding="utf-8") for path in SEED_PATHS]
    sizes = ScratchSizes(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
    )
    model, tokenizer = build_scratch_model(texts, sizes)
    learnt = len(tokenizer)
    tokenizer = padded_tokenizer(tokenizer, max(shape.vocab, learnt))
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    tokenizer.model_max_length = model.config.max_position_embeddings
    staging = target.with_name(target.name + ".tmp")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(target)
    return {"wordpiece_learnt": learnt, "vocab_size": len(tokenizer)}


def prepare_models(shape: ModelShape, work_dir: Path) -> dict[str, Path]:
    """Trained-model dir plus its fp32 and int8 exports, built once and cached under ``work_dir``."""
    from training.export import ExportJob, export

    base = work_dir / shape.name
    paths = {"hf": base / "hf", "fp32": base / "onnx-fp32", "int8": base / "onnx-int8"}
    if not paths["hf"].exists():
        print(f"building {shape.name} model in {paths['hf']} ...", file=sys.stderr)
        info = build_model(shape, paths["hf"])
        (base / "vocab.json").write_text(json.dumps(info), encoding="utf-8")
    for quantization, key in (("none", "fp32"), ("int8", "int8")):
        if not paths[key].exists():
            print(f"exporting {key} ...", file=sys.stderr)
            export(
                ExportJob(paths["hf"], paths[key], quantization, name=f"{shape.name}-{key}"), log=lambda line: print(line, file=sys.stderr)
            )
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over from the forking parent across exec, so a worker would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere (BSD): kB


@dataclass(frozen=True)
class RunSettings:
    threads: int
    rounds: int
    batch_size: int
    docs_per_call: int


def best_of(rounds: int, measure: Callable[[], Any], cost: Callable[[Any], float]) -> Any:
    """The measurement with the lowest cost over ``rounds`` runs (a busy machine only slows things down)."""
    return min((measure() for _ in range(rounds)), key=cost)


def latencies(documents: Sequence[str], tag_one: Callable[[str], Any]) -> list[float]:
    """Seconds for each document tagged on its own, as a service request would be."""
    seconds = []
    for text in documents:
        started = time.perf_counter()
        tag_one(text)
        seconds.append(time.perf_counter() - started)
    return seconds


def throughput_seconds(documents: Sequence[str], tag_many: Callable[[Sequence[str]], Any], docs_per_call: int) -> float:
    """Seconds to tag all documents, ``docs_per_call`` per call (as the tag CLI does)."""
    started = time.perf_counter()
    for first in range(0, len(documents), docs_per_call):
        tag_many(documents[first : first + docs_per_call])
    return time.perf_counter() - started


def measure(documents: Sequence[str], tag_many: Callable[[Sequence[str]], Any], settings: RunSettings) -> dict[str, Any]:
    tag_many(documents[:1])  # warm-up: first-run allocations and lazy initialisation
    return {
        "latencies": best_of(settings.rounds, lambda: latencies(documents, lambda text: tag_many([text])), sum),
        "total_seconds": best_of(settings.rounds, lambda: throughput_seconds(documents, tag_many, settings.docs_per_call), float),
    }


def run_pipeline(model_dir: Path, documents: Sequence[str], settings: RunSettings) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    torch.set_num_threads(settings.threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    overlap = (tokenizer.model_max_length - 2) // 4  # the windows' overlap the tagger uses
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first", device=-1, stride=overlap)
    with torch.inference_mode():
        return measure(documents, lambda texts: tagger(list(texts), batch_size=settings.batch_size), settings)


def run_tagger(model_dir: Path, documents: Sequence[str], settings: RunSettings) -> dict[str, Any]:
    from serving.tagger import Tagger

    tagger = Tagger.load(model_dir, intra_op_num_threads=settings.threads, max_batch_size=settings.batch_size)
    return measure(documents, tagger.tag, settings)


def run_session_only(model_dir: Path, documents: Sequence[str], settings: RunSettings) -> dict[str, Any]:
    from serving.tagger import Tagger

    tagger = Tagger.load(model_dir, intra_op_num_threads=settings.threads, max_batch_size=settings.batch_size)
    windows = [ids for encoded in tagger.encode(documents) for ids in encoded.windows]
    batches = tagger.batches(windows)  # pre-tokenised, padded, length-sorted across all documents
    tagger.run(batches[0].input_ids, batches[0].attention_mask)  # warm-up

    def run_all() -> float:
        started = time.perf_counter()
        for batch in batches:
            tagger.run(batch.input_ids, batch.attention_mask)
        return time.perf_counter() - started

    return {"total_seconds": best_of(settings.rounds, run_all, float), "windows": len(windows), "batches": len(batches)}


RUNNERS = {"a": run_pipeline, "b": run_tagger, "c": run_tagger, "d": run_session_only, "e": run_tagger}


def worker(args: argparse.Namespace) -> int:
    """One variant in this process; prints its measurements as JSON."""
    documents = json.loads(Path(args.documents).read_text(encoding="utf-8"))
    settings = RunSettings(args.threads, args.rounds, args.batch_size, args.docs_per_call)
    result = RUNNERS[args.worker](Path(args.model_dir), documents, settings)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


def run_variant(variant: str, model_dir: Path, documents_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "benchmarks.bench_tagger", "--worker", variant, "--model-dir", str(model_dir), "--documents", str(documents_path),
        "--threads", str(args.threads), "--rounds", str(args.rounds), "--batch-size", str(args.batch_size), "--docs-per-call", str(args.docs_per_call),
    ]  # fmt: skip
    # torch's OpenMP pool follows OMP_NUM_THREADS; ONNX Runtime gets --threads through its session options.
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"running {VARIANTS[variant]} ...", file=sys.stderr)
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"variant {variant} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
    (2.0, 4.0)
    """
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summarise(raw: dict[str, Any], documents: Sequence[str], total_words: int) -> dict[str, Any]:
    seconds = raw["total_seconds"]
    if "latencies" in raw:
        latency = {"p50_ms": 1000 * percentile(raw["latencies"], 50), "p95_ms": 1000 * percentile(raw["latencies"], 95)}
    else:
        latency = {"p50_ms": None, "p95_ms": None}
    return {
        "words_per_s": total_words / seconds,
        "docs_per_s": len(documents) / seconds,
        **latency,
        "peak_rss_mb": raw["peak_rss_mb"],
        "seconds": seconds,
    }


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    def cell(value: float | None, digits: int = 0) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    rows = ["| variant | words/s | docs/s | p50 ms/doc | p95 ms/doc | peak RSS MB |", "|---|---:|---:|---:|---:|---:|"]
    for variant, r in results.items():
        rows.append(
            f"| {VARIANTS[variant]} | {cell(r['words_per_s'])} | {cell(r['docs_per_s'], 2)} | {cell(r['p50_ms'])} | {cell(r['p95_ms'])} | {cell(r['peak_rss_mb'])} |"
        )
    return "\n".join(rows)


def ratio_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The ratios between variants, with their targets, for the variants that ran."""
    checks = [
        ("(b)/(a) throughput", "b", "a", "words_per_s", None),
        ("(c)/(a) throughput", "c", "a", "words_per_s", (">=", 3.0)),
        ("(c)/(d) throughput", "c", "d", "words_per_s", (">=", 0.85)),
        ("(c)/(a) peak RSS", "c", "a", "peak_rss_mb", ("<=", 0.5)),
        ("(e)/(c) throughput", "e", "c", "words_per_s", (">=", 2.0)),  # the default model against a BERT-base-sized one
    ]
    lines = []
    for label, top, bottom, field, target in checks:
        if top in results and bottom in results:
            value = results[top][field] / results[bottom][field]
            verdict = ""
            if target:
                met = value >= target[1] if target[0] == ">=" else value <= target[1]
                verdict = f" (target {target[0]} {target[1]}: {'met' if met else 'NOT met'})"
            lines.append(f"- {label}: {value:.2f}x{verdict}")
    return lines


def environment_line(threads: int, shape: ModelShape, vocab: dict[str, int], load_before: float) -> str:
    import onnxruntime
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {threads} threads per variant; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        "(above 0.5 means other work shared the cores); "
        f"model {shape.name} ({shape.layers} layers, hidden {shape.hidden}, vocab {vocab['vocab_size']} of which "
        f"{vocab['wordpiece_learnt']} learnt from the seeds, rest padding); torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_tagger", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small model and few documents: checks the script end to end in about a minute"
    )
    parser.add_argument("--variants", default="abcde", help="which of a, b, c, d, e to run (default: all)")
    parser.add_argument(
        "--default-model",
        type=Path,
        default=ROOT / "models" / "default",
        help="the exported model of variant (e) (default: models/default)",
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every variant (default: 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per model run (tagger) / chunks per run (pipeline)")
    parser.add_argument("--rounds", type=int, default=1, help="timed passes per variant; the fastest counts (default: 1)")
    parser.add_argument("--docs-per-call", type=int, default=8, help="documents per call in the throughput pass (default: 8)")
    parser.add_argument("--seed-repeats", type=int, help="times the 5 seed articles are repeated (default: 4; --quick: 1)")
    parser.add_argument("--long-documents", type=int, help="documents of --long-words words (default: 4; --quick: 1)")
    parser.add_argument("--long-words", type=int, default=3000, help="minimum words of a long document (default: 3000)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help=f"model cache (default: {DEFAULT_WORK_DIR})")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached model and exports (after changing the exporter)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write all measurements here")
    parser.add_argument("--worker", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--documents", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker(args)
    shape = SMOKE if args.quick else BERT_BASE
    if args.rebuild:
        shutil.rmtree(args.work_dir / shape.name, ignore_errors=True)
    seed_repeats = args.seed_repeats if args.seed_repeats is not None else (1 if args.quick else 4)
    long_documents = args.long_documents if args.long_documents is not None else (1 if args.quick else 4)
    paths = prepare_models(shape, args.work_dir)
    documents = make_documents(seed_repeats, long_documents, args.long_words)
    total_words = sum(map(word_count, documents))
    documents_path = args.work_dir / shape.name / "documents.json"
    documents_path.write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
    model_for = {"a": paths["hf"], "b": paths["fp32"], "c": paths["int8"], "d": paths["int8"], "e": args.default_model}
    load_before = os.getloadavg()[0]
    results = {}
    for variant in (v for v in "abcde" if v in args.variants):
        results[variant] = summarise(run_variant(variant, model_for[variant], documents_path, args), documents, total_words)
    vocab = json.loads((args.work_dir / shape.name / "vocab.json").read_text(encoding="utf-8"))
    print(
        f"\n{len(documents)} documents, {total_words:,} words ({seed_repeats}x the 5 seeds + {long_documents} of >= {args.long_words} words)"
    )
    print(environment_line(args.threads, shape, vocab, load_before) + "\n")
    print(markdown_table(results) + "\n")
    print("\n".join(ratio_lines(results)))
    if args.quick:
        print(
            "\n--quick runs a small model, on which tokenisation and Python overhead weigh far more than on BERT-base: the targets are for the full run."
        )
    if args.json:
        args.json.write_text(
            json.dumps({"documents": len(documents), "words": total_words, "results": results}, indent=2), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

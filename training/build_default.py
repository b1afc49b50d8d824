"""Build the shipped default model: ``make default-model``.

    python -m training.build_default --encoder models/arabic-bert-small --output models/default
    python -m training.build_default --encoder models/arabic-bert-small --compare none,models/arabic-bert-small-step1000

1. **Stage 1** fine-tunes the pre-trained encoder on the five public corpora with the coverage-aware
   loss (``training/recipes/default-stage1.toml``; dev F1 per source every epoch, best epoch kept).
2. **Stage 2** continues on our guideline data, the seed articles and Wojood, with a small replay
   of the corpora (``default-stage2.toml``), after leave-one-article-out cross-validation over the
   seeds (stage 1 never saw a seed, so each held-out article is new to its fold's model).
3. The stage-2 model is exported to int8 ONNX (``training.export``) into ``--output``, with a
   model card naming every source, its licence and citation, the label-map decisions, the
   pre-training comparison, dev F1 per source and label, the cross-validation, how the corpora's
   conventions and ours pull against each other, and the weakest spots.

Each stage is a ``training.train.TrainJob`` (the recipe's ``[training]`` table, changed where the base's
family needs it: ``SCHEDULE_OVERRIDES``) run by ``training.train.train``, and the export is
``training.export.export``: the functions the commands call, with the equivalent command lines logged
and recorded in the cards.

``--compare BASE,...`` also runs both stages (with the seeds cross-validation) from other bases, ``none`` being
the encoder's architecture and tokenizer with random weights; the table of dev F1 per source goes
into ``ENCODER/comparison.json`` and the encoder's card, and every later default-model card reads it
from there. Everything is seeded: rebuilding gives the same predictions on the same kind of machine.
A stage whose command, recipe, data files and base weights are unchanged since an earlier run is
reused (an interrupted build continues where it stopped; the comparison reuses the shipped arm);
``--retrain`` trains everything again, as after a change to the training code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from serving.annotation import InvalidDataError, read_documents
from serving.spans import tag_ranges

from . import export, train
from .base_model import BaseModelError
from .encoder_import import IMPORT_RECORD
from .gazetteer import GAZETTEER, GazetteerError
from .label_maps import load_label_map
from .modelcard import (
    comparison_table,
    default_model_card,
    file_sha256,
    json_text,
    probe_misses,
    probe_section,
    seeds_cv_f1,
    with_comparison_section,
)
from .scoring import entity_report, gold_tags
from .sources import RecipeError, load_recipe
from .stats import sentence_agreement

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE1_RECIPE = "training/recipes/default-stage1.toml"
STAGE2_RECIPE = "training/recipes/default-stage2.toml"
SOURCES_FILE = REPO_ROOT / "annotations" / "corpora" / "sources.toml"
SEEDS = "annotations/seeds.jsonl"
PROBE = "annotations/probe/short_texts.jsonl"  # scored as its own line; never trained on, never used to choose
ARMS_RECORD = "docs/encoder-arms.json"  # the encoder arms measured at an equal short budget, and those still to run
TITLE_WORDS_MAP = "annotations/label_maps/newsfane.toml"  # its [trim_leading_words] PERS list: our OCC titles

COMPARISON_FILE = "comparison.json"
# The stages' hyper-parameters are the recipes' [training] tables; what other kinds of base change in them
# (command-line options override a recipe). BERT-base and larger (CAMeLBERT: `make default-model
# BASE=...`) take the usual fine-tuning steps. Encoders with an XLM-R SentencePiece vocabulary (multilingual-e5,
# imported by `make e5-encoder`) start slowly on NER: fine-tuned on ANERcorp for one epoch (128 steps) they still
# predicted only O at 5e-5 to 5e-4, where 6 epochs (768 steps) at 1e-4 reached 0.697 dev F1. What they need is
# steps: stage 1 gives them 1e-4 for 6 epochs, about 5,700 steps (the shipped 8-layer e5 build: dev mean 0.732
# after the first epoch, 0.795 at the fifth, 59 min on 2 cores; docs/short-texts-and-encoder-arms.md).
SCHEDULE_OVERRIDES = {
    "base-sized": {"stage1": {"learning_rate": 5e-5}, "stage2": {"learning_rate": 2e-5}},
    "sentencepiece": {"stage1": {"learning_rate": 1e-4, "epochs": 6.0, "early_stopping_patience": 6}, "stage2": {"learning_rate": 3e-5}},
}

# The int8 export's nodes left in fp32, per kind of base: int8 must stay within 0.005 entity F1 of fp32 on the dev
# sets. The 8-layer e5 build, all int8, scored 0.7827 pooled over the five dev sets against fp32's 0.7888; with the
# feed-forward output projections of layers 4 and 5 in fp32 (their inputs, GELU outputs, have the longest tails)
# 0.7875, at 2.0x the words/s of the BERT-base-sized int8 tagger (docs/short-texts-and-encoder-arms.md).
EXPORT_KEEP_FP32 = {"sentencepiece": (r"layer\.[45]/output/dense",)}


class BuildError(RuntimeError):
    """A step of the build failed; the message names it."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Arm:
    """A base model the recipe starts from: a directory, or ``none`` (the encoder's architecture
    and tokenizer with random weights)."""

    name: str
    base: str
    random_init: bool = False


STAGE_RECORD = "build_stage.json"


def stage_fingerprint(job: train.TrainJob) -> dict:
    """What a stage's result depends on: its command line and resolved settings, the recipe and data
    files it reads (with the gazetteer when it replaces GPE mentions) and what it reads of the base
    (hashed; a hub id stands for itself): its weights, or, from random weights, only its architecture
    and tokenizer (a new pre-training of the same encoder leaves such a stage valid)."""
    inputs = [Path(job.recipe.path), *(Path(source.path) for source in job.recipe.sources)]
    inputs += [GAZETTEER] if job.settings.gpe_replacements else []
    fingerprint = {"argv": list(job.argv), "settings": asdict(job.settings), "files": {str(path): file_sha256(path) for path in inputs}}
    base = job.source.base_model
    if job.source.random_init:
        architecture = [Path(base) / name for name in ("config.json", "tokenizer.json")]
        return fingerprint | {"base_architecture": {path.name: file_sha256(path) for path in architecture if path.is_file()} or base}
    weights = Path(base) / "model.safetensors"
    return fingerprint | {"base_weights": file_sha256(weights) if weights.is_file() else base}


def stage_job(recipe: str, base: str, output: Path, stage: str, random_init: bool = False, cv: bool = False) -> train.TrainJob:
    """A stage's training run: the recipe's own ``[training]`` table, changed where the base's family
    needs it (``SCHEDULE_OVERRIDES``); with ``cv``, the seeds cross-validation first."""
    loaded = load_recipe(recipe)
    overrides = SCHEDULE_OVERRIDES.get(base_family(base), {}).get(stage, {})
    settings = replace(train.resolve_settings(loaded, from_scratch=False), **overrides)
    argv = ["--recipe", recipe, "--base-model", base, "--output", str(output), "--overwrite", "--no-progress"]
    argv += [item for option, value in overrides.items() for item in (f"--{option.replace('_', '-')}", str(value))]
    argv += ["--random-init"] if random_init else []
    argv += ["--cv", "--cv-source", "seeds"] if cv else []
    source = train.ModelSource(base, random_init=random_init)
    return train.TrainJob(
        loaded, output, source, settings, cv=train.CrossValidation("seeds") if cv else None, progress=False, argv=tuple(argv)
    )


def train_stage(job: train.TrainJob, retrain: bool = False) -> dict:
    """Run one stage; returns its metrics.json. A stage already trained with the same fingerprint (an
    interrupted build run again) is reused unless ``retrain``: the fingerprint does not cover the
    training code itself."""
    fingerprint = stage_fingerprint(job)
    record = job.output / STAGE_RECORD
    if not retrain and record.is_file() and read_json(record)["fingerprint"] == fingerprint:
        log(f"== reusing {job.output} (trained by an earlier run with the same command, data and base)")
        return read_json(job.output / "metrics.json") | {"wall_clock_s": read_json(record)["wall_clock_s"]}
    log(f"== {job.command}")
    started = time.perf_counter()
    try:
        info = train.train(job)
    except (train.ArgumentError, BaseModelError, InvalidDataError, RecipeError, GazetteerError) as exc:
        raise BuildError(f"training failed: {job.command}: {exc}") from None
    log(train.summary_line(job.output, info))
    wall_clock_s = time.perf_counter() - started
    record.write_text(json_text({"fingerprint": fingerprint, "wall_clock_s": wall_clock_s}), encoding="utf-8")
    return read_json(job.output / "metrics.json") | {"wall_clock_s": wall_clock_s}


def base_family(base: str) -> str:
    """Which schedule a base takes: "base-sized" (hidden size 768+; a hub id is taken to be),
    "sentencepiece" (a Unigram vocabulary: XLM-R-style encoders) or "small"."""
    directory = Path(base)
    if not (directory / "config.json").is_file() or read_json(directory / "config.json").get("hidden_size", 0) >= 768:
        return "base-sized"
    tokenizer = directory / "tokenizer.json"
    if tokenizer.is_file() and read_json(tokenizer).get("model", {}).get("type") == "Unigram":
        return "sentencepiece"
    return "small"


def run_arm(arm: Arm, work: Path, cv: bool, retrain: bool = False) -> dict[str, dict]:
    """Both stages from one base; stage 2 starts from stage 1's model (so a retrained stage 1
    changes stage 2's fingerprint)."""
    stage1 = train_stage(stage_job(STAGE1_RECIPE, arm.base, work / arm.name / "stage1", "stage1", random_init=arm.random_init), retrain)
    stage2_base = str(work / arm.name / "stage1")
    stage2 = train_stage(stage_job(STAGE2_RECIPE, stage2_base, work / arm.name / "stage2", "stage2", cv=cv), retrain)
    return {"stage1": stage1, "stage2": stage2}


def source_f1(metrics: dict) -> dict[str, float]:
    return {name: report["micro avg"]["f1-score"] for name, report in metrics["dev"]["per_source"].items()}


def selection_score(stage2: dict) -> float:
    """What an arm is chosen by: the mean of its two held-out estimates, one for each kind of news
    the model is for: the mean per-source dev F1 (the corpora's news, their labels) and the pooled
    leave-one-article-out F1 on the seed articles (our guidelines, all nine labels)."""
    return (stage2["dev"]["f1"] + seeds_cv_f1(stage2)) / 2


def best_arm(arms: Sequence[Arm], results: dict[str, dict]) -> Arm:
    """The arm with the best ``selection_score`` (the first of equals: the pre-trained encoder is
    listed first, so pre-training is kept only where it pays)."""
    return max(arms, key=lambda arm: (selection_score(results[arm.name]["stage2"]), -arms.index(arm)))


def comparison_record(encoder: str, arms: Sequence[Arm], results: dict[str, dict]) -> dict:
    """Dev F1 per source of both stages for each arm, with what the bases are, and the arm the
    default model is built from."""
    chosen = best_arm(arms, results)
    record = {
        "recipe": [STAGE1_RECIPE, STAGE2_RECIPE],
        "encoder": encoder,
        "chosen": {"name": chosen.name, "base": chosen.base, "random_init": chosen.random_init},
        "arms": [],
    }
    for arm in arms:
        stages = results[arm.name]
        pretraining = None
        metrics_file = Path(arm.base) / "pretrain_metrics.json"
        if not arm.random_init and metrics_file.is_file():
            info = read_json(metrics_file)
            pretraining = {
                "steps": info["optimizer_steps"],
                "epochs": round(info["epochs"], 2),
                "eval_loss": info["eval_loss"],
                "snapshot_of": info.get("snapshot_of"),
            }
        record["arms"].append(
            {
                "name": arm.name,
                "base": arm.base,
                "random_init": arm.random_init,
                "pretraining": pretraining,
                **{
                    stage: {
                        "mean_f1": stages[stage]["dev"]["f1"],
                        "per_source": source_f1(stages[stage]),
                        "minutes": round(stages[stage]["wall_clock_s"] / 60),
                    }
                    for stage in ("stage1", "stage2")
                },
                "seeds_cv_f1": seeds_cv_f1(stages["stage2"]),
                "selection_score": selection_score(stages["stage2"]),
            }
        )
    return record


def record_comparison(encoder: Path, comparison: dict) -> None:
    """Write the comparison into the encoder's directory: the JSON, and a section of its card
    (replacing an earlier one)."""
    (encoder / COMPARISON_FILE).write_text(json_text(comparison), encoding="utf-8")
    card = encoder / "README.md"
    card.write_text(with_comparison_section(card.read_text(encoding="utf-8"), comparison, str(encoder), COMPARISON_FILE), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# How the corpora's conventions and ours pull


def title_led_persons(documents, predicted: Sequence[Sequence[str]], title_map) -> tuple[int, int]:
    """(predicted PERS spans whose first word is a title, all predicted PERS spans): our guidelines
    put the title beside the name, as OCC; FANE put it inside."""
    from serving.text import segment_words

    led = total = 0
    for document, tags in zip(documents, predicted, strict=True):
        words = segment_words(document.text)
        for first, _, label in tag_ranges(tags):
            if label == "PERS":
                total += 1
                led += title_map.is_leading_word("PERS", words[first].text)
    return led, total


def dev_agreement(metrics: dict) -> list[dict]:
    """How far the gold of two sources agrees where their dev sets annotate the same lines (ANERcorp
    and NewsFANE): per label of the source listed first, as ``python -m training.stats A --compare B
    --by-sentence``. No model scored against both can be expected to agree with each more closely."""
    dev = {}
    for source in metrics["data"]["sources"]:
        dev_ids = set(metrics["splits"]["sources"][source["name"]]["dev_ids"])
        if dev_ids:
            dev[source["name"]] = [d for d in read_documents(REPO_ROOT / source["path"]) if d.id in dev_ids]
    pairs = []
    names = list(dev)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            lines, by_label = sentence_agreement(dev[first], dev[second])
            if lines:
                pairs.append(
                    {
                        "first": first,
                        "second": second,
                        "lines": lines,
                        "labels": {label: asdict(a) | {"f1": a.f1} for label, a in by_label.items()},
                    }
                )
    return pairs


def convention_pull(stage1_dir: Path, stage1: dict, stage2: dict) -> dict:
    """Per-label F1 before and after stage 2: on the seeds (stage 1 never saw them; stage 2 by
    cross-validation) and on every dev source; how often a predicted PERS starts with a title; and
    how far sources that annotate the same dev lines agree."""
    from .predict import load_predictor

    seeds = read_documents(REPO_ROOT / SEEDS)
    stage1_tags = [tags for _, tags in load_predictor(str(stage1_dir)).predict([d.text for d in seeds])]
    folds = {fold["document_id"]: fold["predicted_tags"] for fold in stage2["cv"]["folds"]}
    stage2_tags = [folds[d.id] for d in seeds]
    gold = [gold_tags(d) for d in seeds]
    titles = load_label_map(REPO_ROOT / TITLE_WORDS_MAP)
    return {
        "seeds": {"stage1": entity_report(gold, stage1_tags), "stage2_cv": entity_report(gold, stage2_tags)},
        "title_led_pers": {
            "stage1": title_led_persons(seeds, stage1_tags, titles),
            "stage2_cv": title_led_persons(seeds, stage2_tags, titles),
        },
        "dev": {
            stage: {
                name: {label: scores["f1-score"] for label, scores in report.items() if not label.endswith(" avg")}
                for name, report in metrics["dev"]["per_source"].items()
            }
            for stage, metrics in (("stage1", stage1), ("stage2", stage2))
        },
        "dev_agreement": dev_agreement(stage2),
    }


# ---------------------------------------------------------------------------------------------
# The card


def default_card_facts(encoder: Path, chosen: Arm, stage1: dict, stage2: dict, pull: dict, comparison: dict | None) -> dict:
    """What the default model's card says (``modelcard.default_model_card``): the build's records,
    with what it read besides them: the chosen base's pre-training or import record, the sources' licences
    and citations, the seed articles' size."""
    seeds = read_documents(REPO_ROOT / SEEDS)
    pretrain_metrics = Path(chosen.base) / "pretrain_metrics.json"
    imported = Path(chosen.base) / IMPORT_RECORD
    return {
        "encoder": str(encoder),
        "chosen": asdict(chosen),
        "pretraining": read_json(pretrain_metrics) if pretrain_metrics.is_file() else None,
        "imported": read_json(imported) if imported.is_file() and not chosen.random_init else None,
        "recipes": {"stage1": STAGE1_RECIPE, "stage2": STAGE2_RECIPE},
        "stage1": stage1,
        "stage2": stage2,
        "convention_pull": pull,
        "sources": tomllib.loads(SOURCES_FILE.read_text(encoding="utf-8")),
        "seeds": {
            "path": SEEDS,
            "documents": len(seeds),
            "words": sum(len(d.text.split()) for d in seeds),
            "mentions": sum(len(d.spans) for d in seeds),
        },
        "comparison": comparison,
        "comparison_file": COMPARISON_FILE,
        "arms": read_json(REPO_ROOT / ARMS_RECORD) if (REPO_ROOT / ARMS_RECORD).is_file() else None,
        "arms_file": ARMS_RECORD,
    }


# ---------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True)
class BuildJob:
    """A build of the default model: what ``python -m training.build_default`` parses its command
    line into. ``build_default(job)`` runs it."""

    encoder: str  # the pre-trained encoder: a directory (make encoder) or a hub id
    output: Path = Path("models/default")  # the runtime (ONNX) directory
    work_dir: Path = Path("runs/default")  # the stages' PyTorch models
    compare: tuple[str, ...] = ()  # other bases to run the recipe from: directories, or "none" (random weights)
    retrain: bool = False  # train every stage again, even one an earlier run left

    @property
    def arms(self) -> list[Arm]:
        """The shipped encoder's arm first, then the compared ones ("none": random weights).

        >>> [(arm.name, arm.base, arm.random_init) for arm in BuildJob("models/encoder", compare=("none", "models/other")).arms]
        [('encoder', 'models/encoder', False), ('no-pretraining', 'models/encoder', True), ('base-2', 'models/other', False)]
        """
        arms = [Arm("encoder", self.encoder)]
        for number, base in enumerate(self.compare, start=1):
            arms.append(Arm("no-pretraining", self.encoder, random_init=True) if base == "none" else Arm(f"base-{number}", base))
        return arms


def build_default(job: BuildJob) -> dict:
    """Both stages from the chosen arm (after the comparison, with ``job.compare``), the card, and
    the int8 export into ``job.output`` with the probe's section; returns the export's report.
    Raises BuildError when a stage fails, export.ExportError when the export does."""
    encoder, work, arms = Path(job.encoder), job.work_dir, job.arms
    if len(arms) > 1:
        results = {arm.name: run_arm(arm, work, cv=True, retrain=job.retrain) for arm in arms}
        comparison = comparison_record(job.encoder, arms, results)
        record_comparison(encoder, comparison)
        log(comparison_table(comparison))
    else:
        comparison = read_json(encoder / COMPARISON_FILE) if (encoder / COMPARISON_FILE).is_file() else None
        results = {}
    # The default model is built from the arm the comparison chose (the encoder without one).
    chosen = Arm(**comparison["chosen"]) if comparison else arms[0]
    if chosen.name not in results or "cv" not in results[chosen.name]["stage2"] or not results[chosen.name]["stage2"]["cv"]:
        log(
            f"== the default model: {chosen.name} ({'random weights' if chosen.random_init else chosen.base}), with the seeds cross-validation"
        )
        results[chosen.name] = run_arm(chosen, work, cv=True, retrain=job.retrain)
    stage1, stage2 = results[chosen.name]["stage1"], results[chosen.name]["stage2"]
    pull = convention_pull(work / chosen.name / "stage1", stage1, stage2)
    trained = work / chosen.name / "stage2"
    # The card renders stage 2's training card again from its metrics.json: README.md is replaced here, and a re-run reuses the stage.
    card = default_model_card(default_card_facts(encoder, chosen, stage1, stage2, pull, comparison))
    (trained / "README.md").write_text(card, encoding="utf-8")
    (trained / "build.json").write_text(
        json_text({"chosen": chosen.name, "comparison": comparison, "convention_pull": pull, "stage1_dev": stage1["dev"]}), encoding="utf-8"
    )
    log(f"== exporting {trained} to {job.output}")
    keep_fp32 = EXPORT_KEEP_FP32.get(base_family(chosen.base), ())
    report = export.export(export.ExportJob(trained, job.output, name=job.output.name, force=True, keep_fp32=keep_fp32), log=log)
    for line in export.summary_lines(report, job.output):
        log(line)
    add_probe_section(job.output)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.build_default", description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="the pre-trained encoder: a directory (make encoder) or a hub id (CAMeLBERT)")
    parser.add_argument("--output", default="models/default", help="runtime (ONNX) directory to write")
    parser.add_argument("--work-dir", default="runs/default", help="where the stages' PyTorch models go")
    parser.add_argument("--compare", help="comma-separated other bases to run the recipe from: directories, or none (random weights)")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train every stage again, even those an earlier run left with the same command, data and base (after changing training code)",
    )
    args = parser.parse_args(argv)
    encoder = Path(args.encoder)
    if encoder.is_dir() and not (encoder / "config.json").is_file():
        parser.error(f"--encoder {encoder}: no config.json (build it with `make encoder`)")
    if args.compare and not encoder.is_dir():
        parser.error("--compare records its table in the encoder's directory: --encoder must be a local directory")
    job = BuildJob(str(encoder), Path(args.output), Path(args.work_dir), tuple(filter(None, (args.compare or "").split(","))), args.retrain)
    try:
        build_default(job)
    except BuildError as exc:
        log(f"error: {exc}")
        return 1
    except export.ExportError as exc:
        log(f"export failed: {exc}")
        return 1
    return 0


def add_probe_section(model_dir: Path) -> None:
    """Score the exported model on the probe with the serving runtime and add the section to its card."""
    from serving.annotation import atomic_write_text

    from .evaluate import predict_with_onnx

    documents = read_documents(REPO_ROOT / PROBE)
    gold, predicted = [gold_tags(d) for d in documents], predict_with_onnx(str(model_dir), documents)
    report = entity_report(gold, predicted)
    misses = probe_misses(documents, gold, predicted)
    log(f"== probe ({PROBE}): entity F1 {report['micro avg']['f1-score']:.3f} as served; {len(misses)} of {len(documents)} texts wrong")
    card = model_dir / "README.md"
    section = probe_section(report, len(documents), PROBE, misses)
    atomic_write_text(card, card.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + section + "\n")


if __name__ == "__main__":
    sys.exit(main())

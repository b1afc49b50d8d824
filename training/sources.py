"""Training sources: several annotation files, each with a sampling weight and a dev fraction.

A recipe file (TOML) lists them:

    seed = 13                       # seeds the dev draw (training.splits)

    [[sources]]
    name = "seeds"                  # names the source in per-source scores
    path = "annotations/seeds.jsonl"
    weight = 8.0                    # passes over its documents per epoch (a fraction draws a seeded share once per run)
    dev_fraction = 0.0              # share of its documents held out as its dev set

    [[sources]]
    name = "anercorp"
    path = "runs/corpora/anercorp.jsonl"   # relative paths: from the directory training runs in
    dev_fraction = 0.1
    o_may_be = ["ORG"]              # a word this source leaves O may still be an ORG (see Source)

    [training]                      # hyper-parameters (training.train.TrainSettings); options override them
    epochs = 8
    learning_rate = 5e-4

``training.train --data FILE...`` builds the same from plain files (weight 1, ``--dev-fraction``
for each, named after the file). Every file is validated before any model is loaded.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from serving.annotation import Document
from serving.schema import known_labels

from .data import load_training_documents
from .dev_splits import SourceSplit, carve_dev_splits

DEFAULT_SPLIT_SEED = 13


class RecipeError(ValueError):
    """A recipe file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    weight: float = 1.0
    dev_fraction: float = 0.0
    # Labels this source marks, but whose absence is no evidence when training: where another corpus
    # over the same sentences marks many mentions this one leaves out, a word left O here may still be
    # that label. Its spans of the label stay positives, and its dev set is still scored on the label.
    o_may_be: tuple[str, ...] = ()

    def as_trained(self, document: Document) -> Document:
        """The document as the loss reads it: the labels of ``o_may_be`` count as not annotated
        (``training.loss.allowed_tags``), so its O words may be one of them.

        >>> Source("anercorp", "a.jsonl", o_may_be=("ORG",)).as_trained(Document("d", "نص", annotated=("PERS", "ORG"))).annotated
        ('PERS',)
        """
        if not self.o_may_be:
            return document
        return replace(document, annotated=tuple(label for label in document.annotated if label not in self.o_may_be))


@dataclass(frozen=True)
class Recipe:
    sources: tuple[Source, ...]
    seed: int = DEFAULT_SPLIT_SEED
    path: str | None = None  # the recipe file, when read from one
    # The [training] table as written; training.train checks its keys and values against its settings.
    training: dict = field(default_factory=dict)

    def split(self) -> list[SourceSplit]:
        """Validate and read every source (raises InvalidDataError), then carve the dev sets."""
        loaded = [(source.name, load_training_documents(source.path), source.dev_fraction) for source in self.sources]
        return carve_dev_splits(loaded, self.seed)

    def source(self, name: str) -> Source:
        return next(source for source in self.sources if source.name == name)

    @property
    def weights(self) -> dict[str, float]:
        return {source.name: source.weight for source in self.sources}


def _number(value, where: str, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise RecipeError(f"{where}: expected a number {bound}, got {value!r}")
    return float(value)


def _labels(value, where: str) -> tuple[str, ...]:
    try:
        return known_labels(value)
    except ValueError as exc:
        raise RecipeError(f"{where}: {exc}") from None


SOURCE_KEYS = ("name", "path", "weight", "dev_fraction", "o_may_be")


def parse_recipe(data: dict, path: str) -> Recipe:
    """Check a parsed recipe; every error names ``path`` and the key."""
    unknown = sorted(set(data) - {"seed", "sources", "training"})
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {', '.join(unknown)} (known: seed, sources, training)")
    training = data.get("training", {})
    if not isinstance(training, dict):
        raise RecipeError(f"{path}: training: expected a [training] table, got {training!r}")
    seed = data.get("seed", DEFAULT_SPLIT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecipeError(f"{path}: seed: expected an integer, got {seed!r}")
    entries = data.get("sources")
    if not isinstance(entries, list) or not entries:
        raise RecipeError(f"{path}: expected at least one [[sources]] table")
    sources = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: sources #{number}"
        if not isinstance(entry, dict):
            raise RecipeError(f"{where}: expected a table")
        unknown = sorted(set(entry) - set(SOURCE_KEYS))
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(SOURCE_KEYS)})")
        for key in ("name", "path"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise RecipeError(f"{where}: {key}: expected a non-empty string, got {entry.get(key)!r}")
        sources.append(
            Source(
                entry["name"],
                entry["path"],
                _number(entry.get("weight", 1.0), f"{where} ({entry['name']}): weight", 0.0),
                _number(entry.get("dev_fraction", 0.0), f"{where} ({entry['name']}): dev_fraction", 0.0, 0.9),
                _labels(entry.get("o_may_be", []), f"{where} ({entry['name']}): o_may_be"),
            )
        )
    names = [source.name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecipeError(f"{path}: source name(s) {', '.join(repeated)} used more than once")
    if not any(source.weight > 0 for source in sources):
        raise RecipeError(f"{path}: every source has weight 0; nothing to train on")
    return Recipe(tuple(sources), seed, path, training)


def read_recipe_file(path: str | Path) -> dict:
    """A recipe file's TOML as a dict; raises RecipeError naming the file."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe TOML file; raises RecipeError naming the file."""
    return parse_recipe(read_recipe_file(path), str(path))


def check_setting(where: str, value, kind: type, choices: Sequence | None = None, minimum: float | None = None) -> None:
    """A value of a recipe's ``[training]`` or ``[pretraining]`` table against what its setting
    takes (``kind`` float also takes an integer); raises RecipeError naming ``where``.

    >>> check_setting("r.toml: [training] epochs", "3", float)
    Traceback (most recent call last):
    training.sources.RecipeError: r.toml: [training] epochs: expected a number, got '3'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
        raise RecipeError(
            f"{where}: expected {'a number' if kind is float else 'an integer' if kind is int else 'a string'}, got {value!r}"
        )
    if choices and value not in choices:
        raise RecipeError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    if minimum is not None and value < minimum:
        raise RecipeError(f"{where}: expected at least {minimum}, got {value!r}")


def checked_settings(
    table: dict,
    where: str,
    kinds: dict[str, type],
    choices: dict[str, Sequence] | None = None,
    minimum: dict[str, float] | None = None,
    lists: Collection[str] = (),
) -> dict:
    """A recipe's settings table (``[training]``, ``[pretraining]``) with each value checked against
    its setting's kind (``check_setting``) and converted to it; a setting in ``lists`` takes a list
    (a lone value becomes a one-item tuple). Errors name ``where`` (the file and table) and the key.

    >>> checked_settings({"epochs": 8, "steps": [1, 2]}, "r.toml: [t]", {"epochs": float, "steps": int}, lists={"steps"})
    {'epochs': 8.0, 'steps': (1, 2)}
    >>> checked_settings({"epoch": 8}, "r.toml: [t]", {"epochs": float})
    Traceback (most recent call last):
    training.sources.RecipeError: r.toml: [t] epoch: unknown setting (known: epochs)
    """
    resolved = {}
    for key, value in table.items():
        at = f"{where} {key}"
        if key not in kinds:
            raise RecipeError(f"{at}: unknown setting (known: {', '.join(kinds)})")
        items = value if key in lists and isinstance(value, list) else [value]
        for item in items:
            check_setting(at, item, kinds[key], (choices or {}).get(key), (minimum or {}).get(key))
        resolved[key] = tuple(map(kinds[key], items)) if key in lists else kinds[key](value)
    return resolved


def recipe_from_files(paths: Sequence[str], dev_fraction: float = 0.0, seed: int = DEFAULT_SPLIT_SEED) -> Recipe:
    """One source per file, weight 1, named after the file (``runs/corpora/aqmar.jsonl`` -> aqmar)."""
    names = [Path(path).name.removesuffix(".jsonl") for path in paths]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecipeError(f"--data: two files are named {', '.join(repeated)}; use a recipe file to name the sources")
    return Recipe(tuple(Source(name, path, 1.0, dev_fraction) for name, path in zip(names, paths, strict=True)), seed)


def weighted_copies(items: Sequence, weight: float, rng: random.Random) -> list:
    """``weight`` passes over ``items``: whole passes repeat them, a fraction draws that share
    without replacement (seeded), so the result is exact in expectation and reproducible.

    >>> weighted_copies([1, 2, 3, 4], 1.5, random.Random(0))
    [1, 2, 3, 4, 4, 2]
    """
    whole = int(weight)
    chosen = list(items) * whole
    extra = round((weight - whole) * len(items))
    return chosen + rng.sample(list(items), extra)

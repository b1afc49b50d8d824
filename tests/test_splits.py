"""Dev splits: document-level, reproducible from a seed whatever the file order, kept apart from
training text shared across sources; and the recipe files that list the sources."""

from __future__ import annotations

import doctest
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from serving.annotation import Document, read_documents
from serving.spans import Span
from training import dev_splits, sources
from training.corpus_import import import_conll
from training.dev_splits import carve_dev_splits, move_to_dev
from training.label_maps import load_label_map
from training.sources import RecipeError, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
EXCERPTS = ROOT / "tests" / "data" / "corpora"


@pytest.mark.parametrize("module", [dev_splits, sources], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def numbered_documents(prefix: str, count: int) -> list[Document]:
    return [Document(f"{prefix}-{i:03d}", f"نص الوثيقة رقم {i} من المصدر {prefix} وهو نص طويل بما يكفي للبصمة\n") for i in range(count)]


def test_the_draw_is_seeded_and_independent_of_file_order():
    documents = numbered_documents("a", 40)
    first = carve_dev_splits([("a", documents, 0.25)], seed=13)[0]
    shuffled = list(documents)
    random.Random(1).shuffle(shuffled)
    second = carve_dev_splits([("a", shuffled, 0.25)], seed=13)[0]
    assert len(first.dev) == 10 and {d.id for d in first.dev} == {d.id for d in second.dev}
    assert {d.id for d in first.train} | {d.id for d in first.dev} == {d.id for d in documents}
    other_seed = carve_dev_splits([("a", documents, 0.25)], seed=14)[0]
    assert {d.id for d in other_seed.dev} != {d.id for d in first.dev}


def seed_drawing(source: str, documents: list[Document], fraction: float, wanted: list[str]) -> int:
    """A split seed under which the draw of ``source``'s dev documents picks exactly ``wanted``."""
    return next(seed for seed in range(200) if [d.id for d in carve_dev_splits([(source, documents, fraction)], seed)[0].dev] == wanted)


def test_shared_text_follows_the_dev_set_across_sources():
    """NewsFANE re-annotates ANERcorp's sentences (real excerpts, different tokenisation and
    orthography): when ANERcorp's copy is dev, NewsFANE's copy joins NewsFANE's dev set."""
    anercorp, _ = import_conll([str(EXCERPTS / "anercorp-excerpt.txt")], load_label_map(ROOT / "annotations/label_maps/anercorp.toml"))
    newsfane, _ = import_conll([str(EXCERPTS / "newsfane-excerpt.txt")], load_label_map(ROOT / "annotations/label_maps/newsfane.toml"))
    aner_documents = [anercorp[0], Document("aner-other", "جملة اخرى لا تشترك في اي نص مع غيرها من الوثائق في هذا الاختبار\n")]
    fane_documents = [newsfane[0], Document("fane-other", "نص ثالث طويل بما يكفي ولا يشبه شيئا مما سبق ابدا\n")]
    seed = seed_drawing("anercorp", aner_documents, 0.5, [anercorp[0].id])
    aner, fane = carve_dev_splits([("anercorp", aner_documents, 0.5), ("newsfane", fane_documents, 0.5)], seed)
    assert [d.id for d in aner.dev] == [anercorp[0].id]
    assert [d.id for d in fane.dev] == [newsfane[0].id] and [d.id for d in fane.train] == ["fane-other"]
    # A source without a dev set holds its copy of dev text back from training instead: the three
    # sentences it shares with ANERcorp's dev document; the excerpt's other three sentences train.
    aner, fane = carve_dev_splits([("anercorp", aner_documents, 0.5), ("newsfane", fane_documents, 0.0)], seed)
    assert fane.dev == [] and fane.held_back == [newsfane[0].id] and fane.held_back_lines == 3
    part, other = fane.train
    assert (part.id, other.id) == (f"{newsfane[0].id}:lines-4-7", "fane-other")
    assert part.text == "\n".join(newsfane[0].text.split("\n")[3:])
    offset = newsfane[0].text.index(part.text)
    assert [(s.start + offset, s.end + offset, s.label) for s in part.spans] == [
        (s.start, s.end, s.label) for s in newsfane[0].spans if s.start >= offset
    ]
    assert part.spans and all(part.text[s.start : s.end] == s.text for s in part.spans)


def test_a_training_document_sharing_dev_text_is_held_back():
    documents = [
        Document("a1", "وقال رئيس الاتحاد برند جوتشولك عند اعلان اخر تقرير سنوي للاتحاد ان مستقبل السوق مازال يفتقر\n"),
        Document("a2", "نص اخر طويل بما يكفي ليكون له بصمة مستقلة تماما عن النصين الاخرين في هذا الاختبار\n"),
        # The same sentence as a1 as FANE writes it: split clitics, no hamza, other punctuation.
        Document("a3", "حدث اخر . و قال رئيس الاتحاد برند جوتشولك عند إعلان آخر تقرير سنوي ل الاتحاد إن مستقبل السوق مازال يفتقر .\n"),
    ]
    (split,) = carve_dev_splits([("a", documents, 0.34)], seed_drawing("a", documents, 0.34, ["a1"]))
    assert split.held_back == ["a3"] and [d.id for d in split.train] == ["a2"]


def test_only_the_lines_sharing_dev_text_are_held_back():
    """A 20-sentence ANERcorp document that overlaps a NewsFANE dev document by one sentence keeps
    the others, as two documents (no false context across the gap); a span crossing into the
    dropped line is an error, not a silent drop."""
    shared = "وقال رئيس الاتحاد برند جوتشولك عند اعلان اخر تقرير سنوي للاتحاد ان مستقبل السوق مازال يفتقر"
    text = f"زار الرئيس بوتين موسكو\n{shared}\nوصل ماكرون الى باريس\nثم عاد\n"
    macron = text.index("ماكرون")
    spans = [Span(11, 16, "PERS", "بوتين"), Span(macron, macron + 6, "PERS", "ماكرون")]
    dev = Document("dev", shared.replace("و", "و ") + " .\n")
    (split,) = move_to_dev(
        [dev_splits.SourceSplit("d", [dev], [], []), dev_splits.SourceSplit("a", [Document("a1", text, spans)], [], [])], ["dev"]
    )[1:]
    assert split.held_back == ["a1"] and split.held_back_lines == 1
    assert [(d.id, d.text) for d in split.train] == [
        ("a1:lines-1-1", "زار الرئيس بوتين موسكو\n"),
        ("a1:lines-3-5", "وصل ماكرون الى باريس\nثم عاد\n"),
    ]
    assert [[(d.text[s.start : s.end], s.text) for s in d.spans] for d in split.train] == [[("بوتين", "بوتين")], [("ماكرون", "ماكرون")]]
    crossing = Document("a2", text, [Span(17, 30, "GPE")])  # «موسكو» run on into the shared line
    with pytest.raises(ValueError, match="a2: span 17-30 \\(GPE\\) crosses a line that shares dev text"):
        dev_splits.without_lines(crossing, {1})


def test_splits_command_writes_parts_and_ids(tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in numbered_documents("a", 10)), encoding="utf-8")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'seed = 5\n[[sources]]\nname = "a"\npath = "{data}"\ndev_fraction = 0.2\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "training.splits", "--recipe", str(recipe), "--output-dir", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "splits.json").read_text(encoding="utf-8"))
    dev = read_documents(tmp_path / "out" / "a.dev.jsonl")
    assert record["seed"] == 5 and record["sources"]["a"]["dev_ids"] == sorted(d.id for d in dev) and len(dev) == 2
    assert len(read_documents(tmp_path / "out" / "a.train.jsonl")) == 8


def test_shipped_recipes_share_their_dev_documents():
    """Stage 2 continues stage 1: both must hold out the same documents."""
    stage1 = load_recipe(ROOT / "training/recipes/default-stage1.toml")
    stage2 = load_recipe(ROOT / "training/recipes/default-stage2.toml")

    def strip(recipe):
        return [(s.name, s.path, s.dev_fraction) for s in recipe.sources]

    assert strip(stage1) == strip(stage2) and stage1.seed == stage2.seed
    assert stage1.weights["seeds"] == 0  # stage 1 never sees a seed article: stage 2 cross-validates over them


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sources": []}, r"r.toml: expected at least one \[\[sources\]\]"),
        ({"sources": [{"name": "a", "path": "x", "weight": -1}]}, r"sources #1 \(a\): weight: expected a number at least 0.0"),
        ({"sources": [{"name": "a", "path": "x", "dev_fraction": 0.95}]}, r"dev_fraction: expected a number between 0.0 and 0.9"),
        ({"sources": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, r"source name\(s\) a used more than once"),
        ({"sources": [{"name": "a", "path": "x", "weight": 0}]}, r"every source has weight 0"),
        ({"sources": [{"name": "a"}]}, r"sources #1: path: expected a non-empty string"),
        ({"seed": "x", "sources": [{"name": "a", "path": "x"}]}, r"seed: expected an integer"),
        ({"sources": [{"name": "a", "path": "x", "o_may_be": "ORG"}]}, r"sources #1 \(a\): o_may_be: expected a list of labels, got 'ORG'"),
        ({"sources": [{"name": "a", "path": "x", "o_may_be": ["ORG", "MISC"]}]}, r"sources #1 \(a\): o_may_be: unknown label\(s\) MISC"),
        (
            {"sources": [{"name": "a", "path": "x", "o_may_be_": []}]},
            r"unknown key\(s\) o_may_be_ \(known: name, path, weight, dev_fraction, o_may_be\)",
        ),
        ({"training": 3, "sources": [{"name": "a", "path": "x"}]}, r"r.toml: training: expected a \[training\] table"),
    ],
)
def test_bad_recipes_name_the_file_and_the_key(data, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(data, "r.toml")


def test_moving_a_document_to_dev_holds_back_training_text_it_shares():
    own = [Document(d.id, d.text * 3, []) for d in numbered_documents("a", 4)]  # longer than SHARED_CHARS
    # Another source re-annotates a-001's text (NewsFANE over ANERcorp): once a-001 is dev text, it must not train.
    copy = Document("b-000", own[1].text.replace("و", "و "), [])
    other = numbered_documents("b", 2)[1:]
    split_a, split_b = move_to_dev(
        [dev_splits.SourceSplit("a", own, [], []), dev_splits.SourceSplit("b", [copy, *other], [], [])], ["a-001"]
    )
    assert [d.id for d in split_a.dev] == ["a-001"] and "a-001" not in {d.id for d in split_a.train}
    assert split_b.held_back == ["b-000"] and [d.id for d in split_b.train] == ["b-001"]
    with pytest.raises(ValueError, match=r"unknown training document id.*nope"):
        move_to_dev([split_a, split_b], ["nope"])
    with pytest.raises(ValueError, match="b-000 are held back from training already"):
        move_to_dev([split_a, split_b], ["b-000"])


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"epoch": 3}, r"r.toml: \[training\] epoch: unknown setting \(known: epochs, "),
        ({"epochs": "3"}, r"\[training\] epochs: expected a number, got '3'"),
        ({"batch_size": 1.5}, r"\[training\] batch_size: expected an integer, got 1.5"),
        ({"loss": "focal"}, r"\[training\] loss: expected one of partial, cross-entropy, got 'focal'"),
        ({"short_crops": -1}, r"\[training\] short_crops: expected at least 0, got -1"),
        ({"gpe_replacements": -0.5}, r"\[training\] gpe_replacements: expected at least 0, got -0.5"),
        ({"headline_fragments": -2}, r"\[training\] headline_fragments: expected at least 0, got -2"),
        ({"seed": True}, r"\[training\] seed: expected an integer, got True"),
    ],
)
def test_bad_training_settings_name_the_file_and_the_key(training, message):
    from training.train import recipe_settings

    with pytest.raises(RecipeError, match=message):
        recipe_settings(parse_recipe({"sources": [{"name": "a", "path": "x"}], "training": training}, "r.toml"))


def test_the_recipe_sets_the_training_settings_and_the_command_line_overrides_them():
    from training.train import TrainSettings, build_parser, settings_from_args

    recipe = load_recipe(ROOT / "training/recipes/default-stage1.toml")

    def parse(*options):
        return build_parser().parse_args(["--recipe", "r.toml", "--output", "o", *options])

    _, settings = settings_from_args(parse(), recipe)
    assert (settings.epochs, settings.learning_rate, settings.batch_size, settings.seed) == (8.0, 5e-4, 32, 42)
    assert settings.weight_decay == TrainSettings().weight_decay  # not in the table: the default
    _, overridden = settings_from_args(parse("--learning-rate", "1e-4", "--short-crops", "0.5"), recipe)
    assert (overridden.learning_rate, overridden.short_crops, overridden.epochs) == (1e-4, 0.5, 8.0)
    _, from_files = settings_from_args(parse(), parse_recipe({"sources": [{"name": "a", "path": "x"}]}, "plain.toml"))
    assert from_files == TrainSettings()

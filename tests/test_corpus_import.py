"""CoNLL corpora -> our JSONL through the shipped label maps: one real excerpt per corpus
(tests/data/corpora/, see its README), every quirk of each, exact offsets, the summary's counts,
and the errors that must stop a conversion with FILE:LINE and nothing written."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving import conll
from serving.annotation import read_documents, validate_documents
from serving.schema import ENTITY_LABELS
from training import label_maps
from training.corpus_import import ConversionError, import_conll
from training.label_maps import LabelMapError, load_label_map, parse_label_map, with_reader_overrides

ROOT = Path(__file__).resolve().parents[1]
EXCERPTS = ROOT / "tests" / "data" / "corpora"
MAPS = ROOT / "annotations" / "label_maps"


def convert(corpus: str, *files: Path):
    label_map = load_label_map(MAPS / f"{corpus}.toml")
    documents, summary = import_conll([str(f) for f in files], label_map)
    assert validate_documents("converted", documents) == []
    for document in documents:
        assert document.source == label_map.source and document.annotated == label_map.annotated
        for span in document.spans:
            assert document.text[span.start : span.end] == span.text
    # Nothing is lost silently: every native entity read is kept, read as O by the map, or dropped with a reason.
    read = sum(summary.native_entities.values())
    assert read == sum(summary.kept.values()) + sum(summary.mapped_to_outside.values()) + len(summary.dropped) + len(summary.title_only)
    return documents, summary


def spans_of(documents) -> list[tuple[str, str]]:
    return [(span.label, span.text) for document in documents for span in document.spans]


@pytest.mark.parametrize("module", [label_maps, conll], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_anercorp_merged_places_misc_glued_punctuation_and_repaired_tags():
    documents, summary = convert("anercorp", EXCERPTS / "anercorp-excerpt.txt")
    assert len(documents) == 1  # 9 sentences: under document_sentences = 20
    assert summary.native_entities == {"MISC": 7, "LOC": 3, "PERS": 3, "ORG": 2}
    assert summary.kept == {"GPE|LOC|FAC": 3, "PERS": 3, "ORG": 2}
    assert summary.mapped_to_outside == {"MISC": 7}
    spans = spans_of(documents)
    assert spans[:3] == [("ORG", "اتحاد صناعة السيارات"), ("GPE|LOC|FAC", "ألمانيا"), ("GPE|LOC|FAC", "ألمانيا")]
    # «روي ( كين )»: the closing parenthesis, tagged I-PERS, is trimmed off the span's edge.
    assert ("PERS", "روي ( كين") in spans
    assert summary.punctuation_trimmed == [f"{EXCERPTS / 'anercorp-excerpt.txt'}:158"]
    # «إيه . ⏎ دي . ⏎ سي»: MISC continued across sentence breaks with I- tags, reported with their lines.
    assert summary.opened_by_inside_tag == [f"{EXCERPTS / 'anercorp-excerpt.txt'}:{n}" for n in (179, 182)]
    assert documents[0].text.startswith("أعلن اتحاد صناعة السيارات في ألمانيا امس الاول")


def test_newsfane_marks_clitics_titles_and_group():
    documents, summary = convert("newsfane", EXCERPTS / "newsfane-excerpt.txt")
    (document,) = documents
    assert "\u200e" not in document.text and summary.invisible_marks_removed == 176
    # Split-off clitics are attached again: the text reads as ANERcorp writes the same sentence.
    anercorp = convert("anercorp", EXCERPTS / "anercorp-excerpt.txt")[0][0]

    # FANE drops hamza forms and the dots of numbers, and writes one token «لالاتحاد» for «للاتحاد».
    def normalise(line):
        return re.sub("[أإآ]", "ا", line).replace(".", "").replace("لالاتحاد", "للاتحاد")

    assert normalise(document.text.splitlines()[1]) == normalise(anercorp.text.splitlines()[1])
    assert summary.clitics_attached == 22
    spans = spans_of(documents)
    # «و» attached to «الصين»: the span widens over it (our guidelines keep clitics inside the word's span).
    assert ("GPE", "والصين الشعبية") in spans and summary.widened_over_clitics == 1
    # `Group` is NORP; the title «الملك» leaves the person's span.
    assert ("NORP", "الشيوعيون") in spans and ("NORP", "صينيون") in spans
    assert ("PERS", "حمد بن عيسي ال خليفة") in spans and summary.titles_moved_out == {"الملك": 1}
    assert summary.kept == {"GPE": 10, "ORG": 2, "PERS": 2, "NORP": 2}


def test_wikifane_bom_crlf_continent_and_a_title_alone():
    raw = (EXCERPTS / "wikifane-excerpt.txt").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # the quirks under test are really there
    documents, summary = convert("wikifane", EXCERPTS / "wikifane-excerpt.txt")
    (document,) = documents
    assert "\ufeff" not in document.text and "\r" not in document.text
    assert document.spans[0].start == 0 and document.spans[0].text == "جمهورية جنوب السودان"
    spans = spans_of(documents)
    assert ("LOC", "افريقيا") in spans  # ACE continent: our LOC
    # «عاصمة ها» -> «عاصمتها»: the ta marbuta is written ta before a suffix.
    assert "عاصمتها" in document.text and "واكبر مدنها" in document.text
    # «الخديوي» alone, tagged Politician: a title names no person; read as O and reported.
    assert summary.title_only == [f"{EXCERPTS / 'wikifane-excerpt.txt'}:110"]
    assert all(text != "الخديوي" for _, text in spans)
    assert summary.kept == {"GPE": 8, "LOC": 2, "NORP": 2}


def test_wojood_outer_level_segment_markers_and_numeric_types():
    documents, summary = convert("wojood", EXCERPTS / "wojood-excerpt.txt")
    (document,) = documents
    assert document.annotated == ENTITY_LABELS
    assert "$#$" not in document.text and summary.segment_markers == 1
    spans = spans_of(documents)
    # The outer level: one OCC holding an ORG and a GPE (nested at levels 1 and 2).
    assert ("OCC", "سكرتير اللجنة القومية العربية في نابلس") in spans
    assert summary.mapped_to_outside == {"ORDINAL": 2, "CARDINAL": 1, "LAW": 1}
    assert summary.kept == {"ORG": 3, "DATE": 3, "OCC": 1, "FAC": 1}
    # «الفرنسي I-FAC» opens a sentence: read as B- and reported.
    assert summary.opened_by_inside_tag == [f"{EXCERPTS / 'wojood-excerpt.txt'}:79"]
    # The inner level is one flag away.
    inner = with_reader_overrides(load_label_map(MAPS / "wojood.toml"), level=1)
    inner_documents, _ = import_conll([str(EXCERPTS / "wojood-excerpt.txt")], inner)
    assert {("ORG", "اللجنة القومية العربية"), ("GPE", "نابلس")} <= set(spans_of(inner_documents))


def test_aqmar_one_document_per_article_typo_tags_and_merged_labels():
    files = sorted((EXCERPTS / "aqmar").glob("*.txt"))
    documents, summary = convert("aqmar", *files)
    assert [d.id for d in documents] == [f"aqmar-{f.stem}" for f in files]
    assert summary.tag_fixes == {"IO": 1, "I--ORG": 1, "OO": 1, "B-MIS1`": 1}
    assert summary.mapped_to_outside == {"MIS1": 5, "MIS2": 2, "ENGLISH": 1}
    spans = spans_of(documents)
    assert ("PERS|NORP", "الصليبيون") in spans  # AQMAR's PER also names groups of people
    assert ("GPE|LOC|FAC", "أنطاكية") in spans
    assert ("ORG", "الحكومة الأمريكية") in spans  # «I--ORG» repaired, the entity kept whole


@pytest.mark.model
def test_all_five_corpora_convert_with_nothing_dropped():
    """The shipped maps cover every tag of the shipped corpora."""
    corpora = ROOT / "annotations" / "corpora"
    files = {
        "anercorp": [corpora / "anercorp" / "ANERCorp_CamelLab_train.txt"],
        "newsfane": [corpora / "newsfane" / "NewsFANE_Gold_2014_train_part.txt"],
        "wikifane": [corpora / "wikifane" / "WikiFANE_Gold_2014_500K.txt"],
        "wojood": [corpora / "wojood-sample" / "train.txt", corpora / "wojood-sample" / "val.txt"],
        "aqmar": sorted((corpora / "aqmar").glob("*.txt")),
    }
    totals = {}
    for corpus, paths in files.items():
        _, summary = convert(corpus, *paths)
        assert summary.dropped == []
        totals[corpus] = (summary.tokens, sum(summary.kept.values()))
    assert totals == {
        "anercorp": (125_084, 8_087),
        "newsfane": (141_436, 9_082),
        "wikifane": (489_561, 32_928),
        "wojood": (21_224, 2_368),
        "aqmar": (73_853, 3_397),
    }


def test_unknown_native_tag_stops_the_conversion_naming_file_and_line(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text("زار O\nموسكو B-CITY\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "training.convert", "--from", "conll", "--label-map", str(MAPS / "anercorp.toml"), str(source), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{source}:2: native tag 'CITY' has no entry in [tags]" in result.stderr
    assert "nothing written" in result.stderr and not output.exists()


def test_malformed_tags_and_lines_name_file_and_line(tmp_path):
    label_map = load_label_map(MAPS / "anercorp.toml")
    bad_tag = tmp_path / "bad-tag.txt"
    bad_tag.write_text("زار O\nموسكو X-LOC\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=rf"{re.escape(str(bad_tag))}:2: malformed IOB tag 'X-LOC'.*\[tag_fixes\]"):
        import_conll([str(bad_tag)], label_map)
    one_column = tmp_path / "one-column.txt"
    one_column.write_text("زار O\nموسكو\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=rf"{re.escape(str(one_column))}:2: expected 'token TAG'"):
        import_conll([str(one_column)], label_map)
    empty_tag = tmp_path / "empty-tag.txt"  # a tab-separated line whose tag is missing is no O
    empty_tag.write_text("زار\tO\nموسكو\t\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=rf"{re.escape(str(empty_tag))}:2: no tag in column -1"):
        import_conll([str(empty_tag)], with_reader_overrides(label_map, separator="tab"))


def test_two_files_that_would_give_the_same_document_ids_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "news.txt").write_text("زار O\nموسكو B-LOC\n", encoding="utf-8")
    with pytest.raises(ConversionError, match=r"b/news.txt: document id 'anercorp-news' is also made from .*a/news.txt"):
        import_conll([str(tmp_path / "a" / "news.txt"), str(tmp_path / "b" / "news.txt")], load_label_map(MAPS / "anercorp.toml"))


def test_data_already_in_our_labels_needs_no_map(tmp_path):
    source = tmp_path / "ours.conll"
    source.write_text("زار O\nالرئيس B-OCC\nبوتين B-PERS\nموسكو B-GPE\n", encoding="utf-8")
    output = tmp_path / "ours.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "training.convert", "--from", "conll", "--source", "mine", str(source), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (document,) = read_documents(output)
    assert document.source == "mine" and document.annotated == ENTITY_LABELS
    assert [(s.label, s.text) for s in document.spans] == [("OCC", "الرئيس"), ("PERS", "بوتين"), ("GPE", "موسكو")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "x", "annotated": ["PERS"], "tags": {"PER": "PERSON"}}, r"m.toml: \[tags\] PER: unknown label\(s\) PERSON"),
        ({"source": "x", "annotated": ["PERS"], "tags": {"LOC": ["GPE"]}}, r"\[tags\] LOC: a set needs at least two labels"),
        ({"source": "x", "annotated": ["CITY"], "tags": {"PER": "PERS"}}, r"m.toml: annotated: unknown label\(s\) CITY"),
        ({"source": "x", "annotated": ["PERS"]}, r"m.toml: missing key 'tags'"),
        (
            {"source": "x", "annotated": ["PERS"], "tags": {"PER": "PERS"}, "reader": {"separator": "comma"}},
            r"\[reader\].separator: expected one of",
        ),
        ({"source": "x", "annotated": ["PERS"], "tags": {"PER": "PERS"}, "colour": 1}, r"unknown key\(s\) colour"),
        (
            {"source": "x", "annotated": ["PERS"], "tags": {"PER": "PERS"}, "reader": {"level": 1}},
            r"\[reader\]: a nested level \(1\) needs a tag column counted from the start",
        ),
    ],
)
def test_bad_label_maps_name_the_file_and_the_key(data, message):
    with pytest.raises(LabelMapError, match=message):
        parse_label_map(data, "m.toml")


def test_a_map_extends_another_and_a_cycle_is_refused(tmp_path):
    (tmp_path / "base.toml").write_text('source = "base"\nannotated = ["PERS"]\n[tags]\nPER = "PERS"\nLOC = "O"\n', encoding="utf-8")
    (tmp_path / "child.toml").write_text('extends = "base.toml"\nsource = "child"\n[tags]\nLOC = ["GPE", "LOC"]\n', encoding="utf-8")
    child = load_label_map(tmp_path / "child.toml")
    assert child.source == "child" and child.tags == {"PER": "PERS", "LOC": "GPE|LOC"}
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n', encoding="utf-8")
    with pytest.raises(LabelMapError, match="extends it back"):
        load_label_map(tmp_path / "a.toml")

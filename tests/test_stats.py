"""`python -m training.stats --compare --by-sentence`: agreement between two corpora that annotate the
same sentences in files of their own (another spelling, tokenisation, document cut and order)."""

import pytest

from serving.annotation import Document, write_documents
from serving.spans import Span
from training import stats


def _document(doc_id: str, text: str, marked: list[tuple[str, str]]) -> Document:
    """A document whose spans are the first occurrence of each ``(mention, label)``."""
    return Document(
        doc_id, text, [Span(text.index(mention), text.index(mention) + len(mention), label, mention) for mention, label in marked]
    )


def test_corpora_of_the_same_sentences_are_compared_line_by_line(tmp_path, capsys):
    first = tmp_path / "anercorp.jsonl"
    second = tmp_path / "newsfane.jsonl"
    write_documents(
        first,
        [
            _document(
                "a-0",
                "وقال بان كي مون إن الأمم المتحدة ستدعم مصر .\nوزار الوفد القاهرة أمس .",
                [("بان كي مون", "PERS"), ("مصر", "GPE|LOC|FAC"), ("القاهرة", "GPE|LOC|FAC")],
            ),
            _document("a-1", "وأعلن الجيش اللبناني انتشاره في الجنوب .", []),
        ],
    )
    # The second corpus: other spelling (no hamza), split clitics, other document cuts and order, one line
    # the first corpus lacks; it marks the United Nations and the army, and reads Cairo as a facility.
    write_documents(
        second,
        [
            _document(
                "n-0",
                "و اعلن الجيش اللبناني انتشاره في الجنوب .\nو زار الوفد القاهرة امس .",
                [("الجيش اللبناني", "ORG"), ("القاهرة", "FAC")],
            ),
            _document(
                "n-1",
                "و قال بان كي مون ان الامم المتحدة ستدعم مصر .\nسطر لا يعرفه الاول .",
                [("بان كي مون", "PERS"), ("الامم المتحدة", "ORG"), ("مصر", "GPE")],
            ),
        ],
    )

    lines, by_label = stats.sentence_agreement(stats.read_documents(first), stats.read_documents(second))
    assert lines == 3
    assert by_label["PERS"] == stats.Agreement(matched=1, only_first=0, only_second=0)
    assert by_label["GPE|LOC|FAC"] == stats.Agreement(matched=2, only_first=0, only_second=0)
    # The first corpus marks no organisation on these lines: the second's two are a row of their own.
    assert by_label["ORG"] == stats.Agreement(matched=0, only_first=0, only_second=2)

    assert stats.main([str(first), "--compare", str(second), "--by-sentence"]) == 0
    out = capsys.readouterr().out
    assert "over the 3 lines both annotate" in out
    assert "| PERS | 1 | 0 | 0 | 1.000 |" in out
    assert "| GPE\\|LOC\\|FAC | 2 | 0 | 0 | 1.000 |" in out
    assert "| ORG | 0 | 0 | 2 | 0.000 |" in out


def test_by_sentence_without_a_second_file_is_an_error(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    write_documents(corpus, [_document("a-0", "زار بوتين موسكو .", [("بوتين", "PERS")])])
    with pytest.raises(SystemExit) as exit_info:
        stats.main([str(corpus), "--by-sentence"])
    assert exit_info.value.code == 2
    assert "--by-sentence compares two files" in capsys.readouterr().err

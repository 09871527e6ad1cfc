import csv
import re

import pytest
from markupsafe import escape
from PIL import Image

from trainlab.errors import DataError
from trainlab.explain.outputs import TOKEN_COLUMNS, read_tokens, write_bar_charts, write_tokens
from trainlab.explain.page import write_page
from trainlab.explain.ranking import TokenRank, rank_tokens
from trainlab.explain.words import ExplainedText, sentence_words

CLASSES = ["sadness", "joy", "a/b <c>"]  # a class name that is neither a safe file name nor safe HTML
SENTENCES = [
    ("i feel gloomy & sad", 0, 0),
    ("i feel gloomy today", 0, 0),
    ("so gloomy, i feel <b>lost</b>", 0, 1),
    ("wow i feel joyful", 1, 1),
    ("wow, so joyful \"really\"", 1, 1),
    ("wow joyful day", 1, 1),
    ("what a day", 2, 1),
]
FAITHFULNESS = [
    {"method": "attention", "k": 3, "top_drop": 0.4213, "random_drop": 0.0812, "count": 6},
    {"method": "integrated gradients", "k": 3, "top_drop": 0.5, "random_drop": 0.1, "count": 6},
]


def explained(i, sentence, label, predicted):
    pieces = ["[CLS]", *re.findall(r"\w+|[^\w\s]", sentence), "[SEP]"]
    scores = [0.0] + [2.0 if p in ("gloomy", "joyful", "wow") else 0.5 for p in pieces[1:-1]] + [0.0]
    return ExplainedText(i, sentence, sentence_words(pieces, scores), label, predicted, 0.8)


@pytest.fixture
def texts():
    return [explained(i, *entry) for i, entry in enumerate(SENTENCES)]


@pytest.fixture
def ranks(texts):
    return rank_tokens(texts, CLASSES, min_count=2)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "run" / "explain"


def test_tokens_csv_round_trips(folder, ranks):
    assert ranks  # the fixture ranks something in each of the first two classes
    write_tokens(folder, ranks, "attention")
    with open(folder / "tokens.csv", newline="") as f:
        assert next(csv.reader(f)) == TOKEN_COLUMNS
    back = read_tokens(folder)
    assert [(b.class_name, b.rank, b.token, b.count) for b in back] == [(r.class_name, r.rank, r.token, r.count)
                                                                         for r in ranks]  # fmt: skip
    for b, r in zip(back, ranks):
        assert (b.score, b.mean, b.lift) == pytest.approx((r.score, r.mean, r.lift), abs=1e-6)


def test_tokens_md_has_a_table_per_class_and_names_method_and_averaging(folder, ranks):
    write_tokens(folder, ranks, "attention rollout", classes=CLASSES)
    md = (folder / "tokens.md").read_text()
    assert md.splitlines()[0] == "# Tokens per class: attention rollout, mean over correctly predicted test sentences"
    assert md.count("| rank | token | score | mean | lift | count |") == len({r.class_name for r in ranks}) == 2
    assert "## a/b \\<c\\>" in md and "No token" in md  # the third class has no correct sentence
    for r in ranks:
        assert f"| {r.rank} | {r.token} | {r.score:.3f} |" in md


def test_read_tokens_names_the_file_and_line(folder, ranks):
    with pytest.raises(DataError, match="tokens.csv: not found"):
        read_tokens(folder)
    write_tokens(folder, ranks, "attention")
    lines = (folder / "tokens.csv").read_text().splitlines()
    (folder / "tokens.csv").write_text("\n".join([*lines[:2], "joy,2,wow,high,1,1,3", *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"tokens.csv, line 3: .*could not convert"):
        read_tokens(folder)
    (folder / "tokens.csv").write_text("class,token\n")
    with pytest.raises(DataError, match="tokens.csv, line 1: expected the header"):
        read_tokens(folder)


def test_one_bar_chart_per_ranked_class_with_a_safe_name(folder, ranks):
    charts = write_bar_charts(folder, ranks, CLASSES, method="attention")
    assert list(charts) == ["sadness", "joy"]  # the third class has no rows, so no chart
    assert [p.name for p in charts.values()] == ["bars-sadness.png", "bars-joy.png"]
    for path in charts.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100
    odd = ["a/b <c>", "a b", "a_b", "..."]
    rows = [TokenRank(name, 1, "$x$", 1.0, 1.0, 1.0, 3) for name in odd]  # drawn as text: "$x$" is no mathtext here
    names = [p.name for p in write_bar_charts(folder, rows, odd).values()]
    assert names == ["bars-a_b_c.png", "bars-a_b.png", "bars-a_b-2.png", "bars-class.png"]


def test_the_page_is_self_contained_escaped_and_filterable(folder, texts, ranks):
    charts = write_bar_charts(folder, ranks, CLASSES)
    path = write_page(folder, title="run-1", method="attention", texts=texts, classes=CLASSES, ranks=ranks,
                      faithfulness=FAITHFULNESS, bar_charts=charts, description="last layer, [CLS] query")  # fmt: skip
    page = path.read_text()
    assert path.name == "explain.html"
    for sentence, _, _ in SENTENCES:
        assert str(escape(sentence)) in page
    assert "<b>lost</b>" not in page and "a/b <c>" not in page and "a/b &lt;c&gt;" in page
    assert "http" not in page and "src=\"data:image/png;base64," in page
    assert page.count("<img ") == len(charts)
    assert 'id="class-filter"' in page and 'id="outcome-filter"' in page
    for value in ("all", "right", "wrong", "0", "1", "2"):
        assert f'<option value="{value}">' in page
    assert page.count('data-outcome="wrong"') == 2 and page.count('data-outcome="right"') == 5
    assert "0.4213" in page and "integrated gradients" in page and "last layer, [CLS] query" in page
    assert "No correctly predicted test sentence of this class" in page


def test_kept_words_are_coloured_by_score_and_left_out_words_are_not(folder, texts, ranks):
    page = write_page(folder, title="t", method="m", texts=texts[:1], classes=CLASSES, ranks=[]).read_text()
    assert "Faithfulness" not in page  # no table without figures
    # "i feel gloomy & sad": gloomy has the sentence's top score (colour 1), feel and sad a quarter of it
    assert re.search(r'class="kept" style="--a: 1.00" title="[0-9.]+">gloomy</span>', page)
    assert re.search(r'class="kept" style="--a: 0.25" title="[0-9.]+">feel</span>', page)
    assert 'class="out" title="left out">&amp;</span>' in page
    assert 'class="out" title="left out">i</span>' in page

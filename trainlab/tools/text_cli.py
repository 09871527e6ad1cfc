"""`trainlab text tokenize|bow|similarity`: the workshop's text processing on sentences or files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from trainlab.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="Text processing: tokens, stems, stopwords, bag-of-words, cosine similarity.")
console = Console()

TokenizerOption = Annotated[Optional[str], typer.Option(help="whitespace or treebank (default for tokenize: both)")]
LowercaseOption = Annotated[bool, typer.Option("--lowercase/--keep-case", help="lower-case every token")]
StemOption = Annotated[bool, typer.Option("--stem", help="Porter-stem every token (ladies -> ladi)")]
StopwordsOption = Annotated[Optional[str], typer.Option(help="drop the words of this list: english (scikit-learn's 318 words)")]
DocumentsArgument = Annotated[list[str], typer.Argument(help="sentences, or files whose non-blank lines are the documents")]


def _print(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _check(tokenizer: str | None, stopwords: str | None) -> None:
    from trainlab.registry import did_you_mean
    from trainlab.text.processing import STOPWORDS, TOKENIZERS

    if tokenizer is not None and tokenizer not in TOKENIZERS:
        raise UsageError(f"--tokenizer: unknown tokenizer '{tokenizer}'{did_you_mean(tokenizer, TOKENIZERS)}; "
                         f"expected one of: {', '.join(TOKENIZERS)}")  # fmt: skip
    if stopwords is not None and stopwords not in STOPWORDS:
        raise UsageError(f"--stopwords: unknown list '{stopwords}'{did_you_mean(stopwords, STOPWORDS)}; "
                         f"expected one of: {', '.join(STOPWORDS)}")  # fmt: skip


def read_documents(arguments: list[str]) -> tuple[list[str], list[str]]:
    """Documents and their labels: an existing file gives one document per non-blank line (`file:line`),
    any other argument is a document itself (`doc1`, `doc2`, ... by position)."""
    documents, labels = [], []
    for position, argument in enumerate(arguments, start=1):
        path = Path(argument)
        if not os.path.isfile(argument):  # unlike Path.is_file, False for a sentence too long to be a file name
            documents.append(argument)
            labels.append(f"doc{position}")
            continue
        try:
            raw_lines = path.read_bytes().splitlines()
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
        for number, raw in enumerate(raw_lines, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise UsageError(f"{path}, line {number}: not UTF-8 text ({e.reason} at byte {e.start})") from None
            if line:
                documents.append(line)
                labels.append(f"{path.name}:{number}")
    if not documents:
        raise UsageError("no documents: give sentences or files with non-blank lines")
    return documents, labels


@app.command()
def tokenize(
    texts: Annotated[list[str], typer.Argument(help="sentences to split into tokens")],
    tokenizer: TokenizerOption = None,
    lowercase: Annotated[bool, typer.Option("--lowercase", help="lower-case every token")] = False,
    stem: StemOption = False,
    stopwords: StopwordsOption = None,
) -> None:
    """Split sentences into tokens, one line per tokenizer, tokens separated by ' | '."""
    from trainlab.text.processing import TOKENIZERS, analyze

    _check(tokenizer, stopwords)
    for text in texts:
        for name in [tokenizer] if tokenizer else TOKENIZERS:
            tokens = analyze(text, tokenizer=name, lowercase=lowercase, stemming=stem, stopwords=stopwords)
            _print(f"{name:<11} {' | '.join(tokens)}")


def _term_table(documents: list[str], tfidf: bool, tokenizer: str | None, lowercase: bool, stem: bool, stopwords: str | None):
    """The TermTable of the documents; sentences given on the command line are listed first with their labels."""
    from trainlab.text.processing import term_table

    _check(tokenizer, stopwords)
    texts, labels = read_documents(documents)
    try:
        table = term_table(texts, labels, tfidf=tfidf, tokenizer=tokenizer or "whitespace", lowercase=lowercase,
                           stemming=stem, stopwords=stopwords)  # fmt: skip
    except ValueError as e:
        raise UsageError(str(e)) from None
    given = [f"{label}: {text}" for label, text in zip(labels, texts) if ":" not in label]
    if given:
        _print("\n".join(given) + "\n")
    return table


def _print_similarity(table, tfidf: bool) -> None:
    from trainlab.text.processing import format_table

    _print(f"cosine similarity of the {'TF-IDF weights' if tfidf else 'term counts'}")
    _print(format_table(table.documents, table.documents, table.similarity(), "{:.4f}"))


@app.command()
def bow(
    documents: DocumentsArgument,
    tfidf: Annotated[bool, typer.Option("--tfidf", help="TF-IDF weights (scikit-learn's smoothed idf, rows of unit length) instead of counts")] = False,
    tokenizer: TokenizerOption = None,
    lowercase: LowercaseOption = True,
    stem: StemOption = False,
    stopwords: StopwordsOption = None,
) -> None:
    """The document-term table (bag-of-words counts over the sorted terms, punctuation left out) and the cosine similarity of the documents."""
    from trainlab.text.processing import format_table

    table = _term_table(documents, tfidf, tokenizer, lowercase, stem, stopwords)
    _print(format_table(table.documents, table.terms, table.values, "{:.3f}" if tfidf else "{:g}") + "\n")
    _print_similarity(table, tfidf)


@app.command()
def similarity(
    documents: DocumentsArgument,
    tfidf: Annotated[bool, typer.Option("--tfidf", help="compare TF-IDF weights instead of counts")] = False,
    tokenizer: TokenizerOption = None,
    lowercase: LowercaseOption = True,
    stem: StemOption = False,
    stopwords: StopwordsOption = None,
) -> None:
    """Cosine similarity of every pair of documents' bag-of-words vectors."""
    _print_similarity(_term_table(documents, tfidf, tokenizer, lowercase, stem, stopwords), tfidf)

"""`trainlab explain`'s word side: word pieces merged into scored words, tokens ranked per class, and the files
of RUN/explain/ (tokens.csv, tokens.md, bar charts, explain.html). No model here: scores come in per position."""

from trainlab.explain.outputs import TOKENS_CSV, TOKENS_MD, read_tokens, write_bar_charts, write_tokens
from trainlab.explain.page import EXPLAIN_HTML, write_page
from trainlab.explain.ranking import TokenRank, rank_tokens
from trainlab.explain.words import (
    ExplainedText, Word, keep_word, mark_kept, merge_pieces, relative_scores, sentence_words,
)  # fmt: skip

__all__ = [
    "EXPLAIN_HTML", "TOKENS_CSV", "TOKENS_MD", "ExplainedText", "TokenRank", "Word", "keep_word", "mark_kept",
    "merge_pieces", "rank_tokens", "read_tokens", "relative_scores", "sentence_words", "write_bar_charts",
    "write_page", "write_tokens",
]  # fmt: skip

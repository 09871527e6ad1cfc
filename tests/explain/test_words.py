import math

import pytest

from trainlab.explain.words import Word, keep_word, mark_kept, merge_pieces, relative_scores, sentence_words

BERT_PIECES = ["[CLS]", "i", "feel", "un", "##bel", "##ie", "##va", "##bly", "pleased", "!", "[SEP]"]
BERT_WORD_IDS = [None, 0, 1, 2, 2, 2, 2, 2, 3, 4, None]
SCORES = [0.05, 0.1, 0.2, 0.1, 0.1, 0.05, 0.05, 0.1, 0.5, 0.3, 0.2]


def texts(words):
    return [w.text for w in words]


def test_word_ids_merge_pieces_and_drop_special_tokens():
    words = merge_pieces(BERT_PIECES, SCORES, word_ids=BERT_WORD_IDS)
    assert texts(words) == ["i", "feel", "unbelievably", "pleased", "!"]
    assert words[2].positions == (3, 4, 5, 6, 7)
    assert words[2].score == pytest.approx(0.4)  # the sum of its five pieces
    assert [w.positions for w in words][-1] == (9,)


def test_without_word_ids_hashes_continue_the_previous_word():
    assert merge_pieces(BERT_PIECES, SCORES) == merge_pieces(BERT_PIECES, SCORES, word_ids=BERT_WORD_IDS)


def test_a_real_wordpiece_tokenizer_gives_the_same_words_with_and_without_word_ids():
    tokenizers = pytest.importorskip("tokenizers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "feel", "un", "##bel", "##ie", "##va", "##bly",
             "pleased", "!", "don", "'", "t"]  # fmt: skip
    tokenizer = tokenizers.BertWordPieceTokenizer(vocab={w: i for i, w in enumerate(words)}, lowercase=True)
    encoding = tokenizer.encode("I feel unbelievably pleased! Don't")
    scores = [1.0] * len(encoding.tokens)
    merged = merge_pieces(encoding.tokens, scores, word_ids=encoding.word_ids)
    assert texts(merged) == ["i", "feel", "unbelievably", "pleased", "!", "don", "'", "t"]
    assert merged[2].score == 5.0
    assert merge_pieces(encoding.tokens, scores) == merged
    assert merge_pieces(encoding.tokens, scores, special=encoding.special_tokens_mask) == merged


def test_word_ids_group_pieces_without_hash_marks():
    # byte-level BPE (RoBERTa) and SentencePiece mark a word's start instead of its continuation
    pieces = ["<s>", "\u0120un", "believ", "ably", "\u0120good", "</s>"]
    bpe = merge_pieces(pieces, [0, 1, 1, 1, 2, 0], word_ids=[None, 0, 0, 0, 1, None])
    assert [(w.text, w.score) for w in bpe] == [("unbelievably", 3.0), ("good", 2.0)]
    sentencepiece = merge_pieces(["\u2581so", "\u2581happ", "y"], [1, 1, 1], word_ids=[0, 1, 1])
    assert texts(sentencepiece) == ["so", "happy"]


def test_vocabulary_models_drop_padding_but_keep_unknown_words():
    words = merge_pieces(["i", "<unk>", "happy", "<pad>", "<pad>"], [0.2, 0.3, 0.5, 0.0, 0.0])
    assert texts(words) == ["i", "<unk>", "happy"]


def test_special_flags_override_names_and_a_continuation_never_crosses_a_special_token():
    words = merge_pieces(["a", "[SEP]", "##b", "c"], [1, 1, 1, 1], special=[False, True, False, False])
    assert texts(words) == ["a", "##b", "c"]
    assert texts(merge_pieces(["[CLS]", "x"], [1, 1], special=[False, False])) == ["[CLS]", "x"]


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="3 pieces but 2 scores"):
        merge_pieces(["a", "b", "c"], [1, 2])
    with pytest.raises(ValueError, match="position 1"):
        merge_pieces(["a", "b"], [1, math.nan])


@pytest.mark.parametrize("text", ["!", "...", "\u2014", "$", "``", "\U0001F600", ""])
def test_punctuation_and_symbols_are_never_kept(text):
    assert not keep_word(text, stopwords=True)


@pytest.mark.parametrize("text", ["i", "I", "the", "not", "it's", "don't", "Can't", "n't", "'s", "t", "don"])
def test_stopwords_and_contractions_are_left_out_when_asked(text):
    assert not keep_word(text, stopwords=False)
    assert keep_word(text, stopwords=True)


@pytest.mark.parametrize("text", ["feel", "feeling", "joyful", "wow", "john's", "<unk>", "2024"])
def test_content_words_are_kept(text):
    assert keep_word(text, stopwords=False)


def test_relative_scores_average_one_over_kept_words_and_clamp_negatives():
    words = mark_kept([Word("i", 0.4, (0,)), Word("so", -0.2, (1,)), Word("happy", 0.6, (2,)), Word("!", 0.8, (3,))],
                      stopwords=True)  # fmt: skip
    assert [w.kept for w in words] == [True, True, True, False]
    relative = relative_scores(words)
    assert [w.score for w in relative] == pytest.approx([1.2, 0.0, 1.8, 2.4])  # mean of kept (0.4, 0, 0.6) = 1/3
    assert sum(w.score for w in relative if w.kept) / 3 == pytest.approx(1.0)


def test_a_sentence_that_scores_nothing_stays_at_zero():
    words = [Word("a", 0.0, (0,)), Word("b", -1.0, (1,)), Word("!", 3.0, (2,), kept=False)]
    assert [w.score for w in relative_scores(words)] == [0.0, 0.0, 0.0]
    assert relative_scores([]) == []


def test_sentence_words_merges_marks_and_rescales():
    words = sentence_words(BERT_PIECES, SCORES, word_ids=BERT_WORD_IDS)
    assert [(w.text, w.kept) for w in words] == [("i", False), ("feel", True), ("unbelievably", True),
                                                 ("pleased", True), ("!", False)]  # fmt: skip
    assert [w.score for w in words if w.kept] == pytest.approx([0.2 / (1.1 / 3), 0.4 / (1.1 / 3), 0.5 / (1.1 / 3)])

import pytest

from trainlab.text.vocab import PAD, UNK, Vocabulary

TEXTS = [["b", "a", "c"], ["a", "b"], ["a", "d"]]  # a 3, b 2, c 1, d 1


def test_pad_and_unk_come_first_then_words_by_frequency_ties_alphabetical():
    vocabulary = Vocabulary.build(TEXTS)
    assert vocabulary.itos == [PAD, UNK, "a", "b", "c", "d"]
    assert (vocabulary.pad_index, vocabulary.unk_index) == (0, 1) and len(vocabulary) == 6


def test_min_freq_and_max_size_bound_the_words():
    assert Vocabulary.build(TEXTS, min_freq=2).words == ["a", "b"]
    assert Vocabulary.build(TEXTS, max_size=3).words == ["a", "b", "c"]
    assert Vocabulary.build(TEXTS, min_freq=3, max_size=5).words == ["a"]


def test_unknown_words_map_to_unk_and_their_share_is_counted():
    vocabulary = Vocabulary.build(TEXTS, min_freq=2)
    assert vocabulary.encode(["a", "zebra", "b", "c"]) == [2, 1, 3, 1]
    assert vocabulary.decode([2, 1, 0]) == ["a", UNK, PAD]
    assert vocabulary.unknown_share([["a", "zebra"], ["c", "b", "b", "a"]]) == pytest.approx(2 / 6)
    assert vocabulary.unknown_share([]) == 0


def test_special_tokens_in_the_text_are_not_words_and_duplicates_are_refused():
    assert Vocabulary.build([["<pad>", "<unk>", "x"]]).words == ["x"]
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["x", "x"])


def test_save_writes_one_token_per_line_in_index_order(tmp_path):
    Vocabulary.build(TEXTS).save(tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text().splitlines() == [PAD, UNK, "a", "b", "c", "d"]

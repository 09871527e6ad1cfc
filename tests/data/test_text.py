import pytest
import torch

from tests.text.tiny import write_emotion
from trainlab.data import DATASETS
from trainlab.data.text import EMOTION_LABELS, POOL_BATCHES, TextLoader, prepare_text_data, read_labelled_lines
from trainlab.errors import UsageError


def prepare(dataset, batch_size=4, seed=0):
    return prepare_text_data(dataset, batch_size=batch_size, eval_batch_size=5, val_size=0.25, split_seed=0, seed=seed,
                             device=torch.device("cpu"))  # fmt: skip


def test_reader_keeps_the_published_label_order_and_skips_blank_lines(tmp_path):
    path = tmp_path / "val.txt"
    path.write_bytes("\ufeffi feel fine;joy\r\n\n   \nwait; what;surprise\ni am sad ;sadness\n".encode())
    texts, labels, lines = read_labelled_lines(path, EMOTION_LABELS)
    assert texts == ["i feel fine", "wait; what", "i am sad"], "the label follows the last ';'"
    assert labels.tolist() == [1, 5, 0] and lines == [1, 4, 5]


@pytest.mark.parametrize(("content", "message"), [
    (b"i am fine;joy\ni am fine joy\n", "train.txt, line 2: no ';' in the line"),
    (b"i am fine;joy\n;sadness\n", "train.txt, line 2: the text before ';' is empty"),
    (b"i am fine;joy\ni am fine;happiness\n", "train.txt, line 2: unknown label 'happiness'"),
    (b"i am fine;joy\ni am caf\xe9;joy\n", "train.txt, line 2: not UTF-8 text"),
    (b"\n\n", "train.txt: no `text;label` lines"),
])  # fmt: skip
def test_a_bad_line_is_a_usage_error_naming_the_file_and_line(tmp_path, content, message):
    (tmp_path / "train.txt").write_bytes(content)
    with pytest.raises(UsageError, match=message) as error:
        read_labelled_lines(tmp_path / "train.txt", EMOTION_LABELS)
    assert error.value.exit_code == 2


def test_emotion_reads_the_three_splits_from_trainlab_data(isolated, tmp_path):
    write_emotion(tmp_path / "data" / "emotion")
    dataset = DATASETS.build("emotion")
    assert dataset.classes == list(EMOTION_LABELS)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (60, 18, 18)
    assert all(tokens for tokens in dataset.train.tokens)


def test_an_unknown_label_in_the_test_file_is_named_with_its_line(tmp_path):
    root = write_emotion(tmp_path / "emotion")
    with (root / "test.txt").open("a") as f:
        f.write("i feel odd;boredom\n")
    with pytest.raises(UsageError, match=r"test.txt, line 19: unknown label 'boredom'"):
        DATASETS.build("emotion", root=str(root))


def test_missing_folder_says_where_the_files_go(tmp_path):
    with pytest.raises(UsageError, match="(?s)emotion data folder not found.*put train.txt, val.txt and test.txt"):
        DATASETS.build("emotion", root=str(tmp_path / "nowhere"))


def test_vocabulary_comes_from_the_training_split_and_unknown_shares_are_reported(tmp_path):
    root = write_emotion(tmp_path / "emotion")
    (root / "test.txt").write_text("i feel xylophonic;joy\n")
    data = prepare(DATASETS.build("emotion", root=str(root)))
    assert "xylophonic" not in data.vocabulary and "happy" in data.vocabulary
    assert data.stats["unknown_share"] == {"train": 0.0, "val": 0.0, "test": pytest.approx(1 / 3, abs=1e-4)}
    assert data.stats["class_counts"]["train"] == {label: 10 for label in EMOTION_LABELS}
    inputs = data.model_inputs()
    assert inputs["num_classes"] == 6 and inputs["corpus"][0] == data.corpus[0] and inputs["vocabulary"] is data.vocabulary


def test_without_val_file_val_size_of_train_is_held_out(tmp_path):
    root = write_emotion(tmp_path / "emotion")
    (root / "val.txt").unlink()
    data = prepare(DATASETS.build("emotion", root=str(root)))
    assert data.sizes == {"train": 45, "val": 15, "test": 18}


def loader(lengths, batch_size=4, shuffle=True, seed=0):
    lengths = torch.tensor(lengths)
    ids = torch.zeros(len(lengths), int(lengths.max()), dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = row + 2  # each text's tokens are its own index + 2, so a batch tells which texts it holds
    return TextLoader(ids, lengths, torch.arange(len(lengths)), batch_size, shuffle=shuffle, seed=seed)


def test_training_batches_hold_every_text_once_padded_to_their_longest():
    lengths = [(7 * i) % 13 + 1 for i in range(50)]
    seen = []
    for ids, labels in loader(lengths):
        assert ids.shape[1] == max(lengths[i] for i in labels.tolist())
        for row, i in zip(ids, labels.tolist()):
            assert (row != 0).sum() == lengths[i] and row[0] == i + 2
        seen += labels.tolist()
    assert sorted(seen) == list(range(50))


def test_batches_group_texts_of_about_one_length():
    lengths = [(7 * i) % 40 + 1 for i in range(4 * POOL_BATCHES)]
    padded = sum(ids.numel() for ids, _ in loader(lengths))
    assert padded < 1.1 * sum(lengths), "sorted within pools, little padding is left"


def test_training_order_depends_on_seed_and_epoch_alone():
    lengths = [i % 9 + 1 for i in range(40)]
    first, again, other_seed = loader(lengths), loader(lengths), loader(lengths, seed=1)
    order = lambda batches: [b.tolist() for b in batches]  # noqa: E731
    assert order(first.batches()) == order(again.batches())
    assert order(first.batches()) != order(other_seed.batches())
    again.set_epoch(1)
    assert order(first.batches()) != order(again.batches())


def test_evaluation_goes_through_the_texts_by_length_and_says_in_what_order():
    lengths = [5, 1, 3, 3, 2]
    evaluation = loader(lengths, batch_size=2, shuffle=False)
    labels = torch.cat([labels for _, labels in evaluation])
    assert labels.tolist() == evaluation.order.tolist() == [1, 4, 2, 3, 0]


def test_preview_decodes_the_first_training_texts(tmp_path):
    data = prepare(DATASETS.build("emotion", root=str(write_emotion(tmp_path / "emotion"))))
    samples = data.preview(6)
    assert len(samples) == 6 and all(label in EMOTION_LABELS and tokens for label, tokens in samples)
    assert data.example().ndim == 1 and int(data.example().min()) > 0
    assert len(data.example()) == int(data.train.lengths.median()), "a text of the median length"

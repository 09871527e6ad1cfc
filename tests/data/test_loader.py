import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from tests.text.tiny import write_emotion
from trainlab.data import DATASETS
from trainlab.data.augment import build_augment
from trainlab.data.base import ImageArrays, ImageDataset
from trainlab.data.loader import prepare_data, seeded_generator, split_indices
from trainlab.data.text import TextLoader, prepare_text_data
from trainlab.errors import ConfigError

LABELS = np.repeat(np.arange(3), 10)  # 30 examples, 3 classes
# torch.manual_seed's whole range, and past it: a seed is any int.
SEEDS = [-1, -(2**63), 2**64 - 1, 2**70, -(2**70)]


def tiny_images(n: int = 30, classes: int = 3) -> ImageDataset:
    images = np.arange(n * 4 * 4 * 3, dtype=np.int64).reshape(n, 4, 4, 3).astype(np.uint8)
    labels = np.arange(n) % classes
    train, test = ImageArrays(images, labels), ImageArrays(images[:6], labels[:6])
    return ImageDataset(train, test, ["a", "b", "c"][:classes], source="tiny")


def prepare(dataset: ImageDataset, val_size: float = 0.2, split_seed: int = 0, seed: int = 0):
    augment = build_augment(flip_p=0.5, crop_padding=1)
    return prepare_data(dataset, batch_size=8, eval_batch_size=8, val_size=val_size, split_seed=split_seed, seed=seed,
                        device=torch.device("cpu"), channels_last=False, augment=augment)  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_any_int_seeds_a_repeatable_stratified_split(seed):
    train, val = split_indices(LABELS, 6, seed)
    again_train, again_val = split_indices(LABELS, 6, seed)
    assert val.tolist() == again_val.tolist() and train.tolist() == again_train.tolist()
    assert np.bincount(LABELS[val]).tolist() == [2, 2, 2]
    assert sorted([*train, *val]) == list(range(30))


def test_a_seed_in_numpys_range_splits_as_it_always_did_and_a_negative_one_differs_from_its_absolute_value():
    _, val = train_test_split(np.arange(30), test_size=6, random_state=5, shuffle=True, stratify=LABELS)
    assert split_indices(LABELS, 6, 5)[1].tolist() == sorted(val)
    assert split_indices(LABELS, 6, -5)[1].tolist() != split_indices(LABELS, 6, 5)[1].tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_any_int_seeds_a_generator_of_seed_and_epoch(seed):
    draw = lambda epoch: torch.randperm(20, generator=seeded_generator(seed, epoch)).tolist()  # noqa: E731
    assert draw(0) == draw(0) and draw(0) != draw(1)


def test_seeds_that_worked_before_draw_the_same_numbers():
    for seed, epoch in [(0, 0), (3, 2), (-1, 0), (-5, 7)]:
        before = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # torch reads a negative seed modulo 2**64
        assert torch.equal(torch.rand(5, generator=seeded_generator(seed, epoch)), torch.rand(5, generator=before))


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**64 - 1])
def test_a_negative_or_huge_seed_shuffles_and_augments_image_batches_repeatably(seed):
    first, second = (prepare(tiny_images(), split_seed=seed, seed=seed) for _ in range(2))
    for loader in (first.train, second.train):
        loader.set_epoch(3)
    for (x1, y1), (x2, y2) in zip(first.train, second.train, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(first.train.preview(8)[0], second.train.preview(8)[0])
    assert first.sizes == {"train": 24, "val": 6, "test": 6}


def test_a_negative_seed_shuffles_text_batches_repeatably():
    lengths = torch.tensor([i % 5 + 1 for i in range(30)])
    ids = torch.ones(30, 5, dtype=torch.int64)

    def order(seed):
        return [b.tolist() for b in TextLoader(ids, lengths, torch.arange(30), 4, shuffle=True, seed=seed).batches()]

    assert order(-1) == order(-1) != order(1)
    assert order(2**64 - 1) == order(-1), "torch's own reading of a negative seed"


@pytest.mark.parametrize(("val_size", "message"), [
    (30, r"data.val_size=30 holds out 30 examples, but the training split has 30 \(3 classes\), leaving none"),
    (40, r"data.val_size=40 holds out 40 examples, but the training split has 30"),
    (28, r"data.val_size=28 leaves 2 of the 30 training examples to train on, fewer than the 3 classes"),
    (0.95, r"data.val_size=0.95 leaves 2 of the 30 training examples"),
    (0.01, r"data.val_size=0.01 holds out no example: 0.01 of the 30 training examples rounds to 0"),
])  # fmt: skip
def test_a_val_size_that_leaves_a_class_no_training_example_is_a_config_error_saying_what_to_set(val_size, message):
    with pytest.raises(ConfigError, match=message) as error:
        split_indices(LABELS, val_size, 0)
    assert "set data.val_size to a count from 1 to 27 or a fraction up to 0.9" in str(error.value)
    assert error.value.exit_code == 2


def test_the_largest_val_size_the_error_suggests_works():
    train, val = split_indices(LABELS, 27, 0)
    assert len(val) == 27 and sorted(LABELS[train].tolist()) == [0, 1, 2]
    assert len(split_indices(LABELS, 0.9, 0)[1]) == 27


def test_a_training_split_with_no_more_examples_than_classes_says_to_add_examples():
    with pytest.raises(ConfigError, match=r"data.val_size=1: the 3 training examples of 3 classes leave none"):
        split_indices(np.arange(3), 1, 0)


def test_a_val_size_too_large_for_an_image_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data.val_size=29 leaves 1 of the 30 training examples"):
        prepare(tiny_images(), val_size=29)


def test_a_val_size_too_large_for_a_text_dataset_is_a_config_error(tmp_path):
    root = write_emotion(tmp_path / "emotion")
    (root / "val.txt").unlink()  # val_size applies: 60 training texts of 6 labels
    dataset = DATASETS.build("emotion", root=str(root))
    with pytest.raises(ConfigError, match=r"data.val_size=0.99 leaves 1 of the 60 training examples .* 6 classes"):
        prepare_text_data(dataset, batch_size=4, eval_batch_size=4, val_size=0.99, split_seed=-3, seed=-3,
                          device=torch.device("cpu"))  # fmt: skip
    data = prepare_text_data(dataset, batch_size=4, eval_batch_size=4, val_size=0.25, split_seed=-3, seed=-3,
                             device=torch.device("cpu"))  # fmt: skip
    assert data.sizes["val"] == 15

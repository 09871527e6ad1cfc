import numpy as np
import pytest
import torch
from PIL import Image

from trainlab.evaluation.grid import cell_origin, sample_grid_figure
from trainlab.evaluation.plots import save_figure

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def titles(fig) -> list[str]:
    return [text.get_text() for text in fig.axes[0].texts]


def shown(fig, index, image_shape, columns=8):
    """The pixels drawn for image `index` of the grid."""
    height, width = image_shape
    top, left = cell_origin(index, height, width, columns)
    return fig.axes[0].images[0].get_array()[top : top + height, left : left + width]


def test_grid_of_64_uint8_images_saves_a_legible_png_titled_with_class_names(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = [i % 10 for i in range(64)]
    fig = sample_grid_figure(images, labels, CLASSES)
    assert titles(fig) == [CLASSES[i % 10] for i in range(64)]
    save_figure(fig, tmp_path / "grid.png")
    with Image.open(tmp_path / "grid.png") as png:
        width, height = png.size
    assert 8 * 64 <= width <= 8 * 200 and 8 * 64 <= height <= 8 * 200  # each 32x32 image drawn 2x-6x


def test_grid_shows_float_channels_first_tensors_and_greyscale_in_grey():
    images = torch.rand(5, 1, 28, 28)
    fig = sample_grid_figure(images, [0, 1, 2, 3, 4], [str(d) for d in range(10)], columns=3)
    picture = fig.axes[0].images[0]
    assert picture.get_cmap().name == "gray" and picture.get_array().ndim == 2
    for i in range(5):
        np.testing.assert_allclose(shown(fig, i, (28, 28), columns=3), images[i, 0].numpy(), atol=1e-6)
    top, left = cell_origin(5, 28, 28, columns=3)  # 2 rows of 3, the last cell blank (white)
    assert (picture.get_array()[top : top + 28, left : left + 28] == 1).all()
    assert titles(fig) == ["0", "1", "2", "3", "4"]


def test_grid_draws_float_rgb_in_its_own_colours():
    images = torch.zeros(2, 3, 4, 4)
    images[:, 0] = 1  # red
    fig = sample_grid_figure(images, [0, 1], CLASSES)
    np.testing.assert_array_equal(shown(fig, 1, (4, 4))[0, 0], [1.0, 0.0, 0.0])


def test_grid_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        sample_grid_figure(np.zeros((3, 8, 8, 3), np.uint8), [0, 1], CLASSES)

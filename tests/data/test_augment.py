import math

import pydantic
import pytest
import torch

from trainlab.data.augment import BatchAugment, build_augment
from trainlab.registry import arguments_schema

# Each op on its own, always applied, at a visible strength.
EVERY_OP = {
    "crop": {"crop_padding": 4},
    "flip": {"flip_p": 1.0},
    "rotation": {"rotation_degrees": 30, "rotation_p": 1.0},
    "colour": {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "color_p": 1.0},
    "noise": {"noise_std": 0.1, "noise_p": 1.0},
    "cutout": {"cutout_size": 8, "cutout_p": 1.0},
}
ALL_ON = {key: value for op in EVERY_OP.values() for key, value in op.items()}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch(b: int = 16, c: int = 3, h: int = 16, w: int = 16, seed: int = 0, channels_last: bool = True) -> torch.Tensor:
    """Random floats in [0, 1], laid out like the loader's batches (channels-last strides by default)."""
    images = torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))
    return images.permute(0, 3, 1, 2) if channels_last else images.permute(0, 3, 1, 2).contiguous()


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def changed_images(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return (before != after).flatten(1).any(1)


@pytest.mark.parametrize("op", EVERY_OP)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_keeps_shape_dtype_device_range_and_changes_the_images(op, channels):
    x = batch(c=channels)
    out = BatchAugment(**EVERY_OP[op])(x, seeded())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert 0 <= out.min() and out.max() <= 1
    assert changed_images(x, out).float().mean() > 0.5  # brightness and contrast change grey images too


def test_all_ops_together_keep_channels_last_and_leave_the_input_untouched():
    x = batch()
    kept = x.clone()
    out = BatchAugment(**ALL_ON)(x, seeded())
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, kept)


@pytest.mark.parametrize("device", DEVICES)
def test_all_ops_together_stay_on_the_device_and_replay_the_cpu_draws(device):
    x = batch()
    out = BatchAugment(**ALL_ON)(x.to(device), seeded())
    assert out.device.type == device
    torch.testing.assert_close(out.cpu(), BatchAugment(**ALL_ON)(x, seeded()), atol=1e-4, rtol=0)


def test_all_ops_together_accept_contiguous_batches_and_non_square_images():
    x = batch(h=12, w=20, channels_last=False)
    out = BatchAugment(**ALL_ON)(x, seeded())
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


def test_default_does_nothing_and_builds_nothing():
    x = batch()
    assert BatchAugment()(x, seeded()) is x
    assert build_augment() is None
    assert build_augment(rotation_degrees=10, noise_p=0.5) is None  # a strength without its probability, and back
    assert isinstance(build_augment(flip_p=0.5), BatchAugment)


def test_same_seed_replays_the_batch_and_another_seed_does_not():
    augment, x = BatchAugment(**{**ALL_ON, "flip_p": 0.5}), batch()
    assert torch.equal(augment(x, seeded(1)), augment(x, seeded(1)))
    assert not torch.equal(augment(x, seeded(1)), augment(x, seeded(2)))


def test_flip_at_p1_equals_torch_flip():
    x = batch()
    assert torch.equal(BatchAugment(flip_p=1.0)(x, seeded()), torch.flip(x, dims=[3]))


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_crop_moves_a_single_pixel_by_at_most_the_padding(flip_p):
    pad, size, y, x_ = 3, 16, 8, 5
    x = torch.zeros(64, 3, size, size)
    x[:, :, y, x_] = 1  # one lit pixel, far enough from the edges that reflection does not copy it in
    out = BatchAugment(crop_padding=pad, flip_p=flip_p)(x, seeded())
    assert torch.equal(out.sum((1, 2, 3)), torch.full((64,), 3.0))  # the pixel survives whole, once
    lit = out[:, 0].flatten(1).argmax(1)
    rows, cols = lit // size, lit % size
    cols = size - 1 - cols if flip_p else cols
    assert (rows - y).abs().max() <= pad and (cols - x_).abs().max() <= pad
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets vary between images


def test_crop_is_a_shifted_window_of_the_reflect_padded_image():
    x, pad = batch(b=32), 4
    out = BatchAugment(crop_padding=pad)(x, seeded())
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    h, w = x.shape[2:]
    for i in range(len(x)):
        windows = [padded[i, :, y : y + h, x_ : x_ + w] for y in range(2 * pad + 1) for x_ in range(2 * pad + 1)]
        assert sum(torch.equal(out[i], window) for window in windows) == 1


def test_crop_padding_as_large_as_the_image_is_refused():
    with pytest.raises(ValueError, match="crop_padding=16"):
        BatchAugment(crop_padding=16)(batch(h=16, w=16), seeded())


def test_cutout_zeroes_one_square_clipped_at_the_border():
    size = 8
    out = BatchAugment(cutout_size=size, cutout_p=1.0)(torch.ones(200, 3, 32, 32), seeded())
    zeroed = out[:, 0] == 0  # (B, H, W)
    assert torch.equal(zeroed, (out == 0).all(1))  # every channel alike
    rows, cols = zeroed.any(2).sum(1), zeroed.any(1).sum(1)
    assert torch.equal(zeroed.sum((1, 2)), rows * cols)  # a rectangle: an axis-aligned square cut by the border
    assert rows.max() == cols.max() == size and rows.min() >= size // 2 and cols.min() >= size // 2
    assert (zeroed.sum((1, 2)) == size * size).float().mean() > 0.3  # most squares lie wholly inside


def test_noise_adds_gaussian_noise_of_the_given_std():
    std = 0.05
    x = torch.full((32, 3, 32, 32), 0.5)
    diff = BatchAugment(noise_std=std, noise_p=1.0)(x, seeded()) - x
    assert abs(diff.mean()) < 0.002
    assert diff.std() == pytest.approx(std, rel=0.03)


def test_colour_scales_brightness_within_its_range():
    x = torch.full((64, 3, 8, 8), 0.5)
    out = BatchAugment(brightness=0.2, color_p=1.0)(x, seeded())
    factors = out[:, 0, 0, 0] / 0.5
    assert 0.8 - 1e-6 <= factors.min() and factors.max() <= 1.2 + 1e-6
    assert factors.std() > 0.05


def grey(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def spread(x: torch.Tensor) -> torch.Tensor:
    """(B,) standard deviation of each image about its own mean."""
    return (x - x.mean((1, 2, 3), keepdim=True)).std((1, 2, 3))


def test_contrast_keeps_the_mean_grey_and_scales_the_rest_about_it():
    x = 0.4 + 0.2 * batch()  # mid-range, so that no value is clamped
    out = BatchAugment(contrast=0.3, color_p=1.0)(x, seeded())
    torch.testing.assert_close(grey(out).mean((1, 2)), grey(x).mean((1, 2)))
    ratio = spread(out) / spread(x)
    assert 0.7 - 1e-4 <= ratio.min() and ratio.max() <= 1.3 + 1e-4 and ratio.std() > 0.05


def test_saturation_keeps_each_pixels_grey():
    x = 0.4 + 0.2 * batch()
    out = BatchAugment(saturation=0.5, color_p=1.0)(x, seeded())
    torch.testing.assert_close(grey(out), grey(x))
    assert changed_images(x, out).all()


def test_saturation_leaves_grey_images_alone():
    x = batch(c=1)
    assert torch.equal(BatchAugment(saturation=0.5, color_p=1.0)(x, seeded()), x)


def test_saturation_zero_makes_rgb_grey():
    # Strength 1 draws factors in [0, 2]; at the low end every channel converges on the grey.
    x = batch(b=256)
    out = BatchAugment(saturation=1.0, color_p=1.0)(x, seeded())
    spread = (out.amax(1) - out.amin(1)).mean((1, 2)) / (x.amax(1) - x.amin(1)).mean((1, 2))
    assert spread.min() < 0.05 and spread.max() > 1.5


def test_rotation_turns_a_line_through_the_centre_by_at_most_the_given_angle():
    x = torch.zeros(64, 1, 33, 33)
    x[:, :, 16, :] = 1  # a horizontal line through the centre
    out = BatchAugment(rotation_degrees=10, rotation_p=1.0)(x, seeded())[:, 0]  # (B, H, W)
    assert torch.allclose(out[:, 16, 16], torch.ones(64), atol=1e-5)  # the centre stays put
    rows = torch.arange(33.0).view(1, 33)
    left, right = ((out[:, :, j] * rows).sum(1) / out[:, :, j].sum(1) for j in (8, 24))  # the line's row at x=8, 24
    angles = torch.rad2deg(torch.atan((left - right) / 16))  # counter-clockwise on screen is positive
    assert angles.abs().max() <= 10.5 and angles.std() > 3
    assert angles.min() < -5 and angles.max() > 5  # both ways


def test_rotation_turns_a_round_blob_into_itself_on_non_square_images():
    # A rotation that ignored the aspect ratio would turn the circle into an ellipse.
    ys, xs = torch.meshgrid(torch.arange(21.0) - 10, torch.arange(41.0) - 20, indexing="ij")
    blob = torch.exp(-(xs**2 + ys**2) / (2 * 4.0**2)).expand(8, 1, 21, 41)
    out = BatchAugment(rotation_degrees=90, rotation_p=1.0)(blob, seeded())
    inside = xs**2 + ys**2 <= 9**2  # farther out, corners turn in from beyond the border (reflected)
    assert (out - blob)[:, :, inside].abs().max() < 0.03


@pytest.mark.parametrize("op", ["flip", "rotation", "colour", "noise", "cutout"])
def test_probability_one_half_picks_about_half_the_images(op):
    settings = {key: (0.5 if key.endswith("_p") else value) for key, value in EVERY_OP[op].items()}
    x = batch(b=400, h=8, w=8)
    fraction = changed_images(x, BatchAugment(**settings)(x, seeded())).float().mean().item()
    assert 0.4 < fraction < 0.6  # 5 standard deviations of a binomial(400, 0.5) is 0.125


@pytest.mark.parametrize(
    "bad",
    [
        {"flip_p": 1.5}, {"cutout_p": -0.1}, {"rotation_degrees": 181},
        {"brightness": -0.2}, {"crop_padding": -1}, {"noise_std": -1},
    ],
)
def test_out_of_range_settings_are_refused_by_the_config_schema_and_the_class(bad):
    with pytest.raises(pydantic.ValidationError):
        arguments_schema(build_augment)(**bad)
    with pytest.raises(pydantic.ValidationError):
        BatchAugment(**bad)


def test_config_schema_has_every_setting_with_a_default_of_off():
    defaults = arguments_schema(build_augment)().model_dump()
    assert set(defaults) == set(ALL_ON) | {"flip_alternate"}  # flip_alternate needs the loader's positions
    assert all(value == 0 for value in defaults.values())
    assert math.isclose(arguments_schema(build_augment)(rotation_degrees="12.5").rotation_degrees, 12.5)

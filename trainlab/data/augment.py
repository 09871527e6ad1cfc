"""Seeded augmentation of whole batches of float images, on the images' own device.

Each op acts on the batch at once (no Python loop over images) and picks its images
independently, with its own probability per image. Random numbers come only from the
caller's CPU `torch.Generator`, so one seed replays the same augmented batch:

- crop: pad by `crop_padding` pixels (reflecting the image) and cut the original size back out
  at a random offset of up to `crop_padding` pixels each way; every image, offset 0 included.
- flip: mirror left-right, with probability `flip_p` per image; or, with `flip_alternate` (airbench), each
  image mirrored at random in the first epoch and then exactly every other epoch, so that every two epochs
  see both mirror images of it (the image loader gives the images' positions and the epoch).
- rotation: turn about the centre by an angle uniform in ±`rotation_degrees` degrees
  (bilinear, reflecting at the border), with probability `rotation_p`.
- colour: scale brightness, contrast and saturation by factors uniform in 1 ± `brightness`,
  1 ± `contrast`, 1 ± `saturation` (fractions), in that order, with probability `color_p`;
  saturation leaves 1-channel images alone.
- noise: add Gaussian noise of std `noise_std` (on the 0..1 pixel scale), with probability `noise_p`.
- cutout: zero a square of `cutout_size` pixels at a uniformly random centre, partly outside
  the image allowed (DeVries & Taylor 2017), with probability `cutout_p`.

Ops run in that order (geometry, then colour and noise, then cutout), and the result is clamped
to [0, 1]. An op leaves the images it does not pick exactly as they were.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass
from torch import Tensor

Probability = Annotated[float, Field(ge=0, le=1)]  # per image
Fraction = Annotated[float, Field(ge=0)]  # largest relative change: 0.2 -> factors in [0.8, 1.2]
Pixels = Annotated[int, Field(ge=0)]
Degrees = Annotated[float, Field(ge=0, le=180)]
Std = Annotated[float, Field(ge=0)]  # on the 0..1 pixel scale

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights of R, G, B in grey, as torchvision's rgb_to_grayscale


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class BatchAugment:
    """Callable `augment(images, generator)`: (B, C, H, W) floats in [0, 1] -> the same shape, device and range.

    The default instance does nothing and returns its input. See the module docstring for the ops.
    """

    crop_padding: Pixels = 0
    flip_p: Probability = 0.0
    rotation_degrees: Degrees = 0.0
    rotation_p: Probability = 0.0
    brightness: Fraction = 0.0
    contrast: Fraction = 0.0
    saturation: Fraction = 0.0
    color_p: Probability = 0.0
    noise_std: Std = 0.0
    noise_p: Probability = 0.0
    cutout_size: Pixels = 0
    cutout_p: Probability = 0.0
    flip_alternate: bool = False

    @property
    def enabled(self) -> bool:
        """Whether any op can change an image."""
        return (
            self.crop_padding > 0
            or self.flip_p > 0
            or self.flip_alternate
            or (self.rotation_p > 0 and self.rotation_degrees > 0)
            or (self.color_p > 0 and (self.brightness > 0 or self.contrast > 0 or self.saturation > 0))
            or (self.noise_p > 0 and self.noise_std > 0)
            or (self.cutout_p > 0 and self.cutout_size > 0)
        )

    def __call__(self, images: Tensor, generator: torch.Generator, positions: Tensor | None = None, epoch: int = 0,
                 seed: int = 0) -> Tensor:  # fmt: skip
        """`positions`, `epoch` and `seed` (the images' places in their split, the epoch, the run's seed) choose
        the alternating flips; the other ops draw from `generator` alone."""
        if not self.enabled:
            return images
        if images.dim() != 4 or not images.is_floating_point():
            raise ValueError(f"augmentation wants float images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        layout = torch.channels_last if channels_last else torch.contiguous_format
        flip = self._flips(images.shape[0], generator, positions, epoch, seed)
        x = self._crop_and_flip(images, generator, flip)
        # The ops below write in place (the caller's batch stays as it was) and index whole images
        # as rows of a (B, C*H*W) view, which needs one of the two dense layouts.
        x = images.clone(memory_format=layout) if x is images else x.contiguous(memory_format=layout)
        self._rotate(x, generator)
        self._colour(x, generator)
        self._noise(x, generator)
        self._cutout(x, generator)
        return x.clamp_(0, 1)

    def _flips(self, b: int, generator: torch.Generator, positions: Tensor | None, epoch: int, seed: int) -> Tensor:
        """(B,) bool on the CPU: the images to mirror."""
        if not self.flip_alternate:
            return _pick(self.flip_p, b, generator)
        if positions is None:
            raise ValueError("augment.flip_alternate needs the images' positions: only the image loader gives them")
        first = (positions.cpu().long() * 2654435761 + seed * 40503) % 2**32 >> 16 & 1  # a fixed random bit per image
        return (first + epoch) % 2 == 1

    def _crop_and_flip(self, x: Tensor, generator: torch.Generator, flip: Tensor) -> Tensor:
        b, c, h, w = x.shape
        pad = self.crop_padding
        if pad >= min(h, w):
            raise ValueError(
                f"augment.crop_padding={pad} must be smaller than the images ({h}x{w} pixels) to reflect them"
            )
        if pad == 0:
            if not flip.any():
                return x
            return torch.where(flip.to(x.device).view(b, 1, 1, 1), x.flip(3), x)
        # int32 indices: the (B*H*W,) sums below take a third of the time they take in int64.
        dy, dx = torch.randint(-pad, pad + 1, (2, b), generator=generator).int()
        # Source pixel of every output pixel: shift, reflect at the edges, then mirror the picked columns.
        rows = _reflect(torch.arange(h, dtype=torch.int32) + dy[:, None], h)  # (B, H)
        cols = _reflect(torch.arange(w, dtype=torch.int32) + dx[:, None], w)  # (B, W)
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        if x.is_contiguous(memory_format=torch.channels_last):
            # Whole pixels (C values side by side) from one (B*H*W, C) table: twice as fast as gather here.
            first = (torch.arange(b, dtype=torch.int32)[:, None] * h + rows) * w  # (B, H): row of each line's pixel 0
            index = (first[:, :, None] + cols[:, None, :]).view(-1).to(x.device)  # (B*H*W,)
            out = x.permute(0, 2, 3, 1).reshape(b * h * w, c).index_select(0, index)
            return out.view(b, h, w, c).permute(0, 3, 1, 2)  # channels-last strides, like the input
        index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).to(x.device, torch.int64)  # (B, 1, H*W)
        return x.reshape(b, c, h * w).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)

    def _rotate(self, x: Tensor, generator: torch.Generator) -> None:
        b, _, h, w = x.shape
        if self.rotation_p == 0 or self.rotation_degrees == 0:
            return
        picked = _pick(self.rotation_p, b, generator)
        angles = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(self.rotation_degrees)
        chosen = picked.nonzero().squeeze(1)
        if len(chosen) == 0:
            return
        n = len(chosen)
        cos, sin = (t.to(x.device, x.dtype).view(n, 1, 1) for t in (angles[chosen].cos(), angles[chosen].sin()))
        # The source of each output pixel, in grid_sample's coordinates: -1..1 across each axis
        # (pixel centres, align_corners=False). The h/w factors keep the turn rigid on non-square
        # images. What F.affine_grid computes, without its batched matmul (3x faster here).
        xs = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1  # (W,)
        ys = ((torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1).view(h, 1)  # (H, 1)
        source_x = cos * xs - sin * (h / w) * ys  # (n, H, W)
        source_y = sin * (w / h) * xs + cos * ys
        grid = torch.stack((source_x, source_y), dim=-1)  # (n, H, W, 2)
        chosen = chosen.to(x.device)
        subset = _as_layout_of(x, _rows(x).index_select(0, chosen))  # (n, C, H, W)
        turned = F.grid_sample(subset, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        _rows(x).index_copy_(0, chosen, _rows(turned.contiguous(memory_format=_layout(x))))

    def _colour(self, x: Tensor, generator: torch.Generator) -> None:
        b, c, _, _ = x.shape
        if self.color_p == 0 or not (self.brightness or self.contrast or (self.saturation and c == 3)):
            return
        picked = _pick(self.color_p, b, generator)

        def factor(strength: float) -> Tensor:  # (B, 1, 1, 1); exactly 1 for images not picked
            f = 1 + (torch.rand(b, generator=generator) * 2 - 1) * strength
            return torch.where(picked, f, 1.0).to(x.device, x.dtype).view(b, 1, 1, 1)

        bright, contrast, saturation = factor(self.brightness), factor(self.contrast), factor(self.saturation)
        if c != 3:
            saturation = torch.ones_like(saturation)
        # Brightness scales by `bright`; contrast blends with the mean grey, saturation with each
        # pixel's grey. All three are linear, so they fold into one pass over the batch:
        #   out = s*a*x + (1-s)*a*grey + o,  a = bright*contrast,  o = (1-contrast)*bright*mean(grey),
        # clamped once at the end (torchvision clamps after each). For factors of 1 this is x bit for bit.
        grey = _grey(x)  # (B, 1, H, W)
        mean = grey.mean((1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        scale = bright * contrast
        x_weight, grey_weight, offset = saturation * scale, (1 - saturation) * scale, (1 - contrast) * bright * mean
        x.mul_(x_weight).add_(grey.mul_(grey_weight).add_(offset)).clamp_(0, 1)

    def _noise(self, x: Tensor, generator: torch.Generator) -> None:
        if self.noise_p == 0 or self.noise_std == 0:
            return
        chosen = _pick(self.noise_p, len(x), generator).nonzero().squeeze(1)
        if len(chosen) == 0:
            return
        # (n, C*H*W) iid values: the same noise whatever the memory layout of the images.
        noise = torch.randn((len(chosen), x[0].numel()), generator=generator, dtype=x.dtype).mul_(self.noise_std)
        _rows(x).index_add_(0, chosen.to(x.device), noise.to(x.device))

    def _cutout(self, x: Tensor, generator: torch.Generator) -> None:
        b, _, h, w = x.shape
        size = self.cutout_size
        if self.cutout_p == 0 or size == 0:
            return
        picked = _pick(self.cutout_p, b, generator)
        centre_y = torch.randint(0, h, (b,), generator=generator)
        centre_x = torch.randint(0, w, (b,), generator=generator)
        if not picked.any():
            return
        top, left = (centre_y - size // 2).to(x.device), (centre_x - size // 2).to(x.device)
        ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        picked = picked.to(x.device)[:, None]
        in_rows = ((ys >= top[:, None]) & (ys < top[:, None] + size) & picked).to(x.dtype)  # (B, H)
        in_cols = ((xs >= left[:, None]) & (xs < left[:, None] + size)).to(x.dtype)  # (B, W)
        keep = 1 - in_rows[:, :, None] * in_cols[:, None, :]  # (B, H, W): 0 in the square, 1 elsewhere
        x.mul_(keep.unsqueeze(1))  # a third faster than masked_fill with a boolean square on CPU


def build_augment(
    *, crop_padding: Pixels = 0, flip_p: Probability = 0.0,
    rotation_degrees: Degrees = 0.0, rotation_p: Probability = 0.0,
    brightness: Fraction = 0.0, contrast: Fraction = 0.0, saturation: Fraction = 0.0, color_p: Probability = 0.0,
    noise_std: Std = 0.0, noise_p: Probability = 0.0, cutout_size: Pixels = 0, cutout_p: Probability = 0.0,
    flip_alternate: bool = False,
) -> BatchAugment | None:  # fmt: skip
    """Training-batch augmentation from config values; None when no op is enabled.

    crop_padding and cutout_size are in pixels, rotation_degrees in degrees, brightness,
    contrast and saturation are fractions (largest relative change), noise_std is on the
    0..1 pixel scale, and every *_p is a probability per image; flip_alternate mirrors each image every other
    epoch (in place of flip_p).
    """
    if flip_alternate and flip_p:
        raise ValueError(f"flip_alternate mirrors every other epoch in place of random flips: leave flip_p={flip_p:g} out")
    augment = BatchAugment(
        crop_padding=crop_padding, flip_p=flip_p, rotation_degrees=rotation_degrees, rotation_p=rotation_p,
        brightness=brightness, contrast=contrast, saturation=saturation, color_p=color_p,
        noise_std=noise_std, noise_p=noise_p, cutout_size=cutout_size, cutout_p=cutout_p, flip_alternate=flip_alternate,
    )  # fmt: skip
    return augment if augment.enabled else None


def _pick(p: float, b: int, generator: torch.Generator) -> Tensor:
    """(B,) bool on the CPU: which images an op with probability `p` applies to."""
    if p == 0:
        return torch.zeros(b, dtype=torch.bool)
    return torch.rand(b, generator=generator) < p


def _layout(x: Tensor) -> torch.memory_format:
    return torch.contiguous_format if x.is_contiguous() else torch.channels_last


def _rows(x: Tensor) -> Tensor:
    """(B, C*H*W) view of dense images in memory order: whole images index 3-10x faster as rows than in 4-D."""
    return x.view(len(x), -1) if x.is_contiguous() else x.permute(0, 2, 3, 1).view(len(x), -1)


def _as_layout_of(x: Tensor, rows: Tensor) -> Tensor:
    """(n, C, H, W) images from rows taken out of `_rows(x)`, with the layout of `x`."""
    b, (c, h, w) = len(rows), x.shape[1:]
    return rows.view(b, c, h, w) if x.is_contiguous() else rows.view(b, h, w, c).permute(0, 3, 1, 2)


def _reflect(index: Tensor, n: int) -> Tensor:
    """Map indices in [-(n-1), 2(n-1)] into [0, n-1] by mirroring at the edges (edge pixel not repeated)."""
    index = index.abs()
    return torch.where(index > n - 1, 2 * (n - 1) - index, index)


def _grey(x: Tensor) -> Tensor:
    """(B, 1, H, W) luminance of (B, C, H, W) images: luma for RGB, the channel mean otherwise."""
    if x.shape[1] == 3:  # three multiply-adds: several times faster than a sum over channels-last C
        red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return (red * _LUMA[0]).add_(green, alpha=_LUMA[1]).add_(blue, alpha=_LUMA[2])
    return x.mean(1, keepdim=True)

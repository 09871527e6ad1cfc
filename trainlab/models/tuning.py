"""Settings that any image model can take from the config, as fast recipes use them (airbench94):

- `batchnorm:` momentum, eps, and whether the scale (weight) and shift (bias) of every batch-norm layer train;
- `patch_whitening: true`: the first conv's filters set from the training images, so that its outputs are the
  image patches whitened (decorrelated, unit variance), each direction as a +/- pair of channels; they stay fixed;
- `tta:` the logits of an evaluation averaged over mirrored (and shifted) copies of each image.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TTA_MODES = ("none", "flip", "flip_translate")


def configure_batchnorm(model: nn.Module, *, momentum: float | None = None, eps: float | None = None,
                        train_weight: bool = True, train_bias: bool = True) -> int:  # fmt: skip
    """Set every batch-norm layer of `model`; returns how many there are. `momentum` in torch's sense: the weight of
    the newest batch in the running statistics. A weight that does not train stays at its value (1 when new)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        if momentum is not None:
            layer.momentum = momentum
        if eps is not None:
            layer.eps = eps
        if layer.affine:
            layer.weight.requires_grad_(train_weight)
            layer.bias.requires_grad_(train_bias)
    return len(layers)


def first_conv(model: nn.Module) -> nn.Conv2d:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("patch_whitening: the model has no Conv2d layer to set")
    return conv


@torch.no_grad()
def whiten_first_conv(model: nn.Module, images: Tensor, eps: float = 5e-4) -> None:
    """Set the first conv's filters to whiten its input patches: the eigenvectors of the patches' covariance,
    each divided by the square root of its eigenvalue (+ `eps`), the largest first, with their negatives (out
    channels = 2 x directions). `images`: (N, C, H, W), normalised as the model gets them; the bias is zeroed. The
    filters stay as set (they no longer train, as in airbench); the bias trains."""
    conv = first_conv(model)
    kh, kw = conv.kernel_size
    if conv.groups != 1:
        raise ValueError("patch_whitening: the first conv must not be grouped")
    c = images.shape[1]
    dims = c * kh * kw
    if conv.out_channels % 2 or conv.out_channels // 2 > dims:
        raise ValueError(f"patch_whitening: the first conv has {conv.out_channels} output channels; it needs an even "
                         f"number up to 2 x {dims} (= 2 x in_channels x kernel area), one pair per direction")  # fmt: skip
    patches = F.unfold(images.float(), (kh, kw)).transpose(1, 2).reshape(-1, dims)  # (N x positions, C x kh x kw)
    patches = patches - patches.mean(0)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())  # ascending
    top = conv.out_channels // 2
    values, vectors = eigenvalues.flip(0)[:top], eigenvectors.flip(1)[:, :top]
    filters = (vectors / torch.sqrt(values + eps)).T.reshape(top, c, kh, kw).float()
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))
    conv.weight.requires_grad_(False)
    if conv.bias is not None:
        conv.bias.zero_()


def add_test_time_augmentation(model: nn.Module, mode: str) -> nn.Module:
    """In evaluation (model.eval()), the model's logits become the mean over mirrored copies ("flip"), or over
    mirrored and one-pixel-shifted copies ("flip_translate": airbench's weights, 1/2 for the image and its mirror,
    1/4 for the shifted pairs); training is untouched. The weights and their names stay the model's own."""
    if mode == "none":
        return model
    if mode not in TTA_MODES:
        raise ValueError(f"unknown tta '{mode}'; expected one of: {', '.join(TTA_MODES)}")
    model.tta = mode
    model.forward = types.MethodType(_forward_with_tta, model)
    return model


def _forward_with_tta(self: nn.Module, x: Tensor) -> Tensor:
    plain = type(self).forward
    if self.training or x.dim() != 4:
        return plain(self, x)
    mirrored = 0.5 * (plain(self, x) + plain(self, x.flip(-1)))
    if self.tta == "flip":
        return mirrored
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    h, w = x.shape[-2:]
    up_left, down_right = padded[..., :h, :w], padded[..., 2:, 2:]
    shifted = 0.25 * (plain(self, up_left) + plain(self, up_left.flip(-1)) + plain(self, down_right)
                      + plain(self, down_right.flip(-1)))  # fmt: skip
    return 0.5 * mirrored + 0.5 * shifted

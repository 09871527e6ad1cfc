"""What transfer learning needs from a model: a pretrained backbone and a head for the dataset's classes.

A `TransferModel` splits its forward into `extract` (the backbone: the part that pretrained weights fill)
and `classify` (the head), names its head modules and the layer that is new (the one `init:` may draw),
and can freeze its backbone. A frozen backbone has `requires_grad` off and runs in eval mode, batch norm
and dropout included, also after `model.train()`: the statistics of frozen batch-norm layers must not keep
moving (the transfer-learning trap Keras and Lightning users report most), and a frozen backbone's
outputs are then a function of the image alone, so they can be computed once. A model that lists its
backbone's stages (`backbone_stages`) can also keep its first stages frozen for good (mmdetection's
`frozen_stages`): no backward pass runs through them, so each step is cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn


class TransferModel(nn.Module):
    """Base class of the models `transfer:` applies to; subclasses set the three methods below."""

    backbone_frozen: bool = False
    inputs_are_features: bool = False  # forward takes the backbone's outputs (features computed once), not images
    weights_loaded: bool = False  # pretrained weights fill everything but `new_layers()`
    imagenet_head: bool = False  # the pretrained classifier is kept (1000 ImageNet classes): no layer is new
    feature_setting: str = ""  # what else the backbone's outputs depend on, for the feature cache's key
    compiled_backbone: Callable[[Tensor], Tensor] | None = None  # `extract` compiled, used under no gradient
    frozen_stages: int = 0  # the first stages of `backbone_stages()`, frozen for good

    def extract(self, x: Tensor) -> Tensor:
        """The backbone's output for a batch of images: what `classify` takes."""
        raise NotImplementedError

    def classify(self, features: Tensor) -> Tensor:
        """The head: features -> logits."""
        raise NotImplementedError

    def head_modules(self) -> list[nn.Module]:
        """The modules that train while the backbone is frozen."""
        raise NotImplementedError

    def new_layers(self) -> list[nn.Module]:
        """The layers no pretrained weights fill (the classifier for the dataset's classes)."""
        return self.head_modules()

    def backbone_stages(self) -> list[nn.Module]:
        """The backbone's stages in input order, for `freeze_stages` (none: the model cannot freeze part of it)."""
        return []

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(x if self.inputs_are_features else self.backbone_outputs(x))

    def backbone_outputs(self, x: Tensor) -> Tensor:
        """`extract(x)`, through the compiled backbone when one is set and no gradient is asked for."""
        if self.compiled_backbone is None or torch.is_grad_enabled():
            return self.extract(x)
        return self.compiled_backbone(x)

    @property
    def pretrained_parts(self) -> list[nn.Module]:
        """What `init:` must leave alone: every layer the pretrained weights filled (none without weights)."""
        if not self.weights_loaded:
            return []
        new = set() if self.imagenet_head else {id(m) for layer in self.new_layers() for m in layer.modules()}
        return [m for m in self.modules() if m is not self and id(m) not in new and not list(m.children())]

    def _head_ids(self) -> set[int]:
        return {id(m) for head in self.head_modules() for m in head.modules()}

    def backbone_modules(self) -> Iterator[nn.Module]:
        head = self._head_ids()
        return (m for m in self.modules() if m is not self and id(m) not in head)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters that can train: all but the head's and the stages frozen for good."""
        fixed = {id(p) for module in [*self.head_modules(), *self._frozen_stage_list()] for p in module.parameters()}
        return [p for p in self.parameters() if id(p) not in fixed]

    def freeze_backbone(self, frozen: bool = True) -> TransferModel:
        """Stop (or restart) training the backbone: its parameters' requires_grad, and eval mode while frozen."""
        self.backbone_frozen = frozen
        for param in self.backbone_parameters():
            param.requires_grad_(not frozen)
        return self.train(self.training)

    def freeze_stages(self, count: int) -> TransferModel:
        """Freeze the first `count` of `backbone_stages()` for good: requires_grad off and eval mode (batch-norm
        statistics fixed), also once the rest of the backbone trains."""
        stages = self.backbone_stages()
        if count > len(stages):
            raise ValueError(f"its backbone has {len(stages)} stages to freeze, not {count}")
        self.frozen_stages = count
        for param in (p for stage in stages[:count] for p in stage.parameters()):
            param.requires_grad_(False)
        return self.train(self.training)

    def _frozen_stage_list(self) -> list[nn.Module]:
        return self.backbone_stages()[: self.frozen_stages] if self.frozen_stages else []

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        stages = self._frozen_stage_list()
        frozen = set(map(id, self.backbone_modules() if self.backbone_frozen else (m for s in stages for m in s.modules())))
        for module in self.modules():
            if id(module) in frozen:
                module.training = False  # one module at a time: a container may hold head modules too
        return self


def is_transfer_model(model: nn.Module) -> bool:
    return isinstance(model, TransferModel)


def transfer_model_names() -> list[str]:
    """The registered models whose builders return a TransferModel (read off their return annotations)."""
    import typing

    from trainlab.models.registry import MODELS

    names = []
    for name in MODELS.names():
        try:
            returned = typing.get_type_hints(MODELS.get(name)).get("return")
        except (NameError, TypeError):  # an annotation that does not resolve: not a transfer model's builder
            continue
        if isinstance(returned, type) and issubclass(returned, TransferModel):
            names.append(name)
    return names


def resize_to(x: Tensor, size: int | None) -> Tensor:
    """Images resized (bilinear) to size x size inside the model, so data stays at its own size in memory and
    predict and export get the resize for free; unchanged when `size` is None or already met."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

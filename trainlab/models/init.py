"""Weight initialisation schemes, applied to every convolution and linear layer of a built model."""

from __future__ import annotations

from torch import nn

from trainlab.registry import did_you_mean

INIT_SCHEMES = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")

_WEIGHT_INITS = {
    "xavier_uniform": nn.init.xavier_uniform_,  # std sqrt(2 / (fan_in + fan_out))
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),  # std sqrt(2 / fan_in)
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
}
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def initialize(model: nn.Module, scheme: str) -> nn.Module:
    """Re-draw every conv/linear weight with `scheme` and zero their biases; "default" keeps PyTorch's init.
    Modules inside the model's `pretrained_parts` (loaded weights) are left alone.

    Draws from torch's global generator, so torch.manual_seed makes it repeatable. Returns `model`.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(
            f"unknown init scheme '{scheme}'{did_you_mean(scheme, INIT_SCHEMES)}; known schemes: {', '.join(INIT_SCHEMES)}"
        )
    if scheme == "default":
        return model
    pretrained = {id(module) for part in getattr(model, "pretrained_parts", ()) for module in part.modules()}
    for module in model.modules():
        if isinstance(module, _LAYERS) and id(module) not in pretrained:
            _WEIGHT_INITS[scheme](module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model

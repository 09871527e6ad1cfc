"""Registered model builders. Each takes plain arguments; trainlab injects the data's shape."""

from trainlab.models.registry import MODELS, fits, model_tokenizer, models_for
from trainlab.models import layers, pretrained, text, vision  # noqa: F401  (registers the models)

__all__ = ["MODELS", "fits", "model_tokenizer", "models_for"]

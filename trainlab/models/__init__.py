"""Registered model builders. Each takes plain arguments; trainlab injects the data's shape."""

from trainlab.models.registry import MODELS, fits, model_normalisation, model_tokenizer, models_for
from trainlab.models import efficientnet, fast, layers, pretrained, tabular, text, vision  # noqa: F401  (registers the models)

__all__ = ["MODELS", "fits", "model_normalisation", "model_tokenizer", "models_for"]

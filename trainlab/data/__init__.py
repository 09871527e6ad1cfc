"""Datasets (registered by name) and the array loader that feeds training."""

from trainlab.data.base import DATASETS, ImageArrays, ImageDataset, cache_root, data_root, dataset_shape
from trainlab.data import vision  # noqa: F401  (registers the image datasets)
from trainlab.data import mnist  # noqa: F401  (registers mnist)
from trainlab.data import text  # noqa: F401  (registers emotion)

__all__ = ["DATASETS", "ImageArrays", "ImageDataset", "cache_root", "data_root", "dataset_shape"]

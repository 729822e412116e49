"""Data layer: dataset adapters, P x K sampling, augmentation, loaders."""
from .datasets import DATASETS, DatasetError, ReIDDataset, Sample, build_dataset
from .loader import ImageDataset, ImageReadError, build_test_loader, read_image
from .train_loader import build_train_loader
from .sampler import PKSampler
from .transforms import build_transforms

__all__ = ["DATASETS", "DatasetError", "ReIDDataset", "Sample", "build_dataset", "ImageDataset", "ImageReadError",
           "build_test_loader", "build_train_loader", "read_image", "PKSampler", "build_transforms"]

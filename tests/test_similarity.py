"""LPIPS / DISTS: the code path with random backbones (offline), and the not-computed reasons."""
import importlib.util

import numpy as np
import pytest
import torch

from perceptual.evaluation import similarity


@pytest.fixture(scope="module")
def random_metrics():
    metrics, missing = similarity.load(backbone="random")
    return {m.name: m for m in metrics}, missing


def test_random_backbone_is_named_so(random_metrics):
    metrics, missing = random_metrics
    assert set(metrics) == {"lpips_random-backbone", "dists_random-backbone"} and not missing


def test_identical_images_score_zero_and_different_ones_more(random_metrics):
    metrics, _ = random_metrics
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)
    for m in metrics.values():
        assert m(a, a) == pytest.approx(0.0, abs=1e-5)  # DISTS: 1 − Σ(α + β)·1 = 0; LPIPS: no difference
        assert 0 < m(a, b) < m(a, c)


def test_dists_by_hand_on_flat_images():
    """Two flat images: every feature map is constant, so σ = 0 and the structure term is c/c = 1;
    at stage 0 (the normalised input) the texture term is (2μxμy + c)/(μx² + μy² + c)."""
    convs = [(torch.zeros(o, i, 3, 3), torch.zeros(o)) for i, o in
             ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512),
              (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))]
    n = sum(similarity.DISTS.CHANNELS)
    alpha = torch.zeros(n)
    alpha[0] = 1.0  # only the red channel of the input's texture term
    net = similarity.DISTS(convs, alpha, torch.zeros(n))
    x, y = torch.full((1, 3, 16, 16), 0.5), torch.full((1, 3, 16, 16), 0.7)
    mx, my = (0.5 - 0.485) / 0.229, (0.7 - 0.485) / 0.229
    expected = 1 - (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
    assert float(net(x, y)) == pytest.approx(expected, rel=1e-5)


def test_unavailable_weights_give_a_reason(monkeypatch):
    monkeypatch.setenv("PERCEPTUAL_ALEXNET_URL", "http://127.0.0.1:9/alexnet-owt-7be5be79.pth")  # nothing listens
    metrics, missing = similarity.load(("lpips",))
    assert metrics == [] and missing["lpips"].startswith("not computed: the torchvision AlexNet weights")
    if importlib.util.find_spec("DISTS_pytorch") is None:
        assert "pip install DISTS-pytorch" in similarity.load(("dists",))[1]["dists"]
    monkeypatch.setenv("PERCEPTUAL_SIMILARITY", "off")
    assert similarity.load(backbone="random") == ([], {"lpips_random-backbone": "not computed: PERCEPTUAL_SIMILARITY=off",
                                                       "dists_random-backbone": "not computed: PERCEPTUAL_SIMILARITY=off"})

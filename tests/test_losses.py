"""Each loss against values computed by hand on small tensors."""
import pytest
import torch

from perceptual.method import losses


def test_feature_loss_by_hand():
    # Eq. 2 on one image, C=1, H=1, W=2: ((3-1)² + (5-2)²) / 2 = 6.5
    a = torch.tensor([[[[3.0, 5.0]]]])
    b = torch.tensor([[[[1.0, 2.0]]]])
    assert losses.feature_loss(a, b).item() == pytest.approx(6.5)
    # batch mean: a second image with zero error halves it
    assert losses.feature_loss(torch.cat([a, b]), torch.cat([b, b])).item() == pytest.approx(3.25)


def test_feature_loss_shape_mismatch():
    with pytest.raises(ValueError, match="feature shapes differ"):
        losses.feature_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, 3))


def test_gram_by_hand():
    # C=2, H=1, W=2: ψ = [[1, 2], [3, 4]]; ψψᵀ = [[5, 11], [11, 25]]; ÷ (C·H·W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = losses.gram(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g[0], torch.tensor([[1.25, 2.75], [2.75, 6.25]]))


def test_gram_symmetric_and_scaling():
    f = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    g = losses.gram(f)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(losses.gram(2 * f), 4 * g)  # quadratic in the features
    # the same features repeated over a larger grid give the same Gram (÷HW normalisation)
    assert torch.allclose(losses.gram(torch.cat([f, f], dim=3)), g, atol=1e-6)


def test_gram_in_chunks_equals_one_product(monkeypatch):
    """Split into column chunks (the last one zero-padded): the same Gram as ψψᵀ/(CHW) in float64."""
    f = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    psi = f.reshape(2, 3, 63)
    whole = psi @ psi.transpose(1, 2) / 189
    for chunk in (1000, 10, 7, 1):  # one piece; 7 pieces of 9; 9 of 7; 63 of 1
        monkeypatch.setattr(losses, "GRAM_CHUNK", chunk)
        assert torch.allclose(losses.gram(f).double(), whole, atol=1e-12)


def test_gram_distance_conventions():
    g1 = torch.tensor([[[1.0, 2.0], [2.0, 0.0]]])
    g2 = torch.zeros(1, 2, 2)
    # paper Eq. 4: squared Frobenius norm = 1 + 4 + 4 + 0 = 9; reference: mean over C² = 9/4
    assert losses.gram_distance(g1, g2, "paper").item() == pytest.approx(9.0)
    assert losses.gram_distance(g1, g2, "reference").item() == pytest.approx(2.25)
    with pytest.raises(ValueError):
        losses.gram_distance(g1, g2, "other")


def test_style_loss_weighted_sum_and_broadcast():
    gen = torch.Generator().manual_seed(1)
    feats = {"a": torch.randn(2, 3, 4, 4, generator=gen), "b": torch.randn(2, 5, 2, 2, generator=gen)}
    targets = {"a": torch.zeros(1, 3, 3), "b": torch.zeros(1, 5, 5)}  # (1, C, C) broadcasts
    la = losses.gram(feats["a"]).pow(2).sum((1, 2)).mean()
    lb = losses.gram(feats["b"]).pow(2).sum((1, 2)).mean()
    got = losses.style_loss(feats, targets, {"a": 2.0, "b": 0.5})
    assert got.item() == pytest.approx((2 * la + 0.5 * lb).item(), rel=1e-6)
    ref = losses.style_loss(feats, targets, {"a": 1.0, "b": 1.0}, norm="reference")
    assert ref.item() == pytest.approx((la / 9 + lb / 25).item(), rel=1e-6)


def test_style_loss_missing_layer():
    with pytest.raises(KeyError, match="missing"):
        losses.style_loss({"a": torch.zeros(1, 1, 2, 2)}, {"b": torch.zeros(1, 1, 1)})


def test_pixel_loss_by_hand():
    a = torch.tensor([[[[0.0, 2.0]], [[4.0, 6.0]], [[1.0, 1.0]]]])  # (1, 3, 1, 2)
    b = torch.zeros_like(a)
    assert losses.pixel_loss(a, b).item() == pytest.approx((4 + 16 + 36 + 1 + 1) / 6)


def test_tv_loss_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # horizontal: (1-0)² + (5-3)² = 5; vertical: (3-0)² + (5-1)² = 25
    assert losses.tv_loss(x).item() == pytest.approx(30.0)
    assert losses.tv_loss(torch.full((2, 3, 8, 8), 7.0)).item() == 0.0


def test_content_loss_sums_layers():
    f = {"x": torch.ones(1, 1, 1, 2), "y": torch.zeros(1, 2, 1, 1)}
    t = {"x": torch.zeros(1, 1, 1, 2), "y": torch.ones(1, 2, 1, 1)}
    assert losses.content_loss(f, t, {"x": 1.0, "y": 3.0}).item() == pytest.approx(4.0)

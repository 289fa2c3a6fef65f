"""Every layer's output shape against REFERENCE.md §1; parameter count; size handling."""
import pytest
import torch

from perceptual.method.transformer import SRCNN, SRNet, StyleNet, count_parameters


def _shapes(model, x, modules):
    """Output shapes (C, H, W) of the given submodules during one forward pass."""
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:]))) for m in modules]
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    return seen, y


def test_style_net_matches_reference_table():
    net = StyleNet().eval()
    x = torch.rand(1, 3, 256, 256) * 255
    modules = [net.pad, *net.down, *net.res, *net.up, net.out]
    seen, y = _shapes(net, x, modules)
    assert seen == [
        (3, 336, 336),  # reflection pad 40
        (32, 336, 336), (64, 168, 168), (128, 84, 84),  # 9×9 conv, two stride-2 convs
        (128, 80, 80), (128, 76, 76), (128, 72, 72), (128, 68, 68), (128, 64, 64),  # residual blocks
        (64, 128, 128), (32, 256, 256),  # stride-½ convs
        (3, 256, 256),  # 9×9 conv
    ]
    assert y.shape == (1, 3, 256, 256)
    assert 0.0 <= y.min() and y.max() <= 255.0


def test_style_net_parameter_count():
    assert count_parameters(StyleNet()) == 1_679_235


@pytest.mark.parametrize("factor,lr,ups", [(4, 72, [144, 288]), (8, 36, [72, 144, 288])])
def test_sr_net_matches_reference_table(factor, lr, ups):
    net = SRNet(factor).eval()
    seen, y = _shapes(net, torch.rand(1, 3, lr, lr) * 255, [net.head, *net.res, *net.up, net.out])
    assert seen == [(64, lr, lr)] + [(64, lr, lr)] * 4 + [(64, s, s) for s in ups] + [(3, 288, 288)]
    assert y.shape == (1, 3, 288, 288)


def test_sr_net_x2_and_any_size():
    assert SRNet(2).eval()(torch.rand(1, 3, 13, 17) * 255).shape == (1, 3, 26, 34)
    with pytest.raises(ValueError, match="factor"):
        SRNet(3)


def test_srcnn_same_size():
    net = SRCNN()
    assert count_parameters(net) == 3 * 64 * 81 + 64 + 64 * 32 + 32 + 32 * 3 * 25 + 3
    assert net(torch.rand(2, 3, 31, 40) * 255).shape == (2, 3, 31, 40)


@pytest.mark.parametrize("size", [(61, 77), (45, 100), (257, 255)])
def test_style_net_any_size_returns_input_size(size):
    assert StyleNet().eval()(torch.rand(1, 3, *size) * 255).shape == (1, 3, *size)


def test_style_net_options():
    x = torch.rand(2, 3, 64, 64) * 255
    for kwargs in (dict(norm="instance"), dict(upsample="nearest"), dict(padding="zero"), dict(width=16),
                   dict(output="caffe150")):
        assert StyleNet(**kwargs).eval()(x).shape == x.shape
    # the earlier zero-padded design takes tiny images; the reflection design refuses clearly
    assert StyleNet(padding="zero").eval()(torch.rand(1, 3, 10, 14) * 255).shape == (1, 3, 10, 14)
    with pytest.raises(ValueError, match="at least 41"):
        StyleNet()(torch.rand(1, 3, 30, 64) * 255)
    with pytest.raises(ValueError, match="norm"):
        StyleNet(norm="group")
    with pytest.raises(ValueError, match="upsample"):
        StyleNet(upsample="bilinear")


def test_networks_reject_bad_inputs():
    net = StyleNet()
    with pytest.raises(TypeError, match="float"):
        net(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        SRNet(4)(torch.zeros(1, 1, 8, 8))

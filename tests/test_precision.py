"""Mixed precision (detection, fp32 losses under autocast), the MATLAB-compatible resize, and
the training loop's deferred loss read-back."""
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from perceptual.core import demo, images
from perceptual.method import losses, train
from perceptual.runtime import precision
from perceptual.core.config import PAPER
from perceptual.core.resize import cubic, imresize, weights
from perceptual.method.transformer import StyleNet

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# ------------------------------------------------------------------ precision


def test_auto_precision_is_detected_from_cpu_flags(monkeypatch):
    assert precision.cpu_has_fast_bf16(frozenset({"sse4_2", "avx512_bf16"}))
    assert precision.cpu_has_fast_bf16(frozenset({"amx_bf16"}))
    assert not precision.cpu_has_fast_bf16(frozenset({"avx2", "avx512f"}))
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda flags=None: False)
    assert precision.resolve("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda flags=None: True)
    assert precision.resolve("auto", "cpu") == "bf16"
    assert precision.resolve("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="CUDA"):
        precision.resolve("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be"):
        precision.resolve("fp8", "cpu")


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_auto_precision_on_cuda_asks_the_given_device_for_native_bf16(monkeypatch, capability, expected):
    """V100 (7.0) and T4 (7.5) only emulate bf16 (torch.cuda.is_bf16_supported() says yes there):
    auto keeps fp32; A100 (8.0) and H100 (9.0) get bf16. The device asked about is the one given."""
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability)
    assert precision.resolve("auto", "cuda:1") == expected
    assert asked == [torch.device("cuda:1")]


def test_cudnn_is_autotuned_on_cuda_unless_deterministic_and_restored():
    """One rule for every fixed-size run (fit, the bench, the sensitivity run): autotuning on CUDA
    only, never together with deterministic algorithms; the caller's flags come back."""
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark, cudnn.deterministic
    try:
        cudnn.benchmark, cudnn.deterministic = False, True  # a caller's own
        for device, deterministic, expected in (("cuda", False, (True, False)), ("cuda:1", True, (False, True)),
                                                ("cpu", False, (False, False)), ("cpu", True, (False, True))):
            previous = precision.set_cudnn(device, deterministic)
            assert (cudnn.benchmark, cudnn.deterministic) == expected
            precision.restore_cudnn(previous)
            assert (cudnn.benchmark, cudnn.deterministic) == (False, True)
    finally:
        cudnn.benchmark, cudnn.deterministic = before


def test_gram_and_losses_stay_fp32_under_autocast():
    torch.manual_seed(0)
    f = torch.randn(2, 8, 5, 5)
    with precision.autocast("cpu", "bf16"):
        conv = torch.nn.functional.conv2d(f, torch.randn(8, 8, 1, 1))
        assert conv.dtype == torch.bfloat16  # autocast is on
        g = losses.gram(conv)
        loss = losses.feature_loss(conv, conv.detach().float() + 1)  # fp32 target
        tv = losses.tv_loss(conv)
    assert g.dtype == loss.dtype == tv.dtype == torch.float32
    # the Gram of the bf16 features, computed in fp32: equal to the fp32 formula on those values
    psi = conv.float().reshape(2, 8, 25)
    assert torch.allclose(g, psi @ psi.transpose(1, 2) / (8 * 25), rtol=1e-6)
    assert loss.item() == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ resize


def test_cubic_kernel_values():
    x = torch.tensor([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5], dtype=torch.float64)
    expect = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0]  # Keys, a = −0.5, by hand
    assert cubic(x).tolist() == pytest.approx(expect, abs=1e-12)


def test_imresize_halving_by_hand():
    """8 → 4 samples: output 1 samples u = 1.5 (1-based) with the kernel stretched ×2; taps at
    input 1−2 … 1+5, mirrored at the left border (index 0 → 1, −1 → 2, −2 → 3)."""
    w = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    idx = [3, 2, 1, 1, 2, 3, 4, 5]  # 1-based input index each tap reads
    s = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], dtype=torch.float64)
    expect = sum(wi * s[i - 1].item() for wi, i in zip(w, idx))
    out = imresize(s.view(1, 1, 8), (1, 4))  # resize the last axis only (H stays 1)
    assert out[0, 0, 0].item() == pytest.approx(expect, abs=1e-12)
    m = weights(8, 4)
    assert m.sum(1).tolist() == pytest.approx([1.0] * 4)
    assert m[0].tolist() == pytest.approx([0.11328125 + 0.43359375, -0.03515625 + 0.43359375,
                                           -0.01171875 + 0.11328125, -0.03515625, -0.01171875, 0, 0, 0])


def test_imresize_identity_and_constant():
    x = torch.rand(1, 3, 12, 10, dtype=torch.float64) * 255
    assert torch.allclose(imresize(x, (12, 10)), x)
    c = torch.full((1, 3, 16, 16), 77.0)
    assert torch.allclose(imresize(c, (4, 4)), torch.full((1, 3, 4, 4), 77.0))
    assert torch.allclose(imresize(c, (40, 40)), torch.full((1, 3, 40, 40), 77.0))


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_imresize_matches_pil_antialiased_bicubic_inside(factor):
    """PIL's BICUBIC is Keys a = −0.5 with an antialiased (stretched) kernel, like MATLAB; it
    renormalises at the border where MATLAB mirrors, so compare away from the border."""
    path = DATA / "sr/Set5/baby.png"
    img = images.read_image(path) if path.is_file() else torch.from_numpy(demo.sample("astronaut")).permute(2, 0, 1).float()
    h, w = img.shape[-2] // factor, img.shape[-1] // factor
    ours = imresize(img[None], (h, w))[0].numpy()
    pil = np.stack([np.asarray(Image.fromarray(img[c].numpy().astype(np.float32), "F").resize((w, h), Image.BICUBIC))
                    for c in range(3)])
    inside = np.abs(ours - pil)[:, 3:-3, 3:-3]
    assert inside.max() < 0.5 and inside.mean() < 0.01


def test_degrade_is_blur_then_matlab_resize_rounded():
    from perceptual.method import superres

    hr = torch.rand(1, 3, 32, 32) * 255
    lr = superres.degrade(hr, 4)
    assert lr.shape == (1, 3, 8, 8) and torch.equal(lr, lr.round())
    expect = imresize(superres.gaussian_blur(hr, 1.0), (8, 8)).clamp(0, 255).round()
    assert torch.equal(lr, expect)


# ------------------------------------------------------------------ the loop


def _tiny(**kw):
    return replace(PAPER.style, image_size=48, batch_size=2, checkpoint_every=4, val_every=0, val_images=0,
                   iterations=6, **kw)


def _data():
    root = demo.materialize()
    from perceptual.core.data import list_images

    return train.SquareImages(list_images(root / "train/demo"), 48, "warp")


def _run(tmp_path, cfg, step, **kw):
    torch.manual_seed(0)
    return train.fit(StyleNet(padding="zero", width=8), step, _data(), cfg, run_dir=tmp_path, meta={"config_hash": "t"},
                     options=train.FitOptions(progress=False, **kw))


def test_deferred_readback_logs_every_iteration(tmp_path):
    def step(m, batch):
        out = m(batch)
        return {"total": (out - batch).pow(2).mean(), "mean": out.mean()}

    _run(tmp_path, replace(_tiny(), precision="fp32"), step, sync_every=5)
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.iteration) == list(range(6)) and list(log.columns) == ["iteration", "total", "mean", "time"]
    assert log.time.is_monotonic_increasing and abs(log.time.iloc[-1] - time.time()) < 600  # when issued


def test_a_log_begun_by_an_older_version_keeps_its_columns(tmp_path):
    from perceptual.runtime.runfolder import append_row

    log = tmp_path / "log.csv"
    log.write_text("iteration,total\n0,1.5\n")  # no time column (written before it existed)
    append_row(log, {"iteration": 1, "total": 2.5, "time": 123.0})
    assert log.read_text() == "iteration,total\n0,1.5\n1,2.5\n"
    append_row(tmp_path / "new.csv", {"iteration": 0, "total": 1.0, "time": 5.0})
    assert (tmp_path / "new.csv").read_text().splitlines() == ["iteration,total,time", "0,1.0,5.0"]


def test_nan_found_within_sync_interval_keeps_checkpoint(tmp_path):
    calls = {"n": 0}

    def step(m, batch):
        calls["n"] += 1
        bad = float("nan") if calls["n"] == 6 else 1.0  # iteration 5, after the checkpoint at 4
        return {"total": (m(batch) - batch).pow(2).mean() * bad}

    with pytest.raises(train.TrainingDiverged, match="iteration 5"):
        _run(tmp_path, replace(_tiny(), iterations=8, precision="fp32"), step, sync_every=3)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["iteration"] == 4 and not (tmp_path / "model.pt").exists()
    assert list(pd.read_csv(tmp_path / "log.csv").iteration) == [0, 1, 2, 3, 4]


def test_stop_after_does_not_write_the_model_early(tmp_path):
    def step(m, batch):
        return {"total": (m(batch) - batch).pow(2).mean()}

    out = _run(tmp_path, _tiny(), step, stop_after=5)  # iterations − 1
    assert out.name == "checkpoint.pt" and not (tmp_path / "model.pt").exists()
    assert torch.load(out, weights_only=True)["iteration"] == 5


def test_bf16_training_resumes_bit_identically(tmp_path):
    def step(m, batch):
        return {"total": (m(batch) - batch).pow(2).mean()}

    cfg = replace(_tiny(), precision="bf16")
    full = _run(tmp_path / "a", cfg, step)
    _run(tmp_path / "b", cfg, step, stop_after=4)
    resumed = _run(tmp_path / "b", cfg, step)
    a, b = torch.load(full, weights_only=True)["model"], torch.load(resumed, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float32 for v in a.values() if v.is_floating_point())  # fp32 master weights


def test_fp16_resume_restores_the_gradient_scaler(tmp_path, monkeypatch):
    """fp16 (CUDA-only in use; here autocast fp16 on the CPU, which PyTorch runs) keeps its
    gradient scaler's scale and growth count in the checkpoint: a run stopped at 3 and resumed
    ends with the uninterrupted run's scaler and weights. The scaler doubles its scale every 3
    clean steps here (1 → 2 → 4), so a resumed run with a fresh scaler would end at 2."""
    from perceptual.runtime import trainstep

    monkeypatch.setattr(trainstep, "plan", lambda name, device, cuda_graph=None, compiled=False: ("fp16", False))
    monkeypatch.setattr(precision, "scaler", lambda device, prec: torch.amp.GradScaler(
        "cpu", init_scale=1.0, growth_interval=3, enabled=prec == "fp16"))

    def step(m, batch):
        return {"total": (m(batch) - batch).pow(2).mean()}

    cfg = replace(_tiny(), iterations=6, checkpoint_every=3, precision="fp16")
    full = _run(tmp_path / "a", cfg, step)
    _run(tmp_path / "b", cfg, step, stop_after=3)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["scaler"]["scale"] == 2.0
    resumed = _run(tmp_path / "b", cfg, step)
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (tmp_path / "a", tmp_path / "b"))
    assert a["scaler"] == b["scaler"] and a["scaler"]["scale"] == 4.0
    a, b = torch.load(full, weights_only=True)["model"], torch.load(resumed, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

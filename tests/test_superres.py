"""Super-resolution: metrics by hand, degradation sizes, histogram matching, training, evaluation."""
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual.core import demo, images
from perceptual.evaluation import metrics, sr_benchmark
from perceptual.method import superres
from perceptual.core.config import PAPER
from perceptual.core.resize import imresize


def test_y_channel_bt601():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    assert np.allclose(metrics.rgb_to_y(px)[0], [16.0, 235.0, 81.481, 144.553, 40.966])


def test_y_rounded_as_matlab_rgb2ycbcr_on_uint8():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    # 81.481 → 81, 144.553 → 145, 40.966 → 41; (10, 20, 30): 16 + (654.81 + 2571.06 + 748.98)/255 = 31.588 → 32
    assert metrics.y_uint8(px)[0].tolist() == [16.0, 235.0, 81.0, 145.0, 41.0, 32.0]
    assert metrics.rgb_to_y(px)[0, 5] == pytest.approx(31.5876, abs=1e-4)


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[1, 2, 0] = 255  # one pure-red pixel: Y 81.481 → 81 against 16, ΔY = 65 after 8-bit rounding
    expected = 10 * math.log10(255 ** 2 / (65 ** 2 / 16))
    assert metrics.psnr_y(a, b, border=0) == pytest.approx(expected)
    assert metrics.psnr_y(a, b, border=0) == pytest.approx(23.9137, abs=1e-3)
    assert metrics.psnr_y(a, b, border=1) == pytest.approx(10 * math.log10(255 ** 2 / (65 ** 2 / 4)))
    assert metrics.psnr_y(a, a, border=0) == math.inf
    c = a.copy()
    c[0, 0] = (1, 0, 0)  # ΔY = 0.257 rounds away: identical on the rounded Y
    assert metrics.psnr_y(a, c, border=0) == math.inf


def test_metric_inputs_are_checked():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(TypeError, match="8-bit"):
        metrics.psnr_y(a, a.astype(np.float32), border=0)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim_y(a, a[:10], border=0)
    with pytest.raises(ValueError, match="border"):
        metrics.psnr_y(a, a, border=10)


def test_ssim_identity_and_constant_pair():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert metrics.ssim_y(x, x, border=4) == pytest.approx(1.0)
    # two flat images: SSIM = (2·μx·μy + C1)/(μx² + μy² + C1), the contrast term is C2/C2
    c1 = (0.01 * 255) ** 2
    f1, f2 = np.full((30, 30), 100.0), np.full((30, 30), 110.0)
    assert metrics.ssim_array(f1, f2) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1))


def test_ssim_matches_scikit_image_on_a_synthetic_pair():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    noisy = np.clip(hr.astype(int) + rng.integers(-20, 21, hr.shape), 0, 255).astype(np.uint8)
    ours = metrics.ssim_y(hr, noisy, border=0)
    ref = structural_similarity(metrics.y_uint8(hr), metrics.y_uint8(noisy), gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert ours == pytest.approx(ref, abs=1e-9)
    assert 0.0 < ours < 1.0


@pytest.mark.parametrize("factor,lr", [(4, 72), (8, 36)])
def test_degradation_sizes(factor, lr):
    hr = torch.rand(2, 3, 288, 288) * 255
    out = superres.degrade(hr, factor)
    assert out.shape == (2, 3, lr, lr)
    assert torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 255  # 8-bit values
    assert torch.equal(out, superres.degrade(hr, factor))  # deterministic


def test_modcrop_and_size_errors():
    hr = torch.rand(3, 291, 250) * 255
    assert superres.modcrop(hr, 8).shape == (3, 288, 248)
    with pytest.raises(ValueError, match="modcrop"):
        superres.degrade(hr[None], 4)


def test_gaussian_blur_preserves_flat_and_mean():
    flat = torch.full((1, 3, 20, 20), 42.0)
    assert torch.allclose(superres.gaussian_blur(flat, 1.0), flat)
    x = torch.rand(1, 3, 32, 32) * 255
    assert superres.gaussian_blur(x, 1.0).mean().item() == pytest.approx(x.mean().item(), rel=1e-2)


def _hist_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over channels of the L1 distance between normalised 32-bin histograms."""
    return float(sum((torch.histc(a[c], 32, 0, 255) / a[c].numel()
                      - torch.histc(b[c], 32, 0, 255) / b[c].numel()).abs().sum() for c in range(3)) / 3)


def test_histogram_matching_moves_toward_reference():
    gen = torch.Generator().manual_seed(0)
    out = (torch.rand(3, 64, 64, generator=gen) * 120).clamp(0, 255)  # dark
    ref = (80 + torch.rand(3, 16, 16, generator=gen) * 170).clamp(0, 255)  # bright LR input
    matched = superres.histogram_match(out, ref)
    assert matched.shape == out.shape
    assert _hist_distance(matched, ref) < 0.25 * _hist_distance(out, ref)
    # order of pixel values within a channel is kept (a monotone map)
    o, m = out[0].flatten(), matched[0].flatten()
    assert (m[torch.argsort(o)].diff() >= -1e-4).all()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo.materialize(tmp_path_factory.mktemp("demo"))


@pytest.mark.parametrize("method", ["pixel", "feat", "srcnn"])
def test_tiny_training_lowers_the_loss(tmp_path, demo_root, method):
    import pandas as pd

    cfg = replace(PAPER.sr, network="vgg19-caffe", patch=48, iterations=30, batch_size=4, checkpoint_every=30,
                  val_every=15, val_images=1)
    path = superres.train_sr(cfg, method, [demo_root / "train/demo"], tmp_path, "cpu", progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert path.name == "model.pt" and len(log) == 30
    assert log.total.iloc[-5:].mean() < 0.7 * log.total.iloc[:5].mean()


def test_evaluation_runner(tmp_path, demo_root):
    cfg = replace(PAPER.sr, network="vgg19-caffe", patch=48, iterations=4, checkpoint_every=4, val_images=0)
    models = {"pixel": superres.train_sr(cfg, "pixel", [demo_root / "train/demo"], tmp_path / "p", "cpu",
                                         progress=False)}
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray(demo.sample("chelsea")[:101, :123]).save(hr_dir / "cat.png")
    per_image = sr_benchmark.evaluate([("Tiny", hr_dir)], 4, models, tmp_path / "out", torch.device("cpu"),
                                  progress=False)
    rows = set(zip(per_image.protocol, per_image.method, per_image.matched))
    assert rows == {(p, m, hm) for p in ("standard", "paper-blur")
                    for m, hm in (("bicubic", False), ("pixel", False), ("pixel", True))}
    hr = images.to_uint8(superres.modcrop(images.read_image(hr_dir / "cat.png"), 4))
    hr_t = torch.from_numpy(hr).permute(2, 0, 1)[None].float()
    for protocol, sigma in (("standard", 0.0), ("paper-blur", 1.0)):
        bic = per_image[(per_image.method == "bicubic") & (per_image.protocol == protocol)].iloc[0]
        ref = images.to_uint8(superres.upsample_bicubic(superres.degrade(hr_t, 4, sigma), 4))
        assert bic.psnr == pytest.approx(metrics.psnr_y(hr, ref, border=4))
    std = per_image[per_image.protocol == "standard"].set_index(["method", "matched"]).psnr
    pb = per_image[per_image.protocol == "paper-blur"].set_index(["method", "matched"]).psnr
    assert std[("bicubic", False)] != pb[("bicubic", False)]  # the two protocols are different inputs
    assert std[("pixel", True)] != std[("pixel", False)]  # matching is applied to ℓ_pixel too
    for name in ("hr", "lr", "bicubic", "pixel", "pixel_hm"):
        assert (tmp_path / "out" / f"Tiny_cat_x4_{name}.png").is_file()
    summary = sr_benchmark.summarise(per_image, {"lpips": "not computed: no weights"})
    assert list(summary.columns) == ["dataset", "factor", "protocol", "method", "matched", "psnr", "ssim",
                                     "grad_ratio", "hf_ratio", "hf_corr", "hatch_peak", "images", "lpips"]
    assert len(summary) == 6 and (summary.lpips == "not computed: no weights").all()
    with pytest.raises(ValueError, match="unknown evaluation protocol"):
        sr_benchmark.evaluate([("Tiny", hr_dir)], 4, {}, tmp_path / "out", torch.device("cpu"), protocols=("matlab",))


def test_protocols_are_a_table_of_blur_sigmas():
    assert sr_benchmark.PROTOCOLS == {"standard": 0.0, "paper-blur": 1.0}
    assert sr_benchmark.DEFAULT_PROTOCOL == "standard"
    hr = torch.rand(1, 3, 32, 40) * 255
    # standard: MATLAB imresize of the HR image, rounded to 8 bits, nothing else
    assert torch.equal(superres.degrade(hr, 4, 0.0), imresize(hr, (8, 10)).clamp(0, 255).round())
    assert torch.equal(superres.degrade(hr, 4, 1.0),
                       imresize(superres.gaussian_blur(hr, 1.0), (8, 10)).clamp(0, 255).round())


SR_ROOT = Path(os.environ.get("PERCEPTUAL_DATA_ROOT") or Path(__file__).resolve().parents[1].parent / "shared" / "data") / "sr"


@pytest.mark.skipif(not (SR_ROOT / "Set5").is_dir(), reason="no real Set5 under the data root")
@pytest.mark.parametrize("factor,published", [(4, 28.42), (8, 24.39)])
def test_standard_protocol_reproduces_the_published_bicubic_set5(tmp_path, factor, published):
    """SR papers' bicubic baseline (Y, border = scale): Set5 ×4 28.42 dB, ×8 24.39 dB."""
    per_image = sr_benchmark.evaluate([("Set5", SR_ROOT / "Set5")], factor, {}, tmp_path, torch.device("cpu"),
                                  protocols=("standard",), save_images=0, progress=False)
    assert len(per_image) == 5
    assert per_image.psnr.mean() == pytest.approx(published, abs=0.05)


def test_training_subset_is_seeded_and_sorted():
    files = [Path(f"img{i:03d}.jpg") for i in range(50)][::-1]  # any order in, sorted subset out
    a = superres.training_subset(files, 10, seed=0)
    assert len(a) == 10 == len(set(a)) and a == sorted(a) and set(a) <= set(files)
    assert a == superres.training_subset(list(reversed(files)), 10, seed=0)  # from the sorted list
    assert a != superres.training_subset(files, 10, seed=1)
    assert superres.training_subset(files, 0, seed=0) == files  # 0: all, order kept
    assert superres.training_subset(files, 80, seed=0) == files


def test_subset_zero_keeps_the_model_hash(tmp_path, demo_root):
    from perceptual.method.train import config_hash

    cfg = replace(PAPER.sr, network="vgg19-caffe", patch=48, iterations=2, checkpoint_every=2, val_images=0)
    old = config_hash((superres.identity(cfg), "pixel"))  # the config hashed as before it had ``upsample``
    assert config_hash(superres.run_key(cfg, "pixel", 0)) == old  # old run folders stay valid
    assert config_hash(superres.run_key(cfg, "pixel", 3)) != old
    path = superres.train_sr(cfg, "pixel", [demo_root / "train/demo"], tmp_path, "cpu", progress=False, subset=3)
    listed = (tmp_path / "train_files.txt").read_text().splitlines()
    all_files = superres.split_files([demo_root / "train/demo"], 0)[0]
    assert listed == [str(f) for f in superres.training_subset(all_files, 3, cfg.seed)]
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["train_files"] == str(tmp_path / "train_files.txt") and meta["provenance"]["train_images"] == 3


def test_the_sr_tables_record_each_networks_real_iterations(tmp_path, monkeypatch):
    """The SR chapter's tables carry each network's real training iterations (from its model.pt) and
    its meta the per-network counts and the schedule, never one number for all (issue 26)."""
    import pandas as pd

    from perceptual.core import store
    from perceptual.method import srcnn
    from perceptual.method.transformer import SRCNN, SRNet
    from perceptual.study import experiments, profiles
    from perceptual.study.chapters import superres as sr_chapter

    (tmp_path / "sr/Tiny").mkdir(parents=True)
    Image.fromarray(demo.sample("chelsea")[:48, :48]).save(tmp_path / "sr/Tiny/cat.png")
    ran = {("pixel", 4): 900, ("feat", 4): 800, ("srcnn", 4): 700}  # stopped where they stopped

    def fake_model(ctx, factor, method, progress=True):
        torch.manual_seed(0)
        net = SRCNN() if method == "srcnn" else SRNet(factor)
        path = tmp_path / f"models/{method}/model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"kind": "srcnn" if method == "srcnn" else "sr", "arch": net.arch, "factor": factor, "method": method,
                "segments": [{"iterations": [0, ran[method, factor]]}],
                "provenance": {"config": {"iterations": 1000}}}
        store.atomic_torch_save({"model": net.state_dict(), "meta": meta}, path)
        return path

    monkeypatch.setattr(sr_chapter, "sr_model", fake_model)
    monkeypatch.setattr(srcnn, "published_file", lambda: (None, "not offline"))
    demo_p = profiles.get("demo", gpu=False)
    p = replace(demo_p, name="sr-iterations-test", data="root", sr_sets=(("Tiny", "sr/Tiny"),), sr_factors=(4,),
                sr=replace(demo_p.sr, iterations=1000), srcnn_iterations=1000)
    ctx = experiments.Context(p, torch.device("cpu"), tmp_path)
    table = experiments.superresolution(ctx, progress=False)
    summary = pd.read_csv(table.parent / "sr_summary.csv")
    got = summary[summary.protocol == "standard"].drop_duplicates("method").set_index("method").iterations
    assert got.drop("bicubic").to_dict() == {"pixel": 900, "feat": 800, "srcnn": 700} and np.isnan(got["bicubic"])
    meta = store.read_meta(table)
    assert meta["network_iterations"] == {"4": {"pixel": 900, "feat": 800, "srcnn": 700}}
    assert meta["config"]["iterations"] == "×4: 1000 (ℓ_pixel, ℓ_feat); SRCNN 1000 where retrained"
    assert "networks trained ℓ_pixel ×4 900, ℓ_feat ×4 800, SRCNN ×4 700 iterations" in meta["summary"]
    assert meta["detail_version"] == 2


def test_run_folders_of_the_paper_network_predate_the_upsample_field():
    """The hashes computed before SRConfig had ``upsample`` (commit e5bbe9f): the published and ablation
    run folders keep their names; a nearest-upsampling network gets its own; SRCNN ignores the field."""
    from perceptual.method.train import config_hash

    assert config_hash(superres.run_key(PAPER.sr, "feat")) == "55808f783e"
    assert config_hash(superres.run_key(PAPER.sr, "pixel", 5)) == "4410d08096"
    nearest = replace(PAPER.sr, upsample="nearest")
    assert config_hash(superres.run_key(nearest, "feat")) == "8925b1a091"
    assert config_hash(superres.run_key(nearest, "srcnn")) == config_hash(superres.run_key(PAPER.sr, "srcnn"))
    net = superres.sr_model(replace(nearest, factor=8), "feat")
    assert net.arch["upsample"] == "nearest" and net.arch["factor"] == 8
    assert net(torch.zeros(1, 3, 6, 6)).shape == (1, 3, 48, 48)

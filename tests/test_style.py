"""Style transfer end to end: the baseline, inversion, training, resume, the fast path, stylize."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual import cli
from perceptual.core import colour, demo, images
from perceptual.method import gatys, train
from perceptual.runtime import inference
from perceptual.tools import stylize
from perceptual.core.config import PAPER, GatysConfig, LossConfig
from perceptual.method.objective import Objective
from perceptual.method.transformer import StyleNet
from perceptual.method.vgg import load_vgg


@pytest.fixture(scope="module")
def net():
    return load_vgg("vgg19-caffe")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return demo.materialize(tmp_path_factory.mktemp("demo"))


def tiny_cfg(iterations=24, **kw):
    loss = replace(PAPER.style.loss, network="vgg19-caffe", style_weight=10.0, tv_weight=1e-5)
    base = dict(style="swirl", image_size=64, style_size=64, batch_size=2, iterations=iterations,
                checkpoint_every=6, val_every=12, val_images=1, loss=loss)
    return replace(PAPER.style, **{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_root):
    run = tmp_path_factory.mktemp("run")
    path = train.train_style(tiny_cfg(), demo_root / demo.STYLE_FILE, [demo_root / "train/demo"], run,
                             "cpu", progress=False)
    return run, path


def test_training_lowers_the_loss(trained):
    import pandas as pd

    run, path = trained
    assert path.name == "model.pt"
    log = pd.read_csv(run / "log.csv")
    assert list(log.iteration) == list(range(24))
    assert log.total.iloc[-6:].mean() < 0.8 * log.total.iloc[:6].mean()
    val = pd.read_csv(run / "val.csv")
    assert list(val.iteration) == [12, 24] and np.isfinite(val.val_total).all()
    assert (run / "train.log").is_file()


def test_checkpoint_records_what_is_needed(trained):
    _, path = trained
    model, meta = train.load_model(path)
    assert isinstance(model, StyleNet) and not model.training
    assert meta["kind"] == "style" and meta["style"] == "swirl" and meta["loss_network"] == "vgg19-caffe"
    assert meta["arch"]["norm"] == "batch" and meta["provenance"]["config"]["iterations"] == 24
    assert meta["provenance"]["hardware"]["torch"] == torch.__version__


def test_resume_is_identical_to_uninterrupted(tmp_path, demo_root):
    cfg = tiny_cfg(iterations=10, val_images=0)
    style, dirs = demo_root / demo.STYLE_FILE, [demo_root / "train/demo"]
    full = train.train_style(cfg, style, dirs, tmp_path / "a", "cpu", progress=False)
    part = train.train_style(cfg, style, dirs, tmp_path / "b", "cpu", progress=False, stop_after=4)
    assert part.name == "checkpoint.pt" and torch.load(part, weights_only=True)["iteration"] == 4
    resumed = train.train_style(cfg, style, dirs, tmp_path / "b", "cpu", progress=False)
    a, b = torch.load(full, weights_only=True)["model"], torch.load(resumed, weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b" / "log.csv").read_text() .count("\n") == 11  # header + 10 rows, none twice


def test_crash_between_checkpoints_resumes_without_duplicate_rows(tmp_path, demo_root):
    import pandas as pd

    cfg = tiny_cfg(iterations=8, checkpoint_every=3, val_images=0)
    data = train.SquareImages(images_of([demo_root / "train/demo"]), 48, "warp")
    meta = {"config_hash": "test"}

    def run(folder, crash_at=None):
        torch.manual_seed(0)
        model = StyleNet(padding="zero", width=8)
        calls = {"n": 0}

        def step(m, batch):
            if calls["n"] == crash_at:
                raise KeyboardInterrupt  # the machine went away mid-run
            calls["n"] += 1
            return {"total": (m(batch) - batch).pow(2).mean()}

        return train.fit(model, step, data, cfg, run_dir=tmp_path / folder, meta=meta,
                         options=train.FitOptions(progress=False, sync_every=1))  # rows written every iteration, so some follow the checkpoint

    full = run("a")
    with pytest.raises(KeyboardInterrupt):
        run("b", crash_at=5)  # iterations 0–4 logged, the last checkpoint at 3
    assert len(pd.read_csv(tmp_path / "b" / "log.csv")) == 5
    resumed = run("b")
    assert list(pd.read_csv(tmp_path / "b" / "log.csv").iteration) == list(range(8))  # 3 and 4 once
    a, b = torch.load(full, weights_only=True)["model"], torch.load(resumed, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config(tmp_path, demo_root):
    style, dirs = demo_root / demo.STYLE_FILE, [demo_root / "train/demo"]
    train.train_style(tiny_cfg(iterations=2, val_images=0), style, dirs, tmp_path, "cpu", progress=False)
    with pytest.raises(RuntimeError, match="another config"):
        train.train_style(tiny_cfg(iterations=3, val_images=0, seed=5), style, dirs, tmp_path, "cpu",
                          progress=False)


def test_nan_guard_keeps_last_good_checkpoint(tmp_path, demo_root):
    cfg = tiny_cfg(iterations=6, val_images=0)
    style, dirs = demo_root / demo.STYLE_FILE, [demo_root / "train/demo"]
    train.train_style(cfg, style, dirs, tmp_path, "cpu", progress=False, stop_after=3)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    model = StyleNet()
    calls = {"n": 0}

    def step(m, batch):
        calls["n"] += 1
        return {"total": m(batch).mean() * float("nan")}

    meta = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["meta"]
    with pytest.raises(train.TrainingDiverged, match="iteration 3"):
        train.fit(model, step, train.SquareImages(images_of(dirs), 64, "warp"), replace(cfg, checkpoint_every=1),
                  run_dir=tmp_path, meta=meta, options=train.FitOptions(progress=False))
    assert (tmp_path / "checkpoint.pt").read_bytes() == good and calls["n"] == 1


def images_of(dirs):
    from perceptual.core.data import list_images

    return [f for d in dirs for f in list_images(d)]


def test_baseline_objective_falls_and_pixels_stay_in_range(net, demo_root):
    content = images.square(images.read_image(demo_root / "content/demo/astronaut.png"), 48, "center")[None]
    style = images.resize_longer(images.read_image(demo_root / demo.STYLE_FILE), 48)[None]
    cfg = replace(GatysConfig(), iterations=15, loss=tiny_cfg().loss)
    r = gatys.stylise(net, content, style, cfg, progress=False)
    totals = [h["total"] for h in r.history]
    assert len(r.history) == 16 and totals[-1] < 0.5 * totals[0]
    assert r.image.min() >= 0 and r.image.max() <= 255
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(r.history, r.history[1:]))
    unclipped = gatys.stylise(net, content, style, replace(cfg, clip=False), progress=False)
    assert unclipped.history[-1]["total"] > 0


def test_feature_inversion_relu2_2_comes_close(net, demo_root):
    target = images.square(images.read_image(demo_root / "content/demo/chelsea.png"), 64, "center")[None]
    r = gatys.invert_features(net, target, "relu2_2", gatys.feature_inversion_config(80), progress=False)
    assert r.history[-1]["total"] < 1e-3 * r.history[0]["total"]
    # relu2_2 keeps the image up to pixel-level high frequencies (paper Fig. 3: "visually
    # indistinguishable"): after a σ = 1 blur of both, the reconstruction is within a few grey levels
    from perceptual.method.superres import gaussian_blur

    blurred_rmse = (gaussian_blur(r.image, 1.0) - gaussian_blur(target, 1.0)).pow(2).mean().sqrt().item()
    start_rmse = (gaussian_blur(gatys.initial_image((64, 64), "uniform", 0, torch.device("cpu")), 1.0)
                  - gaussian_blur(target, 1.0)).pow(2).mean().sqrt().item()
    assert blurred_rmse < 8.0 and blurred_rmse < 0.1 * start_rmse


def test_inversion_stops_once_settled_and_says_whether_it_did(net, demo_root):
    target = images.square(images.read_image(demo_root / "content/demo/chelsea.png"), 48, "center")[None]
    cfg = replace(gatys.feature_inversion_config(400, init="noise"), noise_amplitude=1.0)
    settled = gatys.invert_features(net, target, "relu1_2", cfg, progress=False, until=gatys.Convergence(10, 0.05))
    ran = len(settled.history) - 1
    assert settled.converged is True and ran < 400 and ran % 10 == 0  # checked once a window, stopped before the cap
    capped = gatys.invert_features(net, target, "relu1_2", replace(cfg, iterations=5), progress=False,
                                   until=gatys.Convergence(10, 0.05))
    assert capped.converged is False and len(capped.history) == 6
    assert gatys.invert_features(net, target, "relu1_2", replace(cfg, iterations=5), progress=False).converged is None


def test_style_inversion_matches_grams(net, demo_root):
    style = images.resize_longer(images.read_image(demo_root / demo.STYLE_FILE), 64)[None]
    r = gatys.invert_style(net, style, ("relu2_2",), (48, 48), gatys.feature_inversion_config(40), progress=False)
    assert r.history[-1]["total"] < 0.05 * r.history[0]["total"]


class _Quadratic:
    """Σ w·(x − t)² with part of t above 255, so that the projection onto [0, 255] is active."""

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.net = torch.nn.Linear(1, 1)  # only where optimise looks up the device
        self.t = torch.rand(1, 3, 4, 4, generator=gen) * 400
        self.w = torch.rand(1, 3, 4, 4, generator=gen) * 100 + 0.01

    def content_targets(self, content):
        return None

    def __call__(self, x, targets):
        return {"total": (self.w * (x - self.t) ** 2).sum()}


def test_lbfgs_restart_gets_a_projected_run_moving_again():
    """With a line search and clipping, L-BFGS's memory goes stale and the iterate stops dead; the
    restart drops the memory where an iteration does not move the image. History records the iterate
    (not a line search's trial points), so a stalled run reads as a constant."""
    cfg = GatysConfig(iterations=60, init="uniform")
    stuck = [h["total"] for h in gatys.optimise(_Quadratic(), (4, 4), cfg, progress=False, line_search=True).history]
    assert len(set(stuck[20:60])) == 1  # not one step in 40 iterations
    moving = [h["total"] for h in gatys.optimise(_Quadratic(), (4, 4), cfg, progress=False, line_search=True,
                                                 restart=True).history]
    assert all(b < a for a, b in zip(moving[20:60:10], moving[30:61:10])) and moving[-1] < stuck[-1]
    q = _Quadratic()
    assert moving[-1] > float((q.w * (q.t.clamp(0, 255) - q.t) ** 2).sum())  # the constrained minimum bounds it


def test_objective_skips_unweighted_terms(net):
    obj = Objective(net, replace(LossConfig(), style_weight=0.0, tv_weight=0.0, content_layers=("relu1_2",)))
    assert obj.layers == ("relu1_2",)
    with pytest.raises(ValueError, match="style image"):
        Objective(net, LossConfig())


def test_fast_path_matches_eval_network():
    torch.manual_seed(0)
    for kw in ({}, {"upsample": "nearest"}, {"norm": "instance"}):
        model = StyleNet(**kw)
        model.train()
        model(torch.rand(4, 3, 64, 64) * 255)  # non-trivial running statistics
        model.eval()
        x = torch.rand(2, 3, 72, 80) * 255
        with torch.no_grad():
            ref = model(x)
        fast = inference.inference_model(model)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
        assert torch.allclose(inference.run(fast, x), ref, atol=5e-3)


def test_strength_blends_with_the_input():
    torch.manual_seed(0)
    model = inference.inference_model(StyleNet().eval())
    x = torch.rand(3, 48, 48) * 255
    full = stylize.stylize_image(model, x)
    assert torch.allclose(stylize.stylize_image(model, x, strength=0.0), x)
    assert torch.allclose(stylize.stylize_image(model, x, strength=0.25), 0.25 * full + 0.75 * x, atol=1e-3)
    with pytest.raises(ValueError, match="strength"):
        stylize.stylize_image(model, x, strength=1.5)


def test_median3_by_hand():
    x = torch.tensor([[[1.0, 9.0, 2.0], [8.0, 3.0, 7.0], [4.0, 6.0, 5.0]]])  # (1, 3, 3)
    assert stylize.median3(x)[0, 1, 1].item() == 5.0


def test_preserve_color_keeps_input_chroma():
    content = torch.rand(3, 16, 16) * 255
    styled = torch.rand(3, 16, 16) * 255
    out = stylize.preserve_color(styled, content)
    yo, yc, ys = colour.rgb_to_jpeg_ycbcr(out), colour.rgb_to_jpeg_ycbcr(content), colour.rgb_to_jpeg_ycbcr(styled)
    inside = (out > 1).all(0) & (out < 254).all(0)  # away from clipping
    assert torch.allclose(yo[1:, inside], yc[1:, inside], atol=1e-3)
    assert torch.allclose(yo[0, inside], ys[0, inside], atol=1e-3)


# ---------------------------------------------------------------------------------------------
# `perceptual stylize` on odd inputs


def _odd_inputs(folder):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((50, 70), 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(folder / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb[:20, :30]).save(folder / "tiny.png")
    im = Image.fromarray(rgb)  # stored 70 wide × 50 high, EXIF says rotate 90° → shown 50 × 70
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(folder / "rotated.jpg", exif=exif)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return {"grey": (50, 70), "rgba": (50, 70), "palette": (50, 70), "deep16": (50, 70), "cmyk": (50, 70),
            "tiny": (20, 30), "rotated": (70, 50)}


def test_read_image_modes(tmp_path):
    sizes = _odd_inputs(tmp_path)
    assert images.read_image(tmp_path / "deep16.png").max() <= 255
    assert images.read_image(tmp_path / "rotated.jpg").shape == (3, 70, 50)
    for name, (h, w) in sizes.items():
        ext = ".jpg" if name in ("cmyk", "rotated") else ".png"
        img = images.read_image(tmp_path / f"{name}{ext}")
        assert img.shape == (3, h, w) and img.dtype == torch.float32
    rgba = images.read_image(tmp_path / "rgba.png")  # alpha 128 over white lifts dark pixels
    assert rgba.min() >= 126
    with pytest.raises(images.ImageError, match="corrupt.jpg"):
        images.read_image(tmp_path / "corrupt.jpg")


def test_stylize_cli_odd_inputs_and_exit_code(tmp_path, trained, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = _odd_inputs(inputs)
    _, model = trained
    out = tmp_path / "out"
    rc = cli.main(["stylize", str(model), str(inputs), "-o", str(out), "-q", "--median", "--preserve-color"])
    err = capsys.readouterr().err
    assert rc == 1 and "corrupt.jpg" in err and "1 of 8 inputs failed" in err
    for name, (h, w) in sizes.items():
        with Image.open(out / f"{name}.png") as im:
            assert im.size == (w, h) and im.mode == "RGB"
    # all good inputs → exit 0 (--overwrite: the output exists); a missing file → named, exit 2
    assert cli.main(["stylize", str(model), str(inputs / "grey.png"), "-o", str(out), "-q", "--overwrite"]) == 0
    assert cli.main(["stylize", str(model), str(inputs / "nope.png"), "-o", str(out), "-q"]) == 2  # before any work
    assert cli.main(["stylize", str(tmp_path / "missing.pt"), str(inputs), "-o", str(out), "-q"]) == 2


def test_speed_rows_columns(net, trained):
    from perceptual.study import bench

    model, _ = train.load_model(trained[1])
    style = torch.rand(1, 3, 48, 48) * 255
    rows = bench.speed_rows(model, net, style, (64,), replace(GatysConfig(), loss=tiny_cfg().loss), repeats=2,
                            gatys_iterations=2, device=torch.device("cpu"))
    (row,) = rows
    assert row["size"] == 64 and row["gatys_per_iteration"] > 0 and row["feedforward"] > 0
    assert row["speedup_300"] == pytest.approx(300 * row["gatys_per_iteration"] / row["feedforward"])
    assert row["gatys_500"] == pytest.approx(500 * row["gatys_per_iteration"])


def test_train_style_names_a_folder_given_as_the_style(tmp_path, demo_root, capsys):
    styles = demo_root / demo.STYLE_FILE
    folder = styles.parent
    run = tmp_path / "run"
    rc = cli.main(["train-style", "--style", str(folder), "--data", str(demo_root / "train/demo"), "--out", str(run),
                   "--iterations", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (f"error: argument --style: {folder} is a folder; give the style image file itself "
                   f"(e.g. {folder / sorted(p.name for p in folder.iterdir() if p.suffix == styles.suffix)[0]})\n")
    assert not run.exists()  # refused before anything was made
    with pytest.raises(images.ImageError, match=r"is a folder, not an image file; name an image file"):
        images.read_image(folder)

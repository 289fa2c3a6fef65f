"""Configs, presets, the per-style table, profiles and the book's helpers."""
import dataclasses

import pytest

from perceptual.book import site as book
from perceptual.core import config
from perceptual.study import profiles


def test_every_default_names_its_source():
    for cls in (config.LossConfig, config.StyleNetConfig, config.StyleTrainConfig, config.GatysConfig,
                config.SRConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("source"), f"{cls.__name__}.{f.name} has no source"


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.PAPER.style.iterations = 5


def test_paper_defaults_match_the_text():
    s = config.PAPER.style
    assert (s.image_size, s.batch_size, s.iterations, s.lr) == (256, 4, 40_000, 1e-3)
    assert s.loss.content_layers == ("relu2_2",)
    assert s.loss.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    sr = config.PAPER.sr
    assert (sr.patch, sr.blur_sigma, sr.batch_size, sr.iterations, sr.feature_layer) == (288, 1.0, 4, 200_000,
                                                                                      "relu2_2")
    assert config.PAPER.gatys.clip and config.PAPER.gatys.iterations == 500


def test_deviation_table_is_generated():
    table = config.deviations(config.PAPER, config.REFERENCE, names=("paper", "reference"))
    rows = table.set_index("setting")
    assert rows.loc["style.loss.content_layers", "paper"] == "relu2_2"
    assert rows.loc["style.loss.content_layers", "reference"] == "relu3_3"
    assert rows.loc["style.net.norm", "reference"] == "instance"
    assert rows.loc["gatys.clip", "paper"] == "True" and rows.loc["gatys.clip", "reference"] == "False"
    assert rows.loc["median_filter", "reference"] == "True"
    assert "style.batch_size" not in rows.index  # identical settings are not listed
    assert all(rows.source.str.len() > 0)


def test_deviation_table_against_eq4_as_printed_and_the_runs_values():
    from perceptual.study import experiments

    rows = config.deviations(config.as_printed(), config.REFERENCE, names=("paper", "reference")).set_index("setting")
    assert rows.loc["style.loss.gram_norm", "paper"] == "paper" and rows.loc["style.loss.gram_norm", "reference"] == "reference"
    assert rows.loc["gatys.loss.gram_norm", "paper"] == "paper"
    ctx = experiments.Context.create(profiles.get("small", gpu=False), "cpu")
    run = experiments.build_preset(ctx)
    assert run.gatys.iterations == ctx.profile.fig5_iterations == 100  # the profile's L-BFGS count, not 500
    assert run.style.loss.tv_weight == run.gatys.loss.tv_weight == 1e-5  # la_muse's per-style λ_TV
    assert run.style.loss.gram_norm == "reference"
    from perceptual.runtime.precision import resolve

    table = config.deviations(config.as_printed(), config.in_float32(config.REFERENCE), run,
                              names=("paper", "reference", "run")).set_index("setting")
    here = resolve("auto", "cpu")  # bf16 on a CPU with AVX512-BF16/AMX, else fp32
    for key in ("style.precision", "sr.precision"):  # the paper and its code trained in float32
        assert getattr(run, key.split(".")[0]).precision == here
        if here == "fp32":  # the same everywhere: not a deviation, not listed
            assert key not in table.index
        else:
            assert table.loc[key, ["paper", "reference", "run"]].tolist() == ["fp32", "fp32", here]
    assert config.PAPER.style.precision == config.REFERENCE.sr.precision == "auto"  # runs still resolve it


def test_style_table_applies():
    cfg = config.style_preset("the_scream")
    assert (cfg.net.norm, cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight) == \
        ("instance", 1.0, 20.0, 1e-5)
    assert (cfg.style_size, cfg.iterations, cfg.style) == (384, 60_000, "the_scream")
    assert config.style_preset("udnie").loss.content_weight == 0.5
    assert len(config.STYLES) == 10
    with pytest.raises(KeyError, match="unknown style"):
        config.style_preset("mona_lisa")


def test_layer_weights():
    loss = dataclasses.replace(config.LossConfig(), style_layer_weights=(1.0, 2.0, 3.0, 4.0))
    assert loss.layer_weights() == {"relu1_2": 1.0, "relu2_2": 2.0, "relu3_3": 3.0, "relu4_3": 4.0}
    with pytest.raises(ValueError, match="3 style layer weights"):
        dataclasses.replace(loss, style_layer_weights=(1.0, 2.0, 3.0)).layer_weights()


def test_profiles(monkeypatch):
    demo = profiles.get("demo", gpu=False)
    assert demo.data == "demo" and demo.loss_network == "vgg19-caffe"
    small_gpu, small_cpu = profiles.get("small", gpu=True), profiles.get("small", gpu=False)
    assert small_gpu.style.image_size == 256 and small_cpu.style.image_size == 128
    assert small_cpu.notes[-1].startswith(profiles.CPU_NOTE)
    paper = profiles.get("paper", gpu=True)
    assert paper.style == config.PAPER.style and paper.fig5_images == 50 and paper.fig5_sizes == (256, 512, 1024)
    text = profiles.describe(small_cpu)
    assert "style.iterations = 600" in text and "note:" in text
    monkeypatch.setenv("LOSS_NETWORK", "vgg16")
    assert profiles.get("demo").style.loss.network == "vgg16" and profiles.get("demo").sr.network == "vgg16"
    with pytest.raises(KeyError, match="unknown profile"):
        profiles.get("huge")


def test_choose_profile(monkeypatch):
    monkeypatch.delenv("PERCEPTUAL_PROFILE", raising=False)
    assert book.choose_profile("small") == ("small", "asked for")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert book.choose_profile(None) == ("demo", "no CUDA GPU is present")
    monkeypatch.setenv("PERCEPTUAL_PROFILE", "small")
    assert book.choose_profile(None)[0] == "small"


def test_check_html(tmp_path):
    for chapter in book.CHAPTERS:
        (tmp_path / f"{chapter}.html").write_text("<html><body></body></html>")
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "ok.png").write_bytes(b"png")
    (tmp_path / "intro.html").write_text('<img src="_images/ok.png"><img src="data:image/png;base64,AA">')
    assert book.check_html(tmp_path) == []
    (tmp_path / "speed.html").write_text('<img src="_images/gone.png">')
    (tmp_path / "superres.html").unlink()
    assert sorted(book.check_html(tmp_path)) == ["missing page superres.html",
                                                 "speed.html: image _images/gone.png does not exist"]


def test_runners_use_the_authors_per_style_weights():
    from perceptual.core import demo
    from perceptual.study import experiments

    ctx = experiments.Context.create(profiles.get("small", gpu=False), "cpu")
    cfg = experiments.style_config(ctx, "styles/fast-neural-style/starry_night.jpg")
    assert (cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight) == (1.0, 3.0, 1e-5)
    assert (cfg.style, cfg.iterations, cfg.image_size) == ("starry_night", 600, 128)  # the profile's schedule
    assert experiments.style_config(ctx, "styles/fast-neural-style/la_muse.jpg").loss.tv_weight == 1e-5
    wave = experiments.style_config(ctx, "styles/fast-neural-style/wave.jpg")  # the table's `file` column
    assert (wave.style, wave.loss.tv_weight, wave.loss.style_weight) == ("the_wave", 1e-4, 5.0)
    assert experiments.style_config(ctx, "styles/pytorch-examples/candy.jpg").loss.tv_weight == 1e-6  # not listed
    demo_ctx = experiments.Context.create(profiles.get("demo", gpu=False), "cpu")
    assert experiments.style_config(demo_ctx, demo.STYLE_FILE).loss.style_weight == 0.2  # not in the table


def test_the_baseline_starts_where_the_authors_did():
    import torch

    from perceptual.method import gatys

    cfg = config.GatysConfig()
    assert (cfg.init, cfg.noise_amplitude) == ("noise", 1.0)
    source = {f.name: f.metadata["source"] for f in dataclasses.fields(config.GatysConfig)}["noise_amplitude"]
    assert "slow_neural_style.lua" in source and "mean pixel ± 1 grey level" in source
    x = gatys.initial_image((64, 64), "noise", 0, torch.device("cpu"))  # the mean pixel ± 1 grey level
    assert x.mean(dim=(0, 2, 3)).tolist() == pytest.approx([123.68, 116.779, 103.939], abs=0.1)
    assert x.std(dim=(0, 2, 3)).tolist() == pytest.approx([1.0] * 3, abs=0.05)
    loud = gatys.initial_image((64, 64), "noise", 0, torch.device("cpu"), amplitude=10.0)
    assert loud.std(dim=(0, 2, 3)).tolist() == pytest.approx([10.0] * 3, abs=0.5)
    u = gatys.initial_image((64, 64), "uniform", 0, torch.device("cpu"))  # the start before issue 26
    assert u.min() >= 0 and u.max() <= 255 and u.std().item() == pytest.approx(255 / 12 ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="unknown init"):
        gatys.initial_image((8, 8), "white", 0, torch.device("cpu"))
    from perceptual.study.chapters import inversion

    assert gatys.feature_inversion_config(10).init == "uniform"
    assert inversion.STARTS == {"fig3": "noise", "fig4": "uniform"}  # Fig. 3 from the authors' start


def test_the_deviation_table_shows_the_start_the_sr_tv_and_the_vgg19_layers():
    from perceptual.study import experiments

    ctx = experiments.Context.create(profiles.get("cpu", gpu=False), "cpu")
    run = experiments.build_preset(ctx)
    rows = config.deviations(config.as_printed(), config.REFERENCE, run,
                             names=("paper", "reference", "run")).set_index("setting")
    assert rows.loc["gatys.noise_amplitude", ["paper", "reference", "run"]].tolist() == ["—", "1.0", "1.0"]
    assert rows.loc["sr.tv_weight", ["paper", "reference", "run"]].tolist() == ["0.0", "1e-06", "0.0"]
    layers = rows.loc["style.loss layers in the loss network"]
    assert layers.paper == "VGG-16 relu2_2, relu1_2, relu3_3, relu4_3"
    assert layers.run == ("VGG-19 relu2_2, relu1_2, relu3_3, relu4_3, by the same names: relu3_3 (block-final: "
                          "relu3_4), relu4_3 (block-final: relu4_4)")
    assert "same depth and receptive field" in layers.source
    # the SR iterations: per factor, ℓ_pixel and ℓ_feat alike, never one number for all
    assert rows.loc["sr.iterations", "run"] == "×4: 3500 (ℓ_pixel, ℓ_feat); ×8: 1200 (ℓ_pixel, ℓ_feat); SRCNN 2000 where retrained"


def test_sr_schedules_are_identical_for_pixel_and_feat_in_every_profile():
    from perceptual.study import experiments

    for name in profiles.PROFILES:
        for gpu in (True, False):
            for p in (profiles.get(name, gpu=gpu), profiles.get(name + profiles.SMOKE_SUFFIX, gpu=gpu)):
                assert profiles.check_sr_schedules(p) == [], p.name
    cpu = experiments.Context.create(profiles.get("cpu", gpu=False), "cpu")
    assert {(f, m): experiments.sr_config(cpu, f, m).iterations for f in (4, 8) for m in ("pixel", "feat", "srcnn")} == \
        {(4, "pixel"): 3500, (4, "feat"): 3500, (4, "srcnn"): 2000, (8, "pixel"): 1200, (8, "feat"): 1200,
         (8, "srcnn"): 2000}
    unequal = dataclasses.replace(cpu.profile, sr_method_iterations=(("feat", 4, 3000),))
    assert profiles.check_sr_schedules(unequal) == ["×4: ℓ_pixel 3500 vs ℓ_feat 3000"]
    assert profiles.sr_schedule(unequal).startswith("×4: ℓ_pixel 3500, ℓ_feat 3000; ×8: 1200 (ℓ_pixel, ℓ_feat)")


def test_a_networks_real_iterations_come_from_its_record():
    from perceptual.study import experiments

    segments = {"segments": [{"iterations": [0, 400]}, {"iterations": [400, 1000]}],
                "provenance": {"config": {"iterations": 5000}}}
    assert experiments.trained_iterations(segments) == 1000  # stopped early: what ran, not what was asked for
    assert experiments.trained_iterations({"provenance": {"config": {"iterations": 3000}}}) == 3000  # before segments
    assert experiments.trained_iterations(None) is None


def test_vgg19_to_relu4_3_costs_13_percent_more():
    from perceptual.method import vgg

    assert vgg.conv_cost(19, "relu4_3") / vgg.conv_cost(16, "relu4_3") == pytest.approx(35008 / 30912)
    assert vgg.conv_cost(19, "relu3_3") == vgg.conv_cost(16, "relu3_3")  # the same depth in block 3
    with pytest.raises(KeyError):
        vgg.conv_cost(16, "relu4_4")

"""Table 1: speed — the feed-forward network against L-BFGS iterations of the baseline; and the
speed benchmark (``perceptual bench``): training and inference fast paths, and how far the loss
moves under perturbations of its arithmetic."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from perceptual.study import bench
from perceptual.core import images, paths, store
from perceptual.runtime import precision
from perceptual.core.config import GatysConfig
from perceptual.method.objective import Objective
from perceptual.method.train import config_hash, load_model, style_target
from perceptual.study.chapters.context import (Context, _done, runner, square_image, style_config, style_model,
                                               style_model_path)

log = logging.getLogger("perceptual.study.experiments")  # the name the bench has always logged under


@runner("speed", "speed.csv")
def speed(ctx: Context, progress: bool = True) -> Path:
    p = ctx.profile
    model_path = style_model(ctx, p.style_file, progress)
    out = ctx.out("speed")
    table = out / "speed.csv"
    cfg = replace(GatysConfig(), loss=style_config(ctx, p.style_file).loss)
    key = config_hash((cfg, p.table1_sizes, p.table1_repeats, p.table1_gatys_iterations, str(ctx.device),
                       store.hardware(ctx.device)))
    if _done(table, key):
        return table
    net = ctx.net(cfg.loss.network)
    model, _ = load_model(model_path, ctx.device)
    style = style_target(ctx.data(p.style_file), p.style.style_size)
    rows = bench.speed_rows(model, net, style, p.table1_sizes, cfg, p.table1_repeats, p.table1_gatys_iterations,
                            ctx.device)
    summary = (f"sizes {', '.join(f'{s}²' for s in p.table1_sizes)}, {p.table1_repeats} repeats, "
               f"{p.table1_gatys_iterations} timed L-BFGS iterations per size")
    # C4's 500 iterations are 500 × one iteration's time: the median of this many timed iterations
    store.write_table(pd.DataFrame(rows), table, {**ctx.meta(cfg, model=str(model_path)), "key": key,
                                                 "summary": summary,
                                                 "gatys_iterations_timed": p.table1_gatys_iterations})
    return table


# ---------------------------------------------------------------------------------------------
# the speed benchmark (``perceptual bench``): training and inference fast paths


@dataclass(frozen=True)
class BenchSizes:
    """The benchmark's sizes and counts (issue 12); ``TINY`` only checks that the table is written."""

    style_size: int = 256  # paper §4.1
    style_batch: int = 4  # paper §4.1
    sr_patch: int = 288  # paper §4.2 (×4)
    sr_batch: int = 4  # paper §4.2
    iterations: int = 200  # the loss-agreement run; its iterations after warm-up are also timed
    warmup: int = 10
    tail: int = 20  # final mean loss over the last 20 iterations
    inference_sizes: tuple[int, ...] = (256, 512, 1024)  # Table 1's sizes
    repeats: int = 5


BENCH = BenchSizes()
TINY = BenchSizes(style_size=48, style_batch=2, sr_patch=48, sr_batch=2, iterations=4, warmup=1, tail=2,
                  inference_sizes=(48, 64), repeats=1)


def _batches(dataset, n: int, batch: int, seed: int) -> list[torch.Tensor]:
    """The first ``n`` training batches in the training loop's order, kept as uint8."""
    from perceptual.method.train import IterationSampler

    sampler = IterationSampler(len(dataset), batch, seed, 0, n)
    return [torch.stack([dataset[item] for item in sampler.batch(i)]).to(torch.uint8) for i in range(n)]


def _bench_style_net(ctx: Context, content: list[torch.Tensor]) -> tuple[torch.nn.Module, str]:
    """The profile's trained style network when it exists, else a seeded one whose batch-norm
    statistics come from the content images (timing does not depend on the weights)."""
    path = style_model_path(ctx, ctx.profile.style_file)
    if path.is_file():
        shown = path.relative_to(paths.results_dir()) if path.is_relative_to(paths.results_dir()) else path
        return load_model(path, ctx.device)[0], shown.as_posix()  # <profile>/models/…: no machine's paths
    model = _seeded_style_net(ctx.profile.style, 0).to(ctx.device).train()
    with torch.no_grad():
        for _ in range(3):
            for image in content:
                model(image.to(ctx.device))
    return model.eval(), "untrained (seed 0, batch-norm statistics from the content images)"


def _seeded_style_net(cfg, seed: int) -> torch.nn.Module:
    from dataclasses import asdict

    from perceptual.method.transformer import StyleNet

    torch.manual_seed(seed)
    return StyleNet(**asdict(cfg.net))


def _train_files(ctx: Context) -> list[Path]:
    from perceptual.method.train import split_files

    return split_files([ctx.data(d) for d in ctx.profile.train_dirs], 0)[0]


def _style_training(ctx: Context, size: int, sizes: BenchSizes, train_files: list[Path]):
    """The bench's style training case at ``size``²: (config, loss network, style image, a function
    making the seeded initial network, the first ``sizes.iterations`` batches of the training order)."""
    from perceptual.method.train import SquareImages

    p = ctx.profile
    cfg = style_config(ctx, p.style_file)
    style = style_target(ctx.data(p.style_file), cfg.style_size).to(ctx.device)  # (1, 3, h, w)
    batches = _batches(SquareImages(train_files, size, cfg.resize), sizes.iterations, sizes.style_batch, cfg.seed)
    return cfg, ctx.net(cfg.loss.network), style, lambda: _seeded_style_net(cfg, cfg.seed), batches


def _machine(device: torch.device) -> dict:
    return {"device": str(device), "hardware": store.machine_label(store.hardware(device))}


SENSITIVITY_SIZE = 128  # px: the style case at a quarter of the bench's pixels (seven runs in ≈ 20 min on 2 cores)


def speed_sensitivity(ctx: Context, tiny: bool = False, progress: bool = True, size: int | None = None,
                      iterations: int | None = None) -> Path:
    """``results/<profile>/speed/sensitivity.csv``: the bench's style training case (200 iterations,
    batch 4, the same seed and batches) at ``SENSITIVITY_SIZE``² under perturbations of its
    arithmetic (:data:`perceptual.study.bench.SENSITIVITY`): how far the final loss moves, the scale
    against which the loss agreement's 3 % reads. ``size`` and ``iterations`` override the image
    size and the run's length (each row's ``curve`` has the mean loss of every ``tail`` iterations,
    so one long run shows how the spread evolves). On CUDA, cuDNN runs deterministically, so that each run
    differs from the baseline only by its perturbation. The meta records how far apart the two sets
    of style Gram matrices are. Always measures."""
    sizes = TINY if tiny else BENCH
    sizes = replace(sizes, iterations=iterations) if iterations else sizes
    size = size or (sizes.style_size if tiny else SENSITIVITY_SIZE)
    cudnn = precision.set_cudnn(ctx.device, deterministic=ctx.device.type == "cuda")
    try:
        return _sensitivity(ctx, sizes, size, tiny, progress)
    finally:
        precision.restore_cudnn(cudnn)


def _sensitivity(ctx: Context, sizes: BenchSizes, size: int, tiny: bool, progress: bool) -> Path:
    cfg, net, style, make_model, batches = _style_training(ctx, size, sizes, _train_files(ctx))
    objectives = {}
    for layout, fmt in (("NCHW", torch.contiguous_format), ("channels-last", torch.channels_last)):
        net.to(memory_format=fmt)  # the same loss network, its weights in another layout
        objectives[layout] = Objective(net, cfg.loss, style)
    net.to(memory_format=torch.contiguous_format)
    a, b = objectives["NCHW"].style_grams, objectives["channels-last"].style_grams
    apart = max(float((a[j] - b[j]).abs().max() / a[j].abs().max()) for j in a)
    log.info("bench: loss sensitivity, style training %d², batch %d, %d iterations", size, sizes.style_batch,
             sizes.iterations)
    case = f"style-{size}-b{sizes.style_batch}"
    rows = bench.sensitivity_rows(case, make_model, {k: o.train_step for k, o in objectives.items()}, batches, net,
                                  ctx.device, cfg.lr, sizes.tail, progress)
    table = ctx.out("speed") / "sensitivity.csv"
    store.write_table(pd.DataFrame([{**r, **_machine(ctx.device)} for r in rows]), table,
                      {**ctx.meta(sizes, style_config=cfg, size=size, tiny=tiny),
                       "style_grams_apart": apart,
                       "cudnn_deterministic": torch.backends.cudnn.deterministic,
                       "summary": f"style training {size}², batch {sizes.style_batch}, {sizes.iterations} iterations "
                                  f"from one seed; final loss = mean of the last {sizes.tail}; the two sets of style "
                                  f"Gram matrices differ by at most {apart:.1e} of their largest entry"
                                  + ("; cuDNN deterministic" if torch.backends.cudnn.deterministic else "")})
    return table


def speed_bench(ctx: Context, tiny: bool = False, compile: bool = False, progress: bool = True) -> Path:
    """``results/<profile>/speed/bench.csv``: training it/s and loss agreement (style 256² batch 4,
    SR ×4 288² patches, the profile's loss network), inference seconds per image and PSNR at 256²,
    512², 1024²; eager fp32 vs the fast paths (:mod:`perceptual.study.bench`). Always measures."""
    from perceptual.runtime.precision import int8_supported, resolve
    from perceptual.method.superres import Patches, sr_loss
    from perceptual.method.transformer import SRNet

    p, sizes, device = ctx.profile, TINY if tiny else BENCH, ctx.device
    prec = resolve("auto", device)
    precision.set_cudnn(device)  # fixed sizes: autotuned on CUDA, as train.fit does
    train_files = _train_files(ctx)
    cfg, net, style, style_net, batches = _style_training(ctx, sizes.style_size, sizes, train_files)
    style_step = Objective(net, cfg.loss, style).train_step

    def sr_net():
        torch.manual_seed(sr_cfg.seed)
        return SRNet(4)

    rows = []
    log.info("bench: style training %d², batch %d", sizes.style_size, sizes.style_batch)
    rows += bench.training_rows(f"style-{sizes.style_size}-b{sizes.style_batch}", style_net, style_step, batches, net,
                                device, prec, cfg.lr, sizes.warmup, sizes.tail, compile, progress)
    sr_cfg = replace(p.sr, factor=4, patch=sizes.sr_patch, batch_size=sizes.sr_batch, loss="feat")
    log.info("bench: SR ×4 training %d² patches, batch %d", sizes.sr_patch, sizes.sr_batch)
    batches = _batches(Patches(train_files, sr_cfg.patch, 4, sr_cfg.blur_sigma), sizes.iterations, sr_cfg.batch_size,
                       sr_cfg.seed)
    sr_lossnet = net if sr_cfg.network == cfg.loss.network else ctx.net(sr_cfg.network)
    rows += bench.training_rows(f"sr-x4-{sizes.sr_patch}-b{sizes.sr_batch}", sr_net, sr_loss(sr_cfg, "feat", sr_lossnet),
                                batches, sr_lossnet, device, prec, sr_cfg.lr, sizes.warmup, sizes.tail, compile,
                                progress)
    del batches

    content = [square_image(f, max(sizes.inference_sizes)) for f in ctx.content_files(1)]
    model, source = _bench_style_net(ctx, content)
    inputs = {s: images.resize(content[0][0], (s, s))[None] for s in sizes.inference_sizes}
    low = [prec] if prec != "fp32" else []
    if device.type == "cuda" and "fp16" not in low:
        low.append("fp16")
    if int8_supported(device):
        low.append("int8")
    onnx_file = None
    from perceptual.tools.export import OnnxUnavailable, export_module

    try:
        onnx_file = export_module(model, ctx.out("speed") / "bench-style.onnx")
    except OnnxUnavailable as err:
        log.warning("no ONNX Runtime row: %s", err)
    rows += bench.inference_rows(model, inputs, device, low, sizes.repeats, onnx_file, compile)

    table = ctx.out("speed") / "bench.csv"
    summary = (f"training: style {sizes.style_size}² batch {sizes.style_batch}, SR ×4 {sizes.sr_patch}² batch "
               f"{sizes.sr_batch}, {sizes.iterations} iterations ({sizes.warmup} warm-up), loss over the last "
               f"{sizes.tail}; inference {', '.join(f'{s}²' for s in sizes.inference_sizes)}, median of "
               f"{sizes.repeats}; fast precision {prec}; network: {source}")
    store.write_table(pd.DataFrame([{**r, **_machine(device)} for r in rows]), table,
                      {**ctx.meta(sizes, style_config=cfg, sr_config=sr_cfg, tiny=tiny, compile=compile,
                                  inference_network=source), "summary": summary})
    return table


# ---------------------------------------------------------------------------------------------
# the command line as a user runs it: whole processes beside the bench's per-image / per-step time

CLI_PHOTOS, CLI_PHOTO_SIZE = 24, 512  # stylize: 24 COCO val2017 photos, centre crops at 512²
CLI_ITERATIONS, CLI_TRAIN_SIZE, CLI_TRAIN_BATCH = 40, 128, 4  # train-style
CLI_SLACK = {"stylize": 2.0, "train-style": 3.0}  # s: startup allowed beyond N × the bench's unit time


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``perceptual cmd`` as a new process: (its launch as Unix time, its wall seconds)."""
    import subprocess
    import sys

    launched, start = time.time(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "perceptual.cli", *cmd], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return launched, time.perf_counter() - start


def _pace(launched: float, done: Sequence[float], warmup: int = 3) -> dict[str, float]:
    """From the times each unit of work finished (Unix seconds): the time from launch to the first
    one, and the median gap between later ones (the process's steady pace)."""
    done = np.sort(np.asarray(done, dtype=float))
    gaps = np.diff(done[min(warmup, len(done) - 2):]) if len(done) > 1 else np.array([np.nan])
    return {"first_seconds": float(done[0] - launched), "steady_unit_seconds": float(np.median(gaps))}


def speed_cli(ctx: Context, tiny: bool = False) -> Path:
    """``results/<profile>/speed/cli.csv``: ``perceptual stylize`` on 24 photos at 512² and
    ``perceptual train-style`` for 40 iterations at 128², batch 4, timed as whole processes (after one
    untimed run, so caches a user's second run finds are warm; the cold run is recorded too), beside
    the in-process time of the same network or step measured in the same run, with the bound each is
    judged by: N × that time + :data:`CLI_SLACK`."""
    import tempfile

    from perceptual.core.data import list_images
    from perceptual.runtime.inference import auto_precision, inference_model, run

    n, side = (3, 64) if tiny else (CLI_PHOTOS, CLI_PHOTO_SIZE)
    iterations, size = (4, 64) if tiny else (CLI_ITERATIONS, CLI_TRAIN_SIZE)
    device = torch.device("cpu") if ctx.device.type == "cpu" else ctx.device
    rows = []
    with tempfile.TemporaryDirectory(prefix="perceptual-cli-") as tmp:
        tmp = Path(tmp)
        photos = list_images(ctx.data("coco/val2017"))[:n] if not tiny else ctx.content_files(n)
        for k, f in enumerate(photos):
            images.write_image(square_image(f, side)[0], tmp / "photos" / f"{k:02d}.jpg")
        published = sorted((paths.published_dir() / ctx.profile.name / "models").glob("style-*/model.pt"))
        if published and not style_model_path(ctx, ctx.profile.style_file).is_file():  # a trained network:
            model, source = load_model(published[0], device)[0].float(), f"published/{ctx.profile.name}/models/" \
                f"{published[0].parent.name}"  # what decides int8 vs bf16 (an untrained one is no guide)
        else:
            model, source = _bench_style_net(ctx, [square_image(photos[0], side)])
        store.atomic_torch_save({"model": model.state_dict(), "meta": {"kind": "style", "arch": model.arch,
                                                                        "style": "bench"}}, tmp / "model.pt")
        prec, psnr = auto_precision(model, device)
        fast = inference_model(model, device, prec)
        x = square_image(photos[0], side)
        per_image = bench.median_time(lambda: run(fast, x, prec), device, repeats=5)
        cmd = ["stylize", str(tmp / "model.pt"), str(tmp / "photos"), "-q", "--device", str(device)]
        _, cold = _timed([*cmd, "-o", str(tmp / "cold")])
        launched, warm = _timed([*cmd, "-o", str(tmp / "out")])
        rows.append({"command": "stylize", "work": f"{n} photos at {side}²", "units": n, "precision": prec,
                     "psnr_db": psnr, "unit_seconds": per_image, "cold_seconds": cold, "seconds": warm,
                     **_pace(launched, [f.stat().st_mtime for f in (tmp / "out").iterdir()]),
                     "bound_seconds": n * per_image + CLI_SLACK["stylize"]})

        cfg = replace(style_config(ctx, ctx.profile.style_file), image_size=size, batch_size=CLI_TRAIN_BATCH)
        train_files = _train_files(ctx)
        style_file = ctx.data(ctx.profile.style_file)
        sizes = replace(BENCH, iterations=8, warmup=3)
        _, net, style, make_net, batches = _style_training(ctx, size, replace(sizes, style_batch=CLI_TRAIN_BATCH),
                                                            train_files)
        step = Objective(net, cfg.loss, style_target(style_file, cfg.style_size).to(device)).train_step
        its, _ = bench.train_iterations(make_net(), step, batches, device, lr=cfg.lr,
                                        prec=precision.resolve(cfg.precision, device), fast=True, warmup=sizes.warmup)
        train_dirs = [str(ctx.data(d)) for d in ctx.profile.train_dirs]
        cmd = ["train-style", "--style", str(style_file), *sum((["--data", d] for d in train_dirs), []),
               "--iterations", str(iterations), "--image-size", str(size), "--batch-size", str(CLI_TRAIN_BATCH),
               "--loss-network", cfg.loss.network, "--device", str(device)]
        _, cold = _timed([*cmd, "--out", str(tmp / "run-cold")])
        launched, warm = _timed([*cmd, "--out", str(tmp / "run")])
        rows.append({"command": "train-style", "work": f"{iterations} iterations at {size}², batch {CLI_TRAIN_BATCH}",
                     "units": iterations, "precision": precision.resolve(cfg.precision, device), "psnr_db": None,
                     "unit_seconds": 1 / its, "cold_seconds": cold, "seconds": warm,
                     **_pace(launched, pd.read_csv(tmp / "run" / "log.csv").time),
                     "bound_seconds": iterations / its + CLI_SLACK["train-style"]})
    frame = pd.DataFrame([{**r, "met": r["seconds"] <= r["bound_seconds"], **_machine(device)} for r in rows])
    table = ctx.out("speed") / "cli.csv"
    store.write_table(frame, table, {**ctx.meta(BENCH, tiny=tiny, inference_network=source),
                                     "summary": "whole processes (second run; the first, cold, recorded) beside the "
                                                "in-process time of the same work in the same run"})
    return table

"""Table 1: feed-forward vs. optimisation speed on the hardware at hand.

Timing rules: warm-up runs first, device synchronisation around every timed region, the median
of repeats. The baseline's per-iteration time is the median over timed L-BFGS iterations (each
one forward + backward through the loss network); 100/300/500-iteration times are that × N, as
the paper's columns scale. The feed-forward network is timed twice in the same run: the fast
inference path (:func:`perceptual.stylize.inference_model`) and the network as trained (eager,
batch norm unfolded, autograd on).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from . import gatys
from .config import GatysConfig
from .objective import Objective
from .stylize import inference_model, run
from .vgg import VGGFeatures

PAPER_TABLE1 = {  # paper Table 1, GTX Titan X, seconds
    256: {"gatys_100": 3.17, "gatys_300": 9.52, "gatys_500": 15.86, "feedforward": 0.015},
    512: {"gatys_100": 10.97, "gatys_300": 32.91, "gatys_500": 54.85, "feedforward": 0.05},
    1024: {"gatys_100": 42.89, "gatys_300": 128.66, "gatys_500": 214.44, "feedforward": 0.21},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gatys_seconds_per_iteration(net: VGGFeatures, content: torch.Tensor, style: torch.Tensor,
                                cfg: GatysConfig, iterations: int) -> float:
    """Median wall time of one L-BFGS iteration on Eq. 5 (after one warm-up iteration)."""
    objective = Objective(net, cfg.loss, style)
    run_cfg = replace(cfg, iterations=iterations + 1)
    hist = gatys.optimise(objective, tuple(content.shape[-2:]), run_cfg, content, progress=False).history
    seconds = [h["seconds"] for h in hist[:-1]]  # the last row is the final evaluation
    return statistics.median(b - a for a, b in zip(seconds, seconds[1:]))


def speed_rows(model: nn.Module, net: VGGFeatures, style: torch.Tensor, sizes: tuple[int, ...],
               cfg: GatysConfig, repeats: int, gatys_iterations: int, device: torch.device) -> list[dict]:
    """One row per image size with every Table 1 column, ours and the paper's."""
    from .store import hardware

    model = model.to(device).eval()
    fast = inference_model(model, device)
    hw = hardware(device)
    machine = {"device": str(device), "hardware": hw.get("gpu") or f"{hw['cpu']} ({hw['cpu_threads']} threads)",
               "torch": hw["torch"], "cuda": hw.get("cuda", "")}
    rows = []
    for size in sizes:
        gen = torch.Generator().manual_seed(size)
        x = (torch.rand(1, 3, size, size, generator=gen) * 255).to(device)
        eager = median_time(lambda: model(x), device, repeats)  # as trained: autograd on, BN unfolded
        ff = median_time(lambda: run(fast, x), device, repeats)
        per_it = gatys_seconds_per_iteration(net, x, style.to(device), cfg, gatys_iterations)
        row = {"size": size, "gatys_per_iteration": per_it, "feedforward": ff, "feedforward_eager": eager,
               "fast_vs_eager": eager / ff}
        for n in (100, 300, 500):
            row[f"gatys_{n}"] = per_it * n
            row[f"speedup_{n}"] = per_it * n / ff
        paper = PAPER_TABLE1.get(size, {})
        row.update({f"paper_{k}": v for k, v in paper.items()})
        rows.append({**row, **machine})
    return rows

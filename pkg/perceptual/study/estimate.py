"""How long a profile takes on a GPU box: an ESTIMATE from FLOPs and the paper's own timings.

No GPU has run this code yet, so nothing here is measured. The arithmetic:

1. FLOPs per training iteration are counted, not guessed: one real training step (transformation
   network forward, loss network forward on output and target, backward) runs on fake tensors
   (shapes only, no data: torch's ``FakeTensorMode``) under
   :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add = 2 FLOPs).
2. The paper's GTX Titan X ran 40,000 style iterations (256², batch 4) in "roughly 4 hours"
   (§4.1): 0.36 s per iteration. That fixes the Titan X's effective rate on this kind of work,
   FLOPs per style iteration ÷ 0.36 s, which converts every other training job's FLOPs to time.
   Table 1's L-BFGS timings (:data:`perceptual.study.bench.PAPER_TABLE1`) give the baseline's
   per-iteration cost at 256/512/1024 directly (Figs. 3–7 and Table 1 evaluation).
3. Jobs are independent (:mod:`perceptual.study.jobs`): on N GPUs training takes the longest-first
   schedule's makespan; evaluation and the book then run on one GPU.
4. Newer GPUs: the Titan X time × (Titan X fp32 peak ÷ that GPU's fp32 peak) — i.e. assuming the
   same fraction of peak. An assumption, not a measurement (:data:`GPUS` names the peaks' sources).
"""
from __future__ import annotations

import contextlib
import heapq
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode  # shapes without data (what torch.compile traces with)
from torch.utils.flop_counter import FlopCounterMode

from perceptual.method import losses
from perceptual.study.bench import PAPER_TABLE1
from perceptual.core.config import GatysConfig, LossConfig
from perceptual.method.objective import Objective
from perceptual.study.profiles import Profile
from perceptual.method.transformer import SRCNN, SRNet, StyleNet
from perceptual.method.vgg import SOURCES, VGGFeatures

PAPER_STYLE_SECONDS = 4 * 3600 / 40_000  # paper §4.1: 40k iterations "roughly 4 hours" on a Titan X
# fp32 peak TFLOPS (vendor specifications): the scaling assumption of step 4
GPUS: dict[str, tuple[float, str]] = {
    "GTX Titan X (Maxwell), the paper's": (6.6, "3072 CUDA cores × 1075 MHz boost × 2"),
    "H100 SXM (fp32, same efficiency)": (67.0, "NVIDIA H100 datasheet, FP32 67 TFLOPS"),
}


def _loss_net(name: str, pool: str = "max") -> VGGFeatures:
    """The loss network's architecture (no weights are loaded); build it under :func:`_shapes`."""
    src = SOURCES[name]
    return VGGFeatures(src.depth, src.preprocessing, pool=pool, source=name).requires_grad_(False)


def _shapes() -> contextlib.AbstractContextManager:
    """Tensors made inside are fake: shapes and dtypes, no memory, no arithmetic."""
    return FakeTensorMode()


def _count(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def style_step_flops(profile: Profile) -> float:
    """FLOPs of one style-training iteration (Eq. 5, forward + backward) at the profile's size."""
    cfg = profile.style
    with _shapes():
        net = _loss_net(cfg.loss.network, cfg.loss.pool)
        model = StyleNet(**asdict(cfg.net))
        objective = Objective(net, cfg.loss, torch.zeros(1, 3, cfg.style_size, cfg.style_size))
        batch = torch.zeros(cfg.batch_size, 3, cfg.image_size, cfg.image_size)  # (B, 3, H, W)
        return _count(lambda: objective(model(batch), objective.content_targets(batch))["total"].backward())


def sr_step_flops(profile: Profile, factor: int, method: str) -> float:
    """FLOPs of one SR-training iteration (ℓ_feat at relu2_2 or ℓ_pixel) on the profile's patches."""
    cfg = profile.sr
    with _shapes():
        net = _loss_net(cfg.network)
        model = SRCNN() if method == "srcnn" else SRNet(factor)
        hr = torch.zeros(cfg.batch_size, 3, cfg.patch, cfg.patch)  # (B, 3, H, W)
        side = cfg.patch // factor
        x = hr if method == "srcnn" else torch.zeros(cfg.batch_size, 3, side, side)  # SRCNN sees the bicubic image
        return _count(lambda: _sr_step(model, net, x, hr, cfg.feature_layer, method))


def _sr_step(model, net: VGGFeatures, x: torch.Tensor, hr: torch.Tensor, layer: str, method: str) -> None:
    out = model(x)
    if method == "feat":
        with torch.no_grad():
            target = net(hr, [layer])[layer]
        loss = losses.feature_loss(net(out, [layer])[layer], target)
    else:
        loss = losses.pixel_loss(out, hr)
    loss.backward()


def gatys_step_flops(size: int, loss: LossConfig = GatysConfig().loss) -> float:
    """FLOPs of one L-BFGS iteration of the baseline (one forward + backward) at size²."""
    with _shapes():
        objective = Objective(_loss_net(loss.network, loss.pool), loss, torch.zeros(1, 3, 512, 512))
        y = torch.zeros(1, 3, size, size, requires_grad=True)  # (1, 3, H, W)
        targets = objective.content_targets(torch.zeros(1, 3, size, size))
        return _count(lambda: objective(y, targets)["total"].backward())


def makespan(seconds: list[float], gpus: int) -> float:
    """Wall time of independent jobs on ``gpus`` workers, longest first, each to the first free GPU."""
    free = [0.0] * max(1, gpus)
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


@dataclass(frozen=True)
class Estimate:
    jobs: dict[str, float]  # training job → Titan X seconds
    evaluation: dict[str, float]  # chapter → Titan X seconds (one GPU, after training)
    style_flops: float
    titan_rate: float  # effective Titan X FLOP/s on training (step 2)
    gatys_rate: float  # the same from Table 1's 256² L-BFGS iteration (a cross-check)

    def hours(self, gpus: int, peak_tflops: float = GPUS["GTX Titan X (Maxwell), the paper's"][0]) -> float:
        titan = GPUS["GTX Titan X (Maxwell), the paper's"][0]
        total = makespan(list(self.jobs.values()), gpus) + sum(self.evaluation.values())
        return total * titan / peak_tflops / 3600


def _gatys_seconds(size: int) -> float:
    """Titan X seconds per L-BFGS iteration: Table 1 at its sizes, else scaled by FLOPs from 256²."""
    if size in PAPER_TABLE1:
        return PAPER_TABLE1[size]["gatys_500"] / 500
    return PAPER_TABLE1[256]["gatys_500"] / 500 * gatys_step_flops(size) / gatys_step_flops(256)


def estimate(profile: Profile) -> Estimate:
    """Titan X seconds of every training job and evaluation step of ``profile`` (see module doc)."""
    from perceptual.study.chapters.context import Context, sr_config
    from perceptual.study.chapters.inversion import FEATURE_LAYERS, STYLE_LAYERS
    from perceptual.study.jobs import training_jobs

    p = profile
    style_flops = style_step_flops(p)
    rate = style_flops / PAPER_STYLE_SECONDS
    jobs = {}
    ctx = Context(p, torch.device("cpu"), Path("."))
    for job in training_jobs(ctx):  # the jobs `reproduce --gpus` runs
        if job.kind == "style":
            jobs[job.name] = p.style.iterations * PAPER_STYLE_SECONDS
        else:
            jobs[job.name] = sr_config(ctx, *job.args).iterations * sr_step_flops(p, *job.args) / rate
    n_inversions = len(FEATURE_LAYERS) + len(STYLE_LAYERS)  # Fig. 3 layers + Fig. 4 style layer sets
    evaluation = {
        "inversion (Figs. 3-4)": n_inversions * p.inversion_iterations * _gatys_seconds(p.inversion_size),
        "objective (Fig. 5)": p.fig5_images * p.fig5_iterations * (sum(_gatys_seconds(s) for s in p.fig5_sizes)
                                                                    + p.compare_uniform_start
                                                                    * _gatys_seconds(p.style.image_size)),
        # the calibration: the authors' two released La Muse outputs, from each start (square: an upper bound)
        "calibration (Fig. 5)": 2 * (1 + p.compare_uniform_start) * p.fig5_iterations
        * sum(_gatys_seconds(s) for s in p.calibration_sizes),
        "qualitative (Figs. 6-7)": len(p.qualitative_styles) * p.qualitative_images * p.fig5_iterations
        * _gatys_seconds(min(p.qualitative_sizes)),
        "speed (Table 1)": sum((p.table1_gatys_iterations + 1) * _gatys_seconds(s) for s in p.table1_sizes),
    }
    gatys_rate = gatys_step_flops(256, replace(GatysConfig().loss, network=p.style.loss.network)) / (
        PAPER_TABLE1[256]["gatys_500"] / 500)
    return Estimate(jobs, evaluation, style_flops, rate, gatys_rate)


def table(profile: Profile, gpu_counts: tuple[int, ...] = (1, 8)) -> str:
    """The README's estimate as text: hours per GPU model and GPU count, and the inputs."""
    e = estimate(profile)
    lines = [f"ESTIMATE for profile {profile.name!r} (no GPU measured): style step {e.style_flops / 1e9:.0f} GFLOP; "
             f"Titan X effective {e.titan_rate / 1e12:.2f} TFLOP/s from training, "
             f"{e.gatys_rate / 1e12:.2f} from Table 1's L-BFGS"]
    lines += [f"  train {k}: {v / 3600:.1f} h (Titan X)" for k, v in e.jobs.items()]
    lines += [f"  eval {k}: {v / 3600:.2f} h (Titan X)" for k, v in e.evaluation.items()]
    for gpu, (peak, _) in GPUS.items():
        lines.append(f"  {gpu}: " + ", ".join(f"{n} GPU{'s' if n > 1 else ''} ≈ {e.hours(n, peak):.1f} h"
                                              for n in gpu_counts))
    return "\n".join(lines)

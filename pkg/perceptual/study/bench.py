"""Table 1: feed-forward vs. optimisation speed on the hardware at hand; and the speed benchmark
of the training and inference fast paths (``perceptual bench``).

Timing rules: warm-up runs first, device synchronisation around every timed region, the median
of repeats. The baseline's per-iteration time is the median over timed L-BFGS iterations (each
one forward + backward through the loss network); 100/300/500-iteration times are that × N, as
the paper's columns scale. The feed-forward network is timed twice in the same run: the fast
inference path (:func:`perceptual.tools.stylize.inference_model`) and the network as trained (eager,
batch norm unfolded, autograd on).

The speed benchmark (:func:`training_rows`, :func:`inference_rows`) times, in one run:
- training: the same step function (forward, loss, backward, Adam) as the eager-fp32 baseline —
  NCHW, float32, every loss term read back to the host every iteration, as the loop did before
  the fast path — and as the fast path — the resolved precision under autocast (Gram matrices,
  reductions, optimiser state and master weights stay float32), channels-last transformation and
  loss networks, the loss kept on the device and read back once at the end. Both start from the
  same initial weights and see the same batches; iterations/s count after ``warmup`` iterations,
  and the mean total loss of the last ``tail`` iterations gives the loss agreement (fast / fp32).
  On CUDA the fast path also runs as one replayed CUDA graph per step (:mod:`perceptual.runtime.trainstep`).
- inference: seconds per image (median of repeats after a warm-up) of the network as trained
  (eval, batch norm unfolded, autograd on, float32), the fast path in float32 and in the reduced
  precision, optionally compiled, and ONNX Runtime on the exported graph; each output's PSNR
  against the network as trained.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from perceptual.method import gatys
from perceptual.evaluation import metrics
from perceptual.runtime import precision, trainstep
from perceptual.core import store
from perceptual.core.config import GatysConfig
from perceptual.runtime.inference import inference_model, run
from perceptual.method.objective import Objective
from perceptual.method.vgg import VGGFeatures

log = logging.getLogger(__name__)

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
    model = model.to(device).eval()
    fast = inference_model(model, device)
    hw = store.hardware(device)
    machine = {"device": str(device), "hardware": store.machine_label(hw), "torch": hw["torch"],
               "cuda": hw.get("cuda", "")}
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


# ---------------------------------------------------------------------------------------------
# the speed benchmark: training


def train_iterations(model: nn.Module, step: Callable, batches: Sequence[torch.Tensor], device: torch.device, *,
                     lr: float, prec: str, fast: bool, warmup: int, desc: str = "",
                     progress: bool = False, graph: bool = False) -> tuple[float, list[float]]:
    """Adam on ``step(model, batch)["total"]`` over ``batches`` (uint8 or float (B, 3, H, W)) as
    :func:`perceptual.method.train.fit` runs it (autocast, gradient scaler for fp16). ``fast``: channels-last,
    the loss kept on the device, fused Adam on CUDA; else the loop before the fast path (NCHW, every
    loss term read back each iteration, multi-tensor Adam). ``graph``: the fast path replayed as a
    CUDA graph (:mod:`perceptual.runtime.trainstep`). Returns (iterations/s after ``warmup`` iterations,
    total loss per iteration)."""
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    opt = precision.adam(model.parameters(), lr, device, fused=fast, capturable=graph)
    train_step = trainstep.trainer(model, step, opt, device, prec, graph)
    kept: list[torch.Tensor] = []
    values: list[float] = []
    start = time.perf_counter()
    for i, batch in enumerate(tqdm(batches, desc=desc, disable=not progress, leave=False)):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x = batch.to(device, non_blocking=True).float().contiguous(memory_format=fmt)
        terms = train_step(x)
        if not fast:
            values.append({k: float(v.detach()) for k, v in terms.items()}["total"])
        else:
            kept.append(terms["total"].detach().float().clone())  # a graph overwrites its outputs
    _sync(device)
    seconds = time.perf_counter() - start
    if kept:
        values = torch.stack(kept).cpu().tolist()
    return (len(batches) - warmup) / seconds, values


def training_rows(case: str, make_model: Callable[[], nn.Module], step: Callable, batches: Sequence[torch.Tensor],
                  loss_net: nn.Module | None, device: torch.device, prec: str, lr: float,
                  warmup: int, tail: int, compile: bool = False, progress: bool = False) -> list[dict]:
    """Eager-fp32 baseline vs the fast path (and ``torch.compile`` of it) on the same batches from
    the same initial weights; ``loss_ratio`` = fast / fp32 mean total loss over the last ``tail``.
    On CUDA the baseline runs twice: autotuned cuDNN convolutions are not bit-reproducible, and
    the repeat's ``loss_ratio`` is the agreement two fp32 runs reach — the noise floor of the test;
    and the fast path runs once more replayed as a CUDA graph (``graphed-…``, bf16 or fp32)."""
    # name, precision, channels-last, torch.compile, CUDA graph
    variants = [("eager-fp32", "fp32", False, False, False), (f"fast-{prec}", prec, True, False, False)]
    if device.type == "cuda":
        variants.insert(1, ("eager-fp32-repeat", "fp32", False, False, False))
    if compile:
        variants.append((f"compiled-{prec}", prec, True, True, False))
    if device.type == "cuda" and prec in ("bf16", "fp32"):
        variants.append((f"graphed-{prec}", prec, True, False, True))  # last: a failed capture touches no other row
    rows, base = [], None
    for name, dt, cl, comp, graph in variants:
        if loss_net is not None:
            loss_net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        model = make_model()
        run_step = torch.compile(step) if comp else step
        try:
            rate, losses = train_iterations(model, run_step, batches, device, lr=lr, prec=dt, fast=cl,
                                            warmup=warmup, desc=f"{case} {name}", progress=progress, graph=graph)
        except RuntimeError as err:
            if not graph or isinstance(err, torch.cuda.OutOfMemoryError):
                raise
            log.warning("%s %s: no row, the CUDA graph failed: %s", case, name, trainstep.first_cause(err))
            continue
        final = statistics.fmean(losses[-tail:])
        base = base or (rate, final)
        rows.append({"kind": "train", "case": case, "variant": name, "precision": dt,
                     "channels_last": cl, "iterations": len(batches), "its_per_s": rate,
                     "seconds": 1.0 / rate, "speedup": rate / base[0], "final_loss": final,
                     "loss_ratio": final / base[1], "early_loss": statistics.fmean(losses[:tail]),
                     "psnr_vs_fp32": float("nan")})
    if loss_net is not None:
        loss_net.to(memory_format=torch.contiguous_format)
    return rows


# name, precision of the step, channels-last, precision of the transformation network alone (None: the
# step's), the loss network's layout when the style image's Gram matrices were computed. The first row
# is the reference: the bench's eager-fp32 baseline (NCHW float32), what its loss agreement divides by.
SENSITIVITY = (
    ("fp32-nchw", "fp32", False, None, "NCHW"),
    ("fp32", "fp32", True, None, "NCHW"),  # float32 in the other layout: another summation order
    ("fp32-grams-cl", "fp32", True, None, "channels-last"),  # and style targets ≈ 1e-7 (relative) apart
    ("bf16", "bf16", True, None, "NCHW"),  # the fast path: its ratio is the bench's loss agreement
    ("bf16-nchw", "bf16", False, None, "NCHW"),  # bf16 in the other layout
    ("bf16-transformation-net", "fp32", True, "bf16", "NCHW"),  # bf16 in the transformation network alone
    ("bf16-loss-net", "bf16", True, "fp32", "NCHW"),  # bf16 in the loss network alone
)


def first_gradient(model: nn.Module, step: Callable, batch: torch.Tensor, device: torch.device, prec: str,
                   fast: bool) -> torch.Tensor:
    """The gradient of ``step(model, batch)["total"]`` with respect to ``model``'s parameters,
    flattened, float32, as a run in ``prec`` (channels-last if ``fast``) computes its first step."""
    fmt = torch.channels_last if fast else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    x = batch.to(device).float().contiguous(memory_format=fmt)  # (B, 3, H, W)
    with precision.autocast(device, prec):
        total = step(model, x)["total"]
    return torch.cat([g.float().flatten() for g in torch.autograd.grad(total, list(model.parameters()))])


def relative_error(a: torch.Tensor, reference: torch.Tensor) -> float:
    """‖a − reference‖ / ‖reference‖ (Euclidean norms)."""
    return float((a - reference).norm() / reference.norm())


GRADIENT_BATCHES = 2  # the sensitivity run's gradient agreement: on the first two batches


def sensitivity_rows(case: str, make_model: Callable[[], nn.Module], steps: dict[str, Callable],
                     batches: Sequence[torch.Tensor], loss_net: nn.Module, device: torch.device, lr: float, tail: int,
                     progress: bool = False) -> list[dict]:
    """How far the final ``tail``-iteration mean loss of the same run (weights, batches, seed)
    moves under small perturbations of its arithmetic (:data:`SENSITIVITY`): the scale against which
    the loss agreement's 3 % reads. ``steps``: the step for each layout the style Grams were
    computed in ("NCHW", "channels-last"), both on ``loss_net``. ``ratio`` = final loss / the
    reference's. Runs in NCHW use the baseline's loop (on CUDA also multi-tensor, not fused, Adam).

    Each perturbation is also measured where training does not yet amplify it: ``grad_error`` is
    the relative error of the first step's gradient (the initial weights, on each of the first
    :data:`GRADIENT_BATCHES` batches, mean) against the reference's; ``batch_spread`` sets its
    scale: how far the run's own gradients on the first two batches are apart."""
    rows, base, reference = [], None, None
    for name, prec, cl, net_prec, grams in SENSITIVITY:
        loss_net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)

        def build() -> nn.Module:
            net = make_model()
            return net if net_prec is None else precision.Autocast(net, device, net_prec)

        grads = [first_gradient(build(), steps[grams], b, device, prec, cl) for b in batches[:GRADIENT_BATCHES]]
        reference = reference or grads
        _, losses = train_iterations(build(), steps[grams], batches, device, lr=lr, prec=prec, fast=cl, warmup=0,
                                     desc=f"{case} {name}", progress=progress)
        final = statistics.fmean(losses[-tail:])
        base = base or final
        rows.append({"case": case, "variant": name, "step_precision": prec, "channels_last": cl,
                     "transformation_net": net_prec or prec, "loss_net": prec, "style_grams": grams,
                     "iterations": len(batches), "final_loss": final, "ratio": final / base,
                     "grad_error": statistics.fmean(relative_error(g, r) for g, r in zip(grads, reference)),
                     "batch_spread": relative_error(grads[-1], grads[0]),
                     "curve": " ".join(f"{statistics.fmean(losses[i:i + tail]):.6g}"
                                       for i in range(0, len(losses), tail))})
    loss_net.to(memory_format=torch.contiguous_format)
    return rows


# ---------------------------------------------------------------------------------------------
# the speed benchmark: inference


def inference_rows(model: nn.Module, images: dict[int, torch.Tensor], device: torch.device,
                   precisions: Sequence[str], repeats: int, onnx_file: Path | None = None,
                   compile: bool = False) -> list[dict]:
    """Seconds per image for each size in ``images`` ((1, 3, s, s) in [0, 255]) and each path;
    PSNR of every output against the network as trained (float32)."""
    model = model.to(device).eval()
    fast = inference_model(model, device)
    paths: list[tuple[str, str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("eager-fp32", "fp32", lambda x: model(x)),  # as trained: autograd on, batch norm unfolded
        ("fast-fp32", "fp32", lambda x: run(fast, x)),
    ]
    for p in precisions:
        net = inference_model(model, device, p) if p == "int8" else fast  # int8: its own quantized copy
        paths.append((f"fast-{p}", p, lambda x, p=p, net=net: run(net, x, p)))
    if compile:
        best = next((p for p in precisions if p != "int8"), "fp32")  # compiles the float fast path
        compiled = torch.compile(fast, options={"freezing": True})
        paths.append((f"compiled-{best}", best, lambda x: run(compiled, x, best)))
    if onnx_file is not None:
        from perceptual.tools.export import run_onnx, session

        sess = session(onnx_file)
        paths.append(("onnxruntime-fp32", "fp32", lambda x: run_onnx(sess, x)))
    rows = []
    for size, image in images.items():
        x = image.to(device)
        reference = model(x).detach().float().cpu().clamp(0, 255)
        base = None
        for name, prec, fn in paths:
            seconds = median_time(lambda: fn(x), device, repeats)
            out = fn(x).detach().float().cpu().clamp(0, 255)
            base = base or seconds
            rows.append({"kind": "inference", "case": f"style-{size}", "variant": name, "precision": prec,
                         "channels_last": name != "eager-fp32" and not name.startswith("onnx"),
                         "size": size, "seconds": seconds, "speedup": base / seconds,
                         "psnr_vs_fp32": metrics.psnr_rgb(reference, out)})
    return rows


# ---------------------------------------------------------------------------------------------
# the speed targets (issue 12), judged from a bench table by stated rules


@dataclass(frozen=True)
class Target:
    """A target on one quantity of the benchmark's fast rows for ``case`` on ``device``."""

    device: str  # "cpu" | "cuda": the device type the table was measured on
    case: str  # the bench case (``style-256-b4``, ``sr-x4-288-b4``, ``style-512``, …)
    quantity: str  # a bench column: speedup (× eager fp32), its_per_s, seconds, loss_ratio
    rule: str  # "≥ x", "≤ x" (the best fast row), "within x" (|fast-bf16/fp16 value − 1| ≤ x)
    what: str


LOSS_AGREEMENT = 0.03  # issue 12: the final 20-iteration mean loss, fast / fp32, within 3 %
_TRAIN_CPU = ("style-256-b4", "style training 256², batch 4"), ("sr-x4-288-b4", "SR ×4 training, 288² patches")
TARGETS = (  # issue 12; the GPU ones for an H100
    *(Target("cpu", case, "speedup", "≥ 2.0", f"{what}: fast / eager fp32") for case, what in _TRAIN_CPU),
    Target("cpu", "style-512", "speedup", "≥ 3.5", "inference 512²: eager as trained / fast (PSNR ≥ 40 dB)"),
    Target("cuda", "style-256-b4", "its_per_s", "≥ 70", "style training 256², batch 4 (it/s)"),
    Target("cuda", "style-1024", "seconds", "≤ 0.003", "inference 1024² (s per image, PSNR ≥ 40 dB)"),
    *(Target(d, case, "loss_ratio", f"within {LOSS_AGREEMENT:g}", f"{what}: final loss fast / fp32")
      for d in ("cpu", "cuda") for case, what in _TRAIN_CPU),
)
MIN_PSNR = 40.0  # dB: an inference path counts only if its output is this close to fp32 (issue 12)
SAME_TRAINING = 0.01  # a compiled or graphed training row counts only if its first ``tail`` iterations'
# mean loss is this close to the fast path's: the same kernels, so the same early losses


def _trains_like_fast(rows: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """Which of one case's training ``rows`` count for speed: the fast path itself, and compiled
    or graphed variants whose early loss agrees with it (tables before ``early_loss``: all)."""
    fast = table[table.case.isin(rows.case) & table.variant.str.startswith("fast")]
    if "early_loss" not in table or fast.empty:
        return pd.Series(True, index=rows.index)
    other = (rows.kind == "train") & ~rows.variant.str.startswith("fast")
    return ~other | ((rows.early_loss / float(fast.early_loss.iloc[0]) - 1).abs() <= SAME_TRAINING)


def judge(table: pd.DataFrame) -> pd.DataFrame:
    """One row per target that applies to the table's device. Rules: speed targets take the best
    fast row (inference rows only with PSNR ≥ ``MIN_PSNR`` against the network as trained;
    compiled or graphed training rows only if they train like the fast path, ``SAME_TRAINING``);
    the loss agreement takes the fast path at the reduced precision. On CUDA the fp32
    baseline's repeat gives the agreement two fp32 runs reach (its noise floor)."""
    device = str(table.device.iloc[0]).split(":")[0]
    rows = []
    for t in (t for t in TARGETS if t.device == device):
        case = table[(table.case == t.case) & ~table.variant.str.startswith("eager")]
        if t.quantity != "loss_ratio":
            case = case[~(case.kind == "inference") | (case.psnr_vs_fp32 >= MIN_PSNR)]
            case = case[_trains_like_fast(case, table)]
        else:
            case = case[case.variant.str.startswith("fast") & (case.precision != "fp32")]
        op, limit = t.rule.split()
        if case.empty:
            best, met, variant = float("nan"), False, ""
        else:
            score = {"≥": -case[t.quantity], "≤": case[t.quantity], "within": (case[t.quantity] - 1).abs()}[op]
            pick = score.idxmin()
            best, variant = float(case.loc[pick, t.quantity]), case.loc[pick, "variant"]
            met = {"≥": best >= float(limit), "≤": best <= float(limit),
                   "within": abs(best - 1) <= float(limit)}[op]
        repeat = table[(table.case == t.case) & (table.variant == "eager-fp32-repeat")]
        rows.append({"target": t.what, "rule": t.rule, "measured": best, "variant": variant, "met": met,
                     "fp32_repeat": float(repeat.loss_ratio.iloc[0]) if t.quantity == "loss_ratio" and len(repeat)
                     else float("nan"), "hardware": table.hardware.iloc[0]})
    return pd.DataFrame(rows)

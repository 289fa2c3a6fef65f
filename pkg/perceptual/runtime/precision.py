"""Numeric precision for training and inference: ``fp32``, ``bf16``, ``fp16`` or ``auto``.

``auto`` picks bf16 where the device runs it fast and fp32 elsewhere — detected, not assumed:
CUDA devices that compute in bf16 natively (compute capability 8.0, Ampere, and newer), and CPUs whose flags list AVX512-BF16 or
AMX-BF16 (``/proc/cpuinfo``). fp16 is CUDA-only (it needs a gradient scaler, :func:`scaler`).

``int8`` is an inference-only precision (:mod:`perceptual.runtime.quantization`): the residual blocks'
convolutions in int8 on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8), the other layers in
bf16 where the CPU has it fast, else fp32. ``auto`` never picks it: it is a calibrated
approximation, chosen by name (``perceptual stylize --precision int8``).

Mixed precision here is autocast: convolutions and matrix products run in the low precision,
while the master weights, the optimiser state, Gram matrices and every loss reduction stay fp32
(:mod:`perceptual.method.losses` computes them under ``autocast(enabled=False)`` in float32).
"""
from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INFERENCE_PRECISIONS = (*PRECISIONS, "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cuda_has_fast_bf16(device: torch.device | str) -> bool:
    """True when the CUDA device computes in bf16 natively: compute capability 8.0 (Ampere) or newer.
    (``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated, e.g. a V100 or
    T4, and asks about the current device, not ``device``.)"""
    return torch.cuda.get_device_capability(torch.device(device)) >= (8, 0)


def cpu_has_fast_int8(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU has int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8): without them
    oneDNN's u8×s8 products go through 16-bit intermediates that can saturate."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def int8_kernels() -> bool:
    """True when this PyTorch has oneDNN's int8 convolution (x86 builds with MKLDNN)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def int8_supported(device: torch.device | str) -> bool:
    """int8 inference runs well here: a CPU with VNNI and a PyTorch with the int8 kernels."""
    return torch.device(device).type == "cpu" and cpu_has_fast_int8() and int8_kernels()


def resolve(name: str, device: torch.device | str, inference: bool = False) -> str:
    """``auto`` → the fastest safe precision on ``device``; an explicit name is checked.
    ``inference``: ``int8`` is allowed too (on a CPU with VNNI)."""
    device = torch.device(device)
    allowed = INFERENCE_PRECISIONS if inference else PRECISIONS
    if name not in allowed:
        raise ValueError(f"precision must be one of {', '.join(allowed)}, got {name!r}")
    if name == "int8":
        if not int8_supported(device):
            raise ValueError("precision int8 needs a CPU with VNNI (avx512_vnni, avx_vnni or amx_int8 in its flags) "
                             "and PyTorch's oneDNN int8 kernels; use bf16 or fp32 here")
        return name
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if cuda_has_fast_bf16(device) else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


def float_precision(precision: str) -> str:
    """The precision of the layers that stay in floating point: for int8, bf16 where the CPU has
    it fast, else fp32; any other precision is its own."""
    if precision == "int8":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return precision


def autocast(device: torch.device | str, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """Autocast for a resolved precision (a no-op context for fp32; for int8, the precision of
    the layers left in float: bf16 where the CPU has it fast, else none). ``cache=False`` casts
    the weights afresh each call (inside a CUDA graph capture)."""
    device = torch.device(device)
    precision = float_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=cache)


class Autocast(torch.nn.Module):
    """``net`` run in ``precision`` whatever the caller's autocast (fp32: autocast off), float32
    out: one network of a step in another precision than the rest."""

    def __init__(self, net: torch.nn.Module, device: torch.device | str, precision: str):
        super().__init__()
        self.net, self.device, self.precision = net, torch.device(device), precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        off = torch.autocast(self.device.type, enabled=False)
        with off if self.precision == "fp32" else autocast(self.device, self.precision):
            return self.net(x).float()


def set_cudnn(device: torch.device | str, deterministic: bool = False) -> tuple[bool, bool]:
    """cuDNN for a run at fixed sizes on ``device``: autotuned convolutions on CUDA (the fastest,
    chosen per process, not all bit-reproducible), or its deterministic ones where
    ``deterministic`` (slower; the same bits every run). Returns the previous (benchmark,
    deterministic) flags, for :func:`restore_cudnn`."""
    previous = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark = torch.device(device).type == "cuda" and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    return previous


def restore_cudnn(previous: tuple[bool, bool]) -> None:
    """Put back the flags :func:`set_cudnn` returned."""
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous


def scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's range)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def adam(params, lr: float, device: torch.device | str, fused: bool = True, capturable: bool = False
         ) -> torch.optim.Adam:
    """Adam (paper §4: lr 1e-3) with fp32 state; on CUDA the fused kernel (one launch per step
    instead of dozens — measured on an H100: 68 → 79 it/s style training, 256² batch 4).
    ``capturable``: its step count kept on the device, so a CUDA graph can replay it (CUDA only)."""
    cuda = torch.device(device).type == "cuda"
    return torch.optim.Adam(params, lr=lr, fused=fused and cuda, capturable=capturable and cuda)


def fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 (loss reductions and Gram matrices are computed in fp32)."""
    return x.float()


def channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """The module's 4-D parameters in channels-last layout (faster convolutions on CPU and GPU)."""
    return module.to(memory_format=torch.channels_last)

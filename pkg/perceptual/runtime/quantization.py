"""int8 inference for the residual blocks: the ``int8`` inference precision (CPUs with VNNI).

The style network spends most of its time in the ten 3×3 convolutions of its residual blocks
(128 channels at a quarter of the image side; ≈ 56 of 77 GFLOP at 512²). In bf16 they already run
at oneDNN's peak on an AVX512-BF16 CPU; in int8 (u8 activations × s8 weights, VNNI) the same
convolution takes about half the time. :func:`quantize_residuals` swaps exactly those
convolutions for :class:`Int8Conv`; everything else stays in the fast path's precision (bf16
where the CPU has it, else fp32). Post-training static quantization, no retraining:

- weights: symmetric int8 per output channel, scale = max |w| / 127;
- activations: asymmetric uint8 per tensor, the range [min, max] (0 included) of the
  convolution's input over :data:`CALIBRATION` — photographs shipped with scikit-image, so
  no data root is needed — run through the float network at :data:`CALIBRATION_SIDE`²;
  values outside saturate. Instance-norm networks suit this: every block's input is normalised
  per image, so its range hardly depends on the image;
- the int32 accumulator is rescaled and biased by oneDNN and returned in the input's dtype
  (``torch.ops.onednn.qconv2d_pointwise``, the kernel PyTorch's x86 quantization compiles to).

Not the paper (which reports GPU fp32 timings): a deployment option, judged like bf16 by the
PSNR of its output against the float network (the benchmark counts a path only at ≥ 40 dB).
Measured on the trained la_muse network at 512²: 45–52 dB on three content photographs; one
128-channel 3×3 convolution at 140²: 12.8 ms bf16, 6.6 ms int8, + 0.34 ms to quantize its input.
Only the residual blocks: quantizing the two stride-2 convolutions as well measured slower
(0.189 vs 0.176 s at 512²) and less accurate (41.5–47.8 dB); the 9×9 convolutions have three
input or output channels, where int8 kernels gain nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import warnings

import torch
from torch import nn

from perceptual.core import demo, images, paths, store
from perceptual.runtime.precision import int8_kernels
from perceptual.runtime.layers import Residual

CALIBRATION = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image sample photographs
CALIBRATION_SIDE = 256  # px: calibration images are resized to this square


def quantize_activations(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """round(x / scale) + zero_point (half to even), saturated to [0, 255], as uint8 in ``x``'s
    memory layout; the scaling in float32 (bf16 cannot hold 0…255 to the unit). One fused kernel
    (``torch.quantize_per_tensor``) read through a plain uint8 view of its storage: 0.34 ms for
    128×140² here, against 1.2 ms for the same arithmetic as four tensor operations."""
    with warnings.catch_warnings():  # quantized dtypes are deprecated; only their kernel is used here
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(x.float(), scale, zero_point, torch.quint8)
    return torch.empty(0, dtype=torch.uint8, device=x.device).set_(q.untyped_storage(), q.storage_offset(),
                                                                    q.shape, q.stride())


class Int8Conv(nn.Module):
    """A stride-1 convolution computed as uint8 activations × int8 weights (see module doc).
    ``reference`` keeps the float convolution it stands for (tiling geometry reads it)."""

    def __init__(self, conv: nn.Conv2d, low: float, high: float):
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError("Int8Conv takes plain convolutions (groups 1, dilation 1, zero padding)")
        self.reference = conv
        w = conv.weight.detach().float()  # (C_out, C_in, k, k)
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.register_buffer("w_scale", (w.abs().amax(dim=(1, 2, 3)) / 127).clamp_min(1e-12))  # (C_out,)
        self.register_buffer("w_int8", torch.round(w / self.w_scale.view(-1, 1, 1, 1)).clamp(-127, 127).to(torch.int8))
        self.register_buffer("w_zero", torch.zeros(w.shape[0], dtype=torch.long))
        bias = conv.bias.detach().float() if conv.bias is not None else w.new_zeros(w.shape[0])
        self.register_buffer("bias", bias)
        low, high = min(low, 0.0), max(high, 0.0)  # zero exactly representable (zero padding)
        self.scale = (high - low) / 255 if high > low else 1.0
        self.zero_point = int(round(-low / self.scale))
        self._packed: torch.Tensor | None = None

    def __getstate__(self) -> dict:  # copies repack: oneDNN's opaque tensor does not deep-copy
        return {**self.__dict__, "_packed": None}

    def _apply(self, fn, recurse: bool = True):  # .to(), .half(), …: repack, scales stay float32
        super()._apply(fn, recurse)
        self.w_scale, self.bias, self._packed = self.w_scale.float(), self.bias.float(), None
        return self

    def packed(self) -> torch.Tensor:
        """The weights in oneDNN's blocked int8 layout (packed once, on first use)."""
        if self._packed is None:
            self._packed = torch.ops.onednn.qconv_prepack(self.w_int8, self.w_scale, self.scale, self.zero_point,
                                                          self.stride, self.padding, [1, 1], 1, None)
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) float → (B, C_out, H', W')
        out_dtype = x.dtype if x.dtype in (torch.float32, torch.bfloat16) else torch.float32
        q = quantize_activations(x.contiguous(memory_format=torch.channels_last), self.scale, self.zero_point)
        return torch.ops.onednn.qconv2d_pointwise(
            q, self.scale, self.zero_point, self.packed(), self.w_scale, self.w_zero, self.bias.to(out_dtype),
            self.stride, self.padding, [1, 1], 1, 1.0, 0, out_dtype, "none", [], "")


def residual_convs(model: nn.Module) -> list[str]:
    """Names of the convolutions inside :class:`perceptual.runtime.layers.Residual` blocks."""
    blocks = [name for name, m in model.named_modules() if isinstance(m, Residual)]
    return [f"{b}.{name}" for b in blocks for name, m in model.get_submodule(b).named_modules()
            if type(m) is nn.Conv2d and not name.endswith(".reference")]  # not the float copy an Int8Conv keeps


def calibration_images(side: int = CALIBRATION_SIDE) -> list[torch.Tensor]:
    """:data:`CALIBRATION` as (1, 3, side, side) float tensors in [0, 255]."""
    return [images.resize(images.from_array(demo.sample(name)), (side, side))[None] for name in CALIBRATION]


def input_ranges(model: nn.Module, names: list[str], images: list[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """(min, max) of each named module's input over ``images``, float32 forward passes."""
    ranges = {n: (float("inf"), float("-inf")) for n in names}

    def record(name: str):
        def hook(_module, inputs):
            lo, hi = torch.aminmax(inputs[0].float())
            ranges[name] = (min(ranges[name][0], lo.item()), max(ranges[name][1], hi.item()))
        return hook

    hooks = [model.get_submodule(n).register_forward_pre_hook(record(n)) for n in names]
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for image in images:
                model(image.to(device).float().contiguous(memory_format=torch.channels_last))
    finally:
        for h in hooks:
            h.remove()
    return ranges


def weights_key(model: nn.Module) -> str:
    """A short hash of a network's weights (names and values): what its calibration depends on."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode() + value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _remembered_ranges(model: nn.Module, names: list[str]) -> dict[str, tuple[float, float]]:
    """:func:`input_ranges` on :func:`calibration_images`, remembered per network in the cache folder
    (``int8-calibration.json``): calibrating runs the float network on four photographs, seconds of
    every ``stylize`` start on a CPU, for the same answer each time."""
    file = paths.cache_dir() / "int8-calibration.json"
    key = json.dumps([weights_key(model), CALIBRATION, CALIBRATION_SIDE, names])
    try:
        known = json.loads(file.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = input_ranges(model, names, calibration_images())
        with contextlib.suppress(OSError):  # a read-only cache: calibrate again next time
            store.atomic_write_text(file, json.dumps(known))
    return {n: tuple(r) for n, r in known[key].items()}


def quantize_residuals(model: nn.Module, images: list[torch.Tensor] | None = None) -> nn.Module:
    """``model`` (a float fast-path network, on the CPU) with its residual-block convolutions
    replaced in place by :class:`Int8Conv`, calibrated on ``images`` (default
    :func:`calibration_images`)."""
    if not int8_kernels():
        raise RuntimeError("int8 inference needs PyTorch's oneDNN int8 kernels (an x86 build with MKLDNN)")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 inference runs on the CPU only (use fp16 or bf16 on a GPU)")
    names = residual_convs(model)
    if not names:  # nothing (left) to quantize
        return model
    ranges = (_remembered_ranges(model, names) if images is None else input_ranges(model, names, images))
    for name, (low, high) in ranges.items():
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent)
        setattr(owner, child, Int8Conv(getattr(owner, child), low, high))
    return model

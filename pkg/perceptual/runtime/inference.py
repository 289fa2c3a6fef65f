"""The fast inference path: folded batch norm, channels-last, reduced precision, and tiles for
images too large for memory.

- :func:`inference_model`: batch norm folded into the preceding (transposed) convolution, frozen,
  eval, channels-last memory. The result equals the eval-mode network up to float rounding;
  with ``precision="int8"`` the residual blocks' convolutions are int8 (calibrated, not equal:
  :mod:`perceptual.runtime.quantization`).
- :func:`run`: no autograd (``torch.inference_mode``); with ``precision`` ``"bf16"`` (a CPU with
  AVX512-BF16/AMX, or CUDA) or ``"fp16"`` (CUDA) — see :func:`perceptual.runtime.precision.resolve` —
  the convolutions run under autocast in that precision (``"int8"``: the layers left in float, as
  :func:`perceptual.runtime.precision.float_precision` says) and the output comes back as float32.
- :func:`run_tiled`: overlapping tiles, each run on its own, blended with linear or cosine
  feathering. Tile origins are multiples of the network's total stride and the blend skips the
  ``radius`` pixels next to a tile's inner edge (the tile's own padding reaches that far), so for
  a network whose every layer is per-pixel or local — convolutions, ReLU, and batch norm in eval
  mode — the tiled result equals the untiled one up to float rounding once the overlap exceeds
  twice the receptive-field radius (:func:`geometry` measures it). **Instance-norm networks are
  not tile-invariant**: each tile would be normalised with its own statistics, so an explicit
  tile size is refused for them and automatic tiling warns.
- :func:`process`: what ``perceptual stylize`` calls — untiled when the image fits in memory
  (an estimate from the network's widest activation and the free memory), tiled otherwise.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import math
import os
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.core import demo, images, paths, store
from perceptual.runtime.precision import autocast, float_precision, int8_supported, resolve
from perceptual.runtime.quantization import quantize_residuals, weights_key
from perceptual.runtime.layers import InstanceNorm

log = logging.getLogger("perceptual.runtime.inference")

BLENDS = ("cosine", "linear")
MEMORY_FRACTION = 0.5  # of the free memory an untiled image may use; tiles are sized to it too
_LIVE_COPIES = 3  # activations alive at once ≈ a layer's input, its output and one more


# ---------------------------------------------------------------------------------------------
# folded, channels-last network


def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into ``conv`` in place: w' = w·γ/σ, b' = (b − μ)·γ/σ + β."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)  # C_out axis
    conv.weight.data = conv.weight.data * scale.view(shape)
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every conv → BatchNorm pair folded into the conv."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, first), (name, second) in zip(children, children[1:]):
            conv = first[-1] if isinstance(first, nn.Sequential) else first  # nearest-upsample + conv
            if isinstance(second, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                _fold(conv, second)
                setattr(module, name, nn.Identity())
    return model


def _space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, C, r·h, r·w) → (B, r²·C, h, w), channel (p·r + q)·C + c = pixel (r·i + p, r·j + q) of
    channel c: one copy that keeps channels-last memory in C-sized runs (``pixel_unshuffle`` orders
    channels the other way and runs several times slower on channels-last tensors)."""
    b, c, h, w = x.shape
    blocks = x.permute(0, 2, 3, 1).reshape(b, h // r, r, w // r, r, c).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(b, h // r, w // r, r * r * c).permute(0, 3, 1, 2)  # (B, r²C, h, w)


def _depth_to_space(y: torch.Tensor, r: int) -> torch.Tensor:
    """The inverse of :func:`_space_to_depth`: (B, r²·C, h, w) → (B, C, r·h, r·w)."""
    b, c, h, w = y.shape
    c //= r * r
    blocks = y.permute(0, 2, 3, 1).reshape(b, h, w, r, r, c).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(b, h * r, w * r, c).permute(0, 3, 1, 2)  # (B, C, rh, rw)


class PolyphaseConv(nn.Module):
    """A stride-1 "same" k×k convolution with few output channels, computed on the input's r×r
    space-to-depth rearrangement: a ⌈(k + r − 1)/r⌉² convolution with r²× the input and output
    channels, then depth-to-space. The same linear map (the added weights are zeros; output
    pixel (r·h + a, r·w + b) reads padded input pixel r·h + a + i, which lies in block h + ⌊(a + i)/r⌋
    at phase (a + i) mod r), but a shape the convolution kernels run near their peak: the style
    network's 32 → 3 9×9 output layer otherwise runs at about a fifth of it on this CPU."""

    def __init__(self, conv: nn.Conv2d, r: int = 4):
        super().__init__()
        (k, _), (p, _) = conv.kernel_size, conv.padding
        self.r, self.p, self.kk = r, p, -(-(k + r - 1) // r)
        w = conv.weight.detach()  # (C_out, C_in, k, k)
        c_out, c_in = w.shape[:2]
        big = w.new_zeros(r, r, c_out, r, r, c_in, self.kk, self.kk)  # (a, b, o, phase_h, phase_w, c, u, v)
        for a, ph, u in itertools.product(range(r), range(r), range(self.kk)):
            i = r * u + ph - a  # the original kernel row this (output phase, input phase, block tap) reads
            if 0 <= i < k:
                for b, pw, v in itertools.product(range(r), range(r), range(self.kk)):
                    j = r * v + pw - b
                    if 0 <= j < k:
                        big[a, b, :, ph, pw, :, u, v] = w[:, :, i, j]
        self.weight = nn.Parameter(big.reshape(r * r * c_out, r * r * c_in, self.kk, self.kk), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(c_out)
        self.bias = nn.Parameter(bias.repeat(r * r), requires_grad=False)

    @staticmethod
    def applies(conv: nn.Module) -> bool:
        """Stride-1, zero-padded "same" convolutions with ≤ 4 outputs and a kernel ≥ 5 gain from it."""
        k = conv.kernel_size[0] if isinstance(conv, nn.Conv2d) else 0
        return (type(conv) is nn.Conv2d and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and conv.kernel_size == (k, k) and k >= 5 and k % 2 == 1
                and conv.padding == (k // 2, k // 2) and conv.out_channels <= 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        r, p, kk = self.r, self.p, self.kk
        bh, bw = -(-h // r), -(-w // r)  # output blocks per axis
        padded = F.pad(x, (p, r * (bw + kk - 1) - w - p, p, r * (bh + kk - 1) - h - p))  # zeros, whole blocks
        y = F.conv2d(_space_to_depth(padded, r), self.weight.to(x.dtype), self.bias.to(x.dtype))
        return _depth_to_space(y, r)[..., :h, :w]  # (B, C_out, H, W)


def _swap_layers(model: nn.Module) -> nn.Module:
    """Replace, in place, output convolutions by :class:`PolyphaseConv` and plain instance norms
    (affine, no running statistics) by :class:`perceptual.runtime.layers.InstanceNorm`, which keeps
    channels-last memory (the networks built here use it already)."""
    for name, child in model.named_children():
        if PolyphaseConv.applies(child):
            setattr(model, name, PolyphaseConv(child))
        elif (type(child) is nn.InstanceNorm2d and child.affine and not child.track_running_stats
              and child.num_features > 0):
            norm = InstanceNorm(child.num_features, eps=child.eps, affine=True)
            norm.weight, norm.bias = child.weight, child.bias
            setattr(model, name, norm)
        else:
            _swap_layers(child)
    return model


def inference_model(model: nn.Module, device: torch.device | str = "cpu", precision: str = "fp32") -> nn.Module:
    """The fast path: folded, frozen, eval, channels-last (oneDNN on CPUs, tensor cores on GPUs),
    polyphase output convolutions, copy-free instance norm (the same maps in faster shapes).
    ``precision="int8"`` (CPU): residual-block convolutions in int8
    (:func:`perceptual.runtime.quantization.quantize_residuals`); other precisions change nothing here."""
    fast = _swap_layers(fold_batchnorm(model)).requires_grad_(False).to(device).to(memory_format=torch.channels_last)
    return quantize_residuals(fast) if precision == "int8" else fast


def run(model: nn.Module, batch: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Apply the (fast) model to (B, 3, H, W) in [0, 255] without autograd; float32 out, on the
    model's device. ``precision``: a resolved precision (fp32 | bf16 | fp16 | int8), run under
    autocast (int8: the layers left in float run as :func:`perceptual.runtime.precision.autocast` says)."""
    device = next(model.parameters()).device
    with torch.inference_mode(), autocast(device, precision):
        x = batch.to(device).contiguous(memory_format=torch.channels_last)
        return model(x).float().contiguous()


# ---------------------------------------------------------------------------------------------
# what tiling needs to know about a network


@dataclass(frozen=True)
class Geometry:
    """How a network maps input pixels to output pixels (measured by :func:`geometry`)."""

    scale: int  # output pixels per input pixel along each axis (1: style, f: super-resolution)
    align: int  # tile origins must be multiples of this (product of the convolution strides)
    bytes_per_pixel: float  # float32 activation bytes per input pixel at the peak, × live copies
    instance_norm: bool  # per-image statistics: not tile-invariant


_GEOMETRY: "weakref.WeakKeyDictionary[nn.Module, Geometry]" = weakref.WeakKeyDictionary()
_RADIUS: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


def _align_up(n: int, a: int) -> int:
    return -(-n // a) * a


def _is_instance_norm(m: nn.Module) -> bool:
    return isinstance(m, (nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm))


def geometry(model: nn.Module) -> Geometry:
    """Scale, stride alignment and memory per pixel of ``model`` (one small forward pass).
    """
    if model in _GEOMETRY:
        return _GEOMETRY[model]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    align = math.prod(int(c.stride[0]) for c in convs)
    instance = any(_is_instance_norm(m) for m in model.modules())
    device = next(model.parameters()).device

    side = _align_up(96, align)  # memory and scale probe (≥ 44: the style net's minimum)
    widest = [0]
    hooks = [m.register_forward_hook(lambda _m, _i, out: widest.__setitem__(0, max(widest[0], out[0].numel())))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            out = model(torch.full((1, 3, side, side), 127.5, device=device))
    finally:
        for h in hooks:
            h.remove()
    scale = out.shape[-1] // side
    bytes_per_pixel = widest[0] * 4 * _LIVE_COPIES / side ** 2

    geo = Geometry(scale, align, bytes_per_pixel, instance)
    _GEOMETRY[model] = geo
    return geo


def default_overlap(model: nn.Module) -> int:
    """Twice the receptive-field radius (both tiles exact there) plus a 16 px blend."""
    return _align_up(2 * receptive_radius(model) + 16, geometry(model).align)


def receptive_radius(model: nn.Module) -> int:
    """How far one input pixel reaches in the output (input pixels), measured by propagating its
    support (instance norm: everything, so the probe size stands in). See :func:`_measure_radius`."""
    if model not in _RADIUS:
        geo = geometry(model)
        _RADIUS[model] = 96 if geo.instance_norm else _measure_radius(model, geo.align, geo.scale)
    return _RADIUS[model]


def _measure_radius(model: nn.Module, align: int, scale: int) -> int:
    """The reach of one input pixel, by propagating its support: a batch of two images, a flat one
    and the same with one pixel raised, through a copy with ReLU and batch norm removed, zero
    biases and all-ones kernels; after every convolution the flat image's activations become 0 and
    the other's 1 where they differ. A positive map from there on: nothing cancels, nothing under-
    or overflows, and the final difference is exactly the pixel's reach."""
    probe = copy.deepcopy(model).float().eval()
    for module in probe.modules():
        for name, child in module.named_children():
            if isinstance(getattr(child, "reference", None), nn.Conv2d):  # an int8 stand-in: its float conv
                setattr(module, name, child.reference)
            elif isinstance(child, (nn.ReLU, nn.BatchNorm2d)):
                setattr(module, name, nn.Identity())
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
            module.register_forward_hook(
                lambda _m, _i, out: torch.stack([torch.zeros_like(out[0]), (out[1] != out[0]).to(out.dtype)]))
    device = next(probe.parameters()).device
    side = _align_up(96, align)
    while side <= 4096:
        x = torch.full((2, 3, side, side), 127.5, device=device)
        c = side // 2
        x[1, :, c, c] = 255.0
        with torch.inference_mode():
            y = probe(x)
        hit = (y[1] != y[0]).any(dim=0)  # (H·s, W·s)
        rows, cols = torch.nonzero(hit.any(dim=1))[:, 0], torch.nonzero(hit.any(dim=0))[:, 0]
        if rows.min() > 0 and cols.min() > 0 and rows.max() < hit.shape[0] - 1 and cols.max() < hit.shape[1] - 1:
            ends = [rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()]
            reach = max(abs((j + 0.5) / scale - (c + 0.5)) for j in ends)  # between pixel centres
            return int(math.ceil(reach)) + align
        side *= 2
    raise RuntimeError("receptive field wider than 4096 px: tiling cannot be made exact")


# ---------------------------------------------------------------------------------------------
# tiles


def _ramp(width: int, cut: int, blend: str) -> torch.Tensor:
    """Rising weights over an overlap of ``width`` output pixels: 0 for ``cut`` pixels, a ramp,
    then 1 for the last ``cut``. A tile's falling edge is the flip, so two neighbours sum to 1."""
    ramp_len = max(width - 2 * cut, 1)
    t = ((torch.arange(width, dtype=torch.float32) + 0.5 - cut) / ramp_len).clamp(0, 1)
    return t if blend == "linear" else 0.5 - 0.5 * torch.cos(math.pi * t)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: stride tile − overlap, the last tile flush with the end."""
    if tile >= length:
        return [0]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    return sorted(set(starts))


def _axis_weights(starts: list[int], tile: int, length: int, scale: int, cut: int, blend: str) -> list[torch.Tensor]:
    """Per-tile weights (output pixels) along one axis."""
    out = []
    size = min(tile, length) * scale
    for i, s in enumerate(starts):
        w = torch.ones(size)
        if i > 0:
            ov = (starts[i - 1] + tile - s) * scale
            w[:ov] *= _ramp(ov, min(cut, max(0, (ov - 8 * scale) // 2)), blend)
        if i < len(starts) - 1:
            ov = (s + tile - starts[i + 1]) * scale
            w[size - ov:] *= _ramp(ov, min(cut, max(0, (ov - 8 * scale) // 2)), blend).flip(0)
        out.append(w)
    return out


def run_tiled(model: nn.Module, batch: torch.Tensor, tile: int, overlap: int | None = None,
              precision: str = "fp32", blend: str = "cosine") -> torch.Tensor:
    """:func:`run` over overlapping ``tile``×``tile`` tiles (input pixels), blended; the output has
    the untiled size. (B, 3, H, W) → (B, 3, s·H, s·W) float32 on the CPU."""
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    geo = geometry(model)
    radius = receptive_radius(model)
    overlap = default_overlap(model) if overlap is None else _align_up(overlap, geo.align)
    tile = _align_up(tile, geo.align)
    if tile <= overlap:
        raise ValueError(f"tile size {tile} must exceed the overlap {overlap} (receptive-field radius {radius})")
    b, _, h, w = batch.shape
    hp, wp = _align_up(h, geo.align), _align_up(w, geo.align)
    x = batch.float()
    if (hp, wp) != (h, w):  # the style net pads to its stride the same way (reflect, bottom/right)
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="reflect" if min(h, w) > geo.align else "replicate")
    s, cut = geo.scale, radius * geo.scale
    rows, cols = _starts(hp, tile, overlap), _starts(wp, tile, overlap)
    wy = _axis_weights(rows, tile, hp, s, cut, blend)
    wx = _axis_weights(cols, tile, wp, s, cut, blend)
    out = torch.zeros(b, 3, hp * s, wp * s)
    total = torch.zeros(hp * s, wp * s)
    for r, weight_y in zip(rows, wy):
        for c, weight_x in zip(cols, wx):
            part = run(model, x[..., r:r + tile, c:c + tile], precision).cpu()  # (B, 3, th·s, tw·s)
            weight = weight_y[:, None] * weight_x[None, :]  # (th·s, tw·s)
            out[..., r * s:r * s + part.shape[-2], c * s:c * s + part.shape[-1]] += part * weight
            total[r * s:r * s + part.shape[-2], c * s:c * s + part.shape[-1]] += weight
    return (out / total)[..., : h * s, : w * s]


def free_memory(device: torch.device) -> int:
    """Bytes free for activations now: CUDA's free memory, or the OS's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_tile(model: nn.Module, shape: torch.Size | tuple[int, ...], precision: str = "fp32",
              budget: int | None = None) -> int | None:
    """The tile size for a (B, 3, H, W) input, or None when the whole image fits in ``budget``
    bytes (default: :data:`MEMORY_FRACTION` of the free memory)."""
    geo = geometry(model)
    b, _, h, w = shape
    device = next(model.parameters()).device
    budget = int(MEMORY_FRACTION * free_memory(device)) if budget is None else budget
    per_pixel = geo.bytes_per_pixel * b * (1.0 if float_precision(precision) == "fp32" else 0.5)
    if per_pixel * h * w <= budget:
        return None
    side = int(math.sqrt(budget / per_pixel)) // geo.align * geo.align
    return max(side, 2 * default_overlap(model))


def process(model: nn.Module, batch: torch.Tensor, precision: str = "fp32", tile: int | None = None,
            overlap: int | None = None, budget: int | None = None) -> torch.Tensor:
    """:func:`run`, tiled when asked (``tile``) or when the image would not fit in memory.
    Float32 on the CPU. An explicit tile size is refused for instance-norm networks."""
    if tile is not None and geometry(model).instance_norm:
        raise ValueError("instance-norm networks are not tile-invariant (every tile would be normalised with "
                         "its own statistics): drop --tile, or use --max-side to shrink the input")
    if tile is None:
        tile = auto_tile(model, batch.shape, precision, budget)
        if tile is None:
            return run(model, batch, precision).cpu()
        if geometry(model).instance_norm:
            log.warning("image %s×%s does not fit in memory: processing it in %d px tiles, but this instance-norm "
                        "network is not tile-invariant (seams are blended, statistics differ per tile)",
                        batch.shape[-2], batch.shape[-1], tile)
    return run_tiled(model, batch, tile, overlap, precision)


# ---------------------------------------------------------------------------------------------
# --precision auto for inference: the fastest path whose output stays close to the float one

AUTO_INT8_DB = 45.0  # dB from the float path: int8 is the CPU default only this close (bf16 gives ≈ 57)
CHECK_PHOTOS = ("motorcycle_left", "retina")  # scikit-image photographs, not among the calibration ones
CHECK_SIDE = 256  # px


def _psnr(reference: torch.Tensor, test: torch.Tensor) -> float:
    mse = (reference.clamp(0, 255) - test.clamp(0, 255)).double().pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def auto_precision(model: nn.Module, device: torch.device) -> tuple[str, float | None]:
    """``--precision auto`` for inference: (precision, its PSNR from the float path or None).

    On a CPU with VNNI int8 kernels, int8 is chosen when the network's int8 output on
    :data:`CHECK_PHOTOS` (held out from its calibration) is at least :data:`AUTO_INT8_DB` from its
    float output on every photo; otherwise the float precision :func:`resolve` picks (bf16 where the
    device runs it fast). The check runs once per network (keyed by its weights' hash) and is
    remembered in the cache folder."""
    fallback = resolve("auto", device, inference=True)
    if torch.device(device).type != "cpu" or not int8_supported(device):
        return fallback, None
    file = paths.cache_dir() / "inference-precision.json"
    key = weights_key(model)
    try:
        known = json.loads(file.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        from perceptual.runtime.quantization import calibration_images

        photos = [images.resize(images.from_array(demo.sample(n)), (CHECK_SIDE, CHECK_SIDE))[None]
                  for n in CHECK_PHOTOS]  # (1, 3, s, s)
        floating = inference_model(copy.deepcopy(model).cpu(), "cpu", "fp32")
        int8 = quantize_residuals(copy.deepcopy(floating), calibration_images())
        known[key] = min(_psnr(run(floating, p), run(int8, p, "int8")) for p in photos)
        with contextlib.suppress(OSError):  # a read-only cache: check again next time
            store.atomic_write_text(file, json.dumps(known))
    psnr = float(known[key])
    return ("int8" if psnr >= AUTO_INT8_DB else fallback), psnr

"""Image transformation networks (paper §3.1, supplementary; REFERENCE.md §1).

All networks take and return RGB images, float, (B, 3, H, W), in [0, 255].

- :class:`StyleNet` — the style transfer network. Default = the later supplementary design:
  reflection pad 40, 9×9 conv, two stride-2 convs, five residual blocks with *unpadded* 3×3
  convs and a centre-cropped shortcut, two stride-½ convs, 9×9 conv, scaled tanh. Options:
  ``norm="instance"`` (authors' later default), ``upsample="nearest"`` (nearest ×2 then conv,
  avoids checkerboards), ``padding="zero"`` (the earlier supplementary design), ``width=16``.
- :class:`SRNet` — super-resolution for factors 2, 4, 8: 9×9 conv, four residual blocks of
  64 filters (padded), log₂ f stride-½ convs, 9×9 conv, scaled tanh.
- :class:`SRCNN` — Dong et al. 9-1-5 on the bicubic-upsampled image.

Deviations, documented here and in the book:
- Input scaling: images enter as (x − 127.5) / 127.5; the authors fed Caffe-preprocessed
  pixels (BGR, mean-subtracted, ±128 range). A constant affine map absorbed by the first conv
  and batch norm; it keeps one image convention across the library.
- Output: 127.5·(tanh + 1), exactly [0, 255] as the paper says; the authors' code outputs
  150·tanh in Caffe space instead (REFERENCE.md §1).
- Sizes: StyleNet needs H, W divisible by 4 to return its input size; other sizes are
  reflection-padded up to a multiple of 4 and the output cropped back. The 40 px reflection
  pad needs H, W ≥ 41 (a clear error otherwise; use ``padding="zero"`` for tiny images).
- SRCNN uses zero "same" padding so that output size = input size (the original is valid-only
  and loses 12 px per side) and works on RGB, not on Y alone.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.method.vgg import check_images
from perceptual.runtime.layers import InstanceNorm, Residual

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("deconv", "nearest")
PADDINGS = ("reflect", "zero")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return InstanceNorm(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ConvNormReLU(nn.Sequential):
    """conv → norm → ReLU (ReLU optional). ``stride=0.5`` makes a stride-½ (upsampling) conv."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: float = 1, norm: str = "batch",
                 relu: bool = True, padding: int | None = None, upsample: str = "deconv"):
        pad = k // 2 if padding is None else padding
        if stride == 0.5 and upsample == "deconv":
            conv: nn.Module = nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=1)
        elif stride == 0.5 and upsample == "nearest":
            conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, k, padding=pad))
        elif stride == 0.5:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        else:
            conv = nn.Conv2d(c_in, c_out, k, stride=int(stride), padding=pad)
        layers = [conv, _norm(norm, c_out)] + ([nn.ReLU(inplace=True)] if relu else [])
        super().__init__(*layers)


class ResidualBlock(Residual):
    """Gross & Wilber block: conv → norm → ReLU → conv → norm, plus shortcut; no ReLU after.

    ``padded=False`` (the paper's style net): both 3×3 convs are unpadded, so the body loses
    2 px per side and the shortcut is centre-cropped by 2 px per side to match.
    """

    def __init__(self, channels: int, norm: str = "batch", padded: bool = True):
        super().__init__()
        pad = 1 if padded else 0
        self.crop = 0 if padded else 2
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3, norm=norm, padding=pad),
            ConvNormReLU(channels, channels, 3, norm=norm, padding=pad, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.crop
        shortcut = x[..., c:x.shape[-2] - c, c:x.shape[-1] - c] if c else x
        return shortcut + self.body(x)


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) / 127.5  # [0, 255] → [−1, 1]


def _scaled_tanh(x: torch.Tensor) -> torch.Tensor:
    return 127.5 * (torch.tanh(x) + 1.0)  # → [0, 255]


_CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


def _caffe150(x: torch.Tensor) -> torch.Tensor:
    """The authors' code: 150·tanh in Caffe space (BGR, mean-subtracted), read back as RGB.
    Channel order is a relabelling the first conv learns, so only the mean offset matters."""
    y = 150.0 * torch.tanh(x)  # (B, 3, H, W)
    return y + _caffe_mean(y.device, y.dtype)  # may leave [0, 255], as theirs did


@lru_cache(maxsize=None)
def _caffe_mean(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The mean as a (1, 3, 1, 1) tensor, made once per device and dtype: no host-to-device copy
    per call (which a CUDA graph could not capture). Read-only."""
    with torch.inference_mode(False):
        return torch.tensor(_CAFFE_MEAN_RGB, dtype=dtype, device=device).view(1, 3, 1, 1)

OUTPUTS = {"tanh255": _scaled_tanh, "caffe150": _caffe150}


class StyleNet(nn.Module):
    """Style transfer network (REFERENCE.md §1 table). 1,679,235 parameters at the defaults."""

    def __init__(self, norm: str = "batch", upsample: str = "deconv", padding: str = "reflect", width: int = 32,
                 output: str = "tanh255"):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {tuple(OUTPUTS)}, got {output!r}")
        self.arch = dict(norm=norm, upsample=upsample, padding=padding, width=width, output=output)
        w = width
        self.pad = nn.ReflectionPad2d(40) if padding == "reflect" else nn.Identity()
        self.down = nn.Sequential(
            ConvNormReLU(3, w, 9, norm=norm),
            ConvNormReLU(w, 2 * w, 3, stride=2, norm=norm),
            ConvNormReLU(2 * w, 4 * w, 3, stride=2, norm=norm),
        )
        self.res = nn.Sequential(*[ResidualBlock(4 * w, norm, padded=padding == "zero") for _ in range(5)])
        self.up = nn.Sequential(
            ConvNormReLU(4 * w, 2 * w, 3, stride=0.5, norm=norm, upsample=upsample),
            ConvNormReLU(2 * w, w, 3, stride=0.5, norm=norm, upsample=upsample),
        )
        self.out = nn.Conv2d(w, 3, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 255] → (B, 3, H, W) in [0, 255]."""
        check_images(x)
        h, w = x.shape[-2:]
        if self.arch["padding"] == "reflect" and min(h, w) < 41:
            raise ValueError(f"StyleNet with 40 px reflection padding needs images of at least 41×41 px, "
                             f"got {h}×{w}; use padding='zero' for smaller images")
        ph, pw = -h % 4, -w % 4  # pad to a multiple of 4, crop back below
        y = _to_unit(x)
        # always padded (by 0 when already a multiple of 4): one graph for every size (ONNX export)
        y = F.pad(y, (0, pw, 0, ph), mode="reflect" if min(h, w) > 3 else "replicate")
        y = self.out(self.up(self.res(self.down(self.pad(y)))))
        return OUTPUTS[self.arch["output"]](y[..., :h, :w])


class SRNet(nn.Module):
    """Super-resolution network for factor f ∈ {2, 4, 8}: (B, 3, h, w) → (B, 3, f·h, f·w)."""

    def __init__(self, factor: int = 4, norm: str = "batch", upsample: str = "deconv",
                 channels: int = 64, blocks: int = 4):
        super().__init__()
        if factor not in (2, 4, 8):
            raise ValueError(f"super-resolution factor must be 2, 4 or 8, got {factor}")
        self.factor = factor
        self.arch = dict(factor=factor, norm=norm, upsample=upsample, channels=channels, blocks=blocks)
        c = channels
        self.head = ConvNormReLU(3, c, 9, norm=norm)
        self.res = nn.Sequential(*[ResidualBlock(c, norm, padded=True) for _ in range(blocks)])
        self.up = nn.Sequential(*[ConvNormReLU(c, c, 3, stride=0.5, norm=norm, upsample=upsample)
                                  for _ in range(int(math.log2(factor)))])
        self.out = nn.Conv2d(c, 3, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return _scaled_tanh(self.out(self.up(self.res(self.head(_to_unit(x))))))


class SRCNN(nn.Module):
    """Dong et al. 2015, 9-1-5 with 64 and 32 filters, on the bicubic-upsampled image.

    Same-size output (zero padding). The output is linear (no tanh), as in SRCNN; clamp at
    evaluation.
    """

    def __init__(self, f1: int = 64, f2: int = 32):
        super().__init__()
        self.arch = dict(f1=f1, f2=f2)
        self.body = nn.Sequential(
            nn.Conv2d(3, f1, 9, padding=4), nn.ReLU(inplace=True),
            nn.Conv2d(f1, f2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(f2, 3, 5, padding=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return 127.5 * (self.body(_to_unit(x)) + 1.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

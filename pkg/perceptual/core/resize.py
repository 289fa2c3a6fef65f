"""MATLAB-compatible bicubic resizing (``imresize(x, [h w], 'bicubic')``), in torch.

Super-resolution papers make their LR images and their bicubic baseline with MATLAB's
``imresize``; numbers are only comparable when the same resize is used. What MATLAB does:

- Keys' cubic kernel with a = −0.5 (torch's ``interpolate`` uses a = −0.75);
- when shrinking by a scale s < 1, the kernel is stretched by 1/s and scaled by s
  (antialiasing), so every input pixel contributes; when enlarging, the plain kernel;
- output pixel x (1-based) samples the input at u = x/s + ½(1 − 1/s);
- the weights of each output pixel are normalised to sum to 1;
- input indices beyond the border are mirrored, the edge pixel repeated (symmetric padding).

The resize is separable and linear, so it is two matrix products with per-axis weight matrices
(:func:`weights`); that runs on any device, batched. Values are returned unrounded; callers that
need MATLAB's ``uint8`` output round them (:func:`perceptual.method.superres.degrade`). MATLAB rounds
to 8 bits after each axis for ``uint8`` input; we keep the intermediate in floating point (a
difference below 0.5 grey levels; the published bicubic PSNRs are matched within 0.01 dB).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch


def cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (MATLAB: a = −0.5)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return near + far


def weights(n_in: int, n_out: int, antialias: bool = True, dtype: torch.dtype = torch.float64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """The (n_out, n_in) matrix that resizes one axis from n_in to n_out samples."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"cannot resize {n_in} samples to {n_out}")
    scale = n_out / n_in
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # (n_out,) input coordinate, 1-based
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)[None]  # (n_out, taps), 1-based
    dist = u[:, None] - index
    w = scale * cubic(scale * dist) if shrink else cubic(dist)
    w = w / w.sum(1, keepdim=True)
    mirror = torch.cat([torch.arange(n_in), torch.arange(n_in - 1, -1, -1)])  # symmetric padding, 0-based
    index0 = mirror[(index.long() - 1) % (2 * n_in)]
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64).scatter_add_(1, index0, w)
    return matrix.to(dtype=dtype, device=device)


@lru_cache(maxsize=256)
def _matrix(n_in: int, n_out: int, antialias: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`weights`, kept per size and device: a training step resizes the same sizes every
    iteration, and on a GPU this spares it a host-to-device copy per call (which a CUDA graph
    could not capture; a captured step's few sizes stay cached unless 256 others come after
    them). Read-only; made outside inference mode so autograd may use it."""
    with torch.inference_mode(False):
        return weights(n_in, n_out, antialias, dtype, device)


def imresize(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """(..., H, W) float → (..., h, w) = ``size``, MATLAB's bicubic, unrounded."""
    if not x.is_floating_point():
        raise TypeError(f"imresize needs a floating-point tensor, got {x.dtype}")
    h, w = size
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    rows = _matrix(x.shape[-2], h, antialias, dtype, x.device)  # (h, H)
    cols = _matrix(x.shape[-1], w, antialias, dtype, x.device)  # (w, W)
    y = torch.matmul(rows, x.to(dtype))  # (..., h, W)
    return torch.matmul(y, cols.T).to(x.dtype)  # (..., h, w)


def rescale(x: torch.Tensor, factor: float, antialias: bool = True) -> torch.Tensor:
    """Resize by a scale ``factor`` (0.25 shrinks by 4), rounding sizes as MATLAB does (ceil)."""
    h, w = x.shape[-2:]
    return imresize(x, (math.ceil(h * factor), math.ceil(w * factor)), antialias)

"""Colour spaces: BT.601 YCbCr in the two conventions this study meets.

- studio range (MATLAB's ``rgb2ycbcr``/``ycbcr2rgb``; Y in [16, 235]): the SR literature's Y channel
  (PSNR/SSIM, :mod:`perceptual.evaluation.metrics`) and SRCNN's input (:mod:`perceptual.method.srcnn`);
- full range (JPEG/JFIF; Y in [0, 255]): colour preservation in :mod:`perceptual.tools.stylize`.

RGB in [0, 255]; tensors are (…, 3, H, W).
"""
from __future__ import annotations

import torch

YCBCR_MATRIX = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))  # ×1/255
YCBCR_OFFSET = (16.0, 128.0, 128.0)
JPEG_MATRIX = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
JPEG_OFFSET = (0.0, 128.0, 128.0)


def _apply(m: torch.Tensor, offset: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", m, x) + offset.view(3, 1, 1)


def _forward(matrix, offset, x: torch.Tensor) -> torch.Tensor:
    return _apply(torch.as_tensor(matrix, dtype=x.dtype, device=x.device),
                  torch.as_tensor(offset, dtype=x.dtype, device=x.device), x)


def _inverse(matrix, offset, x: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(torch.as_tensor(matrix, dtype=torch.float64)).to(x.device, x.dtype)
    off = torch.as_tensor(offset, dtype=x.dtype, device=x.device)
    return _apply(m, torch.zeros_like(off), x - off.view(3, 1, 1))


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB → studio-range YCbCr (MATLAB ``rgb2ycbcr``), float."""
    return _forward(torch.tensor(YCBCR_MATRIX, dtype=torch.float64) / 255.0, YCBCR_OFFSET, x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``), float, not clamped."""
    return _inverse(torch.tensor(YCBCR_MATRIX, dtype=torch.float64) / 255.0, YCBCR_OFFSET, x)


def rgb_to_jpeg_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB → full-range YCbCr (JPEG/JFIF), values in [0, 255]."""
    return _forward(JPEG_MATRIX, JPEG_OFFSET, x)


def jpeg_ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_jpeg_ycbcr`, not clamped."""
    return _inverse(JPEG_MATRIX, JPEG_OFFSET, x)

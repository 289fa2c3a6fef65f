"""Perceptual and simple losses (paper §3.2–3.3), as pure functions of tensors / feature dicts.

Every loss is computed per image and averaged over the batch. Images are RGB in [0, 255].
Under mixed precision (:mod:`perceptual.runtime.precision`) features may arrive in bf16/fp16; every loss
here casts to float32 and runs outside autocast, so Gram matrices and reductions are fp32.

Gram normalisation, two conventions (REFERENCE.md §2):

- ``"paper"`` (default): Eq. 3 divides ψψᵀ by C·H·W and Eq. 4 takes the *squared Frobenius
  norm* of the difference — a sum over the C×C entries.
- ``"reference"``: both reference implementations take the *mean* squared error over the C×C
  Gram entries, i.e. the paper's value divided by C² per layer. Loss weights do not transfer
  between the two: a style weight tuned under one is off by C² (4,096 … 262,144) under the other.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


GRAM_NORMS = ("paper", "reference")


def feature_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ℓ_feat = ‖φ_j(ŷ) − φ_j(y)‖²₂ / (C_j H_j W_j); batch mean. Shapes (B, C, H, W)."""
    if output.shape[1:] != target.shape[1:]:
        raise ValueError(f"feature shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    with torch.autocast(output.device.type, enabled=False):
        return (output.float() - target.float()).pow(2).flatten(1).mean(1).mean()


GRAM_CHUNK = 4096  # columns of ψ per partial product (see :func:`gram`)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Eq. 3: G = ψψᵀ / (C·H·W) with ψ the (C, H·W) reshaping. (B, C, H, W) → (B, C, C).

    In float32, as the sum of partial products over chunks of ≤ ``GRAM_CHUNK`` columns (zero
    columns pad the last one): one long, thin product runs on a handful of GPU thread blocks — on
    an H100 relu1_2's Gram at 256² took 0.86 ms, a quarter of a training step."""
    b, c, h, w = features.shape
    n = h * w
    pieces = -(-n // GRAM_CHUNK)
    width = -(-n // pieces)
    with torch.autocast(features.device.type, enabled=False):
        psi = features.float().reshape(b, c, n)  # (B, C, HW)
        if pieces > 1:
            psi = F.pad(psi, (0, pieces * width - n)).reshape(b, c, pieces, width).transpose(1, 2)  # (B, k, C, m)
        return (psi @ psi.transpose(-1, -2)).reshape(b, -1, c, c).sum(1) / (c * h * w)  # (B, C, C)


def gram_distance(g_out: torch.Tensor, g_target: torch.Tensor, norm: str = "paper") -> torch.Tensor:
    """Eq. 4: ‖G(ŷ) − G(y)‖²_F per image (``"paper"``), or its mean over C² entries
    (``"reference"``); batch mean. ``g_target`` (1, C, C) broadcasts over the batch."""
    if norm not in GRAM_NORMS:
        raise ValueError(f"gram norm must be one of {GRAM_NORMS}, got {norm!r}")
    sq = (g_out - g_target).pow(2).flatten(1)  # (B, C*C)
    per_image = sq.sum(1) if norm == "paper" else sq.mean(1)
    return per_image.mean()


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               weights: Mapping[str, float] | None = None, norm: str = "paper") -> torch.Tensor:
    """ℓ_style^{φ,J} = Σ_{j∈J} w_j · Eq. 4 at layer j (paper: all w_j = 1), over the layers of
    ``target_grams``."""
    layers = list(target_grams)
    weights = weights or {j: 1.0 for j in layers}
    missing = [j for j in layers if j not in features or j not in weights]
    if missing:
        raise KeyError(f"style layers {missing} missing from the features or the layer weights")
    return sum(weights[j] * gram_distance(gram(features[j]), target_grams[j], norm) for j in layers)


def content_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                 weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Σ_j w_j · Eq. 2 over the layers of ``targets`` (paper: one layer, relu2_2)."""
    weights = weights or {j: 1.0 for j in targets}
    return sum(weights[j] * feature_loss(features[j], targets[j]) for j in targets)


def pixel_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """§3.3: ℓ_pixel = ‖ŷ − y‖²₂ / (C·H·W); batch mean."""
    return feature_loss(output, target)


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """§3.3 total variation: Σ (x_{i,j+1} − x_{i,j})² + (x_{i+1,j} − x_{i,j})² per image, batch mean.

    The paper cites Mahendran & Vedaldi (squared differences, β = 2) without a formula; this is
    the sum of squared neighbour differences. The authors' Torch ``TotalVariation`` module
    applies the gradient of half this sum, so their strengths (1e-6 … 1e-4, 0–255 pixels)
    carry over within a factor of 2.
    """
    images = images.float()
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return (dx.pow(2).flatten(1).sum(1) + dy.pow(2).flatten(1).sum(1)).mean()

"""Layers the runtime knows how to make fast, for any network built from them.

- :class:`InstanceNorm`: instance normalisation that keeps channels-last activations in place;
- :class:`Residual`: the base of a residual block whose inner convolutions int8 may quantize
  (:func:`perceptual.runtime.quantization.residual_convs`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """A residual block (``x + body(x)``): its convolutions are the ones int8 inference quantizes,
    since an error there is added to an unquantized shortcut."""


class InstanceNorm(nn.InstanceNorm2d):
    """Instance normalisation (Ulyanov et al.; affine, no running statistics) that keeps
    channels-last activations in place: for one image, instance statistics are batch statistics,
    and the batch-norm kernel reduces channels-last memory directly (float32 accumulation),
    where ``F.instance_norm`` first copies to contiguous memory — and, under CPU autocast, to
    float32 and back — in the forward and the backward pass. The same parameters and the same
    values (up to summation order); contiguous inputs take ``F.instance_norm`` as before."""

    def _one(self, x: torch.Tensor) -> torch.Tensor:  # (1, C, H, W)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        if x.shape[0] == 1:
            return self._one(x)
        return torch.cat([self._one(image) for image in x.split(1)])  # (B, C, H, W), channels-last

"""Eq. 5: λ_c ℓ_feat(ŷ, y_c) + λ_s ℓ_style(ŷ, y_s) + λ_TV ℓ_TV(ŷ), with the style target fixed.

One object serves the optimisation baseline, feed-forward training and the Fig. 5 evaluation,
so all three minimise and report exactly the same number.
"""
from __future__ import annotations

import torch

from perceptual.method import losses
from perceptual.core.config import LossConfig
from perceptual.method.vgg import VGGFeatures


class Objective:
    """Eq. 5 for one style image (or none) and a loss network. Terms at weight 0 are skipped,
    and the loss network runs only up to the deepest layer a remaining term needs."""

    def __init__(self, net: VGGFeatures, cfg: LossConfig, style: torch.Tensor | None = None):
        self.net, self.cfg = net, cfg
        self.content_layers = cfg.content_layers if cfg.content_weight else ()
        self.style_layers = cfg.style_layers if cfg.style_weight else ()
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        self.style_grams: dict[str, torch.Tensor] = {}
        if self.style_layers:
            if style is None:
                raise ValueError("a style weight > 0 needs a style image")
            with torch.no_grad():
                feats = net(style if style.dim() == 4 else style[None], self.style_layers)
            self.style_grams = {j: losses.gram(f) for j, f in feats.items()}  # (1, C, C)

    def content_targets(self, content: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Features of the content target(s) at the content layers (no gradient)."""
        if not self.content_layers:
            return {}
        if content is None:
            raise ValueError("a content weight > 0 needs a content image")
        with torch.no_grad():
            return self.net(content, self.content_layers)

    def train_step(self, model: torch.nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feed-forward training's terms: ``model(batch)`` against the batch's own content features."""
        return self(model(batch), self.content_targets(batch))

    def __call__(self, output: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The terms (already weighted) and their sum under ``"total"``."""
        cfg = self.cfg
        zero = output.new_zeros(())
        feats = self.net(output, self.layers) if self.layers else {}
        content = cfg.content_weight * losses.content_loss(
            {j: feats[j] for j in self.content_layers}, targets) if self.content_layers else zero
        style = cfg.style_weight * losses.style_loss(
            feats, self.style_grams, cfg.layer_weights(), cfg.gram_norm) if self.style_layers else zero
        tv = cfg.tv_weight * losses.tv_loss(output) if cfg.tv_weight else zero
        return {"total": content + style + tv, "content": content, "style": style, "tv": tv}

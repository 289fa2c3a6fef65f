"""The optimisation baseline (Gatys et al.; paper §4.1) and feature / style inversion (Figs. 3, 4).

Minimise Eq. 5 over the image from white noise with L-BFGS. The paper projects by clipping the
image to [0, 255] after every iteration (``clip=True``); the authors' released script does not
(``clip=False``, the ``reference`` preset). One L-BFGS iteration = one forward and backward pass
through the loss network (torch's L-BFGS with ``max_iter=1`` per step, no line search), so the
per-iteration times are what Table 1 compares against.

White noise: i.i.d. uniform on [0, 255] per pixel, seeded ("noise"); "content" starts from the
content image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from perceptual.core.config import GatysConfig, LossConfig
from perceptual.method.objective import Objective
from perceptual.method.vgg import VGGFeatures


@dataclass
class Result:
    image: torch.Tensor  # (1, 3, H, W) in [0, 255]
    history: list[dict] = field(default_factory=list)  # per iteration: objective terms and seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initial_image(shape: tuple[int, int], init: str, seed: int, device: torch.device,
                  content: torch.Tensor | None = None) -> torch.Tensor:
    if init == "noise":
        gen = torch.Generator().manual_seed(seed)
        return (torch.rand(1, 3, *shape, generator=gen) * 255.0).to(device)
    if init == "content":
        if content is None:
            raise ValueError("init='content' needs a content image")
        return content.detach().clone().to(device)
    raise ValueError(f"unknown init {init!r} (noise, content)")


def optimise(objective: Objective, shape: tuple[int, int], cfg: GatysConfig,
             content: torch.Tensor | None = None, progress: bool = True, desc: str = "L-BFGS") -> Result:
    """Run ``cfg.iterations`` L-BFGS iterations on Eq. 5; history[i] is the image after i iterations."""
    device = next(objective.net.parameters()).device
    targets = objective.content_targets(content)
    x = initial_image(shape, cfg.init, cfg.seed, device, content).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=cfg.history, line_search_fn=None)
    history: list[dict] = []
    last: dict[str, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = objective(x, targets)
        terms["total"].backward()
        last.update({k: float(v.detach()) for k, v in terms.items()})
        return terms["total"]

    _sync(device)
    start = time.perf_counter()
    bar = tqdm(range(cfg.iterations), desc=desc, disable=not progress, leave=False)
    for i in bar:
        opt.step(closure)
        if cfg.clip:
            with torch.no_grad():
                x.clamp_(0.0, 255.0)
        _sync(device)
        history.append({"iteration": i, **last, "seconds": time.perf_counter() - start})
        bar.set_postfix(loss=f"{last['total']:.4g}")
    with torch.no_grad():  # the objective after the last iteration
        final = {k: float(v) for k, v in objective(x, targets).items()}
    history.append({"iteration": cfg.iterations, **final, "seconds": time.perf_counter() - start})
    return Result(x.detach(), history)


def stylise(net: VGGFeatures, content: torch.Tensor, style: torch.Tensor, cfg: GatysConfig,
            progress: bool = True) -> Result:
    """Gatys et al. style transfer of ``content`` (1, 3, H, W) toward ``style``."""
    return optimise(Objective(net, cfg.loss, style), tuple(content.shape[-2:]), cfg, content, progress)


def invert_features(net: VGGFeatures, image: torch.Tensor, layer: str, cfg: GatysConfig,
                    progress: bool = True) -> Result:
    """Fig. 3: an image whose ``layer`` features match those of ``image`` (feature loss only,
    plus the config's TV term)."""
    loss = replace(cfg.loss, content_layers=(layer,), content_weight=1.0, style_weight=0.0)
    return optimise(Objective(net, loss), tuple(image.shape[-2:]), replace(cfg, loss=loss), image, progress,
                    desc=f"invert {layer}")


def invert_style(net: VGGFeatures, style: torch.Tensor, layers: tuple[str, ...], shape: tuple[int, int],
                 cfg: GatysConfig, progress: bool = True) -> Result:
    """Fig. 4: an image whose Gram matrices at ``layers`` match those of ``style``."""
    loss = replace(cfg.loss, style_layers=tuple(layers), content_weight=0.0, style_weight=1.0,
                   style_layer_weights=None)
    return optimise(Objective(net, loss, style), shape, replace(cfg, loss=loss), None, progress,
                    desc=f"style {layers[-1]}")


def feature_inversion_config(iterations: int, seed: int = 0, tv_weight: float = 0.0) -> GatysConfig:
    """Settings for Figs. 3/4: no TV unless asked, clipping as the paper does."""
    return GatysConfig(iterations=iterations, seed=seed, loss=replace(LossConfig(), tv_weight=tv_weight))

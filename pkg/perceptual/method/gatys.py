"""The optimisation baseline (Gatys et al.; paper §4.1) and feature / style inversion (Figs. 3, 4).

Minimise Eq. 5 over the image from white noise with L-BFGS. The paper projects by clipping the
image to [0, 255] after every iteration (``clip=True``); the authors' released script does not
(``clip=False``, the ``reference`` preset). One L-BFGS iteration = one forward and backward pass
through the loss network (torch's L-BFGS with ``max_iter=1`` per step, no line search), so the
per-iteration times are what Table 1 compares against.

The start (``GatysConfig.init``): "noise" is the authors' (fast-neural-style's
``slow_neural_style.lua``: ``torch.randn`` in Caffe space), i.e. the mean pixel plus Gaussian noise
of ``noise_amplitude`` grey levels (1: ± about one grey level); "uniform" is i.i.d. uniform noise on
[0, 255] per pixel (this build's start before issue 26: it decides how many iterations L-BFGS
needs to reach a given loss, so Fig. 5's count depends on it); "content" starts from the content
image. All seeded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from perceptual.core.config import GatysConfig, LossConfig
from perceptual.method.objective import Objective
from perceptual.method.vgg import CAFFE_MEAN_BGR, VGGFeatures

MEAN_PIXEL_RGB = tuple(reversed(CAFFE_MEAN_BGR))  # the Caffe mean pixel, RGB: where the authors' start is centred


@dataclass
class Result:
    image: torch.Tensor  # (1, 3, H, W) in [0, 255]
    history: list[dict] = field(default_factory=list)  # per iteration: objective terms and seconds
    converged: bool | None = None  # with a :class:`Convergence` rule: whether it stopped the run


@dataclass(frozen=True)
class Convergence:
    """Stop once the run has stopped moving, checked every ``window`` iterations: the objective's
    lowest value in the last window is within ``tol`` (relative) of the lowest before it, or the
    image moved less than ``pixels`` grey levels (RMS) over the window. The running minimum, because
    L-BFGS without a line search has single-iteration spikes; the image, because an objective that
    falls towards 0 (a shallow layer's inversion) keeps falling by large ratios long after the image
    stopped changing visibly. ``cfg.iterations`` stays the cap."""

    window: int = 50  # ours
    tol: float = 0.01  # ours: < 1 % lower over 50 iterations …
    pixels: float = 0.5  # ours: … or under half a grey level of change (invisible at 8 bits)

    def reached(self, totals: list[float], moved: float | None = None) -> bool:
        """``totals``: the objective so far; ``moved``: the image's RMS change over the last window."""
        if len(totals) <= self.window:
            return False
        if moved is not None and moved < self.pixels:
            return True
        before, recent = min(totals[: -self.window]), min(totals[-self.window:])
        return recent >= (1.0 - self.tol) * before


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def initial_image(shape: tuple[int, int], init: str, seed: int, device: torch.device,
                  content: torch.Tensor | None = None, amplitude: float = 1.0) -> torch.Tensor:
    """The image L-BFGS starts from, (1, 3, H, W) RGB in grey levels (see the module's docstring)."""
    gen = torch.Generator().manual_seed(seed)
    if init == "noise":
        if amplitude is None or amplitude < 0:
            raise ValueError(f"init='noise' needs a noise amplitude ≥ 0 (grey levels), not {amplitude!r}")
        mean = torch.tensor(MEAN_PIXEL_RGB).view(1, 3, 1, 1)
        return (mean + amplitude * torch.randn(1, 3, *shape, generator=gen)).to(device)
    if init == "uniform":
        return (torch.rand(1, 3, *shape, generator=gen) * 255.0).to(device)
    if init == "content":
        if content is None:
            raise ValueError("init='content' needs a content image")
        return content.detach().clone().to(device)
    raise ValueError(f"unknown init {init!r} (noise, uniform, content)")


def optimise(objective: Objective, shape: tuple[int, int], cfg: GatysConfig,
             content: torch.Tensor | None = None, progress: bool = True, desc: str = "L-BFGS",
             until: Convergence | None = None, line_search: bool = False, restart: bool = False) -> Result:
    """Run ``cfg.iterations`` L-BFGS iterations on Eq. 5 (fewer where ``until`` says the objective
    stopped moving); history[i] is the objective before iteration i, the last entry after the last.
    ``line_search``: each iteration a strong-Wolfe line search (several passes, a falling objective),
    for results that must converge (the inversions), not for timing one iteration (Table 1).
    ``restart``: where an iteration leaves the image exactly where it was (its direction is no descent
    direction, or the projection onto [0, 255] undid the step), drop the L-BFGS memory so the next
    iteration starts afresh from the gradient; without it a Gram-only objective sat at one value for
    hundreds of iterations (relu3_3 at 96² from uniform noise: 48,610 from iteration 25 to 150; with it
    1,535 at 150)."""
    device = next(objective.net.parameters()).device
    targets = objective.content_targets(content)
    x = initial_image(shape, cfg.init, cfg.seed, device, content, cfg.noise_amplitude).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=cfg.history,
                            line_search_fn="strong_wolfe" if line_search else None)
    history: list[dict] = []
    current: dict[str, float] = {}  # the terms at the iterate (a line search's trial points are not recorded)
    snapshot, converged = None, (None if until is None else False)  # the image a window ago; whether it settled

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = objective(x, targets)
        terms["total"].backward()
        if not current:  # L-BFGS evaluates the iterate first
            current.update({k: float(v.detach()) for k, v in terms.items()})
        return terms["total"]

    _sync(device)
    start = time.perf_counter()
    bar = tqdm(range(cfg.iterations), desc=desc, disable=not progress, leave=False)
    for i in bar:
        before = x.detach().clone() if restart else None
        current.clear()
        opt.step(closure)
        with torch.no_grad():
            if cfg.clip:
                x.clamp_(0.0, 255.0)
            if restart and torch.equal(before, x):
                opt.state.clear()  # a stale memory: start again from steepest descent
        _sync(device)
        history.append({"iteration": i, **current, "seconds": time.perf_counter() - start})
        bar.set_postfix(loss=f"{current['total']:.4g}")
        if until is not None and len(history) % until.window == 0:  # checked once a window
            moved = None if snapshot is None else float((x.detach() - snapshot).pow(2).mean().sqrt())
            snapshot = x.detach().clone()
            if until.reached([h["total"] for h in history], moved):
                converged = True
                break
    with torch.no_grad():  # the objective after the last iteration
        final = {k: float(v) for k, v in objective(x, targets).items()}
    history.append({"iteration": len(history), **final, "seconds": time.perf_counter() - start})
    return Result(x.detach(), history, converged)


def stylise(net: VGGFeatures, content: torch.Tensor, style: torch.Tensor, cfg: GatysConfig,
            progress: bool = True) -> Result:
    """Gatys et al. style transfer of ``content`` (1, 3, H, W) toward ``style``."""
    return optimise(Objective(net, cfg.loss, style), tuple(content.shape[-2:]), cfg, content, progress)


def invert_features(net: VGGFeatures, image: torch.Tensor, layer: str, cfg: GatysConfig,
                    progress: bool = True, until: Convergence | None = None, line_search: bool = False,
                    restart: bool = False) -> Result:
    """Fig. 3: an image whose ``layer`` features match those of ``image`` (feature loss only,
    plus the config's TV term)."""
    loss = replace(cfg.loss, content_layers=(layer,), content_weight=1.0, style_weight=0.0)
    return optimise(Objective(net, loss), tuple(image.shape[-2:]), replace(cfg, loss=loss), image, progress,
                    desc=f"invert {layer}", until=until, line_search=line_search, restart=restart)


def invert_style(net: VGGFeatures, style: torch.Tensor, layers: tuple[str, ...], shape: tuple[int, int],
                 cfg: GatysConfig, progress: bool = True, until: Convergence | None = None,
                 line_search: bool = False, restart: bool = False) -> Result:
    """Fig. 4: an image whose Gram matrices at ``layers`` match those of ``style``."""
    loss = replace(cfg.loss, style_layers=tuple(layers), content_weight=0.0, style_weight=1.0,
                   style_layer_weights=None)
    return optimise(Objective(net, loss, style), shape, replace(cfg, loss=loss), None, progress,
                    desc=f"style {layers[-1]}", until=until, line_search=line_search, restart=restart)


def feature_inversion_config(iterations: int, seed: int = 0, tv_weight: float = 0.0,
                             init: str = "uniform") -> GatysConfig:
    """Settings for Figs. 3/4: no TV unless asked, clipping as the paper does, from uniform noise on
    [0, 255] unless ``init`` says otherwise (Fig. 3 starts where the authors' scripts do; from their
    near-grey start, L-BFGS without a line search diverges on a Gram-only objective, whose first
    gradients are near zero, so Fig. 4 keeps uniform noise: :mod:`perceptual.study.chapters.inversion`)."""
    return GatysConfig(iterations=iterations, seed=seed, init=init, loss=replace(LossConfig(), tv_weight=tv_weight))

"""Learned perceptual similarity for the super-resolution tables: LPIPS and DISTS.

The paper could only show in pictures that ℓ_feat looks better than ℓ_pixel while scoring lower
PSNR; these two metrics measure it.

- **LPIPS** (Zhang et al. 2018), v0.1, AlexNet trunk: the PyPI ``lpips`` package; its linear heads
  ship inside the wheel, the AlexNet weights are torchvision's ``IMAGENET1K_V1``.
- **DISTS** (Ding et al. 2020): written here from the paper's definition — VGG-16 stages (input, relu1_2,
  relu2_2, relu3_3, relu4_3, relu5_3) with max pooling replaced by L2 pooling (3×3 Hann window,
  stride 2), per channel a texture term (2μxμy + c)/(μx² + μy² + c) and a structure term
  (2σxy + c)/(σx² + σy² + c), c = 1e-6, weighted by the learned α, β (normalised to sum 1);
  DISTS = 1 − Σ. The VGG-16 weights are torchvision's ``IMAGENET1K_V1``; α, β are the authors'
  ``weights.pt``, shipped in the PyPI ``DISTS-pytorch`` wheel.

Backbone weights come through the torch hub cache (downloaded once when online). A metric whose
weights cannot be had is **not computed**, with the reason (:func:`load` returns it) — never a NaN.
``backbone="random"`` (tests: the code path, offline) gives metrics whose *name* carries
``random-backbone``, so their numbers can never pass for real ones.
Inputs: two (H, W, 3) uint8 RGB images (outputs rounded to 8 bits, like PSNR); lower is better.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perceptual.method import vgg

METRICS = ("lpips", "dists")
RANDOM_SUFFIX = "_random-backbone"


class Unavailable(RuntimeError):
    """A metric's weights cannot be had; the message is the reason shown in the tables."""


@dataclass(frozen=True)
class Metric:
    name: str  # the table column, e.g. "lpips" or "lpips_random-backbone"
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (1, 3, H, W) in [0, 1] twice → scalar
    device: torch.device

    def __call__(self, reference: np.ndarray, test: np.ndarray) -> float:
        a, b = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float().div(255).to(self.device)
                for x in (reference, test))
        with torch.inference_mode():
            return float(self.score(a, b))


def _hub_convs(name: str, url_env: str, url: Callable[[], str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    try:
        return vgg._hub_convs(url_env, url)
    except vgg.WeightsUnavailable as err:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise Unavailable(f"not computed: the torchvision {name} weights are not in the torch hub cache ({cache}) "
                          f"and could not be downloaded ({str(err).splitlines()[0][:160]})") from err


def _alexnet_url() -> str:
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.url


def _lpips(random: bool, device: torch.device) -> Callable:
    import warnings

    import lpips

    torch.manual_seed(0)  # the random trunk (tests) is seeded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision's deprecated `pretrained`
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if not random:
        convs = iter(_hub_convs("AlexNet", "PERCEPTUAL_ALEXNET_URL", _alexnet_url))
        with torch.no_grad():
            for stage in model.net.children():
                for layer in stage.children():
                    if isinstance(layer, nn.Conv2d):
                        w, b = next(convs)
                        layer.weight.copy_(w)
                        layer.bias.copy_(b)
    model = model.eval().to(device)
    return lambda a, b: model(a, b, normalize=True).mean()  # normalize: [0, 1] → [−1, 1]


class DISTS(nn.Module):
    """DISTS from VGG-16 conv weights (13 (w, b) pairs) and α, β (1475 each)."""

    STAGES = (2, 2, 3, 3, 3)  # convs per stage
    CHANNELS = (3, 64, 128, 256, 512, 512)  # the input is stage 0

    def __init__(self, convs: list[tuple[torch.Tensor, torch.Tensor]], alpha: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        layers = iter(convs)
        self.stages = nn.ModuleList()
        for n in self.STAGES:
            stage = nn.ModuleList()
            for _ in range(n):
                w, b = next(layers)
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                stage.append(conv)
            self.stages.append(stage)
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", alpha.reshape(-1).float() / total)
        self.register_buffer("beta", beta.reshape(-1).float() / total)
        hann = torch.tensor([0.5, 1.0, 0.5])  # np.hanning(5)[1:-1]
        self.register_buffer("window", (hann[:, None] * hann[None]) / (hann.sum() ** 2))
        self.register_buffer("mean", torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def l2pool(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        k = self.window.expand(c, 1, 3, 3)
        return (F.conv2d(x * x, k, stride=2, padding=1, groups=c) + 1e-12).sqrt()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        out = [h]
        for i, stage in enumerate(self.stages):
            if i:
                h = self.l2pool(h)
            for conv in stage:
                h = F.relu(conv(h))
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] twice → (B,) distances."""
        c = 1e-6
        alphas = self.alpha.split(self.CHANNELS)
        betas = self.beta.split(self.CHANNELS)
        total = x.new_zeros(x.shape[0])
        for fx, fy, a, b in zip(self.features(x), self.features(y), alphas, betas):
            mx, my = fx.mean((2, 3)), fy.mean((2, 3))  # (B, C)
            vx = ((fx - mx[..., None, None]) ** 2).mean((2, 3))
            vy = ((fy - my[..., None, None]) ** 2).mean((2, 3))
            cov = (fx * fy).mean((2, 3)) - mx * my
            texture = (2 * mx * my + c) / (mx ** 2 + my ** 2 + c)
            structure = (2 * cov + c) / (vx + vy + c)
            total = total + (texture * a).sum(1) + (structure * b).sum(1)
        return 1 - total


def dists_weights() -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' α, β from the ``DISTS-pytorch`` wheel (``DISTS_pytorch/weights.pt``)."""
    try:
        import DISTS_pytorch
    except ImportError as err:
        raise Unavailable("not computed: DISTS needs the authors' α, β, shipped in the PyPI package "
                          "DISTS-pytorch (pip install DISTS-pytorch)") from err
    w = torch.load(Path(DISTS_pytorch.__file__).parent / "weights.pt", map_location="cpu", weights_only=True)
    return w["alpha"], w["beta"]


def _dists(random: bool, device: torch.device) -> Callable:
    if random:
        n = sum(DISTS.CHANNELS)
        alpha, beta = torch.full((n,), 0.5), torch.full((n,), 0.5)
        convs = list(vgg._convs("random"))
    else:
        alpha, beta = dists_weights()
        convs = _hub_convs("VGG-16", "PERCEPTUAL_VGG16_URL", lambda: vgg._torchvision_url(16))
    model = DISTS(convs, alpha, beta).eval().to(device)
    return lambda a, b: model(a, b).mean()


BUILDERS: dict[str, Callable[[bool, torch.device], Callable]] = {"lpips": _lpips, "dists": _dists}


def load(names: tuple[str, ...] = METRICS, device: torch.device | str = "cpu",
         backbone: str = "pretrained") -> tuple[list[Metric], dict[str, str]]:
    """The metrics that can be computed, and {name: "not computed: <reason>"} for the others.
    ``backbone``: "pretrained" (the real metric) or "random" (tests; names carry the suffix).
    ``PERCEPTUAL_SIMILARITY=off`` skips them all (the reason says so)."""
    if backbone not in ("pretrained", "random"):
        raise ValueError(f"backbone must be 'pretrained' or 'random', got {backbone!r}")
    device = torch.device(device)
    random = backbone == "random"
    metrics, missing = [], {}
    for name in names:
        column = name + (RANDOM_SUFFIX if random else "")
        if os.environ.get("PERCEPTUAL_SIMILARITY", "").lower() == "off":
            missing[column] = "not computed: PERCEPTUAL_SIMILARITY=off"
            continue
        try:
            metrics.append(Metric(column, BUILDERS[name](random, device), device))
        except Unavailable as err:
            missing[column] = str(err)
        except ImportError as err:
            missing[column] = f"not computed: {err}"
    return metrics, missing

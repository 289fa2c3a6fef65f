"""Applying a trained style network: the fast inference path and ``perceptual stylize``.

Fast path (:func:`inference_model`): batch norm folded into the preceding (transposed)
convolution, no autograd (``torch.inference_mode``), channels-last memory on the CPU. The result
equals the eval-mode network up to float rounding.

Options: ``preserve_color`` keeps the content image's colours — the output's luminance Y is
combined with the input's chroma (BT.601 YCbCr); ``median`` applies the authors' 3×3 median
filter (their test script's default); ``strength`` blends with the input. Output size = input
size; images smaller than the design takes are replicate-padded and cropped back.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import images
from .data import list_images
from .train import load_model, pick_device

log = logging.getLogger("perceptual.stylize")


# ---------------------------------------------------------------------------------------------
# fast inference


def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into ``conv`` in place: w' = w·γ/σ, b' = (b − μ)·γ/σ + β."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)  # C_out axis
    conv.weight.data = conv.weight.data * scale.view(shape)
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every conv → BatchNorm pair folded into the conv."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, first), (name, second) in zip(children, children[1:]):
            conv = first[-1] if isinstance(first, nn.Sequential) else first  # nearest-upsample + conv
            if isinstance(second, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                _fold(conv, second)
                setattr(module, name, nn.Identity())
    return model


def inference_model(model: nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """The fast path: folded, frozen, eval; channels-last on the CPU."""
    fast = fold_batchnorm(model).requires_grad_(False).to(device)
    if torch.device(device).type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def run(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Apply the (fast) model to (B, 3, H, W) in [0, 255] without autograd."""
    with torch.inference_mode():
        x = batch.to(next(model.parameters()).device)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return model(x).contiguous()


# ---------------------------------------------------------------------------------------------
# post-processing


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """BT.601 full-range YCbCr (JPEG convention), values in [0, 255]. (…, 3, H, W)."""
    m = x.new_tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    y = torch.einsum("ij,...jhw->...ihw", m, x)
    return y + x.new_tensor([0.0, 128.0, 128.0]).view(3, 1, 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    m = x.new_tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])
    return torch.einsum("ij,...jhw->...ihw", m, x - x.new_tensor([0.0, 128.0, 128.0]).view(3, 1, 1))


def preserve_color(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylised`` with the chroma of ``content`` (same shape)."""
    s, c = rgb_to_ycbcr(stylised), rgb_to_ycbcr(content)
    return ycbcr_to_rgb(torch.cat([s[..., :1, :, :], c[..., 1:, :, :]], dim=-3)).clamp(0, 255)


def median3(x: torch.Tensor) -> torch.Tensor:
    """3×3 median filter per channel, reflect-padded. (…, C, H, W)."""
    shape = x.shape
    x4 = x.reshape(-1, 1, *shape[-2:])
    patches = F.unfold(F.pad(x4, (1, 1, 1, 1), mode="replicate"), 3)  # (N, 9, H*W)
    return patches.median(dim=1).values.reshape(shape)


# ---------------------------------------------------------------------------------------------
# one image / many files


MIN_SIDE = 44  # the 40 px reflection pad needs ≥ 41; 44 keeps the multiple-of-4 path


def stylize_image(model: nn.Module, image: torch.Tensor, keep_colors: bool = False, median: bool = False,
                  max_side: int | None = None, strength: float = 1.0) -> torch.Tensor:
    """(3, H, W) in [0, 255] → stylised (3, H, W). ``max_side`` shrinks large inputs first
    (the output is resized back to the input size); ``strength`` < 1 blends the result with the
    input (0: the input, 1: the network's output)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    h, w = image.shape[-2:]
    x = image
    if max_side and max(h, w) > max_side:
        x = images.resize_longer(x, max_side)
    ph, pw = max(0, MIN_SIDE - x.shape[-2]), max(0, MIN_SIDE - x.shape[-1])
    if ph or pw:
        x = F.pad(x[None], (0, pw, 0, ph), mode="replicate")[0]
    y = run(model, x[None])[0].cpu()[..., : x.shape[-2] - ph, : x.shape[-1] - pw]
    if y.shape[-2:] != (h, w):
        y = images.resize(y, (h, w))
    if median:
        y = median3(y)
    if keep_colors:
        y = preserve_color(y, image)
    if strength < 1.0:
        y = strength * y + (1.0 - strength) * image
    return y.clamp(0, 255)


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, relative output stem) for files and folders (folders recursively)."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += [(f, f.relative_to(item).with_suffix("")) for f in list_images(item)]
        else:
            out.append((item, Path(item.stem)))
    return out


def stylize_files(checkpoint: str | Path, inputs: Sequence[str | Path], output_dir: str | Path,
                  keep_colors: bool = False, median: bool = False, device: str | None = None,
                  suffix: str = ".png", max_side: int | None = None, strength: float = 1.0,
                  progress: bool = True) -> Report:
    """Stylise files and/or folders into ``output_dir``. Unreadable files are reported by name
    and skipped; the rest finish."""
    from tqdm.auto import tqdm

    dev = pick_device(device)
    model, meta = load_model(checkpoint, dev)
    fast = inference_model(model, dev)
    report = Report()
    for path, stem in tqdm(expand_inputs(inputs), desc=f"stylize ({meta.get('style', '?')})", disable=not progress):
        try:
            out = stylize_image(fast, images.read_image(path), keep_colors, median, max_side, strength)
            report.written.append(images.write_image(out, Path(output_dir) / stem.with_suffix(suffix)))
        except images.ImageError as err:
            log.info("skipped: %s", err)
            report.failed.append((path, str(err)))
    return report

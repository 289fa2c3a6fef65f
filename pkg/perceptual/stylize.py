"""Applying a trained style network: the fast inference path and ``perceptual stylize``.

Fast path (:mod:`perceptual.inference`): batch norm folded into the preceding (transposed)
convolution, no autograd, channels-last memory, bf16/fp16 where the device runs it fast
(``precision``), and overlapping tiles for images too large for memory (``tile``).

Options: ``preserve_color`` keeps the content image's colours — the output's luminance Y is
combined with the input's chroma (BT.601 YCbCr); ``median`` applies the authors' 3×3 median
filter (their test script's default); ``strength`` blends with the input. Output size = input
size; images smaller than the design takes are replicate-padded and cropped back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import images
from .data import list_images
from .inference import inference_model, process
from .precision import resolve
from .train import load_model, pick_device

log = logging.getLogger("perceptual.stylize")


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
                  max_side: int | None = None, strength: float = 1.0, precision: str = "fp32",
                  tile: int | None = None) -> torch.Tensor:
    """(3, H, W) in [0, 255] → stylised (3, H, W). ``max_side`` shrinks large inputs first
    (the output is resized back to the input size); ``strength`` < 1 blends the result with the
    input (0: the input, 1: the network's output); ``precision`` (resolved) and ``tile``: see
    :func:`perceptual.inference.process`."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    h, w = image.shape[-2:]
    x = image
    if max_side and max(h, w) > max_side:
        x = images.resize_longer(x, max_side)
    ph, pw = max(0, MIN_SIDE - x.shape[-2]), max(0, MIN_SIDE - x.shape[-1])
    if ph or pw:
        x = F.pad(x[None], (0, pw, 0, ph), mode="replicate")[0]
    y = process(model, x[None], precision, tile)[0][..., : x.shape[-2] - ph, : x.shape[-1] - pw]
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
                  progress: bool = True, precision: str = "auto", tile: int | None = None) -> Report:
    """Stylise files and/or folders into ``output_dir``. Unreadable files are reported by name
    and skipped; the rest finish. ``precision``: auto | fp32 | bf16 | fp16
    (:func:`perceptual.precision.resolve`); ``tile``: force tiles of this size."""
    from tqdm.auto import tqdm

    dev = pick_device(device)
    model, meta = load_model(checkpoint, dev)
    fast = inference_model(model, dev)
    prec = resolve(precision, dev)
    report = Report()
    for path, stem in tqdm(expand_inputs(inputs), desc=f"stylize ({meta.get('style', '?')})", disable=not progress):
        try:
            out = stylize_image(fast, images.read_image(path), keep_colors, median, max_side, strength, prec, tile)
            report.written.append(images.write_image(out, Path(output_dir) / stem.with_suffix(suffix)))
        except images.ImageError as err:
            log.info("skipped: %s", err)
            report.failed.append((path, str(err)))
    return report

"""Applying a trained style network: the fast inference path and ``perceptual stylize``.

Fast path (:mod:`perceptual.runtime.inference`): batch norm folded into the preceding (transposed)
convolution, no autograd, channels-last memory, bf16/fp16 where the device runs it fast
(``precision``), and overlapping tiles for images too large for memory (``tile``).

Options: ``preserve_color`` keeps the content image's colours — the output's luminance Y is
combined with the input's chroma (BT.601 YCbCr); ``median`` applies the authors' 3×3 median
filter (their test script's default); ``strength`` blends with the input. Output size = input
size; images smaller than the design takes are replicate-padded and cropped back.

Nothing is lost (:func:`plan_outputs`, checked before any work): an existing output is kept
unless ``overwrite``; two inputs that would get the same output name (``a/x.jpg``, ``b/x.jpg``,
``x.png``) are an error naming both; an output that would replace an input is refused even with
``overwrite`` (writing into the input folder works when no name collides). Outputs are written
atomically (temporary file, then rename) with the usual file permissions. Only style networks
are applied: a super-resolution model is refused with a clear error.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.core import colour, images
from perceptual.core.data import list_images
from perceptual.runtime.inference import inference_model, process
from perceptual.runtime.precision import resolve
from perceptual.method.train import load_model, pick_device

log = logging.getLogger("perceptual.tools.stylize")


# ---------------------------------------------------------------------------------------------
# post-processing


def preserve_color(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylised`` with the chroma of ``content`` (same shape)."""
    s, c = colour.rgb_to_jpeg_ycbcr(stylised), colour.rgb_to_jpeg_ycbcr(content)
    return colour.jpeg_ycbcr_to_rgb(torch.cat([s[..., :1, :, :], c[..., 1:, :, :]], dim=-3)).clamp(0, 255)


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
    :func:`perceptual.runtime.inference.process`."""
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


class OutputError(ValueError):
    """The outputs cannot be written without losing something; nothing was written."""


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def expand_inputs(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, relative output stem) for files and folders (folders recursively). A missing
    input or a folder without images is a :class:`FileNotFoundError` naming it."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise FileNotFoundError(f"{item}: no images in this folder (looked for .jpg, .png, .tif, …)")
            out += [(f, f.relative_to(item).with_suffix("")) for f in found]
        elif item.exists():
            out.append((item, Path(item.stem)))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return out


def plan_outputs(inputs: Sequence[str | Path], output_dir: str | Path, suffix: str = ".png",
                 overwrite: bool = False) -> list[tuple[Path, Path]]:
    """(input, output path) per input image, checked before any work: :class:`OutputError` if
    ``output_dir`` is a file or not writable, two inputs share an output name, an output would
    replace an input, or (without ``overwrite``) an output exists."""
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"-o {out_dir}: is a file; name a folder for the outputs")
    plan = [(src, out_dir / stem.with_suffix(suffix)) for src, stem in expand_inputs(inputs)]
    sources = {src.resolve(): src for src, _ in plan}
    seen: dict[Path, Path] = {}
    for src, dst in plan:
        key = dst.resolve()
        if key in sources:
            raise OutputError(f"{dst} would replace the input {sources[key]}: write into another folder (-o)")
        if key in seen:
            raise OutputError(f"{seen[key]} and {src} would both be written to {dst}: stylise them into "
                              "separate folders or rename one")
        seen[key] = src
    existing = [dst for _, dst in plan if dst.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(f"{existing[0]} exists{more}: use --overwrite to replace, or another -o folder")
    _check_writable(out_dir)
    return plan


def _check_writable(folder: Path) -> None:
    """:class:`OutputError` unless ``folder`` exists (or can be made) and accepts new files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"-o {folder}: cannot create the folder ({err.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"-o {folder}: not writable (permission denied)")


def load_style_model(checkpoint: str | Path, device: torch.device) -> tuple[nn.Module, dict]:
    """A style network from a checkpoint; a super-resolution model is a clear :class:`ValueError`."""
    model, meta = load_model(checkpoint, device)
    if meta.get("kind") != "style":
        what = f"a ×{meta.get('factor')} super-resolution model ({meta.get('method', meta.get('kind'))})" \
            if meta.get("kind") in ("sr", "srcnn") else f"a {meta.get('kind')!r} model"
        raise ValueError(f"{checkpoint}: {what}, not a style network; stylize applies style networks "
                         "(super-resolution models are evaluated by `perceptual run superres`)")
    return model, meta


def stylize_files(checkpoint: str | Path, inputs: Sequence[str | Path], output_dir: str | Path,
                  keep_colors: bool = False, median: bool = False, device: str | None = None,
                  suffix: str = ".png", max_side: int | None = None, strength: float = 1.0,
                  progress: bool = True, overwrite: bool = False, precision: str = "auto",
                  tile: int | None = None) -> Report:
    """Stylise files and/or folders into ``output_dir``. The model and every output name are
    checked before any work (:func:`plan_outputs`); unreadable files are reported by name and
    skipped; the rest finish. ``precision``: auto | fp32 | bf16 | fp16 | int8
    (:func:`perceptual.runtime.precision.resolve`); ``tile``: force tiles of this size."""
    from tqdm.auto import tqdm

    dev = pick_device(device)
    prec = resolve(precision, dev, inference=True)  # before anything is read or any folder made
    model, meta = load_style_model(checkpoint, dev)
    plan = plan_outputs(inputs, output_dir, suffix, overwrite)
    fast = inference_model(model, dev, prec)
    report = Report()
    for path, dst in tqdm(plan, desc=f"stylize ({meta.get('style', '?')})", disable=not progress):
        try:
            out = stylize_image(fast, images.read_image(path), keep_colors, median, max_side, strength, prec, tile)
            report.written.append(images.write_image(out, dst, overwrite=overwrite))
        except (images.ImageError, FileExistsError) as err:
            log.info("skipped: %s", err)
            report.failed.append((path, str(err)))
    return report

"""Super-resolution (paper §4.2): degradation, ℓ_pixel / ℓ_feat / SRCNN training, histogram
matching, and the Set5 / Set14 / BSD100 evaluation runner.

Degradation for training (paper §4.2): Gaussian blur σ = 1.0 (kernel 2·⌈3σ⌉+1 = 7 taps,
reflect padding), then MATLAB-compatible bicubic downsampling by f (:func:`perceptual.resize.imresize`:
a = −0.5, antialiased), then rounding to 8 bits — LR inputs are 8-bit images, as on disk. The
bicubic baseline and SRCNN's input are made with the same resize (enlarging).

Training pairs: a random 288² HR patch per photo and iteration (seeded by the iteration);
photos whose shorter side is under 288 px are first upscaled (bicubic) so it is 288.
Evaluation pairs: the HR image cropped to a multiple of f (top-left anchored, "modcrop"), then
the same degradation, deterministically.

Methods: ``bicubic`` (LR upsampled with the same bicubic), ``srcnn`` (9-1-5 on the bicubic
image, per-pixel loss, ×4 only as in the paper), ``pixel`` and ``feat`` (SRNet trained with
ℓ_pixel or ℓ_feat at relu2_2; identical data, architecture and schedule). ``feat`` outputs are
histogram-matched to the LR input by default (paper §4.2); ``feat_raw`` reports them without.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import images, losses, memory, metrics, precision, store
from .config import SRConfig
from .data import list_images
from .resize import imresize
from .train import CachedImages, config_hash, fit, load_model, pick_device, split_files
from .transformer import SRCNN, SRNet
from .vgg import load_vgg


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, reflect padding. (B, C, H, W)."""
    if sigma <= 0:
        return x
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def modcrop(hr: torch.Tensor, factor: int) -> torch.Tensor:
    h, w = hr.shape[-2:]
    return hr[..., : h - h % factor, : w - w % factor]


def degrade(hr: torch.Tensor, factor: int, sigma: float = 1.0) -> torch.Tensor:
    """HR (B, 3, H, W), H and W multiples of ``factor`` → 8-bit-valued LR (B, 3, H/f, W/f)."""
    h, w = hr.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"HR size {h}×{w} is not a multiple of {factor}: modcrop first")
    lr = imresize(gaussian_blur(hr, sigma), (h // factor, w // factor))
    return lr.clamp(0, 255).round()


def upsample_bicubic(lr: torch.Tensor, factor: int) -> torch.Tensor:
    return imresize(lr, (lr.shape[-2] * factor, lr.shape[-1] * factor)).clamp(0, 255)


def histogram_match(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Match each channel's histogram of ``output`` (3, H, W) to ``reference`` (3, h, w)."""
    from skimage.exposure import match_histograms

    out = match_histograms(output.permute(1, 2, 0).double().numpy(), reference.permute(1, 2, 0).double().numpy(),
                           channel_axis=-1)
    return torch.from_numpy(out).permute(2, 0, 1).float()


# ---------------------------------------------------------------------------------------------
# training


class Patches(CachedImages):
    """Random HR patches; the LR input is made on the fly. Items are (index, seed) pairs."""

    def __init__(self, files: Sequence[Path], patch: int, factor: int, sigma: float):
        super().__init__(files)
        self.patch, self.factor, self.sigma = patch, factor, sigma

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Photos whose shorter side is under the patch size are upscaled first."""
        return images.resize_shorter(image, self.patch) if min(image.shape[-2:]) < self.patch else image

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, seed = item
        img = self.image(index)
        gen = torch.Generator().manual_seed(seed)
        top = int(torch.randint(0, img.shape[-2] - self.patch + 1, (1,), generator=gen))
        left = int(torch.randint(0, img.shape[-1] - self.patch + 1, (1,), generator=gen))
        return img[:, top:top + self.patch, left:left + self.patch]  # HR patch; LR made in the step


def sr_model(cfg: SRConfig, method: str) -> nn.Module:
    return SRCNN() if method == "srcnn" else SRNet(cfg.factor)


def sr_input(method: str, lr: torch.Tensor, factor: int) -> torch.Tensor:
    """What a method's network sees: SRCNN the bicubic image, SRNet the LR image."""
    return upsample_bicubic(lr, factor) if method == "srcnn" else lr


def sr_loss(cfg: SRConfig, method: str, net: nn.Module | None):
    """The training step's loss terms for a batch of HR patches (B, 3, P, P): degrade, run the
    network, ℓ_pixel or ℓ_feat (``net`` at ``cfg.feature_layer``) plus optional TV."""

    def loss(m: nn.Module, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        lr = degrade(hr, cfg.factor, cfg.blur_sigma)
        out = m(sr_input(method, lr, cfg.factor))
        if cfg.loss == "pixel":
            main = losses.pixel_loss(out, hr)
        else:
            layer = cfg.feature_layer
            with torch.no_grad():
                target = net(hr, [layer])[layer]
            main = losses.feature_loss(net(out, [layer])[layer], target)
        tv = cfg.tv_weight * losses.tv_loss(out) if cfg.tv_weight else out.new_zeros(())
        return {"total": main + tv, cfg.loss: main, "tv": tv}

    return loss


def train_sr(cfg: SRConfig, method: str, train_dirs: Sequence[Path], run_dir: Path,
             device: str | torch.device | None = None, progress: bool = True, workers: int = 0,
             stop_after: int | None = None, checkpoint_every: int | None = None) -> Path:
    """Train ``method`` ∈ {pixel, feat, srcnn} with the shared resumable loop. The patch must be a
    multiple of the factor; sizes that cannot fit into memory are refused first."""
    if method not in ("pixel", "feat", "srcnn"):
        raise ValueError(f"unknown super-resolution method {method!r} (pixel, feat, srcnn)")
    if cfg.patch % cfg.factor:
        raise ValueError(f"patch {cfg.patch} is not a multiple of the factor {cfg.factor} "
                         f"(try {cfg.patch - cfg.patch % cfg.factor} or {cfg.patch - cfg.patch % cfg.factor + cfg.factor})")
    device = device if isinstance(device, torch.device) else pick_device(device)
    cfg = replace(cfg, loss="pixel" if method in ("pixel", "srcnn") else "feat")
    memory.check(memory.sr_training_bytes(method, cfg.factor, cfg.patch, cfg.batch_size,
                                          cfg.network if cfg.loss == "feat" else None, cfg.feature_layer),
                 device, f"patch {cfg.patch} with batch size {cfg.batch_size}")
    net = precision.channels_last(load_vgg(cfg.network, device)) if cfg.loss == "feat" else None
    train_files, val_files = split_files(train_dirs, cfg.val_images)
    torch.manual_seed(cfg.seed)  # the initial weights are part of the run's identity
    model = sr_model(cfg, method)
    data = Patches(train_files, cfg.patch, cfg.factor, cfg.blur_sigma)
    val_hr = data.stack(val_files, lambda hr: images.center_crop(hr, (cfg.patch, cfg.patch)))
    meta = {"kind": "srcnn" if method == "srcnn" else "sr", "arch": model.arch, "method": method,
            "factor": cfg.factor, "loss_network": cfg.network if net is not None else None,
            "config_hash": config_hash((cfg, method)),
            "provenance": store.provenance(cfg, cfg.seed, cfg.network if net else None, device, method=method,
                                           precision=precision.resolve(cfg.precision, device),
                                           train_images=len(train_files))}

    return fit(model, sr_loss(cfg, method, net), data, cfg, run_dir=run_dir, meta=meta, val_batch=val_hr,
               device=device, workers=workers, progress=progress, desc=f"SR ×{cfg.factor} {method}",
               stop_after=stop_after, checkpoint_every=checkpoint_every)


# ---------------------------------------------------------------------------------------------
# evaluation


def super_resolve(method: str, lr: torch.Tensor, factor: int, model: nn.Module | None,
                  match: bool = False) -> torch.Tensor:
    """(3, h, w) LR → (3, f·h, f·w) output in [0, 255] (float, not yet rounded)."""
    if method == "bicubic":
        return upsample_bicubic(lr[None], factor)[0]
    with torch.inference_mode():
        device = next(model.parameters()).device
        out = model(sr_input(method, lr[None].to(device), factor))[0].cpu().clamp(0, 255)
    return histogram_match(out, lr) if match else out


def evaluate(sets: Sequence[tuple[str, Path]], factor: int, models: dict[str, Path], out_dir: Path,
             device: torch.device, save_images: int = 3, max_images: int = 0, match_feat: bool = True,
             progress: bool = True) -> pd.DataFrame:
    """Per-image PSNR/SSIM (Y, border = factor) for bicubic and every model given.

    ``models`` maps a method (srcnn, pixel, feat) to its checkpoint. ``feat`` is histogram-matched
    to the LR input when ``match_feat`` (the paper's post-processing) and the other variant is
    reported beside it (``feat_raw`` or ``feat_hm``), as ``pixel_hm`` is for ``pixel``: the
    effect of histogram matching is always measured. The first ``save_images`` of each set are
    saved (HR, LR, every output) for the figures.
    """
    from tqdm.auto import tqdm

    loaded = {m: load_model(p, device)[0] for m, p in models.items()}
    variants = [("bicubic", "bicubic", False)]
    for m in loaded:
        variants.append((m, m, m == "feat" and match_feat))
        if m == "feat":
            variants.append(("feat_raw", m, False) if match_feat else ("feat_hm", m, True))
        if m == "pixel":
            variants.append(("pixel_hm", m, True))
    rows = []
    for set_name, folder in sets:
        files = list_images(folder)[: max_images or None]
        for i, path in enumerate(tqdm(files, desc=f"{set_name} ×{factor}", disable=not progress)):
            hr = modcrop(images.read_image(path), factor)
            lr = degrade(hr[None], factor)[0]
            hr8 = images.to_uint8(hr)
            if i < save_images:
                images.write_image(hr, out_dir / f"{set_name}_{path.stem}_x{factor}_hr.png")
                images.write_image(lr, out_dir / f"{set_name}_{path.stem}_x{factor}_lr.png")
            for name, method, match in variants:
                out = super_resolve(method, lr, factor, loaded.get(method), match)
                out8 = images.to_uint8(out)
                rows.append({"dataset": set_name, "image": path.stem, "factor": factor, "method": name,
                             "psnr": metrics.psnr_y(hr8, out8, border=factor),
                             "ssim": metrics.ssim_y(hr8, out8, border=factor)})
                if i < save_images:
                    images.write_image(out, out_dir / f"{set_name}_{path.stem}_x{factor}_{name}.png")
    return pd.DataFrame(rows)


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per-dataset means (and image counts) per factor and method."""
    return (per_image.groupby(["dataset", "factor", "method"], sort=False)
            .agg(psnr=("psnr", "mean"), ssim=("ssim", "mean"), images=("image", "count")).reset_index())

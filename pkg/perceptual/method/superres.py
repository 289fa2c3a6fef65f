"""Super-resolution (paper §4.2): degradation, ℓ_pixel / ℓ_feat / SRCNN training, histogram
matching.

Degradation for training (paper §4.2): Gaussian blur σ = 1.0 (kernel 2·⌈3σ⌉+1 = 7 taps,
reflect padding), then MATLAB-compatible bicubic downsampling by f (:func:`perceptual.core.resize.imresize`:
a = −0.5, antialiased), then rounding to 8 bits — LR inputs are 8-bit images, as on disk. The
bicubic baseline and SRCNN's input are made with the same resize (enlarging).

Training pairs: a random 288² HR patch per photo and iteration (seeded by the iteration);
photos whose shorter side is under 288 px are first upscaled (bicubic) so it is 288. The paper
trains on "10k images from the MS-COCO training set": :func:`training_subset` draws such a
subset, seeded, from the sorted file list; its file list is written next to the run.

The benchmark (Set5 / Set14 / BSD100, its protocols) is :mod:`perceptual.evaluation.sr_benchmark`.

Methods: ``bicubic`` (LR upsampled with the same bicubic), ``srcnn`` (9-1-5 on the bicubic
image, RGB, retrained here with a per-pixel loss, ×4 only as in the paper), ``srcnn-published``
(Dong et al.'s released ×4 model on Y, :mod:`perceptual.method.srcnn`), ``pixel`` and ``feat`` (SRNet
trained with ℓ_pixel or ℓ_feat at relu2_2; identical data, architecture and schedule). Every
network output is reported twice: as is (``matched`` False) and histogram-matched to the LR input
(``matched`` True; the paper's post-processing, §4.2: "our network output").
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perceptual.core import images, store
from perceptual.method import losses, memory
from perceptual.runtime import precision, trainstep
from perceptual.core.config import SRConfig
from perceptual.core.resize import imresize
from perceptual.method.train import FitOptions, config_hash, fit, pick_device, split_files
from perceptual.runtime.batches import CachedImages
from perceptual.method.transformer import SRCNN, SRNet
from perceptual.method.vgg import load_vgg


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


def training_subset(files: Sequence[Path], n: int, seed: int) -> list[Path]:
    """``n`` files drawn without replacement from the sorted list with ``seed`` (``torch.randperm``),
    returned sorted: the same subset on every machine that has the same files. 0 or ≥ len: all,
    in the order given."""
    files = list(files)
    if n <= 0 or n >= len(files):
        return files  # unchanged: runs without a subset keep their identity
    ordered = sorted(files)
    pick = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed))[:n]
    return [ordered[i] for i in sorted(pick.tolist())]


def identity(cfg: SRConfig) -> dict:
    """``cfg`` as hashed before it had an ``upsample`` field: the paper's networks keep their run folders."""
    return {k: v for k, v in store.to_jsonable(cfg).items() if k != "upsample"}


def run_key(cfg: SRConfig, method: str, subset: int = 0) -> tuple:
    """What identifies a trained SR network (its run folder hash); unchanged for subset = 0 and the
    paper's fractionally strided convolutions (``cfg.upsample == "deconv"``; SRCNN has no upsampling layer)."""
    extra = {**({"train_images": subset} if subset else {}),
             **({"upsample": cfg.upsample} if cfg.upsample != "deconv" and method != "srcnn" else {})}
    return (identity(cfg), method, extra) if extra else (identity(cfg), method)


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
    """The network ``method`` trains: SRCNN, or the paper's SR network with ``cfg.upsample`` (the
    paper's "deconv", or "nearest": nearest ×2 then a convolution instead of each fractionally
    strided one, a variant that cannot make checkerboards)."""
    return SRCNN() if method == "srcnn" else SRNet(cfg.factor, upsample=cfg.upsample)


# what each method's network sees: the LR image, or the LR image bicubic-upsampled (SRCNN)
INPUTS = {"pixel": "lr", "feat": "lr", "srcnn": "bicubic", "srcnn-published": "bicubic"}


def sr_input(method: str, lr: torch.Tensor, factor: int) -> torch.Tensor:
    """What a method's network sees: SRCNN the bicubic image, SRNet the LR image."""
    return upsample_bicubic(lr, factor) if INPUTS[method] == "bicubic" else lr


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
             device: str | torch.device | None = None, subset: int = 0, **options) -> Path:
    """Train ``method`` ∈ {pixel, feat, srcnn} with the shared resumable loop, on ``subset``
    training photos (:func:`training_subset`, seeded by ``cfg.seed``; 0 = all; the photos used are
    listed in ``train_files.txt`` in the run folder). The patch must be a multiple of the factor;
    sizes that cannot fit into memory are refused first. ``options``: :class:`FitOptions` fields."""
    if method not in ("pixel", "feat", "srcnn"):
        raise ValueError(f"unknown super-resolution method {method!r} (pixel, feat, srcnn)")
    if cfg.patch % cfg.factor:
        raise ValueError(f"patch {cfg.patch} is not a multiple of the factor {cfg.factor} "
                         f"(try {cfg.patch - cfg.patch % cfg.factor} or {cfg.patch - cfg.patch % cfg.factor + cfg.factor})")
    opts = replace(FitOptions(**options), desc=f"SR ×{cfg.factor} {method}")
    device = device if isinstance(device, torch.device) else pick_device(device)
    prec, _ = trainstep.plan(cfg.precision, device, opts.cuda_graph, opts.compile)  # refused before anything loads or is written
    cfg = replace(cfg, loss="pixel" if method in ("pixel", "srcnn") else "feat")
    memory.check(memory.sr_training_bytes(method, cfg.factor, cfg.patch, cfg.batch_size,
                                          cfg.network if cfg.loss == "feat" else None, cfg.feature_layer),
                 device, f"patch {cfg.patch} with batch size {cfg.batch_size}")
    net = precision.channels_last(load_vgg(cfg.network, device)) if cfg.loss == "feat" else None
    train_files, val_files = split_files(train_dirs, cfg.val_images)
    train_files = training_subset(train_files, subset, cfg.seed)
    file_list = Path(run_dir) / "train_files.txt"
    if subset:
        file_list.parent.mkdir(parents=True, exist_ok=True)
        store.atomic_write_text(file_list, "".join(f"{f}\n" for f in train_files))
    torch.manual_seed(cfg.seed)  # the initial weights are part of the run's identity
    model = sr_model(cfg, method)
    data = Patches(train_files, cfg.patch, cfg.factor, cfg.blur_sigma)
    val_hr = data.stack(val_files, lambda hr: images.center_crop(hr, (cfg.patch, cfg.patch)))
    meta = {"kind": "srcnn" if method == "srcnn" else "sr", "arch": model.arch, "method": method,
            "factor": cfg.factor, "loss_network": cfg.network if net is not None else None,
            "config_hash": config_hash(run_key(cfg, method, subset)),
            "provenance": store.provenance(cfg, cfg.seed, cfg.network if net else None, device, method=method,
                                           precision=prec, train_images=len(train_files))}
    if subset:
        meta["train_files"] = str(file_list)

    return fit(model, sr_loss(cfg, method, net), data, cfg, run_dir=run_dir, meta=meta, val_batch=val_hr,
               device=device, options=opts)


# ---------------------------------------------------------------------------------------------
# evaluation


def super_resolve(method: str, lr: torch.Tensor, factor: int, model: nn.Module | None,
                  match: bool = False) -> torch.Tensor:
    """(3, h, w) LR → (3, f·h, f·w) output in [0, 255] (float, not yet rounded); ``match``:
    histogram-matched to the LR input (paper §4.2)."""
    if method == "bicubic":
        return upsample_bicubic(lr[None], factor)[0]
    with torch.inference_mode():
        device = next(model.parameters()).device
        out = model(sr_input(method, lr[None].to(device), factor))[0].cpu().clamp(0, 255)
    return histogram_match(out, lr) if match else out

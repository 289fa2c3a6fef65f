"""Super-resolution (paper §4.2): degradation, ℓ_pixel / ℓ_feat / SRCNN training, histogram
matching, and the Set5 / Set14 / BSD100 evaluation runner.

Degradation for training (paper §4.2): Gaussian blur σ = 1.0 (kernel 2·⌈3σ⌉+1 = 7 taps,
reflect padding), then MATLAB-compatible bicubic downsampling by f (:func:`perceptual.core.resize.imresize`:
a = −0.5, antialiased), then rounding to 8 bits — LR inputs are 8-bit images, as on disk. The
bicubic baseline and SRCNN's input are made with the same resize (enlarging).

Training pairs: a random 288² HR patch per photo and iteration (seeded by the iteration);
photos whose shorter side is under 288 px are first upscaled (bicubic) so it is 288. The paper
trains on "10k images from the MS-COCO training set": :func:`training_subset` draws such a
subset, seeded, from the sorted file list; its file list is written next to the run.

Evaluation pairs (:data:`PROTOCOLS`): the HR image cropped to a multiple of f (top-left anchored,
"modcrop"), then

- ``standard`` — the SR literature's protocol (SRCNN onwards): LR = MATLAB ``imresize`` by 1/f,
  rounded to 8 bits, no blur. The default for every table; its bicubic row reproduces the
  published baselines (Set5 ×4 28.42 dB, BSD100 ×4 25.96, Set5 ×8 24.39, BSD100 ×8 23.66);
- ``paper-blur`` — the paper's training degradation (σ = 1 Gaussian, then the same resize),
  reported beside it: the numbers inside the paper's Figs. 8/9 may have been made either way.

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

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from perceptual.evaluation import detail, metrics, similarity
from perceptual.core import images, store
from perceptual.method import losses, memory
from perceptual.runtime import precision, trainstep
from perceptual.core.config import SRConfig
from perceptual.core.data import list_images
from perceptual.core.resize import imresize
from perceptual.method.train import CachedImages, config_hash, fit, load_model, pick_device, split_files
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


# evaluation protocols: name → σ of the Gaussian blur before the MATLAB bicubic downscale (0: none)
PROTOCOLS: dict[str, float] = {
    "standard": 0.0,  # the SR literature since SRCNN: imresize(HR, 1/f) only
    "paper-blur": 1.0,  # the paper's §4.2 training degradation, applied to the test images
}
DEFAULT_PROTOCOL = "standard"


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


def run_key(cfg: SRConfig, method: str, subset: int = 0) -> tuple:
    """What identifies a trained SR network (its run folder hash); unchanged for subset = 0."""
    return (cfg, method) if not subset else (cfg, method, {"train_images": subset})


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
             device: str | torch.device | None = None, progress: bool = True, workers: int = 0,
             stop_after: int | None = None, checkpoint_every: int | None = None, subset: int = 0,
             cuda_graph: bool | None = None, deterministic: bool = False, compile: bool = False) -> Path:
    """Train ``method`` ∈ {pixel, feat, srcnn} with the shared resumable loop, on ``subset``
    training photos (:func:`training_subset`, seeded by ``cfg.seed``; 0 = all; the photos used are
    listed in ``train_files.txt`` in the run folder). The patch must be a multiple of the factor;
    sizes that cannot fit into memory are refused first."""
    if method not in ("pixel", "feat", "srcnn"):
        raise ValueError(f"unknown super-resolution method {method!r} (pixel, feat, srcnn)")
    if cfg.patch % cfg.factor:
        raise ValueError(f"patch {cfg.patch} is not a multiple of the factor {cfg.factor} "
                         f"(try {cfg.patch - cfg.patch % cfg.factor} or {cfg.patch - cfg.patch % cfg.factor + cfg.factor})")
    device = device if isinstance(device, torch.device) else pick_device(device)
    prec, _ = trainstep.plan(cfg.precision, device, cuda_graph, compile)  # refused before anything loads or is written
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
               device=device, workers=workers, progress=progress, desc=f"SR ×{cfg.factor} {method}",
               stop_after=stop_after, checkpoint_every=checkpoint_every, cuda_graph=cuda_graph,
               deterministic=deterministic, compile=compile)


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


def variants(methods: Sequence[str]) -> list[tuple[str, bool]]:
    """(method, matched) rows: bicubic as is; every network output as is and histogram-matched."""
    return [("bicubic", False)] + [(m, match) for m in methods for match in (False, True)]


def image_name(set_name: str, stem: str, factor: int, what: str, matched: bool = False) -> str:
    """File name of a saved evaluation image (``what``: hr, lr or a method; ``_hm`` when matched)."""
    return f"{set_name}_{stem}_x{factor}_{what}{'_hm' if matched else ''}.png"


def evaluate(sets: Sequence[tuple[str, Path]], factor: int, models: dict[str, Path | nn.Module], out_dir: Path,
             device: torch.device, protocols: Sequence[str] = tuple(PROTOCOLS), save_images: int = 3,
             max_images: int = 0, perceptual: Sequence[similarity.Metric] = (),
             progress: bool = True) -> pd.DataFrame:
    """Per-image PSNR/SSIM (Y rounded to 8 bits, border = factor) and any ``perceptual`` metrics
    (same crop) for bicubic and every model given, under every protocol in ``protocols``.

    ``models`` maps a method (srcnn, srcnn-published, pixel, feat) to a checkpoint or a network.
    Rows: dataset, image, factor, protocol, method, matched, psnr, ssim, <perceptual metric>…, and
    the detail measures of :func:`perceptual.evaluation.detail.sr_measures` (same crop). The first
    ``save_images`` of each set are saved (HR, LR, every output) under the default protocol, where
    the detail measures are computed (they are NaN under the others).
    """
    from tqdm.auto import tqdm

    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown evaluation protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    loaded = {m: (load_model(p, device)[0] if isinstance(p, (str, Path)) else p.to(device).eval())
              for m, p in models.items()}
    rows = []
    for set_name, folder in sets:
        files = list_images(folder)[: max_images or None]
        for i, path in enumerate(tqdm(files, desc=f"{set_name} ×{factor}", disable=not progress)):
            hr = modcrop(images.read_image(path), factor)
            hr8 = images.to_uint8(hr)
            ref = hr8[factor:-factor, factor:-factor]  # the metrics' crop, for the perceptual metrics
            for protocol in protocols:
                lr = degrade(hr[None], factor, PROTOCOLS[protocol])[0]
                save = i < save_images and protocol == DEFAULT_PROTOCOL
                if save:
                    images.write_image(hr, out_dir / image_name(set_name, path.stem, factor, "hr"))
                    images.write_image(lr, out_dir / image_name(set_name, path.stem, factor, "lr"))
                raw: dict[str, torch.Tensor] = {}  # each network runs once; matching is applied to its output
                for method, match in variants(list(loaded)):
                    if method not in raw:
                        raw[method] = super_resolve(method, lr, factor, loaded.get(method))
                    out = histogram_match(raw[method], lr) if match else raw[method]
                    out8 = images.to_uint8(out)
                    crop = out8[factor:-factor, factor:-factor]
                    measures = detail.sr_measures(ref, crop) if protocol == DEFAULT_PROTOCOL else {}
                    rows.append({"dataset": set_name, "image": path.stem, "factor": factor, "protocol": protocol,
                                 "method": method, "matched": match,
                                 "psnr": metrics.psnr_y(hr8, out8, border=factor),
                                 "ssim": metrics.ssim_y(hr8, out8, border=factor),
                                 **{m.name: m(ref, crop) for m in perceptual}, **measures})
                    if save:
                        images.write_image(out, out_dir / image_name(set_name, path.stem, factor, method, match))
    return pd.DataFrame(rows)


def summarise(per_image: pd.DataFrame, not_computed: dict[str, str] | None = None) -> pd.DataFrame:
    """Per-dataset means (and image counts) per factor, protocol, method and matching. Perceptual
    metrics that were not computed get a column holding the reason (never a bare NaN)."""
    keys = ["dataset", "factor", "protocol", "method", "matched"]
    values = [c for c in per_image.columns if c not in keys + ["image"]]
    out = (per_image.groupby(keys, sort=False)[values].mean()
           .join(per_image.groupby(keys, sort=False)["image"].count().rename("images")).reset_index())
    for name, reason in (not_computed or {}).items():
        out[name] = reason
    return out

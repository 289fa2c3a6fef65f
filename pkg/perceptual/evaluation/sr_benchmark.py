"""The SR benchmark (paper §4.2, Figs. 8/9): Set5 / Set14 / BSD100 evaluated as the SR
literature does, per image and summarised.

Evaluation pairs (:data:`PROTOCOLS`): the HR image cropped to a multiple of f (top-left anchored,
"modcrop"), then

- ``standard`` — the SR literature's protocol (SRCNN onwards): LR = MATLAB ``imresize`` by 1/f,
  rounded to 8 bits, no blur. The default for every table; its bicubic row reproduces the
  published baselines (Set5 ×4 28.42 dB, BSD100 ×4 25.96, Set5 ×8 24.39, BSD100 ×8 23.66);
- ``paper-blur`` — the paper's training degradation (σ = 1 Gaussian, then the same resize),
  reported beside it: the numbers inside the paper's Figs. 8/9 may have been made either way.

Every network output is reported twice: as is (``matched`` False) and histogram-matched to the LR
input (``matched`` True; the paper's post-processing, §4.2: "our network output").
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from perceptual.core import images
from perceptual.core.data import list_images
from perceptual.evaluation import detail, metrics, similarity
from perceptual.method.superres import degrade, histogram_match, modcrop, super_resolve
from perceptual.method.train import load_model

# evaluation protocols: name → σ of the Gaussian blur before the MATLAB bicubic downscale (0: none)
PROTOCOLS: dict[str, float] = {
    "standard": 0.0,  # the SR literature since SRCNN: imresize(HR, 1/f) only
    "paper-blur": 1.0,  # the paper's §4.2 training degradation, applied to the test images
}
DEFAULT_PROTOCOL = "standard"



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

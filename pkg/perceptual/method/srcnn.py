"""The published SRCNN (Dong et al., TPAMI 2016 / arXiv:1501.00092), as the paper used it.

The paper's baseline is "SRCNN [1] ... trained on 33×33 patches from the ILSVRC 2013 detection
dataset": the authors' released ×4 model trained on ImageNet, ``model/9-5-5(ImageNet)/x4.mat`` in
their ``SRCNN_v1`` test code (9×9, 5×5, 5×5 filters, 64 and 32 channels; the code ships no ×4
9-1-5 ImageNet model, only 9-1-5 trained on 91 images). It is registered as the dataset
``srcnn-x4`` (``data/files/srcnn-x4.tsv``: raw URL and sha256) and fetched like any dataset.

What the authors' MATLAB test code (``SRCNN.m``, ``demo_SR.m``) does, and so what we do:

- the network sees **Y only** (``rgb2ycbcr``), scaled to [0, 1], of the bicubic-upsampled image;
- the ``.mat`` holds ``weights_conv1`` (k₁², 64), ``weights_conv2`` (64, k₂², 32),
  ``weights_conv3`` (32, k₃²) and ``biases_convN`` (n, 1); each k² column is a k×k kernel in
  MATLAB's column-major order, applied by ``imfilter`` (a correlation, like ``conv2d``);
- geometry: the network is valid-only (it was trained in Caffe without padding, losing
  (k₁−1)/2 + (k₂−1)/2 + (k₃−1)/2 px per side: 6 for 9-1-5, 8 for 9-5-5); the test code keeps the
  image size by replicating each layer's input border (``imfilter(..., 'same', 'replicate')``),
  so we pad each layer's input by (k−1)/2 with ``replicate`` and convolve valid;
- the output Y is rounded to 8 bits; colour (Cb, Cr) comes from the bicubic image. Evaluation
  crops ``f`` border pixels, as ``demo_SR.m`` (``shave``) and every protocol here do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perceptual.core import data, paths
from perceptual.core.colour import rgb_to_ycbcr, ycbcr_to_rgb
from perceptual.method.vgg import check_images

DATASET = "srcnn-x4"  # data/datasets.tsv


class PublishedSRCNN(nn.Module):
    """SRCNN on Y with the authors' weights: (B, 3, H, W) bicubic RGB in [0, 255] → RGB (same size)."""

    def __init__(self, weights: dict[str, np.ndarray], source: str = "?"):
        super().__init__()
        self.source = source
        convs = []
        for n, (w, b) in enumerate(_kernels(weights), start=1):
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1])  # valid: padding is done per layer
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
            convs.append(conv)
        self.convs = nn.ModuleList(convs)
        self.arch = {"filters": [c.kernel_size[0] for c in convs], "channels": [c.out_channels for c in convs]}
        self.requires_grad_(False)

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) Y in [0, 1] → (B, 1, H, W): valid convs on replicate-padded inputs."""
        for i, conv in enumerate(self.convs):
            r = conv.kernel_size[0] // 2
            y = conv(F.pad(y, (r, r, r, r), mode="replicate") if r else y)
            if i < len(self.convs) - 1:
                y = F.relu(y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        ycc = rgb_to_ycbcr(x)  # (B, 3, H, W)
        y = (self.forward_y(ycc[:, :1] / 255.0) * 255.0).clamp(0, 255).round()  # uint8(im_h * 255)
        return ycbcr_to_rgb(torch.cat([y, ycc[:, 1:]], 1)).clamp(0, 255)


def _kernels(weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(out, in, k, k) float32 weight and (out,) bias per layer from the .mat layout."""
    w1, w2, w3 = (np.asarray(weights[f"weights_conv{i}"], dtype=np.float64) for i in (1, 2, 3))
    if w2.ndim == 2:  # a 1×1 middle layer may be stored without its singleton axis
        w2 = w2[:, None, :]
    k1, k2, k3 = (int(round(np.sqrt(n))) for n in (w1.shape[0], w2.shape[1], w3.shape[1]))
    if (k1 * k1, k2 * k2, k3 * k3) != (w1.shape[0], w2.shape[1], w3.shape[1]) or w2.shape[0] != w1.shape[1] \
            or w3.shape[0] != w2.shape[2]:
        raise ValueError(f"not an SRCNN weight file: conv shapes {w1.shape}, {w2.shape}, {w3.shape}")
    k_1 = w1.reshape(k1, k1, w1.shape[1], order="F").transpose(2, 0, 1)[:, None]  # (64, 1, k1, k1)
    k_2 = w2.reshape(w2.shape[0], k2, k2, w2.shape[2], order="F").transpose(3, 0, 1, 2)  # (32, 64, k2, k2)
    k_3 = w3.reshape(w3.shape[0], k3, k3, order="F")[None]  # (1, 32, k3, k3)
    biases = [np.asarray(weights[f"biases_conv{i}"], dtype=np.float64).reshape(-1) for i in (1, 2, 3)]
    return [(k.astype(np.float32), b.astype(np.float32)) for k, b in zip((k_1, k_2, k_3), biases)]


def load_mat(path: Path) -> PublishedSRCNN:
    """The network from an SRCNN ``.mat`` file (scipy.io.loadmat)."""
    from scipy.io import loadmat

    try:
        weights = loadmat(str(path))
        return PublishedSRCNN(weights, source=str(path))
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path}: not an SRCNN .mat weight file ({err}); fetch it again with "
                         f"`perceptual data fetch {DATASET}`") from err


def published_file(fetch: bool = True) -> tuple[Path | None, str]:
    """The verified ``.mat`` (data root, else the download cache, downloading it there when
    ``fetch``) and a one-line note; ``(None, reason)`` when it cannot be had."""
    ds = data.get(DATASET)
    rel = ds.files()[0][0]
    roots = dict.fromkeys([paths.data_root(), paths.cache_dir() / "data"])
    for root in roots:
        path = ds.path(root) / rel
        if path.is_file() and data.verify(path, ds.files()[0][2]):
            return path, f"published SRCNN ({ds.description}) from {path}"
    if not fetch:
        return None, f"published SRCNN weights not present (run `perceptual data fetch {DATASET}`)"
    try:
        folder = data.fetch(DATASET, root=paths.cache_dir() / "data", progressbar=False)
    except data.DataError as err:
        return None, f"published SRCNN weights could not be downloaded ({str(err).splitlines()[0]})"
    return folder / rel, f"published SRCNN ({ds.description}), downloaded and verified"


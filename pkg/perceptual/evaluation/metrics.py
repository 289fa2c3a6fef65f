"""PSNR and SSIM as super-resolution papers report them (paper §4.2, following SRCNN).

The protocol is in the signatures: both take two 8-bit RGB images (H, W, 3) uint8 — i.e. outputs
already rounded to 8 bits —, convert to the Y channel of YCbCr (ITU-R BT.601, studio range
16–235) exactly as MATLAB's ``rgb2ycbcr`` does for ``uint8`` input, i.e. **rounded to 8 bits**
(half away from zero, :func:`y_uint8`; the SRCNN and later evaluation code call it on uint8
images), crop ``border`` pixels from every side, and compute in float64 with peak value 255.
Rounding Y moves a PSNR by up to a few hundredths of a dB; it is what the published numbers do.

SSIM follows Wang et al. (2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, the
statistics over the window's "valid" positions only, mean of the SSIM map.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from perceptual.core.colour import YCBCR_MATRIX, YCBCR_OFFSET


# ITU-R BT.601 studio range, as MATLAB's rgb2ycbcr: YCbCr = OFFSET + MATRIX · RGB / 255 (RGB in 0–255)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, studio range: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (float64)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    return YCBCR_OFFSET[0] + rgb @ np.asarray(YCBCR_MATRIX[0]) / 255.0


def y_uint8(rgb: np.ndarray) -> np.ndarray:
    """Y as MATLAB's ``rgb2ycbcr`` returns it for uint8 input: rounded half away from zero,
    saturated to [0, 255] (float64 array holding integers)."""
    return np.clip(np.floor(rgb_to_y(rgb) + 0.5), 0, 255)  # Y ≥ 16 > 0: floor(y + ½) = MATLAB round


def _prepare(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    for name, x in (("reference", a), ("test", b)):
        if x.dtype != np.uint8:
            raise TypeError(f"{name} image must be 8-bit (uint8, rounded); got {x.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if border < 0 or 2 * border >= min(a.shape[:2]):
        raise ValueError(f"border {border} leaves nothing of a {a.shape[0]}×{a.shape[1]} image")
    ya, yb = y_uint8(a), y_uint8(b)
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    return ya, yb


def psnr_y(reference: np.ndarray, test: np.ndarray, *, border: int) -> float:
    """PSNR in dB on Y after cropping ``border`` px: 10·log10(255² / MSE). Identical → inf."""
    ya, yb = _prepare(reference, test, border)
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()  # separable 1-D factor of the normalised 2-D window


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    r = len(g) // 2
    y = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return y[r:-r, r:-r]  # positions where the window lies inside the image


def ssim_y(reference: np.ndarray, test: np.ndarray, *, border: int, window: int = 11, sigma: float = 1.5,
           k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean SSIM (Wang et al. 2004) on Y after cropping ``border`` px."""
    x, y = _prepare(reference, test, border)
    if min(x.shape) < window:
        raise ValueError(f"image {x.shape} is smaller than the {window}×{window} SSIM window")
    return ssim_array(x, y, window=window, sigma=sigma, k1=k1, k2=k2)


def ssim_array(x: np.ndarray, y: np.ndarray, *, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
               k2: float = 0.03, peak: float = 255.0) -> float:
    """SSIM of two float64 single-channel arrays."""
    g = gaussian_window(window, sigma)
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    mx, my = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mx * mx
    syy = _filter_valid(y * y, g) - my * my
    sxy = _filter_valid(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def psnr_rgb(reference, test) -> float:
    """PSNR in dB over all channels and pixels of two same-shape float images in [0, 255]
    (tensors or arrays; not rounded, not cropped): how close two renderings of one output are
    (precision, ONNX). Identical → inf."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)

"""Measured proxies for what the paper shows in pictures: fine detail, colour, spatial scale and
periodic artefacts (claims C6, C7, C9 and C10 of the Claims chapter).

All functions take float arrays in [0, 255] and need no downloaded weights.

- :func:`gradient_energy_ratio` — mean gradient magnitude of an output over that of the ground
  truth (1 = as much edge energy as the truth; bicubic and ℓ_pixel outputs are smoother, < 1).
- :func:`high_frequency_ratio` — spectral energy above half the Nyquist frequency, output over
  truth: how much fine detail is reconstructed (or invented).
- :func:`high_band_correlation` — the correlation of an output's high band (above half Nyquist)
  with the truth's: whether the detail an output adds is *right* (1: the truth's own detail, 0:
  detail unrelated to it, as invented texture or noise), whatever its amount.
- :func:`periodic_peak_ratio` — the strongest isolated peak of a residual's power spectrum over
  the median power at that radius: a regular pattern (the cross-hatch of ℓ_feat) shows as peaks,
  up to the corners of the spectrum (the period-2 checkerboard: f = 0.5 along an axis, √2·0.5
  diagonally).
- :func:`colour_histogram_distance` — the mean over R, G, B of the total-variation distance
  between 32-bin histograms (0 = same colours, 1 = disjoint).
- :func:`dominant_wavelength` — the power-weighted mean wavelength (px) of an image's luminance
  spectrum: larger when the structure is larger.
"""
from __future__ import annotations

import numpy as np

# 2: high_band_correlation added, periodic_peak_ratio's rings reach the spectrum's corners (issue 26);
# stored in the SR tables' meta (``detail_version``) so that a table measured before says so
VERSION = 2

_LUMA = np.array([0.299, 0.587, 0.114])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (3, H, W) RGB → (H, W) BT.601 luma, float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.shape[-1] != 3:
        rgb = rgb.transpose(1, 2, 0)
    if rgb.ndim == 2:
        return rgb
    return rgb @ _LUMA


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    """|∇| by central differences, (H−2, W−2)."""
    gy = (gray[2:, 1:-1] - gray[:-2, 1:-1]) / 2
    gx = (gray[1:-1, 2:] - gray[1:-1, :-2]) / 2
    return np.hypot(gx, gy)


def gradient_energy_ratio(output: np.ndarray, truth: np.ndarray) -> float:
    """Mean gradient magnitude of ``output`` over that of ``truth`` (luma)."""
    return float(gradient_magnitude(luminance(output)).mean() / max(gradient_magnitude(luminance(truth)).mean(), 1e-12))


def _spectrum(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier transform (Hann-windowed, mean removed, centred) and each bin's radius in cycles/px."""
    h, w = gray.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spec = np.fft.fftshift(np.fft.fft2((gray - gray.mean()) * window))
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    return spec, np.hypot(fy, fx)


def _power(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum (Hann-windowed, mean removed) and each bin's radius in cycles/px."""
    spec, r = _spectrum(gray)
    return np.abs(spec) ** 2, r


def high_frequency_ratio(output: np.ndarray, truth: np.ndarray, cutoff: float = 0.25) -> float:
    """Spectral energy above ``cutoff`` cycles/px (0.25 = half Nyquist), output over truth."""
    so, r = _power(luminance(output))
    st, _ = _power(luminance(truth))
    band = r > cutoff
    return float(so[band].sum() / max(st[band].sum(), 1e-12))


def high_band_share(image: np.ndarray, cutoff: float = 0.25) -> float:
    """The share of an image's spectral power (luminance, Hann-windowed, mean removed) above
    ``cutoff`` cycles/px. White noise puts ≈ 0.80 there (the band's share of the frequency square,
    1 − π·0.25²); photos and converged reconstructions far less."""
    spec, r = _power(luminance(np.asarray(image, dtype=np.float64)))
    return float(spec[r > cutoff].sum() / max(spec.sum(), 1e-12))


def high_band_correlation(output: np.ndarray, truth: np.ndarray, cutoff: float = 0.25) -> float:
    """Pearson correlation of the output's and the truth's luminance restricted to frequencies above
    ``cutoff`` cycles/px (the band :func:`high_frequency_ratio` measures the amount of): 1 when the
    output's fine detail is the truth's (at any amplitude), ≈ 0 when it is unrelated to it, < 0
    when it is inverted. 0 when either has no energy there."""
    so, r = _spectrum(luminance(output))
    st, _ = _spectrum(luminance(truth))
    band = r > cutoff
    num = float(np.real(np.sum(so[band] * np.conj(st[band]))))
    den = float(np.sqrt(np.sum(np.abs(so[band]) ** 2) * np.sum(np.abs(st[band]) ** 2)))
    return num / den if den > 0 else 0.0


def periodic_peak_ratio(residual: np.ndarray, low: float = 0.1) -> float:
    """Max over frequencies above ``low`` cycles/px of power / median power in its ring (0.025
    cycles/px wide). The rings run to the spectrum's corners, so the period-2 checkerboard
    (f = 0.5 on an axis, 0.71 on the diagonal) is included."""
    spec, r = _power(luminance(residual))
    best = 0.0
    edges = np.arange(low, float(r.max()) - 0.025, 0.025)  # the last ring runs on to the corners
    for i, lo in enumerate(edges):
        ring = (r >= lo) & ((r < edges[i + 1]) if i + 1 < len(edges) else (r <= r.max()))
        if ring.sum() < 8:
            continue
        vals = spec[ring]
        best = max(best, float(vals.max() / max(np.median(vals), 1e-12)))
    return best


def colour_histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Mean over channels of ½ Σ |p − q| between normalised histograms; (H, W, 3) or (3, H, W)."""
    a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
    a = a.transpose(1, 2, 0) if a.shape[0] == 3 and a.shape[-1] != 3 else a
    b = b.transpose(1, 2, 0) if b.shape[0] == 3 and b.shape[-1] != 3 else b
    total = 0.0
    for c in range(3):
        p, _ = np.histogram(a[..., c], bins=bins, range=(0, 256))
        q, _ = np.histogram(b[..., c], bins=bins, range=(0, 256))
        total += 0.5 * np.abs(p / p.sum() - q / q.sum()).sum()
    return total / 3


def dominant_wavelength(image: np.ndarray) -> float:
    """Power-weighted mean wavelength 1/f in px over frequencies above 1/(image size)."""
    spec, r = _power(luminance(image))
    keep = r >= 1.0 / min(spec.shape)
    return float((spec[keep] / r[keep]).sum() / spec[keep].sum())


def spearman(x, y) -> float:
    """Spearman rank correlation (no ties expected; average ranks otherwise)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def sr_measures(truth: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Per-image detail measures of a super-resolved output (uint8 or float, (H, W, 3)):
    gradient and high-frequency energy relative to the truth, the high band's correlation with
    the truth's (is the detail right), and the periodic peak of the error ``output − truth`` (a
    cross-hatch or checkerboard pattern shows as a peak)."""
    truth, output = np.asarray(truth, dtype=np.float64), np.asarray(output, dtype=np.float64)
    return {"grad_ratio": gradient_energy_ratio(output, truth), "hf_ratio": high_frequency_ratio(output, truth),
            "hf_corr": high_band_correlation(output, truth), "hatch_peak": periodic_peak_ratio(output - truth)}

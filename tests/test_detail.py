"""The measured proxies behind claims C6, C7, C9, C10 on synthetic images with known answers."""
import numpy as np
import pytest

from perceptual.evaluation import detail


def _stripes(period: float, size: int = 128, angle: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    t = x * np.cos(angle) + y * np.sin(angle)
    g = 127.5 + 100 * np.sin(2 * np.pi * t / period)
    return np.stack([g, g, g], -1)


def test_gradient_ratio_is_one_for_itself_and_smaller_when_blurred():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (64, 64, 3))
    assert detail.gradient_energy_ratio(img, img) == pytest.approx(1.0)
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(img, (2, 2, 0))
    assert detail.gradient_energy_ratio(blurred, img) < 0.5
    assert detail.gradient_energy_ratio(2 * img, img) == pytest.approx(2.0)  # linear in contrast


def test_high_frequency_ratio():
    fine, coarse = _stripes(3.0), _stripes(32.0)
    assert detail.high_frequency_ratio(fine, fine) == pytest.approx(1.0)
    assert detail.high_frequency_ratio(coarse, fine) < 0.01  # a 32-px period has no energy above 0.25 c/px


def test_periodic_peak_stands_out_of_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 5, (128, 128, 3))
    hatch = noise + 0.2 * (_stripes(4.0, angle=np.pi / 4) - 127.5)
    assert detail.periodic_peak_ratio(hatch) > 10 * detail.periodic_peak_ratio(noise)


def test_colour_histogram_distance_bounds():
    a = np.zeros((8, 8, 3))
    b = np.full((8, 8, 3), 255.0)
    assert detail.colour_histogram_distance(a, a) == 0.0
    assert detail.colour_histogram_distance(a, b) == pytest.approx(1.0)
    half = np.concatenate([a[:4], b[:4]])
    assert detail.colour_histogram_distance(a, half) == pytest.approx(0.5)


def test_dominant_wavelength_tracks_the_period():
    assert detail.dominant_wavelength(_stripes(16.0)) == pytest.approx(16.0, rel=0.15)
    assert detail.dominant_wavelength(_stripes(32.0)) > 1.7 * detail.dominant_wavelength(_stripes(16.0))


def test_spearman():
    assert detail.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert detail.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)

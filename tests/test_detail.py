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


def test_periodic_peak_reaches_the_period_2_checkerboard():
    """The rings run to the spectrum's corners: a period-2 pattern (f = 0.5 along an axis, the
    checkerboard on the diagonal) stands out of noise; the rings used to stop short of f = 0.5."""
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 5, (128, 128, 3))
    y, x = np.mgrid[:128, :128]
    columns = np.repeat((2.0 * (x % 2) - 1)[..., None], 3, -1)  # alternate every pixel along x: f = (0.5, 0)
    board = np.repeat((2.0 * ((x + y) % 2) - 1)[..., None], 3, -1)  # the checkerboard: f = (0.5, 0.5)
    base = detail.periodic_peak_ratio(noise)
    assert detail.periodic_peak_ratio(noise + 2 * columns) > 50 * base
    assert detail.periodic_peak_ratio(noise + 2 * board) > 50 * base


def test_high_band_correlation_says_whether_the_detail_is_right():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 255, (64, 64, 3))
    assert detail.high_band_correlation(truth, truth) == pytest.approx(1.0)
    assert detail.high_band_correlation(0.3 * truth, truth) == pytest.approx(1.0)  # any amplitude: right detail
    assert detail.high_band_correlation(255 - truth, truth) == pytest.approx(-1.0)
    invented = rng.uniform(0, 255, (64, 64, 3))  # as much detail, unrelated to the truth
    assert abs(detail.high_band_correlation(invented, truth)) < 0.1
    assert detail.high_band_correlation(truth + invented, truth) == pytest.approx(np.sqrt(0.5), abs=0.1)
    flat = np.full((64, 64, 3), 128.0)
    assert detail.high_band_correlation(flat, truth) == 0.0
    assert set(detail.sr_measures(truth, truth)) == {"grad_ratio", "hf_ratio", "hf_corr", "hatch_peak"}
